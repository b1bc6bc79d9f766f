"""A zone's risk: the model's state, its latest score and grade, and the raw inputs the interlock builds for each step.

The site steps a zone's model at the zone's risk tick (once every `risk_step_ms` of record time, at the phase of
its group) that follows a trusted reading of one of the zone's detectors, from what it holds at the tick: every
fresh trusted reading of the zone's detectors, the PLC signals of the ventilation and equipment its permits list,
the people located inside. The same raw vector is what the trainer reads, so nothing is computed differently in
the stream.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgspec
import numpy as np

from interlock import risk_inputs as R
from interlock.commands import RiskNote
from interlock.config import GasLimits
from interlock.risk_grade import BLUE, GRADE_NAMES, RED, YELLOW, GradeState, RiskThresholds

RISK_CODES = {BLUE: "RISK_BLUE", YELLOW: "RISK_YELLOW", RED: "RISK_RED"}
RISK_FAULT_CODES = tuple(RISK_CODES.values())

RISK_GROUP_ZONES = 32
"""Zones that step together at one risk tick: enough that the model's weights stay in the core's caches from one
step to the next, few enough that a tick holds up the records behind it for a fraction of a millisecond."""


def tick_phase(group: int, period_ms: int) -> int:
    """The phase of a group's risk ticks within the period: group k at k times the golden ratio of the period (modulo
    the period), so however many groups a site has, their ticks are spread evenly over the second. Integer
    arithmetic: every machine gives the same phases."""
    return group * 618_034 % 1_000_000 * period_ms // 1_000_000


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
    phase_ms: int = 0
    """Where in each `risk_step_ms` the zone's ticks fall (`tick_phase` of its group: the site's zones in the order
    their first trusted reading came, `RISK_GROUP_ZONES` to a group)."""

    @property
    def grade_name(self) -> str:
        return GRADE_NAMES[self.grade.grade]

    def note(self, ack_required: bool = False) -> RiskNote:
        return RiskNote(self.zone, round(self.score, 4), self.grade_name, ack_required)


def zone_raw(
    raw: np.ndarray, dt_s: float, detectors: list[Any], now: int, max_age_ms: int, untrusted: dict[str, str],
    limits: GasLimits, fan: float, equipment: float, occupancy: float, since_first_entry_s: float,
    occupied_for_s: float,
) -> np.ndarray:
    """Fill `raw` (interlock.risk_inputs layout) from the zone's detectors' fresh trusted readings (their
    `gas_sample`, `gas_at`) and its signals; returns it. One pass over the detectors and one write of the vector:
    this runs once a second for every zone."""
    nan = math.nan
    o2_low = o2_high = lel = h2s = co = nan
    fresh = faulted = warming = 0
    for detector in detectors:
        sample = detector.gas_sample
        if sample is None or now - detector.gas_at > max_age_ms or detector.tag in untrusted:
            continue
        fresh += 1
        value = sample.o2
        if value is None:
            faulted += 1
        else:
            if not value >= o2_low:  # NaN until the first value
                o2_low = value
            if not value <= o2_high:
                o2_high = value
        value = sample.lel
        if value is None:
            faulted += 1
        elif not value <= lel:
            lel = value
        value = sample.h2s
        if value is None:
            faulted += 1
        elif not value <= h2s:
            h2s = value
        value = sample.co
        if value is None:
            faulted += 1
        elif not value <= co:
            co = value
        if sample.status == "warmup":
            warming += 1
    _RAW_LAYOUT.pack_into(
        raw, 0, dt_s, o2_low, o2_high, lel, h2s, co,
        limits.o2_min, limits.o2_max, limits.lel_max, limits.h2s_max, limits.co_max,
        len(detectors), fresh, faulted, warming, fan, equipment, occupancy, since_first_entry_s, occupied_for_s,
    )
    return raw


_RAW_LAYOUT = struct.Struct(f"={R.RAW_WIDTH}d")
"""The raw vector's bytes (native float64): writing them in one call costs a fraction of numpy's item assignment."""


_ZONE_RAW_ORDER = (
    "dt_s", "o2_low", "o2_high", "lel", "h2s", "co", "limit_o2_min", "limit_o2_max", "limit_lel", "limit_h2s",
    "limit_co", "detectors", "fresh", "faulted_channels", "warming", "fan", "equipment", "occupancy",
    "since_first_entry_s", "occupied_for_s",
)
if _ZONE_RAW_ORDER != R.RAW_FIELDS:
    raise ImportError("interlock.zone_risk.zone_raw writes the raw vector in an order other than "
                      "interlock.risk_inputs.RAW_FIELDS: update zone_raw with the fields")


class ZoneInputsPlan(msgspec.Struct):
    """What a zone's risk step reads, resolved from the tables once and kept until a table row changes: the zone's
    detectors' states, its active permits and the work type whose limits apply, and the PLC tags of the ventilation
    and equipment those permits list, as (PLC, tag name) pairs."""

    detectors: list[Any]
    active: list[str]
    work_type: str
    fans: list[tuple[str, str]]
    equipment: list[tuple[str, str]]


def signal_any(tags: list[tuple[str, str]], plc_views: dict[str, Any], untrusted: dict[str, str], now: int,
               max_age_ms: int) -> float:
    """1 when any known signal of the (PLC, tag name) pairs is on, 0 when all known ones are off, NaN when none is
    known; a signal is known from a fresh report of a trusted PLC."""
    known = False
    for plc, name in tags:
        view = plc_views.get(plc)
        if view is None or now - view.ts > max_age_ms or plc in untrusted:
            continue
        value = view.tags.get(name)
        if value is True:
            return 1.0
        if value is False:
            known = True
    return 0.0 if known else math.nan


def observe_occupancy(risk: ZoneRisk, occupancy: int, now: int) -> tuple[float, float]:
    """Update the zone's entry times from the people inside now; returns (s since first entry, s occupied), NaN
    where unknown."""
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


def risk_detail(risk: ZoneRisk, threshold: float, air_rule: RiskThresholds | None = None) -> str:
    """The fault's and the command's sentence: zone, score against the grade's threshold, and the air as read;
    `air_rule` when the grade is YELLOW by the air rule rather than by the score."""
    raw = risk.raw
    parts = []
    if raw is not None:
        for index, label, unit in ((R.O2_LOW, "O2", "%vol"), (R.LEL, "LEL", "%"), (R.H2S, "H2S", "ppm"), (R.CO, "CO", "ppm")):
            value = raw[index]
            if not math.isnan(value):
                parts.append(f"{label} {value:g} {unit}")
    air = f"; air as read: {', '.join(parts)}" if parts else "; no fresh gas reading"
    if air_rule is not None:
        return (f"{risk.zone}: the air has stayed at {air_rule.air_yellow:g} of a gas limit or more for "
                f"{air_rule.air_yellow_steps} risk steps: {risk.grade_name} (risk {risk.score:.2f}, under its threshold "
                f"{threshold:g}){air}")
    return (f"{risk.zone}: risk {risk.score:.2f} (probability of the air past a gas limit within 12 min) is "
            f"{risk.grade_name} (threshold {threshold:g}){air}")

