"""How well graded risk scores warn of gas-limit crossings: the figures the risk model's acceptance rests on, and the
choice of its grade thresholds on validation data.

Definitions (the evaluation report quotes them; `evaluate_grades` computes exactly these):

- **Hazard population for "warned 10 min ahead"**: hazards that crossed with `lead_s >= 600` (their first crossing
  came at least 10 minutes after they started; a sudden release cannot be foreseen by anyone). A hazard is
  **warned >= 10 min ahead** when the zone's grade is YELLOW or RED at some step in
  [hazard start, first crossing - 600 s]. **Recall >= 10 min** = warned / population. **Recall any time**: over all
  crossed hazards, warned at some step in [hazard start, first crossing). Both are also given per hazard kind.
- **Lead time** of a crossed hazard: first crossing time minus the first step in [hazard start, first crossing]
  graded YELLOW or higher (0 if none before the crossing). Medians over all crossed hazards and over the >= 600 s
  population.
- **False RED**: a rising edge into RED at t (the zone's first step, or a step whose previous grade was not RED)
  such that no crossing of that zone falls in [t - 60 s, t + 720 s], the zone is not over a limit at t
  (`over_limit`), and t is not within [start, first crossing) of a hazard of the zone that crossed (an early warning
  of it, which the recall counts as one). Rate per 100 zone-hours of the evaluated sequences (100 * count / (steps /
  3600)); those with no hazard active in the zone (`false_red_benign`) are counted apart. **False
  warnings**: the same for rising edges into YELLOW-or-higher (previous grade NONE or BLUE), also per 100 zone-hours,
  those with no hazard active (`false_warnings_benign`, the nuisance alarms) counted apart.
- **Episode precision**: true warning edges / all warning edges (same truth rule; n/a without any warning edge).
- **Average precision**: of the row-level precision-recall curve of the score against `label` (a crossing in
  (t, t + 720 s]) over every evaluated step: the sum over distinct score thresholds, high to low, of the recall
  gained times the precision there. `average_precision_not_over` is the same over steps not over a limit (a
  step over a limit is labelled false unless another crossing follows, so the all-steps figure penalises a score
  that stays high while the air is past a limit); the comparison with the baselines uses it.

Hazards and crossings are matched to sequences by (scenario_id, zone); those of zones not evaluated are ignored.

Threshold choice (`choose_thresholds`): **red** is the lowest candidate threshold such that it and every higher
candidate keep false RED at or under `max_false_red_per_100h` (default 0.5: a margin under the acceptance budget of
1) on the given (validation) sequences; **yellow** (at most red) maximises recall >= 10 min subject to at most
`max_false_warnings_per_100h` false warnings per 100 zone-hours (default 10: about one false warning per zone per
ten 8-hour shifts) and at most `max_benign_warning_share` (2 %) of benign steps (no hazard active, no crossing
within 12 min) graded YELLOW or higher (a zone left YELLOW all day gives few edges but is no warning), the highest
such yellow on a tie; when even yellow = red gives more than a cap (its RED alarms alone do), yellow may add at
most that cap on top of what yellow = red gives; **blue** is the lowest candidate from `blue_ratio` (0.5) x yellow
up to yellow such that it and every higher one give at most `max_benign_blue_per_100h` (10) **BLUE notices with no
hazard active** per 100 zone-hours (rising edges into BLUE-or-higher at benign steps: a team leader told about
clean air at every entry stops reading the notices), yellow when none does. The confirmation and
release rules stay at `RiskThresholds` defaults unless given. Candidates are a fixed grid, the scores' upper
quantiles and points next to 1, refined by bisection at the red boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import msgspec
import numpy as np

from interlock.risk_features import CHANNELS, features_sequence, worst_fractions
from interlock.risk_grade import BLUE, NONE, RED, YELLOW, RiskThresholds, grade_series
from training.risk_baselines import bump_gas, hazard_fractions
from training.zone_sequence import Crossing, Hazard, ZoneSequence

WARN_AHEAD_S = 600
"""A warning must come this long before the first crossing to count as 10 minutes ahead."""
TRUTH_BEFORE_S = 60
TRUTH_AFTER_S = 720
"""An edge at t is true when a crossing of the zone falls in [t - 60 s, t + 720 s], the zone is over a limit, or a
hazard of the zone that crossed has started and not yet crossed."""
MAX_FALSE_RED_PER_100H = 0.5
MAX_FALSE_WARNINGS_PER_100H = 10.0
MAX_BENIGN_WARNING_SHARE = 0.02
"""A yellow that keeps benign zones YELLOW all day gives few rising edges: the search also caps the share of benign
steps (no hazard active, no crossing within 12 min) graded YELLOW or higher."""
BLUE_RATIO = 0.5
MAX_BENIGN_BLUE_PER_100H = 10.0
"""BLUE notices (rising edges into BLUE-or-higher) with no hazard active that blue may give per 100 zone-hours: about
one per zone per ten hours of clean air."""
PR_POINTS = 200

DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("Hazard population for \"warned 10 min ahead\"",
     "hazards that crossed with lead_s >= 600 (their first crossing came at least 10 minutes after they started; a "
     "sudden release cannot be foreseen by anyone). A hazard is warned >= 10 min ahead when the zone's grade is "
     "YELLOW or RED at some step in [hazard start, first crossing - 600 s]. Also report recall over all crossed "
     "hazards (warned at any time before the crossing) and per hazard kind."),
    ("Lead time of a crossed hazard",
     "first crossing time minus the first step in [hazard start, first crossing] graded YELLOW or higher (0 if none "
     "before the crossing; report median over all crossed hazards and over the >= 600 s population)."),
    ("False RED",
     "a rising edge into RED at t such that no crossing of that zone falls in [t - 60 s, t + 720 s], the zone is "
     "not over a limit at t (over_limit), and t is not between the start and the first crossing of a hazard of the "
     "zone that crossed (a warning of that hazard, however early: the recall counts it as one). Rate per 100 "
     "zone-hours of the evaluated sequences. Those with no hazard active in the zone at t are also counted apart: "
     "the others came during a real leak, purge or failure that came close without crossing, or after its "
     "crossing. Same definition for false warnings (rising edges into YELLOW-or-higher), also per 100 zone-hours."),
    ("Precision (episode)",
     "true warning edges / all warning edges (same truth rule as above). Also the row-level precision-recall curve "
     "of the score against `label` (average precision)."),
)
"""The acceptance figures' definitions, word for word as the report prints them."""
DETAILS: tuple[str, ...] = (
    "A rising edge is a step whose grade is at or over the level while the previous step's was under it; a zone's "
    "first step counts as coming from NONE. Rates are 100 x count / zone-hours, zone-hours = evaluated steps / 3600.",
    "BLUE notices with no hazard active: rising edges into BLUE-or-higher at benign steps (no hazard active in the "
    "zone, no crossing within 12 min), what a team leader is told about clean air.",
    "Recall any time: a crossed hazard is warned when its zone is YELLOW or RED at some step in [hazard start, first "
    "crossing). Median lead over the >= 600 s population uses the same per-hazard lead times.",
    "Average precision: the sum over distinct score thresholds, high to low, of the recall gained times the "
    "precision there, over every evaluated step (label = a crossing in (t, t + 720 s]). "
    "'AP not over a limit' is the same over steps not over a limit, and is the one the comparison with the "
    "baselines uses: a step inside a crossing's spell is labelled false unless another crossing follows, so the "
    "all-steps AP penalises every scorer that stays high while the air is over a limit, as an alarm should.",
    "Hazards and crossings are matched to the evaluated sequences by (scenario_id, zone); others are ignored.",
)


