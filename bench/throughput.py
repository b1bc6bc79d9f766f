"""Throughput of the decision path (decoding and decisions, `Site.process_batch`) and of the whole dataflow over a recording.

Both run on the records a replay hands to the dataflow (already read and ordered),
so the figure is what one process decides per second.
"""

from __future__ import annotations

import gc
import time
from typing import Sequence

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from bench.results import Metric, SuiteResult
from bench.workloads import FULL, QUICK, site_records
from dataflows.interlock_flow import build_flow
from dataflows.recording import RecordingSource
from dataflows.risk_model_file import load_risk_model
from interlock.risk_model import RiskModel
from interlock.site import Site
from schemas.envelope import Record, UnreadableRecord


class _Counting(StatelessSinkPartition):
    def __init__(self, counts: list[int]) -> None:
        self.counts = counts

    def write_batch(self, items) -> None:
        for _, outputs in items:
            self.counts[0] += len(outputs)


class CountingSink(DynamicSink):
    """Counts outputs instead of writing them, so the figure is the dataflow's, not the disk's."""

    def __init__(self) -> None:
        self.counts = [0]

    def build(self, step_id, worker_index, worker_count):
        return _Counting(self.counts)


def decision_rate(records: Sequence[Record | UnreadableRecord], repeats: int = 3, risk_model: RiskModel | None = None) -> float:
    """Records per second through `Site.process_batch` (best of `repeats`, a fresh Site each time)."""
    return decision_rates(records, repeats, {"site": risk_model})["site"]


def decision_rates(records: Sequence[Record | UnreadableRecord], rounds: int,
                   models: dict[str, RiskModel | None]) -> dict[str, float]:
    """`decision_rate` of each way of running the Site (a name -> its risk model or None), timed in rounds, one
    run of each per round, best of `rounds`: a slow spell of the machine falls on every way alike."""
    best = dict.fromkeys(models, float("inf"))
    for _ in range(rounds):
        for name, model in models.items():
            site = Site(risk_model=model)
            gc.collect()
            started = time.perf_counter()
            site.process_batch(records)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: len(records) / seconds for name, seconds in best.items()}


def dataflow_rate(records: Sequence[Record | UnreadableRecord], repeats: int = 2, risk_model: RiskModel | None = None) -> float:
    """Records per second through the Bytewax dataflow from a recording source to a counting sink (best of `repeats`)."""
    best = float("inf")
    for _ in range(repeats):
        sink = CountingSink()
        flow = build_flow(RecordingSource(list(records)), sink, risk_model=risk_model)
        gc.collect()
        started = time.perf_counter()
        run_main(flow)
        best = min(best, time.perf_counter() - started)
    return len(records) / best


def measure(quick: bool) -> SuiteResult:
    """The decision path and the dataflow as a site runs them, with the shipped risk model; the decision path
    without it too, for information."""
    records = site_records(*(QUICK if quick else FULL))
    model = load_risk_model()
    rates = decision_rates(records, 5 if quick else 3, {"on": model, "off": None})
    return SuiteResult(
        "throughput",
        [
            Metric("decision_records_per_s", rates["on"], "records/s", "higher"),
            Metric("decision_records_per_s_risk_off", rates["off"], "records/s", "higher"),
            Metric("dataflow_records_per_s", dataflow_rate(records, 2 if quick else 1, model), "records/s", "higher"),
        ],
        notes=[f"{len(records):,} records of {(QUICK if quick else FULL)[0]} site copies; the shipped risk model on "
               f"(decision_records_per_s_risk_off: without it); the decision path best of {5 if quick else 3} rounds, one run "
               f"with the model and one without per round"],
    )
