"""Commands the interlock sends (protocols §10): ENABLE, HARD_STOP and ALERT, each with its reasons and the record that caused it."""

from __future__ import annotations

import msgspec

from interlock.faults import Source

ENABLE = "ENABLE"
HARD_STOP = "HARD_STOP"
ALERT = "ALERT"


class Reason(msgspec.Struct, frozen=True, gc=False):
    """Why: a code from docs/faults.md, a sentence, and the fault it rests on (None for reasons that are not faults)."""

    code: str
    detail: str
    fault: str | None


class RiskNote(msgspec.Struct, frozen=True):
    """What a risk-driven command adds (protocols §10 allows extra fields): the zone's score and grade, and whether
    the alert must be acknowledged."""

    zone: str
    score: float
    grade: str
    ack_required: bool = False


class CommandRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """`interlock.commands`; `trigger` is None for a timer-driven decision. `latched` says whether a HARD_STOP needs a reset."""

    id: str
    ts: int
    kind: str
    permit: str
    targets: list[str]
    reasons: list[Reason]
    trigger: Source | None
    zone: str
    latched: bool | None = None
    risk: RiskNote | None = None
    """On commands a zone's risk grade drove (reason codes RISK_*)."""
