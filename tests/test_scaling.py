"""bench.scaling: the synthetic site comes up healthy and stays so under the steady workload; a sweep point measures.

Small sites only (a few hundred records); speed itself is measured by the suite, never asserted here.
"""

from __future__ import annotations

import pickle
import tracemalloc

import time

import pytest

from bench.scaling import (
    BASE,
    CREW,
    WORK_TYPES,
    BudgetedLoader,
    LoadBudgetExceeded,
    RecordStream,
    PointResult,
    SiteSize,
    SteadyCost,
    Health,
    fitted,
    health,
    load_site,
    REPEATS,
    measure_point,
    permit_devices,
    plan_site,
    site_memory,
    steady_cost,
    steady_costs,
    suite_result,
    sweep_sizes,
    table_records,
)
from interlock.site import Site

SMALL = SiteSize(permits=6, workers=30, devices=60)
"""Two permits of each work type, 12 bystanders, idle devices."""


@pytest.fixture(scope="module")
def loaded():
    return load_site(SMALL)


def test_a_site_is_made_consistent_and_the_plan_has_exactly_its_size():
    assert fitted(SiteSize(100, 10, 10)) == SiteSize(100, 300, 300 + permit_devices(100))
    assert fitted(SMALL) == SMALL
    plan = plan_site(SMALL)
    assert len(plan.permits) == len(plan.zones) == SMALL.permits
    assert len(plan.people) == SMALL.workers
    assert len(plan.devices) == SMALL.devices == len({d["device"] for d in plan.devices})
    assert {p["type"] for p in plan.permits} == set(WORK_TYPES)
    assert all(len(p["workers"]) + 1 == CREW for p in plan.permits)


def test_every_sweep_keeps_its_sites_consistent_and_starts_from_the_base():
    for dimension in ("permits", "workers", "devices"):
        sizes = sweep_sizes(dimension, quick=False)
        assert all(fitted(size) == size for size in sizes)
        assert [size.count(dimension) for size in sizes] == sorted(size.count(dimension) for size in sizes)
    assert sweep_sizes("permits", quick=True)[0] == BASE
    assert sweep_sizes("permits", quick=False)[-1].workers == 3 * 10_000


def test_the_synthetic_site_enables_every_permit_exactly_once_without_a_critical_fault(loaded):
    assert loaded.health.enables == {p["permit"]: 1 for p in loaded.plan.permits}
    assert loaded.health.stops == 0
    assert loaded.health.critical == []


def test_the_steady_workload_keeps_every_permit_enabled(loaded):
    before = loaded.clock
    cost = steady_cost(loaded, records=1_500, repeats=2)
    assert (loaded.clock - before) / 1000 > 35, "the workload should outlast the guardian, PLC and gas deadlines"
    assert cost.health == Health({}, 0, [])


def test_the_sites_of_a_sweep_are_timed_in_rounds_each_continuing_its_own_telemetry():
    small, large = load_site(SiteSize(permits=3, workers=9, devices=40)), load_site(SiteSize(permits=3, workers=9, devices=80))
    clocks = (small.clock, large.clock)
    costs = steady_costs([small, large], records=300, repeats=2)
    assert [len(c.repeats_us) for c in costs] == [2, 2]
    assert small.clock > clocks[0] and large.clock > clocks[1]
    assert all(c.health == Health({}, 0, []) for c in costs)


def test_devices_no_permit_needs_report_in_turn_at_the_sweeps_rate():
    site = load_site(SiteSize(permits=3, workers=9, devices=40), rotation=4)
    others = {r.key for r in site.plan.other_reporters}
    per_second = site.telemetry.next_second()
    assert len([r for r in per_second if r.key in others]) == 4
    later = site.telemetry.seconds(len(others))
    assert {r.key for r in later if r.key in others} == others


