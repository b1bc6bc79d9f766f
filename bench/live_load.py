"""The site of the live latency bench and its background load: a synthetic site on the wall clock, its table rows,
and producer processes that publish its healthy telemetry to Kafka at an offered rate.

Site. `bench.scaling` builds it: P permits (hot work, confined space and work at height in turn) with their crews and
kit, bystanders wearing UWB tags in the yard, and idle devices (detectors and tags, alternately). `size_for_rate`
picks the bystanders and the idle devices so that one report from every device (PLC state from every fifth PLC) is
about `rate` records, half of them from bystanders' tags and half from idle devices: each device then reports about
once a second, as protocols §1-§4 say, at any offered rate, and a faster load is a larger site, not chattier devices.
The table rows are built at the scaling module's T0 and moved to now the way `interlock simulate` moves a recording
(`simulators.live_replay.rebase_payload`), so permits are valid and certificates current on the day of the run.

Load. Each producer process takes every n-th device and publishes their reports in turn, in phase order, at its share
of the offered rate; record j of a process is due at start + j / share. Every payload carries the wall clock of the
moment it is built (less 20 ms of device-to-gateway delay, as the scaling workload has it) and the Kafka timestamp is
the produce time, so device clocks agree with record times; each device's sequence numbers count up from 0 in the one
process that owns it. The detectors the probes drive are left out: the probe driver sends their readings.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Callable

import msgspec
from confluent_kafka import Producer

from bench.scaling import (
    CREW,
    T0,
    RecordStream,
    Reporter,
    SitePlan,
    SiteSize,
    activation_records,
    fitted,
    permit_devices,
    plan_site,
    table_records,
)
from dataflows.kafka_io import LIBRDKAFKA_LOG
from simulators.live_replay import TimeShift, rebase_payload, time_shift

PLC_PERIOD_CYCLES = 5
"""PLC gateways report every 5 s (§4): a PLC reports in every fifth cycle."""

DEVICE_DELAY_MS = 20
"""A reading's device time is this much before it reaches the producer (the scaling workload's figure)."""

BYSTANDER_RECORDS = 2 / 3
"""Records per bystander per cycle: tags alternate between Anchorline (one record) and Qubit (three tags a record)."""

IDLE_DEVICE_RECORDS = (1 + BYSTANDER_RECORDS) / 2
"""Records per idle device per cycle: idle detectors (one record) alternate with idle tags."""

MAX_BATCH = 2_000
"""A producer that fell behind catches up at most this many records between polls of its delivery queue."""

BUMP_AGE_MS = 3_600_000
"""GD-4 3.x detectors report their last bump test an hour before the run (the vendor's limit is 24 h)."""


# ---------------------------------------------------------------------------------------------- the site


def size_for_rate(rate: int, permits: int) -> SiteSize:
    """The site whose devices, each reporting once a cycle, send about `rate` records a cycle."""
    crew_site = plan_site(SiteSize(permits, 0, 0))
    own = cycle_records(crew_site.permit_reporters)
    others = max(0.0, rate - own)
    bystanders = round(others / 2 / BYSTANDER_RECORDS)
    idle = round(others / 2 / IDLE_DEVICE_RECORDS)
    workers = CREW * permits + bystanders
    return fitted(SiteSize(permits, workers, workers + permit_devices(permits) + idle))


def cycle_records(reporters: list[Reporter]) -> float:
    """Records one cycle of these reporters sends on average (PLCs count a fifth)."""
    return sum(1.0 if r.period_s == 1 else 1.0 / r.period_s for r in reporters)


@dataclass
class LiveSite:
    """The synthetic site of one run: its plan, how far its rows move to reach the run's start, its 3.x bump time."""

    plan: SitePlan
    shift: TimeShift
    bump_ms: int

    @property
    def size(self) -> SiteSize:
        return self.plan.size

    def plc_rows(self) -> list[dict]:
        return [row for row in self.plan.devices if row["family"] == "plc"]

    def point_plcs_at(self, ports: dict[str, int]) -> None:
        """Rewrite the PLC rows' Modbus ports to where the simulator serves each PLC."""
        for row in self.plc_rows():
            row["modbus"]["port"] = ports[row["device"]]

    def table_rows(self) -> list[tuple[str, str, bytes]]:
        """(topic, key, payload) of every CMDB, GIS, HR and approved-permit row, times moved to the run."""
        return [(r.topic, r.key, self._moved(r.topic, r.payload)) for r in table_records(self.plan, RecordStream())]

    def activation_rows(self) -> list[tuple[str, str, bytes]]:
        """(topic, key, payload) of each permit's next revision, active: the crews ask to start."""
        records = activation_records(self.plan.permits, RecordStream(), T0)
        return [(r.topic, r.key, self._moved(r.topic, r.payload)) for r in records]

    def _moved(self, topic: str, payload: str) -> bytes:
        return rebase_payload(topic, payload.encode(), self.shift)


def live_site(size: SiteSize, start_ms: int) -> LiveSite:
    """The site of `size` with its rows moved so that its T0 is `start_ms`, and its detectors on the wall clock."""
    plan = plan_site(size)
    bump_ms = start_ms - BUMP_AGE_MS
    wall_clock_detectors(plan, bump_ms)
    return LiveSite(plan, time_shift(T0, start_ms), bump_ms)


def wall_clock_detectors(plan: SitePlan, bump_ms: int) -> None:
    """GD-4 3.x payloads with a bump test at `bump_ms` (the scaling workload dates it from its own T0)."""
    firmware = {row["device"]: row["firmware"] for row in plan.devices if row["family"] == "gas"}
    for reporter in plan.permit_reporters + plan.other_reporters:
        if reporter.topic == "gas.readings" and firmware[reporter.key].startswith("3."):
            reporter.payload = gd4_payload(reporter.key, firmware[reporter.key], bump_ms)


def gd4_payload(device: str, firmware: str, bump_ms: int, lel: float = 0.0) -> Callable[[int, int], str]:
    """A GD-4 reading in its firmware's shape (§2) with LEL `lel`; at or above 10 %LEL a 2.x detector sets its LEL
    alarm bit."""
    if firmware.startswith("3."):
        return lambda ts, n: (f'{{"dev":"{device}","fw":"{firmware}","ts":{ts},"seq":{n % 65536},'
                              f'"r":{{"o2":20.9,"lel":{lel:g},"h2s":0.0,"co":1.0}},"st":"ok","bump":{bump_ms}}}')
    alarm = 4 if lel >= 10 else 0
    return lambda ts, n: (f'{{"dev":"{device}","fw":"{firmware}","ts":{ts},"seq":{n % 65536},'
                          f'"r":[20.9,{lel:g},0.0,1.0],"alm":{alarm}}}')


def topic_mix(plan: SitePlan, excluded: frozenset[str] = frozenset()) -> dict[str, float]:
    """Records per cycle of the load, by topic."""
    mix: dict[str, float] = {}
    for reporter in plan.permit_reporters + plan.other_reporters:
        if reporter.key not in excluded:
            mix[reporter.topic] = mix.get(reporter.topic, 0.0) + 1.0 / reporter.period_s
    return mix


# ---------------------------------------------------------------------------------------------- one producer


class LoadShare(msgspec.Struct, frozen=True):
    """What one producer process publishes: its devices (every `count`-th from `index`) and its share of the rate."""

    bootstrap: str
    permits: int
    workers: int
    devices: int
    start_ms: int
    """The wall time the site's rows were moved to (fixes the 3.x bump time)."""
    index: int
    count: int
    rate: float
    excluded: list[str]
    cpus: list[int] | None = None
    linger_ms: int = 5


class LoadStats(msgspec.Struct):
    """What one producer process did: records produced, over how long, how far behind its schedule it fell at worst,
    and what it could not deliver."""

    index: int
    produced: int
    seconds: float
    max_behind_ms: float
    undelivered: int
    failures: list[str]
    by_topic: dict[str, int]
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.produced / self.seconds if self.seconds > 0 else 0.0


def share_cycles(share: LoadShare) -> list[Reporter]:
    """The producer's reports over PLC_PERIOD_CYCLES cycles, each cycle in phase order: the sequence it repeats."""
    site = live_site(SiteSize(share.permits, share.workers, share.devices), share.start_ms)
    excluded = set(share.excluded)
    mine = [r for n, r in enumerate(site.plan.permit_reporters + site.plan.other_reporters)
            if n % share.count == share.index and r.key not in excluded]
    sequence = []
    for cycle in range(PLC_PERIOD_CYCLES):
        due = [r for r in mine if r.period_s == 1 or (cycle + r.offset_s) % r.period_s == 0]
        due.sort(key=lambda r: r.phase_ms)
        sequence += due
    return sequence


class _Control:
    """The shared values and events between the bench and its producer processes."""

    def __init__(self, context: multiprocessing.context.BaseContext, producers: int) -> None:
        self.produced = [context.Value("q", 0, lock=False) for _ in range(producers)]
        self.ready = [context.Event() for _ in range(producers)]
        self.start_at = context.Value("d", 0.0, lock=False)
        self.go = context.Event()
        self.stop = context.Event()


def run_share(share_json: bytes, produced, ready, start_at, go, stop, results) -> None:
    """A producer process: build its sequence, say it is ready, wait for the start time, produce until told to stop."""
    share = msgspec.json.decode(share_json, type=LoadShare)
    if share.cpus:
        os.sched_setaffinity(0, share.cpus)
    sequence = share_cycles(share)
    failures: list[str] = []

    def delivered(error, message) -> None:
        if error is not None and len(failures) < 10:
            failures.append(f"{message.topic()} key {message.key()!r}: {error.str()}")

    producer = Producer({
        "bootstrap.servers": share.bootstrap,
        "linger.ms": share.linger_ms,
        "queue.buffering.max.messages": 1_000_000,
        "delivery.report.only.error": True,
        "on_delivery": delivered,
        "client.id": f"live-latency-load-{share.index}",
        "logger": LIBRDKAFKA_LOG,
    })
    ready.set()
    go.wait()
    stats = produce_paced(producer, sequence, share.rate, start_at.value, produced, stop)
    stats.index = share.index
    stats.undelivered = producer.flush(30)
    stats.failures = failures
    results.send_bytes(msgspec.json.encode(stats))
    results.close()


def produce_paced(producer: Producer, sequence: list[Reporter], rate: float, start_wall_s: float, produced,
                  stop) -> LoadStats:
    """Produce the sequence round and round, record j at start + j / rate, until `stop` is set."""
    cpu_before = time.process_time()
    while (wait := start_wall_s - time.time()) > 0:
        time.sleep(min(wait, 0.1))
    started = time.perf_counter()
    keys = [r.key.encode() for r in sequence]
    by_topic: dict[str, int] = {}
    size = len(sequence)
    produce, poll = producer.produce, producer.poll
    done = 0
    max_behind = 0.0
    while not stop.is_set():
        now = time.perf_counter()
        due = int((now - started) * rate) + 1
        if due <= done:
            time.sleep(max(0.0, started + done / rate - now))
            continue
        max_behind = max(max_behind, now - (started + done / rate))
        until = min(due, done + MAX_BATCH)
        wall_ms = time.time_ns() // 1_000_000 - DEVICE_DELAY_MS
        for j in range(done, until):
            reporter = sequence[j % size]
            value = reporter.payload(wall_ms, reporter.sent)
            reporter.sent += 1
            while True:
                try:
                    produce(reporter.topic, value, keys[j % size])
                    break
                except BufferError:
                    poll(0.01)
        done = until
        produced.value = done
        poll(0)
    seconds = time.perf_counter() - started
    for j in range(min(done, size)):
        topic = sequence[j].topic
        by_topic[topic] = by_topic.get(topic, 0) + done // size + (1 if j < done % size else 0)
    return LoadStats(0, done, seconds, max_behind * 1000, 0, [], by_topic, time.process_time() - cpu_before)


# ---------------------------------------------------------------------------------------------- the producers


class LoadProducers:
    """The background load: `count` producer processes sharing the site's devices and the offered rate.

    `start()` returns once every process has built its sequence and the common start time is set; `produced()` is the
    records handed to the producers so far (read live); `stop()` ends them and returns what each did.
    """

    def __init__(self, bootstrap: str, site: LiveSite, start_ms: int, rate: int, count: int, excluded: frozenset[str],
                 cpus: list[int] | None) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.control = _Control(self.context, count)
        size = site.size
        self.shares = [
            LoadShare(bootstrap, size.permits, size.workers, size.devices, start_ms, index, count, rate / count,
                      sorted(excluded), cpus)
            for index in range(count)
        ]
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.pipes = []

    def start(self, lead_s: float = 0.5, timeout_s: float = 120.0) -> float:
        """Start the processes, wait until each is ready, and set them going `lead_s` later; returns the start time."""
        control = self.control
        for share, produced, ready in zip(self.shares, control.produced, control.ready):
            receiver, sender = self.context.Pipe(duplex=False)
            process = self.context.Process(
                target=run_share, name=f"live-latency-load-{share.index}",
                args=(msgspec.json.encode(share), produced, ready, control.start_at, control.go, control.stop, sender),
                daemon=True,
            )
            process.start()
            sender.close()
            self.processes.append(process)
            self.pipes.append(receiver)
        deadline = time.monotonic() + timeout_s
        for ready, process in zip(control.ready, self.processes):
            while not ready.wait(0.5):
                if not process.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"load producer {process.name} did not get ready (exit code {process.exitcode})")
        control.start_at.value = time.time() + lead_s
        control.go.set()
        return control.start_at.value

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def produced(self) -> int:
        return sum(value.value for value in self.control.produced)

    def stop(self, timeout_s: float = 60.0) -> list[LoadStats]:
        self.control.stop.set()
        stats = []
        for pipe, process in zip(self.pipes, self.processes):
            if pipe.poll(timeout_s):
                stats.append(msgspec.json.decode(pipe.recv_bytes(), type=LoadStats))
            process.join(10)
            if process.is_alive():
                process.kill()
        return stats

    def kill(self) -> None:
        """End every process at once (after a failure)."""
        self.control.stop.set()
        for process in self.processes:
            if process.is_alive():
                process.kill()
