"""Isolation and ventilation confirmed by the PLC's latest state: `<equipment>.isolated` and `<equipment>.running` true, fresh."""

from __future__ import annotations

import msgspec

from interlock.config import SiteConfig
from interlock.findings import Findings
from schemas.payloads import PermitRow


class PlcView(msgspec.Struct, gc=False):
    """Latest tag values of one PLC (merged across messages) and when they were last confirmed (record time)."""

    ts: int
    tags: dict[str, bool]


def check_plc_signals(findings: Findings, row: PermitRow, equipment_plc: dict[str, str], views: dict[str, PlcView],
                      untrusted: dict[str, str], now: int, config: SiteConfig) -> None:
    """Every isolation isolated and every ventilation fan running, on a PLC whose state is trusted and fresh."""
    for names, signal, code in ((row.isolations, "isolated", "ISOLATION_NOT_CONFIRMED"),
                                (row.ventilation, "running", "VENTILATION_NOT_RUNNING")):
        for equipment in names:
            plc = equipment_plc.get(equipment)
            view = views.get(plc) if plc is not None else None
            if plc is None:
                findings.stop("EQUIPMENT_NOT_ON_PLC", f"{equipment} is on no PLC in the CMDB")
            elif plc in untrusted:
                findings.device_fault(untrusted[plc], plc)
            elif view is None:
                findings.stop("PLC_STATE_STALE", f"no state from {plc} yet ({equipment}.{signal})")
            elif now - view.ts > config.plc_state_max_age_ms:
                findings.stop("PLC_STATE_STALE", f"{plc} state is {(now - view.ts) / 1000:.0f} s old "
                                                 f"(limit {config.plc_state_max_age_ms / 1000:g} s)")
            else:
                findings.wake(view.ts + config.plc_state_max_age_ms + 1)
                value = view.tags.get(f"{equipment}.{signal}")
                if value is not True:
                    findings.stop(code, f"{plc} {equipment}.{signal} is {'absent' if value is None else str(value).lower()}")
