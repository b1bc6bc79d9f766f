"""Throughput of the decision path (decoding and decisions, `Site.process_batch`) and of the whole dataflow over a recording.

Both run on the records a replay hands to the dataflow (already read and ordered),
so the figure is what one process decides per second.
"""

from __future__ import annotations

import gc
import time
from functools import partial
from typing import Callable, Sequence

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


def best_in_rounds(ways: dict[str, Callable[[], Callable[[], object]]], rounds: int) -> dict[str, float]:
    """Best seconds of each way of running, timed in rounds (one run of each way per round), so a slow spell of the
    machine falls on every way alike. A way prepares a fresh run, untimed, and returns it."""
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(rounds):
        for name, prepare in ways.items():
            run = prepare()
            gc.collect()
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def decision_way(records: Sequence[Record | UnreadableRecord], risk_model: RiskModel | None) -> Callable[[], Callable[[], object]]:
    """`Site.process_batch` of the records on a fresh Site."""
    return lambda: partial(Site(risk_model=risk_model).process_batch, records)


def dataflow_way(records: Sequence[Record | UnreadableRecord], risk_model: RiskModel | None) -> Callable[[], Callable[[], object]]:
    """The Bytewax dataflow from a recording source to a counting sink."""
    return lambda: partial(run_main, build_flow(RecordingSource(list(records)), CountingSink(), risk_model=risk_model))


def measure(quick: bool) -> SuiteResult:
    """The decision path and the dataflow as a site runs them, with the shipped risk model; the decision path
    without it too, for information."""
    records = site_records(*(QUICK if quick else FULL))
    model = load_risk_model()
    rounds = 5 if quick else 3
    best = best_in_rounds({"on": decision_way(records, model), "off": decision_way(records, None),
                           "dataflow": dataflow_way(records, model)}, rounds)
    return SuiteResult(
        "throughput",
        [
            Metric("decision_records_per_s", len(records) / best["on"], "records/s", "higher"),
            Metric("decision_records_per_s_risk_off", len(records) / best["off"], "records/s", "higher"),
            Metric("dataflow_records_per_s", len(records) / best["dataflow"], "records/s", "higher"),
        ],
        notes=[f"{len(records):,} records of {(QUICK if quick else FULL)[0]} site copies; the shipped risk model on "
               f"(decision_records_per_s_risk_off: without it); best of {rounds} rounds, each one run of the decision path "
               f"with the model, one without and one of the dataflow"],
    )