def test_a_sweep_point_returns_positive_cost_and_memory():
    point = measure_point("devices", SiteSize(permits=3, workers=9, devices=40), records=800)
    assert point.problems == []
    assert point.cost.us_per_record > 0 and len(point.cost.repeats_us) == REPEATS
    assert point.memory_bytes > 0 and point.load_s > 0
    assert set(point.table_row_us) == {"cmdb.devices", "gis.zones", "hr.qualifications", "ptw.permits"}
    assert all(us > 0 for us in point.table_row_us.values())


def test_the_memory_of_a_restored_snapshot_is_the_memory_of_the_loading():
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        site = load_site(SMALL).site
        traced = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert site_memory(site) == pytest.approx(traced, rel=0.1)
    assert isinstance(pickle.loads(pickle.dumps(site)), Site)


def test_a_site_that_cannot_be_loaded_in_time_is_reported_not_measured():
    with pytest.raises(LoadBudgetExceeded, match="not loaded within"):
        load_site(SiteSize(permits=30, workers=90, devices=400), budget_s=1e-6)
    point = measure_point("permits", SiteSize(permits=30, workers=90, devices=400), records=100, budget_s=1e-6)
    assert not point.measured and "not loaded within" in point.problems[0]


def _point(dimension: str, count: int, us: float | None, memory: int = 0) -> PointResult:
    size = fitted(SiteSize(**{**BASE.__dict__, dimension: count}))
    if us is None:
        return PointResult(dimension, size, problems=["not loaded"])
    cost = SteadyCost(us, [us], 1.0, Health({}, 0, []))
    return PointResult(dimension, size, 0.1, {}, memory, cost, {"ptw.permits": 10.0 * count})


def test_the_ratio_is_max_over_min_and_an_incomplete_sweep_reports_no_ratio():
    points = [_point("devices", 100, 4.0, 100_000), _point("devices", 1_000, 5.0, 700_000)]
    points += [_point("workers", 100, 4.0, 200_000), _point("workers", 1_000, None)]
    result = suite_result(points, quick=True, run_s=1.0, budget_s=10.0)
    assert result.metric("scaling.devices.cost_ratio").value == pytest.approx(1.25)
    assert result.metric("scaling.devices.cost_us_at_max").value == 5.0
    assert result.metric("memory_bytes_per_device").value == pytest.approx(600_000 / 900)
    names = {m.name for m in result.metrics}
    assert "scaling.workers.cost_ratio" not in names and "memory_bytes_per_worker" not in names
    assert any("workers sweep incomplete" in note for note in result.notes)
    assert {s.name for s in result.series if s.log_x} >= {"steady telemetry vs devices"}


def test_a_silence_is_seen_as_stops_and_critical_faults():
    """The health checks above can fail: when telemetry stops for 40 s, every permit is stopped on CRITICAL faults."""
    site = load_site(SMALL)
    site.telemetry.seconds(40)  # never sent
    said = health(site.site.process_batch(site.telemetry.seconds(1)))
    assert said.stops >= SMALL.permits
    assert said.critical and said.enables == {}


class PausingSite(Site):
    """A Site whose batches at the given call numbers take 50 ms more, as a garbage collection's pause would."""

    def __init__(self, pauses: set[int]) -> None:
        super().__init__()
        self.pauses = pauses
        self.calls = 0

    def process_batch(self, records):
        self.calls += 1
        if self.calls in self.pauses:
            time.sleep(0.05)
        return super().process_batch(records)


MANY_ROWS = SiteSize(permits=3, workers=2000, devices=2000)


def test_one_slow_chunk_does_not_stop_the_loading():
    records = table_records(plan_site(fitted(MANY_ROWS)), RecordStream())
    loader = BudgetedLoader(PausingSite({2}), len(records), budget_s=0.5)
    loader.feed(records)
    assert loader.done == len(records)


def test_loading_stops_when_chunk_after_chunk_overruns_the_budget():
    records = table_records(plan_site(fitted(MANY_ROWS)), RecordStream())
    loader = BudgetedLoader(PausingSite(set(range(1, 1000))), len(records), budget_s=0.5)
    with pytest.raises(LoadBudgetExceeded):
        loader.feed(records)