class KindMetrics(msgspec.Struct):
    """One hazard kind's figures."""

    kind: str
    hazards: int
    """Hazards of this kind in the evaluated zones (crossed or not)."""
    crossed: int
    population_10min: int
    """Crossed with lead_s >= 600."""
    warned_10min: int
    recall_10min: float
    warned_any: int
    recall_any: float
    median_lead_s: float
    median_lead_10min_s: float


class HazardLead(msgspec.Struct):
    """A crossed hazard: how much warning was possible and how much the grades gave."""

    scenario_id: str
    zone: str
    hazard: str
    kind: str
    possible_lead_s: float
    """The hazard's lead_s: from its start to its first crossing."""
    lead_s: float
    warned_10min: bool | None
    """None when outside the >= 600 s population."""
    warned_any: bool
    air_moved_10min: float = math.nan
    """How far the crossed channel had moved, as a fraction of its limit, by the last moment a 10-minute warning could
    come (its median over the 30 s up to first crossing - 600 s, less its median over the 120 s before the hazard began,
    as the detectors reported it: `training.risk_baselines.hazard_fractions`, O2 its deficiency or enrichment); NaN
    when the channel or the readings are unknown."""


class EdgeEvent(msgspec.Struct):
    """A false rising edge (into RED)."""

    scenario_id: str
    zone: str
    t_ms: int
    score: float
    during_hazard: bool = False
    """A hazard was active in the zone (a leak that came close without crossing, or after its crossing)."""


class PRCurve(msgspec.Struct):
    """Row-level precision-recall points (down-sampled), high thresholds first."""

    threshold: list[float]
    precision: list[float]
    recall: list[float]


class OperatingPoint(msgspec.Struct):
    """Row-level precision and recall of `score >= threshold`."""

    name: str
    threshold: float
    precision: float
    recall: float


