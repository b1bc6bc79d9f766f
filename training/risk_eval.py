"""Evaluate the risk model against the two baselines on held-out data, and write the report.

```sh
interlock risk-eval --data runs/risk_eval_2029 --splits train,validation,test --data runs/training_data --splits test \
    --model runs/risk_model_v1.npz --out runs/risk_eval_v1 [--calibrate runs/training_data]
python -m training.risk_eval ...   # the same
```

Each `--data DIR` is a training set (docs/training_data.md); the `--splits` after it names its parts to evaluate
(default `test`; a `--splits` before any `--data` sets the default). `--model` is a file made by `interlock
risk-train`, or `shipped` (default: the packaged `interlock/risk_lstm.npz`). Each zone sequence is scored by the
model (`interlock.risk_model.sequence_probabilities`), by the rate-of-rise and by the threshold-only baselines
(`training.risk_baselines`), graded with `interlock.risk_grade.grade_series` (the model with its file's thresholds,
the baselines with their defaults, or thresholds chosen by `training.risk_metrics.choose_thresholds` on the
`--calibrate` sets' validation parts), and judged with `training.risk_metrics.evaluate_grades`.

Writes to `--out`: `risk_eval.md` (with `risk_eval_*.svg` beside it), `risk_eval.html` (self-contained: the plots
are inline SVG made with matplotlib's SVG backend, no script, no network) and `risk_eval.json` (every figure). The
output depends only on the inputs (no clock; `--stamp TEXT` adds a line of your own). Exit status 0 when the model
meets every acceptance criterion, 1 when it misses one, 2 on a usage or input error.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import io
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import msgspec
import numpy as np

from interlock.risk_grade import RiskThresholds
from training import risk_baselines as B
from training.risk_metrics import (
    DEFINITIONS, DETAILS, MAX_BENIGN_BLUE_PER_100H, MAX_BENIGN_WARNING_SHARE, MAX_FALSE_RED_PER_100H, MAX_FALSE_WARNINGS_PER_100H, HazardLead, RiskMetrics, evaluate_grades,
    grade_all, prepare, WARN_AHEAD_S, TargetCost, threshold_search, yellow_for_recall,
)
from training.zone_sequence import Crossing, Hazard, ZoneSequence

MODEL = "model"
METHODS = (MODEL, B.RATE_OF_RISE, B.THRESHOLD_ONLY)
LABELS = {MODEL: "LSTM model", B.RATE_OF_RISE: "rate-of-rise", B.THRESHOLD_ONLY: "threshold-only"}
COLOURS = {MODEL: "#1f5fbf", B.RATE_OF_RISE: "#e07b00", B.THRESHOLD_ONLY: "#6d6d6d"}

REQUIRED_RECALL_10MIN = 0.95
MAX_FALSE_RED_BUDGET = 1.0
"""Acceptance: at least 95 % of the >= 600 s hazards warned 10 min ahead, at most 1 false RED per 100 zone-hours."""
BETTER_RULE = ("better than a baseline: recall >= 10 min at least the baseline's, false RED per 100 zone-hours at "
               "most the baseline's, and a higher average precision over the steps not over a limit (the served model "
               "is trained to stay high while the air is past a limit, as the threshold alarm does, which the "
               "all-steps AP counts as false alarms)")
SVG_SALT = "interlock-risk-eval"
PLOTS = (("pr", "Precision-recall (row level)"), ("lead", "Lead time per crossed hazard"),
         ("criteria", "Acceptance criteria"))


# --- what the report holds --------------------------------------------------------------------------------------


class DataPart(msgspec.Struct):
    directory: str
    splits: list[str]
    seed: int | None
    sequences: int
    zone_hours: float
    hazards_crossed: int
    hazards_10min: int


class FalseRedCause(msgspec.Struct):
    cause: str
    count: int


class MethodResult(msgspec.Struct):
    name: str
    label: str
    thresholds: RiskThresholds
    thresholds_source: str
    metrics: RiskMetrics
    false_red_causes: list[FalseRedCause] = []


class Criterion(msgspec.Struct):
    criterion: str
    requirement: str
    value: str
    passed: bool | None
    """None: reported, no pass mark."""


class ModelInfo(msgspec.Struct):
    path: str
    sha256: str
    bytes: int


class Evaluation(msgspec.Struct):
    title: str
    stamp: str | None
    data: list[DataPart]
    model: ModelInfo | None
    calibration: list[DataPart]
    methods: list[MethodResult]
    criteria: list[Criterion]
    passed: bool
    definitions: list[list[str]]
    details: list[str]
    better_rule: str
    threshold_rule: str
    target_cost: TargetCost | None = None
    """When the model misses the recall target: the highest yellow that would meet it on this data, and its cost."""

    def method(self, name: str) -> MethodResult:
        return next(m for m in self.methods if m.name == name)


THRESHOLD_RULE = (
    f"choose_thresholds on validation data: red the lowest threshold keeping false RED at or under "
    f"{MAX_FALSE_RED_PER_100H:g} per 100 zone-hours (a margin under the budget of 1), yellow maximising recall "
    f">= 10 min with at most {MAX_FALSE_WARNINGS_PER_100H:g} false warnings per 100 zone-hours and at most "
    f"{100 * MAX_BENIGN_WARNING_SHARE:g} % of benign steps YELLOW or higher (when yellow = red already gives more, "
    f"that much more than yellow = red gives), blue the lowest from half of yellow up giving at most "
    f"{MAX_BENIGN_BLUE_PER_100H:g} BLUE notices with no hazard active per 100 zone-hours; "
    f"threshold-only keeps red at 1.0 (the limit); when no red meets its cap, red is 1.0.")


# --- scoring ----------------------------------------------------------------------------------------------------


def model_thresholds(model: Any) -> RiskThresholds:
    """A model's grade thresholds (its file keeps them as a dict or as RiskThresholds)."""
    th = model.thresholds
    if isinstance(th, RiskThresholds):
        return th
    return msgspec.convert(dict(th), RiskThresholds)


