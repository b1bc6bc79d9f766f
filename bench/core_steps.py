"""The core's unit steps: one precondition evaluation of an enabled permit, and one zone-second of telemetry decided."""

from __future__ import annotations

import pickle
import time

from bench.results import Metric, SuiteResult
from bench.workloads import QUICK, site_records
from interlock.site import Site

WARMUP_SHARE = 0.8
STEP_SECONDS = 10


def _warm_site(records) -> tuple[Site, list]:
    """A Site that has decided the first part of the workload, and the records of the next seconds."""
    cut = int(len(records) * WARMUP_SHARE)
    site = Site()
    site.process_batch(records[:cut])
    end = records[cut].ts + STEP_SECONDS * 1000
    rest = [r for r in records[cut:] if r.ts < end]
    return site, rest


def precondition_us(site: Site, loops: int = 2000) -> float:
    """Microseconds for one full precondition evaluation of an enabled permit (no decision emitted)."""
    permit = next(rt for rt in site.permits.values() if rt.enabled)
    now = site.now
    started = time.perf_counter_ns()
    for _ in range(loops):
        site._preconditions(permit, now, None)
    return (time.perf_counter_ns() - started) / loops / 1000


def zone_second_us(site: Site, rest: list, repeats: int = 5) -> float:
    """Microseconds to decide one zone's telemetry for one second (the step a cluster worker repeats per zone)."""
    zones = len(site.zones)
    frozen = pickle.dumps(site)
    best = float("inf")
    for _ in range(repeats):
        copy = pickle.loads(frozen)
        started = time.perf_counter_ns()
        copy.process_batch(rest)
        best = min(best, time.perf_counter_ns() - started)
    return best / 1000 / (zones * STEP_SECONDS)


def measure(quick: bool) -> SuiteResult:
    site, rest = _warm_site(site_records(*QUICK))
    return SuiteResult(
        "core_steps",
        [
            Metric("precondition_eval_us", precondition_us(site, 1000 if quick else 5000), "us", "lower"),
            Metric("zone_second_us", zone_second_us(site, rest, 3 if quick else 7), "us", "lower"),
        ],
        notes=[f"{len(site.permits)} permits in {len(site.zones)} zones; step over {len(rest)} records"],
    )