class RiskMetrics(msgspec.Struct):
    """Every figure of the acceptance criteria for one scorer's grades over a set of zone sequences."""

    sequences: int
    rows: int
    zone_hours: float
    hazards: int
    hazards_crossed: int
    population_10min: int
    warned_10min: int
    recall_10min: float
    warned_any: int
    recall_any: float
    median_lead_s: float
    median_lead_10min_s: float
    red_edges: int
    false_red: int
    false_red_per_100h: float
    warning_edges: int
    false_warnings: int
    false_warnings_per_100h: float
    true_warning_edges: int
    episode_precision: float
    benign_warning_share: float
    """Share of benign steps (no hazard active, no crossing within 12 min) graded YELLOW or higher."""
    positive_rows: int
    average_precision: float
    average_precision_not_over: float
    per_kind: list[KindMetrics]
    leads: list[HazardLead]
    false_red_events: list[EdgeEvent]
    pr_curve: PRCurve
    operating_points: list[OperatingPoint] = []
    false_red_benign: int = 0
    """False REDs while no hazard was active in the zone: the crying wolf among them (the rest came during a real
    leak, purge or failure that came close without crossing, or after its crossing)."""
    false_red_benign_per_100h: float = 0.0
    false_warnings_benign: int = 0
    """False warnings while no hazard was active in the zone: the nuisance alarms (the rest came during a real leak,
    purge or failure whose air came close to a limit without crossing it, or after its crossing)."""
    false_warnings_benign_per_100h: float = 0.0
    blue_notices_benign: int = 0
    """Rising edges into BLUE-or-higher at benign steps (no hazard active, no crossing within 12 min)."""
    blue_notices_benign_per_100h: float = 0.0


@dataclass
class _HazardRows:
    hazard: Hazard
    lo: int
    """First global row at or after the hazard's start."""
    hi_10min: int
    """One past the last row at or before first crossing - 600 s."""
    hi_before: int
    """One past the last row before the first crossing."""
    hi_at: int
    """One past the last row at or before the first crossing."""
    crossing_ms: int
    in_population: bool
    air_moved_10min: float


AIR_BEFORE_S = 120
AIR_AT_S = 30
"""`air_moved_10min`: the air before a hazard is the median of its 120 s before the start, the air when a 10-minute
warning was last due the median of the 30 s up to then; steps reading a bump test's gas are not the air and are left
out of both (`training.risk_baselines.bump_gas`: a test can hold the detector for most of the 30 s)."""


def _air_moved(raw: np.ndarray, t: np.ndarray, channel: str | None, start_ms: int, due_ms: int) -> float:
    if channel is None or due_ms <= start_ms or (channel != "o2" and channel not in CHANNELS):
        return math.nan

    def known(lo_ms: int, hi_ms: int) -> np.ndarray:
        """The channel's known fractions at the steps in [lo_ms, hi_ms] (only those rows are read)."""
        rows = raw[int(np.searchsorted(t, lo_ms, side="left")):int(np.searchsorted(t, hi_ms, side="right"))]
        if not rows.shape[0]:
            return np.zeros(0)
        fractions, over = hazard_fractions(rows)
        fractions = fractions[~bump_gas(over)]
        x = np.fmax(fractions[:, 0], fractions[:, 1]) if channel == "o2" else fractions[:, CHANNELS.index(channel)]
        return x[np.isfinite(x)]

    before = known(start_ms - AIR_BEFORE_S * 1000, start_ms)
    at = known(due_ms - AIR_AT_S * 1000, due_ms)
    if not before.size or not at.size:
        return math.nan
    return float(np.median(at) - np.median(before))


@dataclass
class Prepared:
    """What the metrics need of the sequences, hazards and crossings, computed once (a threshold search reuses it)."""

    sequences: list[ZoneSequence]
    offsets: np.ndarray
    t_ms: np.ndarray
    first_row: np.ndarray
    """bool: the first step of a sequence (its previous grade counts as NONE)."""
    edge_true: np.ndarray
    """bool: a rising edge here is true (a crossing within [t - 60 s, t + 720 s], over a limit at t, or within
    [start, first crossing) of a hazard that crossed)."""
    label: np.ndarray
    over_limit: np.ndarray
    benign: np.ndarray
    """bool: no hazard active and no crossing within 12 min (`~hazard_active & ~label`)."""
    hours: float
    hazards: list[Hazard]
    """Every hazard of the evaluated zones."""
    crossed: list[_HazardRows]
    air: np.ndarray
    """float64: the zone's worst fraction of a gas limit at each row, as the grades' air rule reads it."""

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])


def _key(scenario_id: str, zone: str) -> tuple[str, str]:
    return (str(scenario_id), str(zone))