def load_model(choice: str) -> tuple[Any, ModelInfo]:
    """The model of a file made by `interlock risk-train`, or the packaged one (`shipped`)."""
    from interlock.risk_model import RiskModel

    if choice == "shipped":
        from dataflows.risk_model_file import SHIPPED_FILE, shipped_model_bytes

        data, name = shipped_model_bytes(), f"interlock/{SHIPPED_FILE} (shipped)"
    else:
        data, name = Path(choice).read_bytes(), str(choice)
    return RiskModel.from_bytes(data), ModelInfo(name, hashlib.sha256(data).hexdigest(), len(data))


def model_scores(model: Any, sequences: Sequence[ZoneSequence], progress: bool = False) -> list[np.ndarray]:
    """The model's probability at every step of every sequence (each from a fresh state)."""
    from interlock.risk_model import sequence_probabilities

    out = []
    started = time.monotonic()
    for i, s in enumerate(sequences):
        p = np.asarray(sequence_probabilities(model, s.raw), dtype=np.float64)
        if p.shape != (len(s),):
            raise ValueError(f"the model gave {p.shape} probabilities for {len(s)} steps of {s.scenario_id}/{s.zone}")
        out.append(np.nan_to_num(p, nan=0.0))
        if progress and (i + 1) % 50 == 0:
            print(f"  model: {i + 1}/{len(sequences)} zones, {time.monotonic() - started:.0f} s", file=sys.stderr)
    return out


def baseline_scores(sequences: Sequence[ZoneSequence]) -> dict[str, list[np.ndarray]]:
    return {name: [scorer(s.raw) for s in sequences] for name, scorer in B.SCORERS.items()}


def false_red_causes(sequences: Sequence[ZoneSequence], metrics: RiskMetrics, confirm_steps: int) -> list[FalseRedCause]:
    """What the detectors reported over the limit in the steps confirming each false RED: several channels at once
    (a bump test's gas), one channel (which), or none (a forecast)."""
    where = {(s.scenario_id, s.zone): s for s in sequences}
    counts: dict[str, int] = {}
    for e in metrics.false_red_events:
        s = where[(e.scenario_id, e.zone)]
        i = int(np.searchsorted(s.t_ms, e.t_ms))
        _, over = B.hazard_fractions(s.raw[max(0, i - confirm_steps):i + 1])
        channels = [c for c, o in zip(B.CHANNELS, over.any(axis=0)) if o]
        cause = ("several channels over at once (bump-test gas)" if len(channels) >= B.BUMP_GAS_CHANNELS else
                 " + ".join(channels) + " reported over the limit" if channels else "nothing reported over a limit")
        counts[cause] = counts.get(cause, 0) + 1
    return [FalseRedCause(c, n) for c, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]


# --- evaluation -------------------------------------------------------------------------------------------------


def _fmt_pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f} %"


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _fmt_s(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.0f} s"


def _not_worse(a: float, b: float, higher_is_better: bool) -> bool:
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a >= b if higher_is_better else a <= b


def better_than(model: RiskMetrics, baseline: RiskMetrics) -> bool:
    """`BETTER_RULE`."""
    return (_not_worse(model.recall_10min, baseline.recall_10min, True)
            and _not_worse(model.false_red_per_100h, baseline.false_red_per_100h, False)
            and not math.isnan(model.average_precision_not_over)
            and (math.isnan(baseline.average_precision_not_over)
                 or model.average_precision_not_over > baseline.average_precision_not_over))


def acceptance(methods: Sequence[MethodResult]) -> list[Criterion]:
    by = {m.name: m.metrics for m in methods}
    m = by[MODEL]
    rows = [
        Criterion("hazards warned >= 10 min ahead", f">= {100 * REQUIRED_RECALL_10MIN:.0f} % of crossed hazards with "
                  f"lead_s >= 600", f"{_fmt_pct(m.recall_10min)} ({m.warned_10min}/{m.population_10min})",
                  None if math.isnan(m.recall_10min) else m.recall_10min >= REQUIRED_RECALL_10MIN),
        Criterion("median lead time", "reported", f"{_fmt_s(m.median_lead_s)} over all crossed hazards, "
                  f"{_fmt_s(m.median_lead_10min_s)} over the >= 600 s population", None),
        Criterion("false RED", f"<= {MAX_FALSE_RED_BUDGET:g} per 100 zone-hours",
                  f"{_fmt(m.false_red_per_100h)} per 100 zone-hours ({m.false_red} in {m.zone_hours:.1f} h; "
                  f"{m.false_red_benign} of them with no hazard active)",
                  m.false_red_per_100h <= MAX_FALSE_RED_BUDGET),
        Criterion("precision", "reported", f"episode {_fmt_pct(m.episode_precision)} "
                  f"({m.true_warning_edges}/{m.warning_edges} warnings), average precision {_fmt(m.average_precision, 3)}",
                  None),
    ]
    for name in (B.THRESHOLD_ONLY, B.RATE_OF_RISE):
        if name in by:
            b = by[name]
            rows.append(Criterion(
                f"better than {LABELS[name]}", BETTER_RULE.split(": ", 1)[1],
                f"recall >= 10 min {_fmt_pct(m.recall_10min)} vs {_fmt_pct(b.recall_10min)}, false RED "
                f"{_fmt(m.false_red_per_100h)} vs {_fmt(b.false_red_per_100h)}, AP not over a limit "
                f"{_fmt(m.average_precision_not_over, 3)} vs {_fmt(b.average_precision_not_over, 3)}", better_than(m, b)))
    return rows


