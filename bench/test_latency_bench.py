"""Decision latency under offered load, for interactive use: prints every run and the suite's metrics.

    .venv/bin/python -m pytest bench/test_latency_bench.py --benchmark-enable -s
    LATENCY_FULL=1 .venv/bin/python -m pytest bench/test_latency_bench.py --benchmark-enable -s   # full mode, ~1-2 min

One round (the suite paces its own runs; repeating it would only repeat the
search). pytest-benchmark times the whole suite; the figures that matter are
the printed percentiles per offered load.
"""

from __future__ import annotations

import os

from bench.latency import FIXED_LOADS, TARGET_P99_MS, measure

LOAD_LABELS = (*FIXED_LOADS, "half_max", "max")


def _print_table(result) -> None:
    print(f"\n{'load':<9} {'p50':>8} {'p99':>8} {'p99.9':>8} {'max':>8}  (ms)")
    for label in LOAD_LABELS:
        figures = [result.metric(f"latency_{name}_ms@{label}").value for name in ("p50", "p99", "p999", "max")]
        print(f"{label:<9} " + " ".join(f"{value:8.2f}" for value in figures))
    print(f"maximum sustained rate {result.metric('max_sustained_records_per_s').value:,.0f} records/s, "
          f"unpaced {result.metric('unpaced_records_per_s').value:,.0f} records/s")
    for note in result.notes:
        print("note:", note)


def test_decision_latency_under_offered_load(benchmark):
    quick = os.environ.get("LATENCY_FULL", "") in ("", "0")
    result = benchmark.pedantic(measure, kwargs={"quick": quick, "log": print}, rounds=1, iterations=1)
    _print_table(result)
    benchmark.extra_info.update({m.name: m.value for m in result.metrics})
    assert result.suite == "latency"
    for label in LOAD_LABELS:
        p50, p99, p999, top = (result.metric(f"latency_{name}_ms@{label}").value for name in ("p50", "p99", "p999", "max"))
        assert 0 < p50 <= p99 <= p999 <= top
    assert result.metric("max_sustained_records_per_s").value > 0
    half_max_p99 = result.metric("latency_p99_ms@half_max").value
    print(f"target p99 < {TARGET_P99_MS:g} ms at half max: {half_max_p99:.2f} ms")
