"""The release gate: runs the benchmark suites, checks them against bench/budgets.toml and the last release's baseline,
prints a table, writes a Markdown report with plots, and exits non-zero when anything falls short.

    python -m bench.gate [--quick] [--suites throughput,decoding,...] [--report DIR] [--save-baseline]
    interlock bench-gate ...   (the same)

Quick mode (what CI runs on every change) measures small workloads; the full mode measures
about a million records and the complete scaling curves.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Callable, Literal

import msgspec

from bench.results import Metric, SuiteResult

HERE = Path(__file__).resolve().parent
BUDGETS = HERE / "budgets.toml"
BASELINES = HERE / "baselines"

SUITES: dict[str, str] = {
    "throughput": "bench.throughput",
    "decoding": "bench.decoding_suite",
    "core_steps": "bench.core_steps",
    "latency": "bench.latency",
    "scaling": "bench.scaling",
    "risk_serving": "bench.risk_serving",
}
"""Suite name -> module with `measure(quick: bool) -> SuiteResult`, in running order."""


class Budget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    metric: str
    kind: Literal["absolute", "ratio", "flatness"]
    why: str
    min: float | None = None
    max: float | None = None
    quick_min: float | None = None
    quick_max: float | None = None


class Regression(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tolerance: float
    metrics: list[str]


class Budgets(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    budget: list[Budget]
    regression: Regression


class Check(msgspec.Struct, frozen=True):
    """One line of the gate's table."""

    kind: str
    metric: str
    value: float | None
    limit: str
    passed: bool
    note: str = ""


def load_budgets(path: Path = BUDGETS) -> Budgets:
    return msgspec.toml.decode(path.read_bytes(), type=Budgets)


def run_suites(names: list[str], quick: bool, progress: Callable[[str], None] = lambda _: None) -> list[SuiteResult]:
    results = []
    for name in names:
        module = importlib.import_module(SUITES[name])
        progress(f"running {name} ...")
        started = time.perf_counter()
        result = module.measure(quick)
        progress(f"  {name}: {time.perf_counter() - started:.1f} s")
        results.append(result)
    return results


def derived(metrics: dict[str, Metric]) -> list[Metric]:
    """Ratios computed from figures of the same run: ours against the baseline pipeline and this machine's limit."""
    out = []

    def ratio(name: str, top: str, bottom: str) -> None:
        if top in metrics and bottom in metrics and metrics[bottom].value > 0:
            out.append(Metric(name, metrics[top].value / metrics[bottom].value, "x", "higher"))

    ratio("decision_vs_baseline", "decision_from_lines_records_per_s", "baseline_records_per_s")
    ratio("decision_vs_grid_baseline", "decision_from_lines_records_per_s", "baseline_grid_records_per_s")
    ratio("decision_share_of_limit", "decision_from_lines_records_per_s", "limit_records_per_s")
    ratio("dataflow_share_of_decision", "dataflow_records_per_s", "decision_records_per_s")
    return out


def all_metrics(results: list[SuiteResult]) -> dict[str, Metric]:
    metrics = {m.name: m for result in results for m in result.metrics}
    for metric in derived(metrics):
        metrics[metric.name] = metric
    return metrics