def prepare(sequences: Sequence[ZoneSequence], hazards: Iterable[Hazard], crossings: Iterable[Crossing]) -> Prepared:
    """Index the sequences' rows, the truth of an edge at each row and each crossed hazard's windows."""
    sequences = list(sequences)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    where = {}
    for i, s in enumerate(sequences):
        k = _key(s.scenario_id, s.zone)
        if k in where:
            raise ValueError(f"zone {s.zone} of scenario {s.scenario_id} is given twice: evaluate each zone once")
        where[k] = i
    crossing_times: dict[int, list[int]] = {}
    crossing_channel: dict[tuple[int, int], str] = {}
    for c in crossings:
        i = where.get(_key(c.scenario_id, c.zone))
        if i is not None:
            crossing_times.setdefault(i, []).append(int(c.crossing_ms))
            crossing_channel.setdefault((i, int(c.crossing_ms)), str(c.channel))
    t_all = np.empty(total, dtype=np.int64)
    edge_true = np.zeros(total, dtype=bool)
    label = np.zeros(total, dtype=bool)
    over = np.zeros(total, dtype=bool)
    benign = np.zeros(total, dtype=bool)
    first_row = np.zeros(total, dtype=bool)
    air = np.empty(total, dtype=np.float64)
    for i, s in enumerate(sequences):
        a, b = int(offsets[i]), int(offsets[i + 1])
        t = np.asarray(s.t_ms, dtype=np.int64)
        t_all[a:b] = t
        if b > a:
            air[a:b] = worst_fractions(features_sequence(s.raw))
        if b > a:
            first_row[a] = True
        label[a:b] = np.asarray(s.label, dtype=bool)
        over[a:b] = np.asarray(s.over_limit, dtype=bool)
        benign[a:b] = ~np.asarray(s.hazard_active, dtype=bool) & ~label[a:b]
        truth = over[a:b].copy()
        times = np.sort(np.asarray(crossing_times.get(i, []), dtype=np.int64))
        if times.size:
            j = np.searchsorted(times, t - TRUTH_BEFORE_S * 1000, side="left")
            near = j < times.size
            near[near] &= times[j[near]] <= t[near] + TRUTH_AFTER_S * 1000
            truth |= near
        edge_true[a:b] = truth
    kept: list[Hazard] = []
    crossed: list[_HazardRows] = []
    for h in hazards:
        i = where.get(_key(h.scenario_id, h.zone))
        if i is None:
            continue
        kept.append(h)
        if not h.crossed or h.first_crossing_ms is None:
            continue
        a = int(offsets[i])
        t = t_all[a:int(offsets[i + 1])]
        cross = int(h.first_crossing_ms)
        start = int(h.start_ms)
        in_population = h.lead_s is not None and float(h.lead_s) >= WARN_AHEAD_S
        moved = (_air_moved(sequences[i].raw, t, crossing_channel.get((i, cross)), start, cross - WARN_AHEAD_S * 1000)
                 if in_population else math.nan)
        rows = _HazardRows(
            hazard=h,
            lo=a + int(np.searchsorted(t, start, side="left")),
            hi_10min=a + int(np.searchsorted(t, cross - WARN_AHEAD_S * 1000, side="right")),
            hi_before=a + int(np.searchsorted(t, cross, side="left")),
            hi_at=a + int(np.searchsorted(t, cross, side="right")),
            crossing_ms=cross,
            in_population=in_population,
            air_moved_10min=moved,
        )
        crossed.append(rows)
        # A warning while the hazard develops towards its crossing is a warning of it, however early.
        edge_true[rows.lo:rows.hi_before] = True
    return Prepared(sequences, offsets, t_all, first_row, edge_true, label, over, benign, total / 3600.0, kept,
                    crossed, air)


def grade_all(scores: Sequence[np.ndarray], thresholds: RiskThresholds, prepared: Prepared,
              out: np.ndarray | None = None) -> np.ndarray:
    """Every sequence's grades (`grade_series`, each from a fresh state) in one int8 array of the prepared rows."""
    if len(scores) != len(prepared.sequences):
        raise ValueError(f"{len(scores)} score arrays for {len(prepared.sequences)} sequences")
    if out is None:
        out = np.empty(prepared.rows, dtype=np.int8)
    off = prepared.offsets
    for i, s in enumerate(scores):
        a, b = int(off[i]), int(off[i + 1])
        if s.shape[0] != b - a:
            raise ValueError(f"sequence {i} has {b - a} steps but {s.shape[0]} scores")
        out[a:b] = grade_series(s, thresholds, prepared.air[a:b])
    return out


def _concat_grades(grades: Sequence[np.ndarray], prepared: Prepared) -> np.ndarray:
    if len(grades) != len(prepared.sequences):
        raise ValueError(f"{len(grades)} grade arrays for {len(prepared.sequences)} sequences")
    for i, g in enumerate(grades):
        if len(g) != int(prepared.offsets[i + 1] - prepared.offsets[i]):
            raise ValueError(f"sequence {i} has {len(prepared.sequences[i])} steps but {len(g)} grades")
    if not grades:
        return np.zeros(0, dtype=np.int8)
    return np.concatenate([np.asarray(g, dtype=np.int8) for g in grades])


def _rising(at_or_over: np.ndarray, first_row: np.ndarray) -> np.ndarray:
    """Rows where `at_or_over` becomes true (a sequence's first row counts when true)."""
    edge = at_or_over.copy()
    edge[1:] &= ~at_or_over[:-1]
    edge[first_row] = at_or_over[first_row]
    return edge


def _rate(count: int, hours: float) -> float:
    return 100.0 * count / hours if hours > 0 else math.nan


def _ratio(n: int, d: int) -> float:
    return n / d if d else math.nan


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def _false_edges(grades: np.ndarray, level: int, prepared: Prepared) -> tuple[np.ndarray, int]:
    """(rows of rising edges into `level` or higher, of them false)."""
    edges = np.flatnonzero(_rising(grades >= level, prepared.first_row))
    return edges, int(np.count_nonzero(~prepared.edge_true[edges]))


def _benign_rises(grades: np.ndarray, level: int, prepared: Prepared) -> int:
    """Rising edges into `level` or higher at benign steps (no hazard active, no crossing within 12 min)."""
    return int(np.count_nonzero(_rising(grades >= level, prepared.first_row) & prepared.benign))


