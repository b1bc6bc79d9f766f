"""The guardian is where the permit says: located (fix quality at least 0.5) in the zone, or at the entrance of a confined space."""

from __future__ import annotations

from interlock.config import SiteConfig
from interlock.findings import Findings
from interlock.geometry import Area, ZoneView
from schemas.payloads import PermitRow


def guardian_area(row: PermitRow, view: ZoneView | None) -> Area | None:
    """Where the guardian must stand: the zone, or the entrance area of a confined space (None when there is none)."""
    if view is None:
        return None
    return view.entrance if row.type == "confined_space" else view.area


def check_guardian(findings: Findings, row: PermitRow, view: ZoneView | None, seen: int | None, now: int,
                   config: SiteConfig) -> None:
    """GUARDIAN_ABSENT when the guardian has not been located in the area for longer than allowed."""
    if view is None:
        return
    where = f"the entrance of {row.zone}" if row.type == "confined_space" else row.zone
    if guardian_area(row, view) is None:
        findings.stop("GUARDIAN_ABSENT", f"{row.zone} has no entrance area in the GIS to locate guardian {row.guardian}")
    elif seen is None:
        findings.stop("GUARDIAN_ABSENT", f"guardian {row.guardian} not located in {where}")
    elif now - seen > config.guardian_absence_max_ms:
        findings.stop("GUARDIAN_ABSENT", f"guardian {row.guardian} not located in {where} for {(now - seen) / 1000:.0f} s "
                                         f"(limit {config.guardian_absence_max_ms / 1000:g} s)")
    else:
        findings.wake(seen + config.guardian_absence_max_ms + 1)
