"""Steady telemetry on a small and a large synthetic site: the per-record cost should not depend on the site's size.

    .venv/bin/python -m pytest bench/test_scaling_bench.py --benchmark-enable

Each round processes the next slice of the site's own telemetry (so every round is the same steady work at a
later time) through `Site.process_batch`; the site is loaded once per size, outside the timing.
"""

from __future__ import annotations

import pytest

from bench.scaling import BASE, SiteSize, fitted, health, load_site, plan_site

RECORDS = 20_000
ROUNDS = 5
SIZES = {
    "small": BASE,
    "large": fitted(SiteSize(permits=10_000, workers=0, devices=0)),
}
"""The ends of the permit sweep: 10 permits, and 10,000 with their 30,000 people and 53,333 devices (about 15 s to
build and load)."""


@pytest.fixture(scope="module", params=list(SIZES))
def loaded(request):
    return load_site(SIZES[request.param])


def test_steady_telemetry(benchmark, loaded):
    site, telemetry = loaded.site, loaded.telemetry

    def next_slice():
        return (telemetry.take(RECORDS),), {}

    outputs = benchmark.pedantic(site.process_batch, setup=next_slice, rounds=ROUNDS, iterations=1)
    size = loaded.plan.size
    benchmark.extra_info.update(permits=size.permits, workers=size.workers, devices=size.devices, records=RECORDS)
    if benchmark.stats is not None:
        benchmark.extra_info["us_per_record"] = benchmark.stats.stats.min / RECORDS * 1e6
    said = health(outputs)
    assert said.stops == 0 and not said.critical


def test_the_sizes_are_consistent_sites():
    assert all(plan_site(size).size == size for size in SIZES.values())