def _warned(grades: np.ndarray, prepared: Prepared) -> tuple[int, int, int, int]:
    """(population 10 min, warned 10 min, crossed, warned any time) of the prepared crossed hazards."""
    pop = w10 = wany = 0
    for h in prepared.crossed:
        if h.in_population:
            pop += 1
            if h.hi_10min > h.lo and (grades[h.lo:h.hi_10min] >= YELLOW).any():
                w10 += 1
        if h.hi_before > h.lo and (grades[h.lo:h.hi_before] >= YELLOW).any():
            wany += 1
    return pop, w10, len(prepared.crossed), wany


def _false_benign(rows: np.ndarray, prepared: Prepared) -> int:
    """Of these rising-edge rows, the false ones at benign steps (no hazard active): the nuisance alarms."""
    return int(np.count_nonzero(~prepared.edge_true[rows] & prepared.benign[rows]))


def _benign_share(grades: np.ndarray, prepared: Prepared) -> float:
    n = int(np.count_nonzero(prepared.benign))
    return _ratio(int(np.count_nonzero(grades[prepared.benign] >= YELLOW)), n)


def _lead(grades: np.ndarray, h: _HazardRows, t_all: np.ndarray) -> float:
    if h.hi_at <= h.lo:
        return 0.0
    hits = np.flatnonzero(grades[h.lo:h.hi_at] >= YELLOW)
    if not hits.size:
        return 0.0
    return max(0.0, (h.crossing_ms - int(t_all[h.lo + int(hits[0])])) / 1000.0)


def pr_curve(scores: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(thresholds high to low, precision, recall, average precision) of `score >= threshold` against `label`."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    label = np.asarray(label, dtype=bool)
    positives = int(np.count_nonzero(label))
    if scores.size == 0 or positives == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0), math.nan
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    tp = np.cumsum(label[order], dtype=np.int64)
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # the last row of each distinct threshold
    tp = tp[last]
    n = last + 1
    precision = tp / n
    recall = tp / positives
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return s[last], precision, recall, ap


def _downsample(thr: np.ndarray, precision: np.ndarray, recall: np.ndarray, points: int = PR_POINTS) -> PRCurve:
    if thr.size <= points:
        keep = np.arange(thr.size)
    else:
        keep = np.unique(np.r_[np.searchsorted(recall, np.linspace(0.0, 1.0, points), side="left").clip(
            0, thr.size - 1), 0, thr.size - 1])
    return PRCurve([round(float(x), 6) for x in thr[keep]], [round(float(x), 6) for x in precision[keep]],
                   [round(float(x), 6) for x in recall[keep]])


def _operating_point(name: str, threshold: float, scores: np.ndarray, label: np.ndarray) -> OperatingPoint:
    hit = scores >= threshold
    n = int(np.count_nonzero(hit))
    tp = int(np.count_nonzero(hit & label))
    return OperatingPoint(name, float(threshold), _ratio(tp, n), _ratio(tp, int(np.count_nonzero(label))))


