"""Checks of the permit record itself: validity window and its GB 30871-2022 maximum, signatures, roles, and the zone's forbidden work."""

from __future__ import annotations

from interlock.config import SiteConfig
from interlock.site_time import format_site_time
from schemas.payloads import PermitRow, ZoneRow

RECORD_CODES = (
    "PERMIT_OUTSIDE_VALIDITY",
    "PERMIT_WINDOW_TOO_LONG",
    "PERMIT_GRADE_UNKNOWN",
    "PERMIT_SIGNATURE_MISSING",
    "PERMIT_APPROVER_IS_APPLICANT",
    "PERMIT_GUARDIAN_IS_WORKER",
    "ZONE_UNKNOWN",
    "ZONE_FORBIDS_WORK_TYPE",
    "GAS_DETECTOR_NOT_LISTED",
)


def record_problems(permit: PermitRow, zone: ZoneRow | None, now: int, config: SiteConfig) -> tuple[list[tuple[str, str]], int | None]:
    """The (code, detail) problems of the permit record at `now`, and the next time the answer changes by time alone."""
    problems: list[tuple[str, str]] = []
    wake: int | None = None
    if now < permit.valid_from:
        since = format_site_time(permit.valid_from, config.utc_offset_minutes)
        problems.append(("PERMIT_OUTSIDE_VALIDITY", f"{permit.permit} is valid from {since}, not yet"))
        wake = permit.valid_from
    elif now > permit.valid_to:
        until = format_site_time(permit.valid_to, config.utc_offset_minutes)
        problems.append(("PERMIT_OUTSIDE_VALIDITY", f"{permit.permit} expired at {until}"))
    else:
        wake = permit.valid_to + 1
    maxima = config.max_window_hours.get(permit.type)
    if maxima is not None:
        hours = maxima.get(permit.grade, maxima.get("*"))
        if hours is None:
            problems.append(("PERMIT_GRADE_UNKNOWN", f"{permit.permit} grade {permit.grade!r} is not one of {sorted(maxima)} for {permit.type}"))
        elif permit.valid_to - permit.valid_from > hours * 3_600_000:
            window = (permit.valid_to - permit.valid_from) / 3_600_000
            problems.append(("PERMIT_WINDOW_TOO_LONG", f"{permit.permit} window {window:g} h exceeds {hours:g} h for {permit.type} grade {permit.grade}"))
    signatures = permit.signatures
    missing = [role for role in ("applicant", "guardian", "approver", "supervisor") if not getattr(signatures, role)]
    if missing:
        problems.append(("PERMIT_SIGNATURE_MISSING", f"{permit.permit} lacks the {', '.join(missing)} signature"))
    for role, expected in (("approver", permit.approver), ("guardian", permit.guardian)):
        signed = getattr(signatures, role)
        if signed and signed != expected:
            problems.append(("PERMIT_SIGNATURE_MISSING", f"{permit.permit} {role} signature is by {signed}, not the {role} {expected}"))
    if signatures.applicant and signatures.applicant == permit.approver:
        problems.append(("PERMIT_APPROVER_IS_APPLICANT", f"{permit.permit} approver {permit.approver} is also the applicant"))
    if permit.guardian in permit.workers:
        problems.append(("PERMIT_GUARDIAN_IS_WORKER", f"{permit.permit} guardian {permit.guardian} is also a worker"))
    if zone is None:
        problems.append(("ZONE_UNKNOWN", f"{permit.permit} zone {permit.zone} has no GIS row"))
    elif permit.type in zone.forbid:
        problems.append(("ZONE_FORBIDS_WORK_TYPE", f"zone {zone.zone} forbids {permit.type}"))
    if permit.type in config.gas_work_types and not permit.detectors:
        problems.append(("GAS_DETECTOR_NOT_LISTED", f"{permit.permit} is {permit.type} but lists no gas detector"))
    return problems, wake
