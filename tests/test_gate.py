"""The release gate fails on what falls short: budgets, ratios to the references, regressions against the last release."""

from __future__ import annotations

import time

from bench import gate
from bench.results import Metric
from interlock.site import Site


def _metrics(**values: float) -> dict[str, Metric]:
    better = {"latency_p99_ms@half_max": "lower"}
    return {name: Metric(name, value, "", better.get(name, "higher")) for name, value in values.items()}


def test_a_throughput_below_its_absolute_budget_fails():
    checks = gate.check_budgets(gate.load_budgets(), _metrics(decision_records_per_s=150_000.0), False, {"throughput"})
    (check,) = [c for c in checks if c.metric == "decision_records_per_s"]
    assert not check.passed


def test_a_latency_above_its_budget_fails_and_one_below_passes():
    budgets = gate.load_budgets()
    slow = gate.check_budgets(budgets, _metrics(**{"latency_p99_ms@half_max": 25.0}), False, {"latency"})
    fast = gate.check_budgets(budgets, _metrics(**{"latency_p99_ms@half_max": 5.0}), False, {"latency"})
    assert not next(c for c in slow if c.metric == "latency_p99_ms@half_max").passed
    assert next(c for c in fast if c.metric == "latency_p99_ms@half_max").passed


def test_the_ratio_to_the_baseline_pipeline_is_derived_from_the_same_run():
    metrics = gate.all_metrics([])
    assert metrics == {}
    derived = {m.name: m.value for m in gate.derived(_metrics(decision_from_lines_records_per_s=300.0,
                                                              baseline_records_per_s=50.0, limit_records_per_s=600.0))}
    assert derived["decision_vs_baseline"] == 6.0 and derived["decision_share_of_limit"] == 0.5


def test_a_metric_its_suite_should_have_produced_is_a_failure():
    checks = gate.check_budgets(gate.load_budgets(), {}, False, {"throughput"})
    assert not next(c for c in checks if c.metric == "decision_records_per_s").passed
    assert next(c for c in checks if c.metric == "latency_p99_ms@half_max").passed


def test_a_regression_of_more_than_10_percent_against_the_last_release_fails():
    budgets = gate.load_budgets()
    baseline = {"decision_share_of_limit": 0.30}
    worse = gate.check_regressions(budgets, _metrics(decision_share_of_limit=0.26), baseline)
    within = gate.check_regressions(budgets, _metrics(decision_share_of_limit=0.28), baseline)
    assert not worse[0].passed and within[0].passed


def test_the_gate_fails_when_a_deliberate_slowdown_is_injected(monkeypatch, tmp_path, capsys):
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nmetric = "decision_records_per_s"\nkind = "absolute"\nmin = 40000\nwhy = "test"\n'
                       "[regression]\ntolerance = 0.10\nmetrics = []\n")
    args = ["--quick", "--suites", "throughput", "--budgets", str(budgets), "--report", str(tmp_path)]
    assert gate.main(args) == 0, "the unslowed decision path should pass 40,000 records/s"
    process_batch = Site.process_batch

    def slowed(self, records):
        out = []
        for record in records:
            deadline = time.perf_counter_ns() + 30_000
            while time.perf_counter_ns() < deadline:
                pass
            out += process_batch(self, (record,))
        return out

    monkeypatch.setattr(Site, "process_batch", slowed)
    assert gate.main(args) == 1
    printed = capsys.readouterr().out
    assert "GATE FAILED" in printed and "decision_records_per_s" in printed
    assert (tmp_path / "report.md").exists() and (tmp_path / "ours.png").exists()