def evaluate_grades(sequences: Sequence[ZoneSequence], grades: Sequence[np.ndarray], scores: Sequence[np.ndarray],
                    hazards: Iterable[Hazard], crossings: Iterable[Crossing], *,
                    thresholds: RiskThresholds | None = None, prepared: Prepared | None = None) -> RiskMetrics:
    """Every figure of the module docstring for one scorer: `grades[i]` and `scores[i]` are sequence i's steps."""
    prep = prepared if prepared is not None else prepare(sequences, hazards, crossings)
    g = _concat_grades(grades, prep)
    if len(scores) != len(prep.sequences):
        raise ValueError(f"{len(scores)} score arrays for {len(prep.sequences)} sequences")
    s = (np.concatenate([np.asarray(x, dtype=np.float64) for x in scores]) if scores else np.zeros(0))
    if s.shape[0] != prep.rows:
        raise ValueError(f"{s.shape[0]} scores for {prep.rows} steps")
    s = np.nan_to_num(s, nan=0.0)

    red_rows, false_red = _false_edges(g, RED, prep)
    warn_rows, false_warn = _false_edges(g, YELLOW, prep)
    pop, w10, n_crossed, wany = _warned(g, prep)

    leads: list[HazardLead] = []
    for h in prep.crossed:
        w_10 = bool(h.hi_10min > h.lo and (g[h.lo:h.hi_10min] >= YELLOW).any()) if h.in_population else None
        leads.append(HazardLead(
            scenario_id=h.hazard.scenario_id, zone=h.hazard.zone, hazard=h.hazard.hazard, kind=h.hazard.kind,
            possible_lead_s=float(h.hazard.lead_s) if h.hazard.lead_s is not None else math.nan,
            lead_s=_lead(g, h, prep.t_ms), warned_10min=w_10,
            warned_any=bool(h.hi_before > h.lo and (g[h.lo:h.hi_before] >= YELLOW).any()),
            air_moved_10min=h.air_moved_10min))
    leads.sort(key=lambda x: (x.scenario_id, x.zone, x.hazard))

    per_kind = []
    for kind in sorted({h.kind for h in prep.hazards}):
        ks = [x for x in leads if x.kind == kind]
        kp = [x for x in ks if x.warned_10min is not None]
        kw = sum(1 for x in kp if x.warned_10min)
        ka = sum(1 for x in ks if x.warned_any)
        per_kind.append(KindMetrics(
            kind=kind, hazards=sum(1 for h in prep.hazards if h.kind == kind), crossed=len(ks),
            population_10min=len(kp), warned_10min=kw, recall_10min=_ratio(kw, len(kp)),
            warned_any=ka, recall_any=_ratio(ka, len(ks)),
            median_lead_s=_median([x.lead_s for x in ks]), median_lead_10min_s=_median([x.lead_s for x in kp])))

    false_events = []
    seq_of_row = np.searchsorted(prep.offsets, red_rows, side="right") - 1
    for row, i in zip(red_rows.tolist(), seq_of_row.tolist()):
        if not prep.edge_true[row]:
            q = prep.sequences[i]
            false_events.append(EdgeEvent(q.scenario_id, q.zone, int(prep.t_ms[row]), round(float(s[row]), 6),
                                          during_hazard=not bool(prep.benign[row])))
    false_red_benign = sum(1 for e in false_events if not e.during_hazard)
    false_warnings_benign = _false_benign(warn_rows, prep)
    blue_benign = _benign_rises(g, BLUE, prep)

    thr, precision, recall, ap = pr_curve(s, prep.label)
    not_over = ~prep.over_limit
    ap_not_over = pr_curve(s[not_over], prep.label[not_over])[3]
    points = []
    if thresholds is not None:
        for name, value in (("BLUE", thresholds.blue), ("YELLOW", thresholds.yellow), ("RED", thresholds.red)):
            points.append(_operating_point(name, value, s, prep.label))

    true_warn = int(warn_rows.size) - false_warn
    return RiskMetrics(
        sequences=len(prep.sequences), rows=prep.rows, zone_hours=round(prep.hours, 6),
        hazards=len(prep.hazards), hazards_crossed=n_crossed, population_10min=pop, warned_10min=w10,
        recall_10min=_ratio(w10, pop), warned_any=wany, recall_any=_ratio(wany, n_crossed),
        median_lead_s=_median([x.lead_s for x in leads]),
        median_lead_10min_s=_median([x.lead_s for x in leads if x.warned_10min is not None]),
        red_edges=int(red_rows.size), false_red=false_red, false_red_per_100h=_rate(false_red, prep.hours),
        warning_edges=int(warn_rows.size), false_warnings=false_warn,
        false_warnings_per_100h=_rate(false_warn, prep.hours), true_warning_edges=true_warn,
        episode_precision=_ratio(true_warn, int(warn_rows.size)), benign_warning_share=_benign_share(g, prep),
        positive_rows=int(np.count_nonzero(prep.label)),
        average_precision=ap, average_precision_not_over=ap_not_over, per_kind=per_kind, leads=leads,
        false_red_events=false_events, pr_curve=_downsample(thr, precision, recall), operating_points=points,
        false_red_benign=false_red_benign, false_red_benign_per_100h=_rate(false_red_benign, prep.hours),
        false_warnings_benign=false_warnings_benign,
        false_warnings_benign_per_100h=_rate(false_warnings_benign, prep.hours),
        blue_notices_benign=blue_benign, blue_notices_benign_per_100h=_rate(blue_benign, prep.hours))


# --- threshold choice -------------------------------------------------------------------------------------------


class Candidate(msgspec.Struct):
    """One threshold tried: its false RED or false warnings per 100 zone-hours and recall >= 10 min."""

    threshold: float
    false_per_100h: float
    recall_10min: float
    benign_warning_share: float = math.nan


class ThresholdSearch(msgspec.Struct):
    """The thresholds chosen and what each candidate gave on the search's sequences."""

    thresholds: RiskThresholds
    red_feasible: bool
    """Some red kept false RED under the cap (else red is the highest candidate)."""
    yellow_feasible: bool
    """Yellow = red kept false warnings under the cap (else the cap counted on top of what yellow = red gives)."""
    false_red_per_100h: float
    false_warnings_per_100h: float
    recall_10min: float
    benign_warning_share: float
    red_candidates: list[Candidate]
    yellow_candidates: list[Candidate]
    blue_candidates: list[Candidate] = []
    """Each blue tried, its `false_per_100h` the BLUE notices with no hazard active."""
    blue_notices_benign_per_100h: float = math.nan


def candidate_thresholds(scores: Sequence[np.ndarray]) -> np.ndarray:
    """A fixed grid over (0, 1], points next to 1 and the scores' upper quantiles, ascending and distinct."""
    grid = [np.linspace(0.02, 1.0, 50), 1.0 - np.geomspace(1e-5, 0.02, 16)]
    if scores:
        s = np.concatenate([np.asarray(x, dtype=np.float64) for x in scores])
        s = s[np.isfinite(s) & (s > 0.0)]
        if s.size:
            grid.append(np.quantile(s, 1.0 - np.geomspace(1e-6, 0.5, 40)))
    c = np.round(np.concatenate(grid), 6)
    c = c[(c > 0.0) & (c <= 1.0)]
    return np.unique(c)


