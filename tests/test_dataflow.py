"""The Bytewax dataflow decides exactly as the Site does, on the record clock for replays and on the wall clock live."""

from __future__ import annotations

import datetime
import pickle
import time

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import TestingSink, TestingSource, run_main

from dataflows.interlock_flow import WALL_CLOCK, SiteLogic, build_flow
from interlock.config import SiteConfig
from interlock.site import Site
from site_records import SECOND, HotWorkSite, hot_work_permit


class CollectingSite:
    """Stands in for a Site while a HotWorkSite script writes records: keeps them instead of deciding."""

    def __init__(self) -> None:
        self.records = []

    def process(self, record):
        self.records.append(record)
        return []


def scripted_records(start: int | None = None, seconds_after_start: int = 20) -> list:
    script = HotWorkSite(site=CollectingSite())
    if start is not None:
        script.now = start
    window = {"valid_from": script.now - 3_600_000, "valid_to": script.now + 3_600_000}
    script.tables(hot_work_permit(**window))
    script.run(6)
    script.activate(**window)
    script.run(seconds_after_start)
    return script.site.records


def test_the_dataflow_gives_the_same_outputs_as_the_site():
    records = scripted_records()
    expected = [o.value for o in Site().process_batch(records)]
    captured = []
    chunks = [records[i:i + 7] for i in range(0, len(records), 7)]
    run_main(build_flow(TestingSource(chunks), TestingSink(captured)))
    assert [o.value for _, outputs in captured for o in outputs] == expected


class _QuietAfter(FixedPartitionedSource):
    """Hands over one chunk, then stays open and silent for `quiet_s` before ending."""

    def __init__(self, chunk, quiet_s: float) -> None:
        self.chunk, self.quiet_s = chunk, quiet_s

    def list_parts(self):
        return ["live"]

    def build_part(self, step_id, for_part, resume_state):
        source = self

        class Partition(StatefulSourcePartition):
            def __init__(self) -> None:
                self.sent_at = None

            def next_batch(self):
                if self.sent_at is None:
                    self.sent_at = time.monotonic()
                    return [source.chunk]
                if time.monotonic() - self.sent_at > source.quiet_s:
                    raise StopIteration()
                return []

            def next_awake(self):
                return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(milliseconds=50)

            def snapshot(self):
                return None

        return Partition()


def test_on_the_wall_clock_a_silent_detector_stops_the_permit_with_no_input_arriving():
    now = time.time_ns() // 1_000_000
    records = scripted_records(start=now - 6 * SECOND, seconds_after_start=0)
    config = SiteConfig(gas_reading_max_age_ms=1_500)
    captured = []
    run_main(build_flow(_QuietAfter(records, quiet_s=2.0), TestingSink(captured), config, clock=WALL_CLOCK))
    commands = [msgspec.json.decode(o.value) for _, outputs in captured for o in outputs if o.topic == "interlock.commands"]
    assert [c["kind"] for c in commands] == ["ENABLE", "HARD_STOP"]
    stop = commands[1]
    assert stop["trigger"] is None and stop["reasons"][0]["code"] == "GAS_DATA_STALE"


def test_a_live_shard_restored_from_a_snapshot_latches_what_it_had_enabled():
    now = time.time_ns() // 1_000_000
    site = Site()
    for record in scripted_records(start=now - 6 * SECOND, seconds_after_start=2):
        site.process(record)
    assert any(runtime.enabled for runtime in site.permits.values())
    logic = SiteLogic(pickle.loads(pickle.dumps(site)), WALL_CLOCK, resumed=True)
    assert logic.notify_at() is not None
    (outputs,), _ = logic.on_notify()
    stops = [msgspec.json.decode(o.value) for o in outputs if o.topic == "interlock.commands"]
    assert [(c["kind"], c["latched"], c["reasons"][0]["code"]) for c in stops] == [("HARD_STOP", True, "INTERLOCK_RESTARTED")]