def evaluate(sequences: Sequence[ZoneSequence], hazards: Sequence[Hazard], crossings: Sequence[Crossing],
             scores: dict[str, list[np.ndarray]], thresholds: dict[str, tuple[RiskThresholds, str]], *,
             data: Sequence[DataPart] = (), model: ModelInfo | None = None, calibration: Sequence[DataPart] = (),
             title: str = "Risk model evaluation", stamp: str | None = None) -> Evaluation:
    """Grade each method's scores with its thresholds and judge them; `scores` and `thresholds` by method name
    (`METHODS`; the model's is required for the acceptance lines)."""
    prep = prepare(sequences, hazards, crossings)
    methods = []
    for name in [n for n in METHODS if n in scores] + sorted(n for n in scores if n not in METHODS):
        th, source = thresholds[name]
        grades = np.split(grade_all(scores[name], th, prep), prep.offsets[1:-1])
        metrics = evaluate_grades(sequences, grades, scores[name], hazards, crossings, thresholds=th, prepared=prep)
        methods.append(MethodResult(name, LABELS.get(name, name), th, source, metrics,
                                    false_red_causes(sequences, metrics, th.red_confirm_steps)))
    criteria = acceptance(methods) if MODEL in scores else []
    target_cost = None
    model_result = next((m for m in methods if m.name == MODEL), None)
    if model_result is not None and model_result.metrics.recall_10min < REQUIRED_RECALL_10MIN:
        target_cost = yellow_for_recall(scores[MODEL], model_result.thresholds, prep, REQUIRED_RECALL_10MIN)
    return Evaluation(
        title=title, stamp=stamp, data=list(data), model=model, calibration=list(calibration), methods=methods,
        criteria=criteria, passed=bool(criteria) and all(c.passed is not False for c in criteria),
        definitions=[list(d) for d in DEFINITIONS], details=list(DETAILS), better_rule=BETTER_RULE,
        threshold_rule=THRESHOLD_RULE, target_cost=target_cost)


# --- plots ------------------------------------------------------------------------------------------------------