def check_budgets(budgets: Budgets, metrics: dict[str, Metric], quick: bool, measured_suites: set[str]) -> list[Check]:
    checks = []
    for budget in budgets.budget:
        low = budget.quick_min if quick and budget.quick_min is not None else budget.min
        high = budget.quick_max if quick and budget.quick_max is not None else budget.max
        limit = " and ".join(part for part in (f">= {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else "") if part)
        metric = metrics.get(budget.metric)
        if metric is None:
            expected = _producible(budget.metric, measured_suites)
            checks.append(Check(budget.kind, budget.metric, None, limit, not expected,
                                "missing from its suite" if expected else "not measured in this run"))
            continue
        passed = (low is None or metric.value >= low) and (high is None or metric.value <= high)
        checks.append(Check(budget.kind, budget.metric, metric.value, limit, passed, budget.why))
    return checks


_PRODUCERS = {
    "decision_records_per_s": {"throughput"},
    "dataflow_records_per_s": {"throughput"},
    "decision_vs_baseline": {"decoding"},
    "decision_vs_grid_baseline": {"decoding"},
    "decision_share_of_limit": {"decoding"},
    "dataflow_share_of_decision": {"throughput"},
    "step_us": {"risk_serving"},
    "step_batch_us@256": {"risk_serving"},
}


def _producible(metric: str, measured: set[str]) -> bool:
    """Whether the suites of this run should have produced `metric` (a run of fewer suites skips the rest)."""
    if metric.startswith("latency_"):
        return "latency" in measured
    if metric.startswith("scaling."):
        return "scaling" in measured
    needed = _PRODUCERS.get(metric)
    return needed is None or needed <= measured


def baseline_path(quick: bool) -> Path:
    return BASELINES / ("quick.json" if quick else "full.json")


def load_baseline(quick: bool) -> dict[str, float]:
    path = baseline_path(quick)
    if not path.exists():
        return {}
    return msgspec.json.decode(path.read_bytes(), type=dict[str, float])


def save_baseline(metrics: dict[str, Metric], quick: bool) -> Path:
    path = baseline_path(quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode({k: m.value for k, m in sorted(metrics.items())})) + b"\n")
    return path


def check_regressions(budgets: Budgets, metrics: dict[str, Metric], baseline: dict[str, float]) -> list[Check]:
    tolerance = budgets.regression.tolerance
    checks = []
    for name in budgets.regression.metrics:
        metric = metrics.get(name)
        before = baseline.get(name)
        if metric is None or before is None:
            continue
        if metric.better == "higher":
            floor = before * (1 - tolerance)
            checks.append(Check("regression", name, metric.value, f">= {floor:.3g} (last release {before:.3g} - {tolerance:.0%})",
                                metric.value >= floor))
        else:
            ceiling = before * (1 + tolerance)
            checks.append(Check("regression", name, metric.value, f"<= {ceiling:.3g} (last release {before:.3g} + {tolerance:.0%})",
                                metric.value <= ceiling))
    return checks


def format_table(checks: list[Check]) -> str:
    rows = [("check", "metric", "value", "budget", "result")]
    for c in checks:
        value = "-" if c.value is None else f"{c.value:,.3g}" if abs(c.value) < 1000 else f"{c.value:,.0f}"
        rows.append((c.kind, c.metric, value, c.limit, ("PASS" if c.passed else "FAIL") + (f" ({c.note})" if c.note and c.value is None else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-gate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small workloads, for every change (CI)")
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated, from {', '.join(SUITES)}")
    parser.add_argument("--report", default="runs/bench", help="folder for report.md, results.json and plots")
    parser.add_argument("--save-baseline", action="store_true", help="store this run as the last release's baseline")
    parser.add_argument("--budgets", default=str(BUDGETS), help="budgets file")
    parser.add_argument("--advisory", action="store_true",
                        help="report only: print and write everything, but exit 0 (a failing gate says ADVISORY)")
    args = parser.parse_args(argv)
    if args.advisory:
        try:
            status = _run(parser, args)
        except Exception:
            import traceback

            traceback.print_exc()
            print("ADVISORY: the gate could not run (see above); not blocking")
            return 0
        if status:
            print("ADVISORY: the gate would fail; not blocking")
        return 0
    return _run(parser, args)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    names = [name.strip() for name in args.suites.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    budgets = load_budgets(Path(args.budgets))
    started = time.perf_counter()
    results = run_suites(names, args.quick, progress=lambda text: print(text, file=sys.stderr))
    metrics = all_metrics(results)
    baseline = load_baseline(args.quick)
    checks = check_budgets(budgets, metrics, args.quick, set(names)) + check_regressions(budgets, metrics, baseline)
    table = format_table(checks)
    mode = "quick" if args.quick else "full"
    print(f"release gate ({mode}, {time.perf_counter() - started:.0f} s)")
    print(table)
    from bench.report import write_report

    report = write_report(Path(args.report), results, metrics, checks, mode, baseline)
    failed = [c for c in checks if not c.passed]
    print(f"report: {report}")
    if args.save_baseline:
        print(f"baseline stored: {save_baseline(metrics, args.quick)}")
    if failed:
        print(f"GATE FAILED: {len(failed)} of {len(checks)} checks ({', '.join(c.metric for c in failed)})")
        return 1
    print(f"GATE PASSED: {len(checks)} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
