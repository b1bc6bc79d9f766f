"""A zone's risk: the model's state, its latest score and grade, and the raw inputs the interlock builds for each step.

The site steps a zone's model at most once per `risk_step_ms` of record time, when one of the zone's detectors
delivers a trusted reading, from what it holds then: every fresh trusted reading of the zone's detectors, the PLC
signals of the ventilation and equipment its permits list, the people located inside. The same raw vector is what
the trainer reads, so nothing is computed differently in the stream.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np

from interlock import risk_inputs as R
from interlock.commands import RiskNote
from interlock.config import GasLimits
from interlock.risk_grade import BLUE, GRADE_NAMES, RED, YELLOW, GradeState
from schemas.readings import GasSample

RISK_CODES = {BLUE: "RISK_BLUE", YELLOW: "RISK_YELLOW", RED: "RISK_RED"}
RISK_FAULT_CODES = tuple(RISK_CODES.values())


class ZoneRisk(msgspec.Struct):
    """One zone's model state (feature state, h and c in one float64 array, so a snapshot pickles it), its latest
    score and grade, and the occupancy times the model reads."""

    zone: str
    state: Any
    grade: GradeState = msgspec.field(default_factory=GradeState)
    score: float = 0.0
    steps: int = 0
    last_step: int | None = None
    first_entry: int | None = None
    occupied_since: int | None = None
    raw: Any = None
    """The latest raw vector (for the fault's detail and for capture)."""

    @property
    def grade_name(self) -> str:
        return GRADE_NAMES[self.grade.grade]

    def note(self, ack_required: bool = False) -> RiskNote:
        return RiskNote(self.zone, round(self.score, 4), self.grade_name, ack_required)


def zone_raw(
    raw: np.ndarray, dt_s: float, detectors: int, fresh: list[GasSample], limits: GasLimits,
    fan: float, equipment: float, occupancy: float, since_first_entry_s: float, occupied_for_s: float,
) -> np.ndarray:
    """Fill `raw` (interlock.risk_inputs layout) from a zone's fresh trusted readings and signals; returns it."""
    o2 = [s.o2 for s in fresh if s.o2 is not None]
    nan = math.nan
    raw[R.DT_S] = dt_s
    raw[R.O2_LOW] = min(o2) if o2 else nan
    raw[R.O2_HIGH] = max(o2) if o2 else nan
    for index, name in ((R.LEL, "lel"), (R.H2S, "h2s"), (R.CO, "co")):
        values = [v for s in fresh if (v := getattr(s, name)) is not None]
        raw[index] = max(values) if values else nan
    raw[R.LIMIT_O2_MIN] = limits.o2_min
    raw[R.LIMIT_O2_MAX] = limits.o2_max
    raw[R.LIMIT_LEL] = limits.lel_max
    raw[R.LIMIT_H2S] = limits.h2s_max
    raw[R.LIMIT_CO] = limits.co_max
    raw[R.DETECTORS] = detectors
    raw[R.FRESH] = len(fresh)
    raw[R.FAULTED_CHANNELS] = sum((s.o2 is None) + (s.lel is None) + (s.h2s is None) + (s.co is None) for s in fresh)
    raw[R.WARMING] = sum(s.status == "warmup" for s in fresh)
    raw[R.FAN] = fan
    raw[R.EQUIPMENT] = equipment
    raw[R.OCCUPANCY] = occupancy
    raw[R.SINCE_FIRST_ENTRY_S] = since_first_entry_s
    raw[R.OCCUPIED_FOR_S] = occupied_for_s
    return raw


def signal_any(values: list[bool | None]) -> float:
    """1 when any known signal is on, 0 when all known ones are off, NaN when none is known."""
    known = [v for v in values if v is not None]
    if not known:
        return math.nan
    return 1.0 if any(known) else 0.0


def observe_occupancy(risk: ZoneRisk, occupancy: int | None, now: int) -> tuple[float, float]:
    """Update the zone's entry times from the people inside now (None: occupancy not kept for the zone); returns
    (s since first entry, s occupied) with NaN where unknown."""
    if occupancy is None:
        return math.nan, math.nan
    if occupancy > 0:
        if risk.first_entry is None:
            risk.first_entry = now
        if risk.occupied_since is None:
            risk.occupied_since = now
    else:
        risk.occupied_since = None
    since_first = (now - risk.first_entry) / 1000 if risk.first_entry is not None else math.nan
    occupied = (now - risk.occupied_since) / 1000 if risk.occupied_since is not None else math.nan
    return since_first, occupied


def risk_detail(risk: ZoneRisk, threshold: float) -> str:
    """The fault's and the command's sentence: zone, score against the grade's threshold, and the air as read."""
    raw = risk.raw
    parts = []
    if raw is not None:
        for index, label, unit in ((R.O2_LOW, "O2", "%vol"), (R.LEL, "LEL", "%"), (R.H2S, "H2S", "ppm"), (R.CO, "CO", "ppm")):
            value = raw[index]
            if not math.isnan(value):
                parts.append(f"{label} {value:g} {unit}")
    air = f"; air as read: {', '.join(parts)}" if parts else "; no fresh gas reading"
    return (f"{risk.zone}: risk {risk.score:.2f} (probability of a gas limit crossed within 12 min) is "
            f"{risk.grade_name} (threshold {threshold:g}){air}")