def threshold_search(scores: Sequence[np.ndarray], sequences: Sequence[ZoneSequence], hazards: Iterable[Hazard],
                     crossings: Iterable[Crossing], *, max_false_red_per_100h: float = MAX_FALSE_RED_PER_100H,
                     max_false_warnings_per_100h: float = MAX_FALSE_WARNINGS_PER_100H,
                     max_benign_warning_share: float = MAX_BENIGN_WARNING_SHARE,
                     max_benign_blue_per_100h: float = MAX_BENIGN_BLUE_PER_100H,
                     red: float | None = None, blue_ratio: float = BLUE_RATIO,
                     red_confirm_steps: int | None = None, release_ratio: float | None = None,
                     release_steps: int | None = None, air_yellow: float | None = None,
                     air_yellow_steps: int | None = None, refine: int = 6,
                     prepared: Prepared | None = None) -> ThresholdSearch:
    """`choose_thresholds` with what every candidate gave (module docstring); `red` fixes the red threshold."""
    prep = prepared if prepared is not None else prepare(sequences, hazards, crossings)
    rules = {}
    if red_confirm_steps is not None:
        rules["red_confirm_steps"] = int(red_confirm_steps)
    if release_ratio is not None:
        rules["release_ratio"] = float(release_ratio)
    if release_steps is not None:
        rules["release_steps"] = int(release_steps)
    if air_yellow is not None:
        rules["air_yellow"] = float(air_yellow)
    if air_yellow_steps is not None:
        rules["air_yellow_steps"] = int(air_yellow_steps)
    buffer = np.empty(prep.rows, dtype=np.int8)
    cache_red: dict[float, float] = {}

    red_rules = {k: v for k, v in rules.items() if not k.startswith("air_")}  # the air rule raises no RED

    def false_red_rate(r: float) -> float:
        if r not in cache_red:
            g = grade_all(scores, RiskThresholds(blue=r, yellow=r, red=r, **red_rules), prep, buffer)
            cache_red[r] = _rate(_false_edges(g, RED, prep)[1], prep.hours)
        return cache_red[r]

    candidates = candidate_thresholds(scores)
    red_rows: list[Candidate] = []
    red_ok = True
    if red is None:
        # From the top down: the lowest candidate with every higher one under the cap.
        chosen = None
        below = None
        for r in candidates[::-1]:
            rate = false_red_rate(float(r))
            if rate <= max_false_red_per_100h:
                chosen = float(r)
            else:
                below = float(r)
                break
        if chosen is None:
            red_ok = False
            chosen = float(candidates[-1])
        elif below is not None:
            lo, hi = below, chosen  # lo infeasible, hi feasible
            for _ in range(refine):
                mid = round((lo + hi) / 2.0, 9)
                if mid in (lo, hi):
                    break
                if false_red_rate(mid) <= max_false_red_per_100h:
                    hi = mid
                else:
                    lo = mid
            chosen = hi
        red_value = chosen
        red_rows = [Candidate(r, cache_red[r], math.nan) for r in sorted(cache_red)]
    else:
        red_value = float(red)
        red_ok = false_red_rate(red_value) <= max_false_red_per_100h
        red_rows = [Candidate(red_value, cache_red[red_value], math.nan)]

    # Yellow: every candidate up to red, from the top down; stop once false warnings are far over the cap. When even
    # yellow = red gives more than a cap (its RED alarms alone do), that cap counts on top of what yellow = red gives.
    yellow_rows: list[Candidate] = []
    best: tuple[float, float, float] | None = None  # (recall, yellow, false rate)
    ys = [float(y) for y in candidates if y < red_value] + [red_value]
    cap = max_false_warnings_per_100h
    share_cap = max_benign_warning_share
    yellow_floor: float | None = None
    for y in sorted(set(ys), reverse=True):
        th = RiskThresholds(blue=max(y * blue_ratio, 1e-6), yellow=y, red=red_value, **rules)
        g = grade_all(scores, th, prep, buffer)
        rate = _rate(_false_edges(g, YELLOW, prep)[1], prep.hours)
        pop, w10, _, _ = _warned(g, prep)
        recall = _ratio(w10, pop)
        share = _benign_share(g, prep)
        yellow_rows.append(Candidate(y, rate, recall, share))
        if y == red_value:  # the floor: what RED alone gives
            if rate > cap:
                cap = rate + max_false_warnings_per_100h
                yellow_floor = rate
            if share > share_cap:
                share_cap = share + max_benign_warning_share
                yellow_floor = rate
        if rate <= cap and share <= share_cap:
            r_key = -1.0 if math.isnan(recall) else recall
            if best is None or r_key > best[0]:
                best = (r_key, y, rate)
        elif rate > 3.0 * cap + 5.0:
            break
    yellow_ok = best is not None and yellow_floor is None
    yellow_value = best[1] if best is not None else red_value
    yellow_rows.sort(key=lambda c: c.threshold)

    # Blue: from yellow down to blue_ratio x yellow, the lowest with it and every higher one under the notice cap. The
    # YELLOW and RED edges do not depend on blue, so only the BLUE notices are counted.
    blue_rows: list[Candidate] = []
    blue_value = yellow_value
    floor = max(yellow_value * blue_ratio, 1e-6)
    for b in sorted({float(c) for c in candidates if floor < c < yellow_value} | {floor}, reverse=True):
        g = grade_all(scores, RiskThresholds(blue=b, yellow=yellow_value, red=red_value, **rules), prep, buffer)
        rate = _rate(_benign_rises(g, BLUE, prep), prep.hours)
        blue_rows.append(Candidate(b, rate, math.nan))
        if rate > max_benign_blue_per_100h:
            break
        blue_value = b
    blue_rows.sort(key=lambda c: c.threshold)
    thresholds = RiskThresholds(blue=blue_value, yellow=yellow_value, red=red_value, **rules)
    g = grade_all(scores, thresholds, prep, buffer)
    pop, w10, _, _ = _warned(g, prep)
    return ThresholdSearch(
        thresholds=thresholds, red_feasible=red_ok, yellow_feasible=yellow_ok,
        false_red_per_100h=_rate(_false_edges(g, RED, prep)[1], prep.hours),
        false_warnings_per_100h=_rate(_false_edges(g, YELLOW, prep)[1], prep.hours),
        recall_10min=_ratio(w10, pop), benign_warning_share=_benign_share(g, prep), red_candidates=red_rows,
        yellow_candidates=yellow_rows, blue_candidates=blue_rows,
        blue_notices_benign_per_100h=_rate(_benign_rises(g, BLUE, prep), prep.hours))