def _svg(fig) -> str:
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buffer.getvalue().decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def _figure(width: float, height: float, columns: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    axes = fig.subplots(1, columns, squeeze=False)[0]
    return fig, axes


def plot_pr(ev: Evaluation) -> str:
    fig, (ax,) = _figure(7.0, 4.6)
    prevalence = None
    for m in ev.methods:
        c = m.metrics.pr_curve
        colour = COLOURS.get(m.name)
        if c.recall:
            ax.step(c.recall, c.precision, where="post", color=colour, lw=1.6,
                    label=f"{m.label} (AP {_fmt(m.metrics.average_precision, 3)})")
        for p, marker in zip(m.metrics.operating_points, ("o", "s", "^")):
            if p.name in ("YELLOW", "RED") and not math.isnan(p.recall) and not math.isnan(p.precision):
                ax.plot([p.recall], [p.precision], marker=marker, color=colour, ms=6, ls="none")
        if m.metrics.rows:
            prevalence = m.metrics.positive_rows / m.metrics.rows
    if prevalence is not None:
        ax.axhline(prevalence, color="#999999", lw=0.8, ls=":", label=f"share of positive steps {prevalence:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall (steps with a crossing in the next 12 min)")
    ax.set_ylabel("precision")
    ax.set_title("Row-level precision-recall; markers: YELLOW (square) and RED (triangle) thresholds", fontsize=9)
    ax.grid(True, color="#e3e6ea", lw=0.6)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return _svg(fig)


def _survival(values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(np.asarray(values, dtype=np.float64))
    if not v.size:
        return np.zeros(0), np.zeros(0)
    x = np.r_[0.0, v]
    y = np.r_[1.0, 1.0 - np.arange(1, v.size + 1) / v.size]
    return x, y


def plot_lead(ev: Evaluation) -> str:
    fig, axes = _figure(10.0, 4.0, 2)
    top = 0.0
    for m in ev.methods:
        for ax, leads in zip(axes, ([x.lead_s for x in m.metrics.leads if x.warned_10min is not None],
                                    [x.lead_s for x in m.metrics.leads])):
            x, y = _survival(leads)
            if x.size:
                top = max(top, float(x[-1]))
                ax.step(x, y, where="post", color=COLOURS.get(m.name), lw=1.6, label=m.label)
    top = max(top * 1.05, 900.0)
    for ax, title in zip(axes, ("crossed hazards with lead_s >= 600 s", "all crossed hazards")):
        ax.axvline(600, color="#b00020", lw=0.9, ls="--")
        ax.set_xlim(0, top)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("lead time (s before the first crossing)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, color="#e3e6ea", lw=0.6)
    axes[0].axhline(REQUIRED_RECALL_10MIN, color="#b00020", lw=0.9, ls="--")
    axes[0].set_xlabel("lead time (s before the first crossing); pass: curve at 600 s at or over 95 %")
    axes[0].set_ylabel("share of hazards warned at least this early")
    axes[1].legend(loc="upper right", fontsize=8, frameon=False)
    return _svg(fig)


def plot_criteria(ev: Evaluation) -> str:
    fig, axes = _figure(10.0, 3.4, 3)
    names = [m.label for m in ev.methods]
    colours = [COLOURS.get(m.name, "#444444") for m in ev.methods]
    ypos = np.arange(len(names))[::-1]
    panels = (
        ("recall >= 10 min (%)", [100 * m.metrics.recall_10min for m in ev.methods], 100 * REQUIRED_RECALL_10MIN,
         "pass at or over"),
        ("false RED per 100 zone-hours", [m.metrics.false_red_per_100h for m in ev.methods], MAX_FALSE_RED_BUDGET,
         "pass at or under"),
        ("false warnings per 100 zone-hours", [m.metrics.false_warnings_per_100h for m in ev.methods], None, ""),
    )
    for ax, (title, values, line, note) in zip(axes, panels):
        v = [0.0 if math.isnan(x) else x for x in values]
        ax.barh(ypos, v, color=colours, height=0.6)
        for y, x, raw in zip(ypos, v, values):
            ax.text(x, y, f" {_fmt(raw, 1)}", va="center", fontsize=8)
        if line is not None:
            ax.axvline(line, color="#b00020", lw=1.0, ls="--")
            ax.set_xlabel(f"dashed line: {note} {line:g}", color="#b00020", fontsize=8)
        ax.set_yticks(ypos, names if ax is axes[0] else [""] * len(names))
        ax.set_xlim(0, max([*v, line or 0.0, 1.0]) * 1.25)
        ax.set_title(title, fontsize=9)
        ax.grid(True, axis="x", color="#e3e6ea", lw=0.6)
    return _svg(fig)


# --- report -----------------------------------------------------------------------------------------------------


def _table_main(ev: Evaluation) -> tuple[list[str], list[list[str]]]:
    head = ["figure", *(m.label for m in ev.methods)]
    rows = []

    def row(name, f):
        rows.append([name, *(f(m.metrics) for m in ev.methods)])

    row("recall >= 10 min (n/N)", lambda x: f"{_fmt_pct(x.recall_10min)} ({x.warned_10min}/{x.population_10min})")
    row("recall any time (n/N)", lambda x: f"{_fmt_pct(x.recall_any)} ({x.warned_any}/{x.hazards_crossed})")
    row("median lead, all crossed", lambda x: _fmt_s(x.median_lead_s))
    row("median lead, lead_s >= 600", lambda x: _fmt_s(x.median_lead_10min_s))
    row("false RED / 100 zone-hours", lambda x: f"{_fmt(x.false_red_per_100h)} ({x.false_red})")
    row("of them with no hazard active", lambda x: f"{_fmt(x.false_red_benign_per_100h)} ({x.false_red_benign})")
    row("false warnings / 100 zone-hours", lambda x: f"{_fmt(x.false_warnings_per_100h)} ({x.false_warnings})")
    row("of them with no hazard active", lambda x: f"{_fmt(x.false_warnings_benign_per_100h)} ({x.false_warnings_benign})")
    row("BLUE notices with no hazard active / 100 zone-hours",
        lambda x: f"{_fmt(x.blue_notices_benign_per_100h)} ({x.blue_notices_benign})")
    row("episode precision", lambda x: f"{_fmt_pct(x.episode_precision)} ({x.true_warning_edges}/{x.warning_edges})")
    row("benign steps YELLOW or higher", lambda x: _fmt_pct(x.benign_warning_share))
    row("average precision", lambda x: _fmt(x.average_precision, 3))
    row("AP not over a limit", lambda x: _fmt(x.average_precision_not_over, 3))
    return head, rows


def _table_kinds(ev: Evaluation) -> tuple[list[str], list[list[str]]]:
    labels = [m.label for m in ev.methods]
    head = ["kind", "hazards", "crossed", "lead_s >= 600",
            *(f"recall >= 10 min: {x}" for x in labels), *(f"recall any: {x}" for x in labels),
            *(f"median lead: {x}" for x in labels)]
    kinds = sorted({k.kind for m in ev.methods for k in m.metrics.per_kind})
    rows = []
    for kind in kinds:
        ks = [next((k for k in m.metrics.per_kind if k.kind == kind), None) for m in ev.methods]
        first = next(k for k in ks if k is not None)
        rows.append([kind, str(first.hazards), str(first.crossed), str(first.population_10min),
                     *(f"{k.warned_10min}/{k.population_10min}" if k and k.population_10min else "-" for k in ks),
                     *(f"{k.warned_any}/{k.crossed}" if k and k.crossed else "-" for k in ks),
                     *(_fmt_s(k.median_lead_s) if k else "-" for k in ks)])
    return head, rows


SLACK_BUCKETS_S: tuple[tuple[float, float], ...] = ((0.0, 60.0), (60.0, 120.0), (120.0, 300.0), (300.0, math.inf))
"""Buckets of a hazard's slack: how long after its start a 10-minute warning could still come (lead_s - 600)."""


def _slack_label(low: float, high: float) -> str:
    return f">= {low:g} s" if math.isinf(high) else f"{low:g}-{high:g} s"


def _warned_by(ev: Evaluation, first: str, buckets: Sequence[tuple[str, Callable[[HazardLead], bool]]],
               optional: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
    """Hazards of the 10-minute population warned 10 min ahead, each method side by side, per bucket (its label and
    which hazards it holds); an `optional` bucket no hazard falls in is left out."""
    head = [first, "hazards", *(f"warned >= 10 min: {m.label}" for m in ev.methods)]
    rows = []
    for label, holds in buckets:
        counts = []
        for m in ev.methods:
            inside = [x for x in m.metrics.leads if x.warned_10min is not None and holds(x)]
            counts.append((sum(1 for x in inside if x.warned_10min), len(inside)))
        if label not in optional or (counts and counts[0][1]):
            rows.append([label, str(counts[0][1]) if counts else "0", *(f"{warned}/{n}" for warned, n in counts)])
    return head, rows


def _table_slack(ev: Evaluation) -> tuple[list[str], list[list[str]]]:
    """Warned 10 min ahead by the slack a hazard left: a hazard that crossed 614 s after it began had to be warned
    within 14 s of its start, before its gas showed, to count."""
    return _warned_by(ev, "a 10-min warning had to come within (of the hazard's start)", [
        (_slack_label(low, high), lambda x, low=low, high=high: low <= x.possible_lead_s - WARN_AHEAD_S < high)
        for low, high in SLACK_BUCKETS_S])


AIR_TRACE = 0.05
"""A crossed channel that had moved by less than this fraction of its limit when a 10-minute warning was last due had
not risen out of the air's ordinary ups and downs (detector noise, 0.1 steps, normal work's gas at 10-40 % of a
limit): the hazard had left no trace in the air yet."""

AIR_MOVED_BUCKETS: tuple[tuple[float, float], ...] = (
    (-math.inf, AIR_TRACE), (AIR_TRACE, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, math.inf))
"""Buckets of `air_moved_10min`: how far the crossed channel had moved, as a fraction of its limit, by the last moment
a 10-minute warning could come."""


def _moved_label(low: float, high: float) -> str:
    if math.isinf(low):
        return f"under {high:g}"
    return f"{low:g} or more" if math.isinf(high) else f"{low:g}-{high:g}"


def _table_air_moved(ev: Evaluation) -> tuple[list[str], list[list[str]]]:
    """Warned 10 min ahead by how far the air had moved when the warning was last due: a hazard whose gas had not
    risen above the air's ordinary ups and downs by then gave no scorer anything to warn on."""
    return _warned_by(ev, "crossed channel had moved by (fraction of its limit)", [
        *((_moved_label(low, high), lambda x, low=low, high=high: low <= x.air_moved_10min < high)
          for low, high in AIR_MOVED_BUCKETS),
        ("unknown", lambda x: math.isnan(x.air_moved_10min))], optional=("unknown",))


def _air_trace_ceiling(ev: Evaluation) -> str | None:
    """What the air allowed: how many hazards of the population had left no trace when their warning was last due,
    the most a scorer warning only hazards the air showed could reach, and the model's share of those that showed."""
    m = next((x for x in ev.methods if x.name == MODEL), None)
    population = [] if m is None else [x for x in m.metrics.leads if x.warned_10min is not None]
    if not population:
        return None
    shown = [x for x in population if not x.air_moved_10min < AIR_TRACE]
    hidden = len(population) - len(shown)
    warned = sum(1 for x in shown if x.warned_10min)
    return (f"{hidden} of the {len(population)} hazards of the population had moved their crossed channel by less "
            f"than {AIR_TRACE:g} of its limit when a 10-minute warning was last due: a scorer warning only hazards the "
            f"air showed by then reaches at most {_fmt_pct((len(population) - hidden) / len(population))}. Of the "
            f"{len(shown)} that showed, the model warned {warned} ({_fmt_pct(warned / len(shown) if shown else math.nan)}).")


def _target_cost(ev: Evaluation) -> str | None:
    """What the recall target would cost on this data when the model misses it: the highest yellow meeting it, and
    its false warnings beside the model's own and the baselines'."""
    m = next((x for x in ev.methods if x.name == MODEL), None)
    if m is None or not m.metrics.recall_10min < REQUIRED_RECALL_10MIN:
        return None
    x, c = m.metrics, ev.target_cost
    text = (f"At its thresholds (yellow {_fmt(m.thresholds.yellow, 4)}) the model warns {_fmt_pct(x.recall_10min)} "
            f"({x.warned_10min}/{x.population_10min}) with {_fmt(x.false_warnings_per_100h)} false warnings per 100 "
            f"zone-hours ({_fmt(x.false_warnings_benign_per_100h)} with no hazard active) and "
            f"{_fmt_pct(x.benign_warning_share)} of benign steps YELLOW or higher. ")
    if c is None:
        return text + f"No lower yellow warns {100 * REQUIRED_RECALL_10MIN:.0f} % of this population."
    others = ", ".join(f"{b.label} {_fmt(b.metrics.false_warnings_per_100h)}" for b in ev.methods if b.name != MODEL)
    return text + (
        f"The highest yellow at which it would warn at least {100 * REQUIRED_RECALL_10MIN:.0f} % is "
        f"{_fmt(c.yellow, 4)}: {_fmt_pct(c.recall_10min)} ({c.warned_10min}/{c.population_10min}), with "
        f"{_fmt(c.false_warnings_per_100h)} false warnings per 100 zone-hours ({_fmt(c.false_warnings_benign_per_100h)} "
        f"with no hazard active) and {_fmt_pct(c.benign_warning_share)} of benign steps YELLOW or higher"
        + (f" (the baselines: {others})" if others else "")
        + ". That yellow is read off this data to show the trade-off; the thresholds in force come from validation "
          "data.")


def _thresholds_table(ev: Evaluation) -> tuple[list[str], list[list[str]]]:
    head = ["method", "blue", "yellow", "red", "red confirm steps", "release", "YELLOW by the air", "chosen"]
    rows = [[m.label, _fmt(m.thresholds.blue, 4), _fmt(m.thresholds.yellow, 4), _fmt(m.thresholds.red, 4),
             str(m.thresholds.red_confirm_steps),
             f"{m.thresholds.release_steps} steps under {m.thresholds.release_ratio:g} x",
             (f"{m.thresholds.air_yellow:g} of a limit for {m.thresholds.air_yellow_steps} steps"
              if m.thresholds.air_yellow > 0 else "no"), m.thresholds_source]
            for m in ev.methods]
    return head, rows


def _data_table(parts: Sequence[DataPart]) -> tuple[list[str], list[list[str]]]:
    head = ["set", "parts", "seed", "zones", "zone-hours", "crossed hazards", "of them lead_s >= 600"]
    rows = [[p.directory, ", ".join(p.splits), "-" if p.seed is None else str(p.seed), str(p.sequences),
             f"{p.zone_hours:.1f}", str(p.hazards_crossed), str(p.hazards_10min)] for p in parts]
    return head, rows


def _causes_table(ev: Evaluation) -> tuple[list[str], list[list[str]]]:
    causes = sorted({c.cause for m in ev.methods for c in m.false_red_causes})
    head = ["what the detectors showed at the false RED", *(m.label for m in ev.methods)]
    rows = [[cause, *(str(next((c.count for c in m.false_red_causes if c.cause == cause), 0)) for m in ev.methods)]
            for cause in causes]
    return head, rows


def _verdict(c: Criterion) -> str:
    return "reported" if c.passed is None else "PASS" if c.passed else "FAIL"


def _blocks(ev: Evaluation) -> list[tuple[str, Any]]:
    """The report as blocks ('h1'/'h2'/'p'/'ul'/'table'/'plot'), rendered to Markdown and HTML alike."""
    b: list[tuple[str, Any]] = [("h1", ev.title)]
    if ev.stamp:
        b.append(("p", ev.stamp))
    m = next((x for x in ev.methods if x.name == MODEL), None)
    if ev.model is not None:
        b.append(("p", f"Model: `{ev.model.path}` ({ev.model.bytes:,} bytes, sha256 `{ev.model.sha256}`)."))
    total = ev.methods[0].metrics if ev.methods else None
    if total is not None:
        b.append(("p", f"Evaluated: {total.sequences} zones, {total.zone_hours:.1f} zone-hours ({total.rows:,} steps), "
                       f"{total.hazards} hazards of which {total.hazards_crossed} crossed a limit "
                       f"({total.population_10min} with lead_s >= 600), {total.positive_rows:,} steps labelled."))
    if ev.data:
        b.append(("table", _data_table(ev.data)))
    b.append(("h2", "Acceptance criteria"))
    if ev.criteria:
        b.append(("ul", [f"**{_verdict(c)}** {c.criterion} ({c.requirement}): {c.value}" for c in ev.criteria]))
        b.append(("p", f"**Overall: {'PASS' if ev.passed else 'FAIL'}** ({ev.better_rule})."))
    else:
        b.append(("p", "No model scores: baselines only."))
    b.append(("h2", "Side by side"))
    b.append(("table", _table_main(ev)))
    b.append(("h2", "Per hazard kind"))
    b.append(("table", _table_kinds(ev)))
    b.append(("h2", "By the time a 10-minute warning left"))
    b.append(("table", _table_slack(ev)))
    b.append(("h2", "By how far the air had moved when a 10-minute warning was last due"))
    b.append(("table", _table_air_moved(ev)))
    if (ceiling := _air_trace_ceiling(ev)) is not None:
        b.append(("p", ceiling))
    if (cost := _target_cost(ev)) is not None:
        b.append(("h2", "What the recall target would cost on this data"))
        b.append(("p", cost))
    b.append(("h2", "Thresholds"))
    b.append(("table", _thresholds_table(ev)))
    b.append(("p", f"Baseline thresholds rule: {ev.threshold_rule}"))
    if ev.calibration:
        b.append(("p", "Baseline thresholds chosen on:"))
        b.append(("table", _data_table(ev.calibration)))
    b.append(("h2", "False REDs by what the detectors showed"))
    b.append(("table", _causes_table(ev)))
    for key, title in PLOTS:
        b.append(("h2", title))
        b.append(("plot", key))
    b.append(("h2", "Definitions"))
    b.append(("ul", [f"**{term}**: {text}" for term, text in ev.definitions]))
    b.append(("ul", list(ev.details)))
    if m is not None and m.metrics.false_red_events:
        b.append(("h2", "Model: false REDs"))
        b.append(("table", (["scenario", "zone", "t_ms", "score", "during a hazard"],
                            [[e.scenario_id, e.zone, str(e.t_ms), _fmt(e.score, 4), "yes" if e.during_hazard else "no"]
                             for e in m.metrics.false_red_events[:50]])))
    if m is not None:
        missed = [x for x in m.metrics.leads if x.warned_10min is False]
        if missed:
            b.append(("h2", "Model: hazards of the >= 600 s population not warned 10 min ahead"))
            b.append(("table", (["scenario", "zone", "hazard", "kind", "possible lead", "lead",
                                 "a 10-min warning had to come within", "short by",
                                 "crossed channel had moved by then (fraction of its limit)"],
                                [[x.scenario_id, x.zone, x.hazard, x.kind, _fmt_s(x.possible_lead_s), _fmt_s(x.lead_s),
                                  _fmt_s(x.possible_lead_s - WARN_AHEAD_S), _fmt_s(WARN_AHEAD_S - x.lead_s),
                                  _fmt(x.air_moved_10min, 3)]
                                 for x in missed])))
    return b


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(blocks: list[tuple[str, Any]], plot_files: dict[str, str]) -> str:
    out: list[str] = []
    for kind, value in blocks:
        if kind == "h1":
            out.append(f"# {value}\n")
        elif kind == "h2":
            out.append(f"## {value}\n")
        elif kind == "p":
            out.append(f"{value}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in value) + "\n")
        elif kind == "table":
            head, rows = value
            lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |",
                     "|" + "|".join("---" for _ in head) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines) + "\n")
        elif kind == "plot":
            out.append(f"![{value}]({plot_files[value]})\n")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Markdown's **bold** and `code` of a block's text, escaped for HTML."""
    parts = html.escape(text, quote=False).split("`")
    for i in range(1, len(parts), 2):
        parts[i] = f"<code>{parts[i]}</code>"
    text = "".join(parts)
    bold = text.split("**")
    for i in range(1, len(bold), 2):
        bold[i] = f"<strong>{bold[i]}</strong>"
    text = "".join(bold)
    for word, cls in (("PASS", "pass"), ("FAIL", "fail")):
        text = text.replace(f"<strong>{word}</strong>", f'<strong class="{cls}">{word}</strong>')
    return text


CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1200px; color: #1b1b1b; line-height: 1.45; padding: 0 16px; }
h1 { font-size: 24px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #d5d9de; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #d5d9de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f5; } tr:nth-child(even) td { background: #fafbfc; }
code { background: #f1f3f5; padding: 0 3px; border-radius: 3px; font-size: 12px; }
.pass { color: #1b7f3b; } .fail { color: #b00020; }
figure { margin: 8px 0 16px; } figure svg { max-width: 100%; height: auto; }
"""


def render_html(blocks: list[tuple[str, Any]], svgs: dict[str, str], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style></head><body>"]
    for kind, value in blocks:
        if kind == "h1":
            out.append(f"<h1>{_inline(value)}</h1>")
        elif kind == "h2":
            out.append(f"<h2>{_inline(value)}</h2>")
        elif kind == "p":
            out.append(f"<p>{_inline(value)}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in value) + "</ul>")
        elif kind == "table":
            head, rows = value
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                       + "</tbody></table>")
        elif kind == "plot":
            out.append(f"<figure>{svgs[value]}</figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(ev: Evaluation, out_dir: str | Path) -> dict[str, Path]:
    """risk_eval.md (+ its SVG plots), risk_eval.html (self-contained) and risk_eval.json in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    svgs = {"pr": plot_pr(ev), "lead": plot_lead(ev), "criteria": plot_criteria(ev)}
    files: dict[str, Path] = {}
    plot_files = {}
    for key, svg in svgs.items():
        name = f"risk_eval_{key}.svg"
        (out / name).write_text(svg if svg.endswith("\n") else svg + "\n", encoding="utf-8")
        plot_files[key] = name
        files[name] = out / name
    blocks = _blocks(ev)
    files["risk_eval.md"] = out / "risk_eval.md"
    files["risk_eval.md"].write_text(render_markdown(blocks, plot_files), encoding="utf-8")
    files["risk_eval.html"] = out / "risk_eval.html"
    files["risk_eval.html"].write_text(render_html(blocks, svgs, ev.title), encoding="utf-8")
    files["risk_eval.json"] = out / "risk_eval.json"
    files["risk_eval.json"].write_bytes(msgspec.json.format(msgspec.json.encode(ev), indent=2) + b"\n")
    return files


def summary_table(ev: Evaluation) -> str:
    """The side-by-side table as plain Markdown (printed by the command)."""
    return render_markdown([("table", _table_main(ev))], {})


# --- command line -----------------------------------------------------------------------------------------------


class _Part(argparse.Action):
    """`--data DIR` opens a part; `--splits S` after it sets that part's splits (before any: the default)."""

    def __call__(self, parser, namespace, value, option_string=None):
        parts = list(getattr(namespace, self.dest) or [])
        parts.append([value, None])
        setattr(namespace, self.dest, parts)


class _Splits(argparse.Action):
    def __init__(self, *args, part_dest: str = "data", **kwargs):
        self.part_dest = part_dest
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, value, option_string=None):
        parts = getattr(namespace, self.part_dest) or []
        splits = [s.strip() for s in value.split(",") if s.strip()]
        if not parts:
            setattr(namespace, self.dest, splits)
        elif parts[-1][1] is None:
            parts[-1][1] = splits
        else:
            parser.error(f"{option_string} {value}: {parts[-1][0]} has its parts already; give --data before each "
                         f"--splits")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="interlock risk-eval",
        description="Evaluate the risk model against the threshold-only and rate-of-rise baselines on held-out data "
                    "and write risk_eval.md/.html/.json (docs: training/risk_eval.py).")
    p.add_argument("--data", action=_Part, metavar="DIR", required=True,
                   help="a training set to evaluate (repeatable); the --splits after it names its parts")
    p.add_argument("--splits", action=_Splits, part_dest="data", dest="default_splits", metavar="PARTS",
                   default=["test"], help="comma-separated parts of the preceding --data (default test)")
    p.add_argument("--model", default="shipped", metavar="MODEL.npz|shipped",
                   help="model file from interlock risk-train (default: the packaged interlock/risk_lstm.npz)")
    p.add_argument("--calibrate", action=_Part, metavar="DIR",
                   help="choose the baselines' thresholds on this set's validation part (repeatable; default: the "
                        "built-in thresholds of training.risk_baselines)")
    p.add_argument("--calibrate-splits", action=_Splits, part_dest="calibrate", dest="default_calibrate_splits",
                   metavar="PARTS", default=["validation"], help="parts of the preceding --calibrate (default validation)")
    p.add_argument("--baselines-only", action="store_true", help="evaluate the baselines alone (no model)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the report (created)")
    p.add_argument("--title", default="Risk model evaluation")
    p.add_argument("--stamp", default=None, metavar="TEXT", help="a line for the report's head (e.g. a date)")
    return p


def _load_parts(parts, default_splits, what: str):
    from training.risk_dataset import load_crossings, load_hazards, load_set, read_manifest

    sequences: list[ZoneSequence] = []
    hazards: list[Hazard] = []
    crossings: list[Crossing] = []
    described = []
    for directory, splits in parts:
        splits = splits or default_splits
        started = time.monotonic()
        seqs = load_set(directory, splits)
        manifest = read_manifest(directory)
        hz, cr = load_hazards(directory, splits), load_crossings(directory, splits)
        keys = {(s.scenario_id, s.zone) for s in seqs}
        mine = [h for h in hz if (h.scenario_id, h.zone) in keys and h.crossed]
        described.append(DataPart(str(directory), list(splits), manifest.get("seed"), len(seqs),
                                  round(sum(len(s) for s in seqs) / 3600.0, 6), len(mine),
                                  sum(1 for h in mine if h.lead_s is not None and h.lead_s >= 600)))
        print(f"{what}: {directory} {','.join(splits)}: {len(seqs)} zones, {described[-1].zone_hours:.1f} zone-hours "
              f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
        sequences += seqs
        hazards += hz
        crossings += cr
    return sequences, hazards, crossings, described


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sequences, hazards, crossings, data = _load_parts(args.data, args.default_splits, "evaluate")
        if not sequences:
            print("interlock risk-eval: no zone sequences in the parts given", file=sys.stderr)
            return 2
        scores: dict[str, list[np.ndarray]] = {}
        thresholds: dict[str, tuple[RiskThresholds, str]] = {}
        model_info = None
        if not args.baselines_only:
            model, model_info = load_model(args.model)
            started = time.monotonic()
            scores[MODEL] = model_scores(model, sequences, progress=True)
            print(f"model scored {len(sequences)} zones in {time.monotonic() - started:.0f} s", file=sys.stderr)
            thresholds[MODEL] = (model_thresholds(model), "model file")
        scores.update(baseline_scores(sequences))
        calibration: list[DataPart] = []
        if args.calibrate:
            cal_seqs, cal_hz, cal_cr, calibration = _load_parts(args.calibrate, args.default_calibrate_splits,
                                                                "calibrate")
            overlap = {(s.scenario_id, s.zone) for s in cal_seqs} & {(s.scenario_id, s.zone) for s in sequences}
            if overlap:
                print(f"interlock risk-eval: warning: {len(overlap)} calibration zones are also evaluated",
                      file=sys.stderr)
            cal_prep = prepare(cal_seqs, cal_hz, cal_cr)
            cal_scores = baseline_scores(cal_seqs)
            hours = sum(len(s) for s in cal_seqs) / 3600.0
            for name in B.BASELINES:
                found = threshold_search(cal_scores[name], cal_seqs, cal_hz, cal_cr, red=B.FIXED_RED[name],
                                         prepared=cal_prep)
                note = "".join([
                    "; red fixed at the limit" if B.FIXED_RED[name] is not None else
                    "" if found.red_feasible else "; no red met the false RED cap: red 1.0",
                    "" if found.yellow_feasible else "; yellow = red already over a warning cap: caps counted on top"])
                thresholds[name] = (found.thresholds, f"choose_thresholds on {hours:.1f} calibration zone-hours{note}")
        else:
            for name in B.BASELINES:
                thresholds[name] = (B.DEFAULT_THRESHOLDS[name], "training.risk_baselines.DEFAULT_THRESHOLDS")
    except (OSError, ValueError) as error:
        print(f"interlock risk-eval: {error}", file=sys.stderr)
        return 2
    ev = evaluate(sequences, hazards, crossings, scores, thresholds, data=data, model=model_info,
                  calibration=calibration, title=args.title, stamp=args.stamp)
    files = write_report(ev, args.out)
    print(summary_table(ev))
    for c in ev.criteria:
        print(f"{_verdict(c):8} {c.criterion}: {c.value}")
    print(f"report: {files['risk_eval.html']} ({', '.join(sorted(p.name for p in files.values()))})", file=sys.stderr)
    return 0 if ev.passed or args.baselines_only else 1


if __name__ == "__main__":
    sys.exit(main())
