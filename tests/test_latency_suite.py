"""bench.latency: the paced source keeps its schedule, and a paced run through the dataflow measures every record.

Speeds are measured in bench/, never asserted here: these runs are slow and
short on purpose, and only check what the measurement rests on.
"""

from __future__ import annotations

import datetime
import time

import pytest

from bench.latency import (
    LoadResult,
    PacedPartition,
    PacedRun,
    Schedule,
    latencies_ns,
    measure_load,
    run_paced,
)
from bench.workloads import QUICK, site_records

RATE = 4_000
RECORDS = 1_200


@pytest.fixture(scope="module")
def records():
    return site_records(*QUICK)[:RECORDS]


@pytest.fixture(scope="module")
def paced_run(records) -> PacedRun:
    return run_paced(records, RATE)


def test_the_schedule_counts_a_record_as_arrived_exactly_from_its_scheduled_time():
    schedule = Schedule(t0_ns=1_000, rate=3)  # arrivals at 1000, 1000 + 333333333, 1000 + 666666666 ns
    for index in range(5):
        due = schedule.scheduled_ns(index)
        assert schedule.arrived_by(due) == index + 1
        assert schedule.arrived_by(due - 1) == index
    assert schedule.arrived_by(0) == 0


def test_a_paced_run_delivers_every_record_once_in_order(paced_run, records):
    assert sum(count for _, count, _ in paced_run.handed) == len(records)
    assert sorted((first, count) for first, count, _ in paced_run.delivered) == [
        (first, count) for first, count, _ in paced_run.handed
    ]
    covered = [first + k for first, count, _ in paced_run.handed for k in range(count)]
    assert covered == list(range(len(records)))


def test_the_paced_source_hands_over_no_record_before_its_scheduled_time(paced_run):
    schedule = paced_run.schedule
    for first, count, handed in paced_run.handed:
        assert schedule.scheduled_ns(first + count - 1) <= handed


def test_each_poll_hands_over_everything_that_has_arrived(paced_run, records):
    schedule = paced_run.schedule
    for first, count, handed in paced_run.handed:
        following = first + count
        if following < len(records) and count < paced_run.chunk_cap:
            assert schedule.scheduled_ns(following) > handed


def test_latencies_are_positive_and_ordered(records):
    result = measure_load(records, RATE, RECORDS / RATE)
    assert result.records == len(records)
    assert 0 < result.p50_ms <= result.p99_ms <= result.p999_ms <= result.max_ms
    assert result.wait_p99_ms >= 0 and result.process_p99_ms > 0


def test_every_record_is_late_by_a_positive_time(paced_run):
    assert (latencies_ns(paced_run) > 0).all()


def test_the_source_asks_to_be_polled_at_the_next_arrival_and_at_once_when_records_wait(records):
    run = PacedRun(records, rate=20)  # arrivals every 50 ms
    partition = PacedPartition(run, 0)
    assert partition.next_awake() is None  # before the first poll: start at once
    assert [len(chunk) for chunk in partition.next_batch()] == [1]  # record 0 arrives at the start
    awake = partition.next_awake()
    assert awake is not None
    assert 0 < (awake - datetime.datetime.now(datetime.timezone.utc)).total_seconds() <= 0.050
    assert list(partition.next_batch()) == []  # record 1 is not due yet
    time.sleep(max(0.0, (run.schedule.t0_ns + 125_000_000 - time.perf_counter_ns()) / 1e9))
    assert partition.next_awake() is None  # records 1 and 2 are waiting
    assert [len(chunk) for chunk in partition.next_batch()] == [2]


def test_an_unpaced_run_hands_over_full_chunks(records):
    run = PacedRun(records, rate=None, chunk_cap=500)
    partition = PacedPartition(run, 0)
    sizes = []
    while True:
        try:
            sizes += [len(chunk) for chunk in partition.next_batch()]
        except StopIteration:
            break
    assert sizes == [500, 500, 200]


def _result(**changes) -> LoadResult:
    figures = dict(
        rate=1_000, records=1_000, scheduled_s=1.0, elapsed_s=1.0, p50_ms=0.1, p99_ms=0.2, p999_ms=0.3, max_ms=0.4,
        steady_p99_ms=0.2, steady_max_ms=0.4, wait_p99_ms=0.1, process_p99_ms=0.1, early_ms=0.1, late_ms=0.1,
        late_chunk=1.0, chunk_cap=1_024, chunks=1_000, commands=0, gc_pauses=0, gc_max_ms=0.0, cpu_s=0.5, involuntary_switches=0,
    )
    return LoadResult(**{**figures, **changes})


def test_a_run_keeps_up_when_it_ends_on_schedule_and_its_lateness_stays_flat():
    assert _result().sustained


def test_a_run_that_ends_more_than_5_percent_late_does_not_keep_up():
    assert _result(elapsed_s=1.04).sustained
    assert not _result(elapsed_s=1.07).sustained


def test_a_run_whose_lateness_grows_does_not_keep_up():
    assert _result(early_ms=1.0, late_ms=5.5).sustained  # within 5 ms (0.5 % of a 1 s schedule)
    assert not _result(early_ms=1.0, late_ms=7.0).sustained
    five_seconds = dict(scheduled_s=5.0, elapsed_s=5.0, early_ms=1.0)  # 25 ms allowed (0.5 % of 5 s)
    assert _result(**five_seconds, late_ms=20.0).sustained
    assert not _result(**five_seconds, late_ms=30.0).sustained


def test_a_run_still_handing_over_full_chunks_at_its_end_does_not_keep_up():
    assert _result(late_chunk=1_000.0).sustained
    assert not _result(late_chunk=1_024.0).sustained
