"""The interlock core next to its two references on the quick workload, with pytest-benchmark.

    .venv/bin/python -m pytest bench -q --benchmark-enable -p no:cacheprovider

- reference pipeline (json + pydantic, one record at a time) over the recording lines;
- machine limit (typed msgspec decoding only) over the same lines;
- `Site().process_batch` over the same recording read and ordered as a replay reads it.

Each round gets fresh state. `extra_info` carries the records per second of the mean round.
"""

from __future__ import annotations

import pytest

from bench.baseline_pipeline import run_baseline
from bench.machine_limit import decode_lines
from bench.workloads import QUICK, recording_lines, site_records
from interlock.site import COMMANDS_TOPIC, Site


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return recording_lines(*QUICK)


@pytest.fixture(scope="module")
def records():
    return site_records(*QUICK)


def note_rate(benchmark, records: int) -> None:
    """Records per second of the mean round, for the benchmark table's extra info."""
    benchmark.extra_info["records"] = records
    if benchmark.stats is not None:
        benchmark.extra_info["records_per_s"] = round(records / benchmark.stats.stats.mean)


def test_reference_pipeline(benchmark, lines):
    benchmark.group = "quick workload"
    commands = benchmark.pedantic(run_baseline, args=(lines,), rounds=3, warmup_rounds=1)
    note_rate(benchmark, len(lines))
    assert [c["kind"] for c in commands].count("ENABLE") == 3 * QUICK[0]


def test_machine_limit(benchmark, lines):
    benchmark.group = "quick workload"
    decoded = benchmark.pedantic(decode_lines, args=(lines,), rounds=10, warmup_rounds=1)
    note_rate(benchmark, len(lines))
    assert decoded == len(lines)


def test_interlock_site(benchmark, records):
    benchmark.group = "quick workload"

    def fresh_site():
        return (Site(), records), {}

    outputs = benchmark.pedantic(lambda site, batch: site.process_batch(batch), setup=fresh_site, rounds=5,
                                 warmup_rounds=1)
    note_rate(benchmark, len(records))
    assert sum(1 for o in outputs if o.topic == COMMANDS_TOPIC) == 3 * QUICK[0]