class TargetCost(msgspec.Struct):
    """The highest yellow at which a scorer warns a share of the 10-minute population, and what it costs in false
    warnings there (red and the grading rules as given, blue at most yellow)."""

    target: float
    yellow: float
    warned_10min: int
    population_10min: int
    recall_10min: float
    false_warnings_per_100h: float
    false_warnings_benign_per_100h: float
    benign_warning_share: float


def yellow_for_recall(scores: Sequence[np.ndarray], thresholds: RiskThresholds, prepared: Prepared,
                      target: float) -> TargetCost | None:
    """The highest candidate yellow under `thresholds.yellow` warning at least `target` of the 10-minute population
    10 min ahead, with its false warnings; None when none does (or the population is empty). Read off the data it
    is given: it shows what a recall target costs there, it chooses nothing."""
    buffer = np.empty(prepared.rows, dtype=np.int8)
    for y in sorted((float(c) for c in candidate_thresholds(scores) if c < thresholds.yellow), reverse=True):
        th = msgspec.structs.replace(thresholds, yellow=y, blue=min(thresholds.blue, y))
        g = grade_all(scores, th, prepared, buffer)
        pop, w10, _, _ = _warned(g, prepared)
        if pop and w10 / pop >= target:
            rows, false = _false_edges(g, YELLOW, prepared)
            return TargetCost(
                target=target, yellow=y, warned_10min=w10, population_10min=pop, recall_10min=w10 / pop,
                false_warnings_per_100h=_rate(false, prepared.hours),
                false_warnings_benign_per_100h=_rate(_false_benign(rows, prepared), prepared.hours),
                benign_warning_share=_benign_share(g, prepared))
    return None


def choose_thresholds(scores: Sequence[np.ndarray], sequences: Sequence[ZoneSequence], hazards: Iterable[Hazard],
                      crossings: Iterable[Crossing], *, max_false_red_per_100h: float = MAX_FALSE_RED_PER_100H,
                      max_false_warnings_per_100h: float = MAX_FALSE_WARNINGS_PER_100H,
                      max_benign_warning_share: float = MAX_BENIGN_WARNING_SHARE,
                      max_benign_blue_per_100h: float = MAX_BENIGN_BLUE_PER_100H,
                      red: float | None = None, blue_ratio: float = BLUE_RATIO, **rules) -> RiskThresholds:
    """Grade thresholds chosen on these (validation) sequences: red the lowest keeping false RED at or under
    `max_false_red_per_100h`, yellow maximising recall >= 10 min with at most `max_false_warnings_per_100h` false
    warnings and at most `max_benign_warning_share` of benign steps YELLOW or higher, blue the lowest from
    `blue_ratio` x yellow up giving at most `max_benign_blue_per_100h` BLUE notices with no hazard active (module
    docstring). `red` fixes red (threshold-only: 1.0); `rules`
    (red_confirm_steps, release_ratio, release_steps, air_yellow, air_yellow_steps) override the RiskThresholds
    defaults."""
    return threshold_search(scores, sequences, hazards, crossings, max_false_red_per_100h=max_false_red_per_100h,
                            max_false_warnings_per_100h=max_false_warnings_per_100h,
                            max_benign_warning_share=max_benign_warning_share,
                            max_benign_blue_per_100h=max_benign_blue_per_100h, red=red,
                            blue_ratio=blue_ratio, **rules).thresholds


__all__ = [
    "BLUE", "DEFINITIONS", "DETAILS", "NONE", "RED", "YELLOW", "Candidate", "EdgeEvent", "HazardLead", "KindMetrics", "OperatingPoint",
    "PRCurve", "Prepared", "RiskMetrics", "TargetCost", "ThresholdSearch", "candidate_thresholds",
    "choose_thresholds", "evaluate_grades", "grade_all", "prepare", "pr_curve", "threshold_search", "yellow_for_recall",
]
