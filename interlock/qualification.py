"""Qualification health of a worker for a work type: GREEN, YELLOW (renewal due within 90 days) or RED (not qualified)."""

from __future__ import annotations

import datetime

import msgspec

from interlock.findings import Findings
from interlock.site_time import next_site_midnight, site_date
from interlock.config import SiteConfig
from schemas.payloads import Certificate, PermitRow, QualificationRow

GREEN = "GREEN"
YELLOW = "YELLOW"
RED = "RED"
_RANK = {GREEN: 0, YELLOW: 1, RED: 2}


def certificate_health(cert: Certificate, today: datetime.date, config: SiteConfig) -> tuple[str, str]:
    """The grade of one certificate on `today` (site calendar), with the reason."""
    label = f"{cert.type} certificate {cert.no}".rstrip()
    if cert.status != "valid":
        return RED, f"{label} is {cert.status}"
    due = [("expires", cert.expires)]
    if cert.review_due is not None:
        due.append(("review due", cert.review_due))
    what, when = min(due, key=lambda item: item[1])
    days = (when - today).days
    if days < 0:
        return RED, f"{label} {'expired' if what == 'expires' else 'review overdue'} since {when.isoformat()}"
    if days <= config.qualification_red_days:
        return RED, f"{label} {what} {when.isoformat()}, in {days} days (limit {config.qualification_red_days})"
    if days <= config.qualification_yellow_days:
        return YELLOW, f"{label} {what} {when.isoformat()}, in {days} days"
    return GREEN, f"{label} valid until {when.isoformat()}"


def worker_health(
    worker: str, row: QualificationRow | None, accepted: list[str], today: datetime.date, config: SiteConfig
) -> tuple[str, str]:
    """The worker's grade for a work type accepting any of `accepted` certificate types: the best certificate counts,
    and a missing HR record or an expired medical check is RED."""
    if row is None:
        return RED, f"{worker} has no qualification record"
    if row.medical_valid_until is None:
        return RED, f"{worker} has no medical check date"
    if row.medical_valid_until < today:
        return RED, f"{worker} medical check expired on {row.medical_valid_until.isoformat()}"
    candidates = [cert for cert in row.certs if cert.type in accepted]
    if not candidates:
        return RED, f"{worker} holds no {' or '.join(accepted)} certificate"
    grades = [certificate_health(cert, today, config) for cert in candidates]
    grade, detail = min(grades, key=lambda item: _RANK[item[0]])
    return grade, f"{worker}: {detail}"


class CrewHealth(msgspec.Struct):
    """Workers' grades per work type for one site day, kept until an HR row changes (`forget`) or the day turns: a
    permit is decided again every few seconds, its crew's certificates change by the day."""

    day: datetime.date | None = None
    grades: dict[tuple[str, str], tuple[str, str]] = msgspec.field(default_factory=dict)

    def grade(self, worker: str, work_type: str, row: QualificationRow | None, accepted: list[str],
              today: datetime.date, config: SiteConfig) -> tuple[str, str]:
        if today != self.day:
            self.day = today
            self.grades.clear()
        key = (worker, work_type)
        health = self.grades.get(key)
        if health is None:
            health = self.grades[key] = worker_health(worker, row, accepted, today, config)
        return health

    def forget(self) -> None:
        self.grades.clear()


def check_crew(findings: Findings, row: PermitRow, inside: set[str], qualifications: dict[str, QualificationRow],
               now: int, config: SiteConfig, known: CrewHealth) -> None:
    """Every worker of the permit who is inside holds a certificate for the work type: RED stops, YELLOW alerts;
    grades come from `known` when it holds them for the day."""
    accepted = config.certificate_types.get(row.type)
    if not accepted:
        return
    today = site_date(now, config.utc_offset_minutes)
    for worker in row.workers:
        if worker in inside:
            grade, detail = known.grade(worker, row.type, qualifications.get(worker), accepted, today, config)
            if grade == RED:
                findings.stop("WORKER_NOT_QUALIFIED", detail)
            elif grade == YELLOW:
                findings.warn("QUALIFICATION_EXPIRING", detail)
    findings.wake(next_site_midnight(now, config.utc_offset_minutes))
