"""End-to-end latency of a live run: a record produced to Kafka -> the enable coil written at the PLC simulator.

```sh
python -m bench.live_latency                          # 20,000 records/s offered, 30 s measured after 10 s of warm-up
python -m bench.live_latency --rate 40000 --seconds 60 --json /tmp/live.json
python -m bench.live_latency --find-max               # the highest rate sustained with HARD_STOP p99 under 100 ms
python -m bench.live_latency --interlock-arg=--snapshot-interval=3600   # measure another setting of interlock run
```

The real parts run on this machine: the dev broker (`interlock dev-broker`, librdkafka's mock cluster) and
`interlock run` as their own processes, the PLC simulator (real pymodbus servers on free ports, one per PLC of the
site) in a thread of this process, and the background load in producer processes (`bench.live_load`). On two or
more CPUs the default `--pinning split` gives `interlock run` the last CPU to itself and puts everything else (broker,
load producers, this process with the simulator and the probes) on the others; `--pinning none` lets the kernel place
them. The report says what ran where and how busy each process and CPU was.

Site and load. A synthetic site (`bench.scaling`, moved to the wall clock) of P permits, each with its equipment
enable on its own simulated Modbus PLC (the CMDB rows point at the simulator's ports), grown with bystanders' tags and
idle devices until one report from every device is the offered rate: the load is the site's healthy telemetry
(positions of both RTLS vendors, GD-4 readings, SH-2 harnesses, PLC state), each device about once a second.

Probes. The detectors of the gas-tested permits (hot work, confined space) belong to the probe driver in this
process: it sends their readings once a second and, in the measured window, trips each permit and brings it back,
one probe at a time per permit, at random moments: a reading at 25 %LEL (a 2.x detector also sets its LEL alarm
bit) -> latched HARD_STOP -> coil 0; then six good readings (the gas pre-test needs five in a row) and the approver's
reset on ptw.actions -> ENABLE -> coil 1. A probe's latency is the simulator's log time of the coil write (`ts`,
whole milliseconds, so figures read up to 1 ms low) minus the wall clock taken just before the probe is produced,
both on this machine's clock. Each probe is checked against interlock.commands: the command it caused names the
probe record as its trigger.

Sustained. A run is sustained when the producers kept the pace (at least 99 % of the offered records in the window)
and the interlock kept up with them: its consumer lag (records produced minus records it consumed, sampled every
second from its metrics) ends the window under half a second of records and does not trend upward (under 1 % of the
rate per second), and every probe was observed. `--find-max` steps the rate up (10k, 20k, 40k, 60k, ...; a first
rate that fails is halved instead) until a run is not sustained or its HARD_STOP p99 reaches 100 ms, then bisects
between the last rate that passed and the first that did not; each step is a fresh broker, interlock, simulator and
site.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import msgspec
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from bench.live_load import LiveSite, LoadProducers, LoadStats, gd4_payload, live_site, size_for_rate, topic_mix
from bench.results import Metric, SuiteResult
from dataflows.kafka_dump import read_topic
from dataflows.kafka_io import LIBRDKAFKA_LOG
from interlock.config import DEFAULT_CONFIG
from interlock.site import COMMANDS_TOPIC, FAULTS_TOPIC
from schemas.payloads import DeviceRow
from simulators.plc_sim import PlcSimulator, ReceivedWrite

Log = Callable[[str], None]

ROOT = Path(__file__).resolve().parents[1]
INTERLOCK = [sys.executable, "-m", "dataflows.cli"]

HARD_STOP = "HARD_STOP"
ENABLE = "ENABLE"
PATHS = (HARD_STOP, ENABLE)

TARGET_P99_MS = 100.0
"""The figure `--find-max` holds the HARD_STOP path to."""

ACTIVATE_AFTER_S = 7.0
"""Seconds of telemetry before the permits go active: the gas pre-test needs five readings a second apart."""

TRIP_LEL = 25.0
"""%LEL of a probe's tripping reading: over the 10 %LEL limit (config gas_limits.lel_max)."""

GOOD_READINGS_BEFORE_RESET = DEFAULT_CONFIG.gas_pretest_readings + 1
"""Good readings after a trip before the reset: the pre-test's five, and one to spare."""

PROBE_GAP_S = (0.5, 1.5)
"""Seconds between a permit's ENABLE written and its next trip (uniform): probes land at random moments."""

RESET_DELAY_S = (0.2, 0.6)
"""Seconds between the last good reading and the reset (uniform)."""

COIL_CHECK_S = 0.02
"""How often the probe driver looks at a coil it waits on (scheduling only: latencies come from the write log)."""

KEEP_UP_LAG_S = 0.5
"""A sustained run ends its window less than this many seconds of records behind."""

KEEP_UP_SLOPE = 0.01
"""... and its lag grows by less than this share of the rate per second."""

PACE_SHARE = 0.99
"""A producer that kept the pace produced at least this share of the offered records in the window."""

MIN_RATE = 1_000
"""--find-max halves a failing first rate down to this."""

FIND_MAX_RATES = (10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 150_000, 200_000)
BISECT_STEPS = 2
MAX_REPORTS_PER_SECOND = 5
"""A device reports at most this often (the interlock counts a sequence jump beyond 10 a second as a restart)."""

RECORDS_PER_PRODUCER = 50_000
"""Offered records/s per load producer process by default: one uses about a third of a core at 20,000 records/s here.
More processes than CPUs outside the interlock's add nothing but their own overhead and smaller Kafka batches."""


# ---------------------------------------------------------------------------------------------- settings


class LiveLatencySettings(msgspec.Struct, frozen=True, kw_only=True):
    """One run: the offered rate, how long to warm up and measure, the site's permits, how the load is produced and
    where the processes run."""

    rate: int = 20_000
    site_rate: int | None = None
    """The rate the site is sized for, each device reporting once a second; None: the offered rate. A smaller site
    offered more records has its devices report faster (at most MAX_REPORTS_PER_SECOND)."""
    seconds: float = 30.0
    warmup_s: float = 10.0
    permits: int = 48
    probe_permits: int | None = None
    """Permits the probes trip (gas-tested ones only); None: every gas-tested permit."""
    producers: int | None = None
    """Load producer processes; None: one per 50,000 records/s, at most one per CPU the interlock does not have."""
    pinning: Literal["split", "none"] = "split"
    probe_timeout_s: float = 5.0
    grace_s: float = 10.0
    """After the window, how long probes in flight may take to finish (the load goes on meanwhile)."""
    interlock_args: list[str] = []
    """More arguments for `interlock run` (e.g. `--snapshot-interval 30`), to measure other settings of the product."""
    seed: int = 20261125
    workdir: str | None = None
    """Logs of the broker and the interlock go here (a temporary folder, removed after a clean run, when None)."""

    def sized_for(self) -> int:
        return self.site_rate or self.rate

    def producer_count(self, placement: Placement) -> int:
        if self.producers:
            return self.producers
        spare = len(placement.others or os.sched_getaffinity(0))
        return max(1, min(spare, math.ceil(self.rate / RECORDS_PER_PRODUCER)))


# ---------------------------------------------------------------------------------------------- report types


class PathLatency(msgspec.Struct):
    """Probe latencies of one path (HARD_STOP: trip reading -> coil 0; ENABLE: reset action -> coil 1), in ms."""

    path: str
    sent: int
    observed: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    min_ms: float | None = None
    mean_ms: float | None = None
    missing: list[str] = []
    """Probes not observed, each with why (no command triggered by it, or no coil write after it)."""
    samples: list[tuple[float, float]] = []
    """(seconds from the window's start to the probe, latency ms) of every observed probe, in time order."""


class SiteSummary(msgspec.Struct):
    """The run's site: its size, the permits probed, and what one round of its devices sends."""

    permits: int
    workers: int
    devices: int
    plcs: int
    probe_permits: int
    cycle_records: float
    """Records one round of every device sends (the load's, without the probes' detectors)."""
    mix: dict[str, float]
    """Share of the load's records by topic."""


class LagSummary(msgspec.Struct):
    """Consumer lag of the interlock in the window (records produced minus records it consumed)."""

    start: int
    end: int
    """Median of the last quarter of the samples."""
    max: int
    slope_per_s: float
    samples: list[tuple[float, int]]


class TimeSplit(msgspec.Struct):
    """Where the time goes, from the interlock's own metrics over the window (every command, means in ms)."""

    commands: int
    record_to_handed_ms: float | None
    """Kafka timestamp of the input -> the command handed to the sink (Kafka transit, fetch, queueing, decision)."""
    consumed_to_handed_ms: float | None
    """Input consumed by this process -> the command handed to the sink (the dataflow's own part)."""
    plc_writes: int
    plc_write_ms: float | None
    """Mean Modbus write round trip (enables and watchdogs)."""
    gc_collections: dict[str, int]
    """The interlock process's cyclic garbage collections, by generation."""


class ProcessUse(msgspec.Struct):
    """One process in the window: what it was, where it could run, how much CPU it used."""

    role: str
    pid: int
    cpus: list[int]
    cpu_share: float
    """CPU seconds per second of the window (1.0 = one core busy)."""


class LiveLatencyReport(msgspec.Struct):
    """What one live run measured, and on what."""

    settings: LiveLatencySettings
    site: SiteSummary
    window_s: float
    offered_rate: int
    achieved_rate: float
    """Records produced per second in the window (load and probes' detectors)."""
    consumed_rate: float
    """Records the interlock consumed per second in the window."""
    records: int
    lag: LagSummary
    producers: list[LoadStats]
    hard_stop: PathLatency
    enable: PathLatency
    time_split: TimeSplit
    commands: dict[str, int]
    other_stops: list[str]
    """HARD_STOPs no probe caused (a clean run has none), with their reasons."""
    probe_faults: dict[str, dict[str, int]]
    """Fault records the probes caused (their detectors' gas faults), by code and state."""
    other_faults: dict[str, dict[str, int]]
    """Every other fault record, by code and state (a clean run has none)."""
    watchdog_trips: int
    processes: list[ProcessUse]
    cpu_busy: dict[str, float]
    """Share of each CPU busy in the window (all processes on the machine)."""
    other_cpu: float
    """Cores' worth of CPU the machine spent on anything but this run's processes in the window (other processes,
    also those too short-lived to name, and the kernel's own work)."""
    producer_kept_pace: bool
    interlock_kept_up: bool
    sustained: bool
    """The producers kept the pace, the interlock kept up, and every probe was observed."""
    clean: bool
    """No fault, HARD_STOP or watchdog trip other than the probes'."""
    notes: list[str]


class FindMaxStep(msgspec.Struct):
    """One rate `--find-max` tried, its figures, and why it passed or failed."""

    rate: int
    achieved_rate: float
    consumed_rate: float
    lag_end: int
    hard_stop_p99_ms: float | None
    enable_p99_ms: float | None
    sustained: bool
    passed: bool
    why: str


class MaxRateReport(msgspec.Struct):
    """The highest offered rate sustained with HARD_STOP p99 under the target, and every step that found it."""

    target_p99_ms: float
    max_rate: int | None
    steps: list[FindMaxStep]
    reports: list[LiveLatencyReport]
    rig_limit: str | None = None
    """Why stepping up stopped before a rate failed: the rig itself could not run the next rate (e.g. loading the
    site it sizes for that rate took too long); the maximum is then a lower bound."""


# ---------------------------------------------------------------------------------------------- the live parts


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Placement:
    """Which CPUs each part runs on: the interlock alone on its own, or everything where the kernel puts it."""

    interlock: list[int] | None
    others: list[int] | None

    @classmethod
    def of(cls, pinning: str) -> Placement:
        cpus = sorted(os.sched_getaffinity(0))
        if pinning == "none" or len(cpus) < 2:
            return cls(None, None)
        return cls(cpus[-1:], cpus[:-1])

    def describe(self) -> str:
        if self.interlock is None:
            return f"not pinned: the kernel placed every process on CPUs {_cpu_list(sorted(os.sched_getaffinity(0)))}"
        return (f"interlock run alone on CPU {_cpu_list(self.interlock)}; dev broker, load producers and this process "
                f"(PLC simulator, probe driver) on CPU {_cpu_list(self.others)}")


def _cpu_list(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def _taskset(cpus: list[int] | None) -> list[str]:
    return ["taskset", "-c", _cpu_list(cpus)] if cpus else []


def pin_this_process(cpus: list[int] | None) -> dict[int, set[int]]:
    """Pin every thread of this process to `cpus` (threads started later inherit it); returns the old masks."""
    if not cpus:
        return {}
    before = {}
    for task in os.listdir("/proc/self/task"):
        tid = int(task)
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
        except OSError:  # the thread ended meanwhile
            pass
    return before


def unpin_this_process(before: dict[int, set[int]]) -> None:
    for tid, cpus in before.items():
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


class DevBrokerProcess:
    """`interlock dev-broker` as a child process; `bootstrap` is what it prints."""

    def __init__(self, workdir: Path, cpus: list[int] | None) -> None:
        self.log = open(workdir / "dev-broker.log", "ab")
        self.process = subprocess.Popen(
            [*_taskset(cpus), *INTERLOCK, "dev-broker"], cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log,
        )
        line = self.process.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError(f"interlock dev-broker printed no bootstrap; see {workdir / 'dev-broker.log'}")
        self.bootstrap = line

    def stop(self) -> None:
        _terminate(self.process)
        self.log.close()


class InterlockProcess:
    """`interlock run` as a child process with its metrics on a free port."""

    def __init__(self, bootstrap: str, workdir: Path, cpus: list[int] | None, extra: list[str]) -> None:
        self.metrics_port = free_port()
        self.log_path = workdir / "interlock.log"
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*_taskset(cpus), *INTERLOCK, "run", "--bootstrap", bootstrap, "--metrics-port", str(self.metrics_port),
             *extra],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_live(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while b"interlock live" not in self.log_path.read_bytes():
            self.check_running()
            if time.monotonic() > deadline:
                raise RuntimeError(f"interlock run did not start within {timeout_s} s; see {self.log_path}")
            time.sleep(0.05)

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"interlock run exited with {self.process.returncode}; see {self.log_path}")

    def metrics(self) -> InterlockMetricsView:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return InterlockMetricsView.parse(response.read().decode())

    def stop(self) -> None:
        _terminate(self.process)
        self.log.close()


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class PlcSimulatorThread:
    """The site's PLCs served by `PlcSimulator` on free ports, from an event loop in a thread of this process."""

    def __init__(self, rows: list[DeviceRow]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="plc-simulator", daemon=True)
        self.thread.start()
        self.sim: PlcSimulator = self.call(self._make(rows))
        self.call(self.sim.start())
        self.ports = {plc: self.sim.modbus_address(plc)[1] for plc in self.sim.plcs}

    @staticmethod
    async def _make(rows: list[DeviceRow]) -> PlcSimulator:
        return PlcSimulator(rows)

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def enable(self, plc: str, equipment: str) -> bool:
        return self.sim.enable(plc, equipment)

    def close(self) -> None:
        try:
            self.call(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def simulator_rows(site: LiveSite) -> list[DeviceRow]:
    """The site's PLC rows for the simulator, every Modbus port 0 (a free one)."""
    rows = []
    for row in site.plc_rows():
        plc = msgspec.convert(row, DeviceRow)
        rows.append(msgspec.structs.replace(plc, modbus=msgspec.structs.replace(plc.modbus, port=0)))
    return rows


def publish_rows(bootstrap: str, rows: list[tuple[str, str, bytes]]) -> None:
    """Table rows and permit revisions, as the enterprise systems publish them."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "client.id": "live-latency-tables",
                         "logger": LIBRDKAFKA_LOG, "queue.buffering.max.messages": 1_000_000})
    for topic, key, payload in rows:
        while True:
            try:
                producer.produce(topic, payload, key)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise RuntimeError(f"table rows were not delivered to the dev broker at {bootstrap}")


# ---------------------------------------------------------------------------------------------- the interlock's metrics


class Histogram(msgspec.Struct):
    sum: float = 0.0
    count: float = 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        return Histogram(self.sum - earlier.sum, self.count - earlier.count)

    def mean_ms(self) -> float | None:
        return self.sum / self.count * 1000 if self.count else None


class InterlockMetricsView(msgspec.Struct):
    """The few series of `interlock run`'s Prometheus metrics the bench reads."""

    consumed: dict[str, float]
    decision: dict[str, Histogram]
    plc_writes: Histogram
    plc_links_up: dict[str, float]
    gc_collections: dict[str, float]

    @classmethod
    def parse(cls, text: str) -> InterlockMetricsView:
        consumed: dict[str, float] = {}
        decision: dict[str, Histogram] = {}
        writes = Histogram()
        links: dict[str, float] = {}
        collections: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                if name == "interlock_records_consumed_total":
                    consumed[labels["topic"]] = value
                elif name.startswith("interlock_decision_latency_seconds_"):
                    histogram = decision.setdefault(labels["clock"], Histogram())
                    if name.endswith("_sum"):
                        histogram.sum += value
                    elif name.endswith("_count"):
                        histogram.count += value
                elif name == "interlock_plc_write_duration_seconds_sum":
                    writes.sum += value
                elif name == "interlock_plc_write_duration_seconds_count":
                    writes.count += value
                elif name == "interlock_plc_link_up":
                    links[labels["plc"]] = value
                elif name == "python_gc_collections_total":
                    collections[labels["generation"]] = value
        return cls(consumed, decision, writes, links, collections)

    def consumed_total(self) -> int:
        return int(sum(self.consumed.values()))


def time_split(before: InterlockMetricsView, after: InterlockMetricsView) -> TimeSplit:
    record = after.decision.get("record_ts", Histogram()).minus(before.decision.get("record_ts", Histogram()))
    consumed = after.decision.get("consumed", Histogram()).minus(before.decision.get("consumed", Histogram()))
    writes = after.plc_writes.minus(before.plc_writes)
    collections = {generation: int(count - before.gc_collections.get(generation, 0))
                   for generation, count in sorted(after.gc_collections.items())}
    return TimeSplit(int(record.count), record.mean_ms(), consumed.mean_ms(), int(writes.count), writes.mean_ms(),
                     collections)


# ---------------------------------------------------------------------------------------------- CPU use


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (every thread), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies of each CPU, from /proc/stat."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(v) for v in values]
            idle = numbers[3] + (numbers[4] if len(numbers) > 4 else 0)
            times[name] = (sum(numbers[:8]) - idle, sum(numbers[:8]))
    return times


def every_process_cpu_s() -> dict[int, tuple[str, float]]:
    """(command name, CPU seconds) of every process on the machine."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                head, rest = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            fields = rest.split()
            found[int(entry)] = (head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return found


def command_line(pid: int, width: int = 60) -> str:
    """The start of a process's command line ("" once it has ended)."""
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
    return " ".join(text.replace("\0", " ").split())[:width]


@dataclass
class CpuWatch:
    """CPU seconds of the named processes, of every other process on the machine, and the busy share of each CPU
    between `start()` and `stop()`: another busy process on a two-core machine is in every figure."""

    roles: dict[str, tuple[int, list[int]]]
    started: float = 0.0
    before: dict[str, float] = field(default_factory=dict)
    everyone_before: dict[int, tuple[str, float]] = field(default_factory=dict)
    cpus_before: dict[str, tuple[int, int]] = field(default_factory=dict)

    def start(self) -> None:
        self.started = time.monotonic()
        self.before = {role: process_cpu_s(pid) for role, (pid, _) in self.roles.items()}
        self.everyone_before = every_process_cpu_s()
        self.cpus_before = cpu_times()

    def stop(self) -> tuple[list[ProcessUse], dict[str, float]]:
        seconds = time.monotonic() - self.started
        uses = [ProcessUse(role, pid, cpus, (process_cpu_s(pid) - self.before[role]) / seconds)
                for role, (pid, cpus) in self.roles.items()]
        mine = {pid for pid, _ in self.roles.values()}
        others = []
        for pid, (name, cpu_s) in every_process_cpu_s().items():
            used = (cpu_s - self.everyone_before.get(pid, (name, 0.0))[1]) / seconds
            if pid not in mine and used >= 0.01:
                others.append(ProcessUse(f"other: {command_line(pid) or name}", pid, [], used))
        uses += sorted(others, key=lambda use: -use.cpu_share)
        busy = {}
        for name, (busy_after, total_after) in cpu_times().items():
            busy_before, total_before = self.cpus_before.get(name, (0, 0))
            busy[name] = (busy_after - busy_before) / max(1, total_after - total_before)
        return uses, busy


# ---------------------------------------------------------------------------------------------- probes


class ProbeRecord(msgspec.Struct, kw_only=True):
    """One probe record sent: its path, the permit and coil it should move, when it was produced and where it landed."""

    path: str
    permit: str
    plc: str
    equipment: str
    produced_ns: int
    topic: str
    partition: int = -1
    offset: int = -1
    delivery_error: str | None = None


@dataclass
class ProbedPermit:
    """A gas-tested permit whose detector the probe driver owns; `state` is where its probe cycle is."""

    permit: str
    approver: str
    detector: str
    firmware: str
    plc: str
    equipment: str
    seq: int = 0
    state: str = "idle"
    """idle (not probing) | enabled (next trip due) | tripped | resetting."""
    good_since_trip: int = 0
    since: float = 0.0


def probed_permits(site: LiveSite, count: int | None) -> list[ProbedPermit]:
    """The site's gas-tested permits (their first detector and first equipment), the first `count` of them."""
    firmware = {row["device"]: row.get("firmware") for row in site.plan.devices}
    enable_plc = {item: row["device"] for row in site.plc_rows() for item in row["modbus"]["enable_coils"]}
    chosen = []
    for permit in site.plan.permits:
        if permit["type"] in DEFAULT_CONFIG.gas_work_types and permit["detectors"]:
            detector, equipment = permit["detectors"][0], permit["equipment"][0]
            chosen.append(ProbedPermit(permit["permit"], permit["approver"], detector, firmware[detector],
                                       enable_plc[equipment], equipment))
    return chosen if count is None else chosen[:count]


class ProbeDriver:
    """Sends the probed detectors' readings (one a second each) and, while probing, trips each permit and brings it
    back, one probe at a time per permit, in a thread of its own. Coil states come from the simulator in this process
    (to pace the cycles only; latencies come from the simulator's write log)."""

    def __init__(self, bootstrap: str, permits: list[ProbedPermit], coil: Callable[[str, str], bool], bump_ms: int,
                 seed: int, timeout_s: float) -> None:
        self.permits = permits
        self.coil = coil
        self.timeout_s = timeout_s
        self.rng = random.Random(seed)
        self.healthy = {p.detector: gd4_payload(p.detector, p.firmware, bump_ms) for p in permits}
        self.tripping = {p.detector: gd4_payload(p.detector, p.firmware, bump_ms, lel=TRIP_LEL) for p in permits}
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "linger.ms": 0,  # a probe goes out at once: the latency measured is the interlock's, not a batching delay
            "socket.nagle.disable": True,
            "client.id": "live-latency-probes",
            "logger": LIBRDKAFKA_LOG,
        })
        self.probes: list[ProbeRecord] = []
        self.sent = 0
        """Records sent so far: readings, trips and resets."""
        self.failures: list[str] = []
        self._events: list[tuple[float, int, str, int]] = []
        self._order = 0
        self._lock = threading.Lock()
        self._probing_until = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-driver", daemon=True)

    # -- control (any thread)

    def start(self, at_wall_s: float) -> None:
        """Readings begin at `at_wall_s` (the load's start), each detector at its own phase in the second."""
        first = time.monotonic() + max(0.0, at_wall_s - time.time())
        for n, _ in enumerate(self.permits):
            self._schedule(first + self.rng.random(), "reading", n)
        self._thread.start()

    def probe_until(self, until_wall_s: float) -> None:
        """Start probing now; no trip is started after `until_wall_s`. The first trips are spread over one probe cycle
        (or the first half of a shorter window, so every permit is probed at least once)."""
        now = time.monotonic()
        self._probing_until = now + (until_wall_s - time.time())
        cycle = PROBE_GAP_S[1] + GOOD_READINGS_BEFORE_RESET + RESET_DELAY_S[1]
        spread = min(cycle, (self._probing_until - now) / 2)
        for n, permit in enumerate(self.permits):
            permit.state = "enabled"
            self._schedule(now + self.rng.uniform(0.0, spread), "trip", n)

    def in_flight(self) -> int:
        return sum(1 for p in self.permits if p.state in ("tripped", "resetting"))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)
        self.producer.flush(10)

    # -- the driver's thread

    def _schedule(self, at: float, kind: str, permit: int) -> None:
        with self._lock:
            self._order += 1
            heapq.heappush(self._events, (at, self._order, kind, permit))

    def _run(self) -> None:
        handlers = {"reading": self._reading, "trip": self._trip, "reset": self._reset, "check": self._check}
        while not self._stop.is_set():
            self.producer.poll(0)
            due = self._take_due()
            if isinstance(due, float):
                self._stop.wait(due)
                continue
            kind, index = due
            try:
                handlers[kind](self.permits[index], index)
            except Exception as error:  # a failing probe must not stop the readings of the others
                self.failures.append(f"{kind} {self.permits[index].permit}: {type(error).__name__}: {error}")

    def _take_due(self) -> tuple[str, int] | float:
        """The next event if it is due, else how long to wait (at most 10 ms, so deliveries are polled)."""
        with self._lock:
            if not self._events:
                return 0.01
            at, _, kind, index = self._events[0]
            wait = at - time.monotonic()
            if wait > 0:
                return min(wait, 0.01)
            heapq.heappop(self._events)
            return kind, index

    def _send(self, topic: str, key: str, value: str, probe: ProbeRecord | None) -> None:
        def delivered(error, message) -> None:
            if probe is None:
                if error is not None:
                    self.failures.append(f"{topic} {key}: {error.str()}")
            elif error is not None:
                probe.delivery_error = error.str()
            else:
                probe.partition, probe.offset = message.partition(), message.offset()

        self.sent += 1
        if probe is not None:
            self.probes.append(probe)
            probe.produced_ns = time.time_ns()
        self.producer.produce(topic, value, key, on_delivery=delivered)
        self.producer.poll(0)

    def _reading(self, permit: ProbedPermit, index: int) -> None:
        """A good reading; the sixth since a trip schedules the reset."""
        self._send_reading(permit, self.healthy, None)
        self._schedule(time.monotonic() + 1.0, "reading", index)
        if permit.state == "tripped":
            permit.good_since_trip += 1
            if permit.good_since_trip == GOOD_READINGS_BEFORE_RESET:
                self._schedule(time.monotonic() + self.rng.uniform(*RESET_DELAY_S), "reset", index)

    def _send_reading(self, permit: ProbedPermit, payloads: dict, probe: ProbeRecord | None) -> None:
        ts = time.time_ns() // 1_000_000 - 20
        value = payloads[permit.detector](ts, permit.seq)
        permit.seq += 1
        self._send("gas.readings", permit.detector, value, probe)

    def _trip(self, permit: ProbedPermit, index: int) -> None:
        """Trip the permit once its enable is 1; after the probing window, leave it be."""
        now = time.monotonic()
        if now > self._probing_until:
            permit.state = "idle"
            return
        if not self.coil(permit.plc, permit.equipment):
            self._schedule(now + COIL_CHECK_S, "trip", index)
            return
        probe = ProbeRecord(path=HARD_STOP, permit=permit.permit, plc=permit.plc, equipment=permit.equipment,
                            produced_ns=0, topic="gas.readings")
        self._send_reading(permit, self.tripping, probe)
        permit.state, permit.good_since_trip, permit.since = "tripped", 0, now

    def _reset(self, permit: ProbedPermit, index: int) -> None:
        """The approver's reset, once the coil has fallen (a trip that moved nothing is not followed by a reset)."""
        if self.coil(permit.plc, permit.equipment):
            self._enabled(permit, index)
            return
        probe = ProbeRecord(path=ENABLE, permit=permit.permit, plc=permit.plc, equipment=permit.equipment,
                            produced_ns=0, topic="ptw.actions")
        action = msgspec.json.encode({"permit": permit.permit, "action": "reset", "by": permit.approver,
                                      "ts": time.time_ns() // 1_000_000}).decode()
        self._send("ptw.actions", permit.permit, action, probe)
        permit.state, permit.since = "resetting", time.monotonic()
        self._schedule(permit.since + COIL_CHECK_S, "check", index)

    def _check(self, permit: ProbedPermit, index: int) -> None:
        """After a reset: the coil back at 1 ends the probe; none within the timeout sends the reset again."""
        now = time.monotonic()
        if self.coil(permit.plc, permit.equipment):
            self._enabled(permit, index)
        elif now - permit.since > self.timeout_s:
            self._reset(permit, index)
        else:
            self._schedule(now + COIL_CHECK_S, "check", index)

    def _enabled(self, permit: ProbedPermit, index: int) -> None:
        permit.state = "enabled"
        self._schedule(time.monotonic() + self.rng.uniform(*PROBE_GAP_S), "trip", index)


# ---------------------------------------------------------------------------------------------- matching probes


class CommandView(msgspec.Struct):
    id: str
    kind: str
    permit: str
    reasons: list[dict]
    trigger: dict | None = None


class FaultView(msgspec.Struct):
    code: str
    state: str
    device: str | None = None
    permits: list[str] = []


PROBE_FAULT_CODES = frozenset({"GAS_LIMIT_EXCEEDED", "GAS_DETECTOR_ALARM"})
"""What a probe's tripping reading raises about its detector (and clears at the next good reading)."""


@dataclass
class ProbeOutcome:
    probe: ProbeRecord
    latency_ms: float | None
    why_missing: str | None


def match_probes(probes: list[ProbeRecord], commands: list[CommandView],
                 writes: dict[tuple[str, str], list[ReceivedWrite]]) -> list[ProbeOutcome]:
    """Each probe's command (the one whose trigger is the probe record) and its coil write: the first write of the
    commanded value to that coil after the probe was produced and before the next probe on that permit."""
    by_trigger = {}
    for command in commands:
        if command.trigger is not None and command.kind in PATHS:
            by_trigger[(command.trigger["topic"], command.trigger["partition"], command.trigger["offset"])] = command
    next_on_permit: dict[int, int] = {}
    last: dict[str, int] = {}
    ordered = sorted(range(len(probes)), key=lambda n: probes[n].produced_ns)
    for n in reversed(ordered):
        permit = probes[n].permit
        next_on_permit[n] = last.get(permit, 1 << 62)
        last[permit] = probes[n].produced_ns
    outcomes = []
    for n, probe in enumerate(probes):
        if probe.delivery_error is not None or probe.offset < 0:
            outcomes.append(ProbeOutcome(probe, None, f"not delivered: {probe.delivery_error}"))
            continue
        command = by_trigger.get((probe.topic, probe.partition, probe.offset))
        if command is None or command.kind != probe.path:
            outcomes.append(ProbeOutcome(probe, None, f"no {probe.path} command triggered by it"))
            continue
        wanted = probe.path == ENABLE
        after_ms, before_ms = probe.produced_ns // 1_000_000, next_on_permit[n] // 1_000_000
        write = next((w for w in writes.get((probe.plc, probe.equipment), ())
                      if w.value is wanted and after_ms <= w.ts <= before_ms), None)
        if write is None:
            why = f"command {command.id} but no write of {int(wanted)} to the coil"
            outcomes.append(ProbeOutcome(probe, None, why))
            continue
        outcomes.append(ProbeOutcome(probe, write.ts - probe.produced_ns / 1e6, None))
    return outcomes


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def path_latency(path: str, outcomes: list[ProbeOutcome], window_start_s: float) -> PathLatency:
    mine = sorted((o for o in outcomes if o.probe.path == path), key=lambda o: o.probe.produced_ns)
    values = sorted(o.latency_ms for o in mine if o.latency_ms is not None)
    missing = [f"{o.probe.permit} {o.probe.topic}/{o.probe.partition}@{o.probe.offset}: {o.why_missing}"
               for o in mine if o.why_missing is not None]
    samples = [(round(o.probe.produced_ns / 1e9 - window_start_s, 3), round(o.latency_ms, 3))
               for o in mine if o.latency_ms is not None]
    result = PathLatency(path, len(mine), len(values), missing=missing, samples=samples)
    if values:
        result.p50_ms, result.p99_ms, result.p999_ms = (percentile(values, s) for s in (0.5, 0.99, 0.999))
        result.max_ms, result.min_ms, result.mean_ms = values[-1], values[0], sum(values) / len(values)
    return result


def fault_counts(faults: list[FaultView], probe_detectors: set[str], probe_permits: set[str]) -> tuple[dict, dict]:
    """Fault records by code and state: those the probes caused, and every other. A probe's tripping reading is gas
    at 25 %LEL: the zone risk model may grade its zone too, so RISK_ faults of probed permits alone are the probes'."""
    probe: dict[str, dict[str, int]] = {}
    other: dict[str, dict[str, int]] = {}
    for fault in faults:
        caused = (fault.code in PROBE_FAULT_CODES and fault.device in probe_detectors) or (
            fault.code.startswith("RISK_") and bool(fault.permits) and set(fault.permits) <= probe_permits)
        states = (probe if caused else other).setdefault(fault.code, {})
        states[fault.state] = states.get(fault.state, 0) + 1
    return probe, other


# ---------------------------------------------------------------------------------------------- lag


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of y against x."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def lag_summary(samples: list[tuple[float, int]]) -> LagSummary:
    """Lag at the start, at the end (median of the last quarter of the samples, so one stall sampled at the very end
    does not decide), its maximum and its trend."""
    lags = [lag for _, lag in samples] or [0]
    last = sorted(lags[-max(3, len(lags) // 4):])
    return LagSummary(lags[0], last[len(last) // 2], max(lags), slope(samples), samples)


# ---------------------------------------------------------------------------------------------- one run


@dataclass
class Run:
    """The parts of one live run, so that a failure anywhere tears down whatever was started."""

    settings: LiveLatencySettings
    workdir: Path
    placement: Placement
    log: Log
    broker: DevBrokerProcess | None = None
    plcs: PlcSimulatorThread | None = None
    interlock: InterlockProcess | None = None
    load: LoadProducers | None = None
    driver: ProbeDriver | None = None
    pinned: dict[int, set[int]] = field(default_factory=dict)
    start_ms: int = 0
    """The wall time (ms) the site's rows were moved to."""
    consumed_before_load: int = 0
    """Records the interlock had consumed (the tables) when the load started."""
    rows_during_load: int = 0
    """Table rows published after the load started (the permits going active)."""

    def produced(self) -> int:
        """Input records produced since the load started: the load, the probes' records, the permits' revisions."""
        return self.load.produced() + self.driver.sent + self.rows_during_load

    def close(self) -> None:
        steps = [
            (self.load, lambda load: load.kill()),
            (self.driver, lambda driver: driver.stop()),
            (self.interlock, lambda interlock: interlock.stop()),
            (self.plcs, lambda plcs: plcs.close()),
            (self.broker, lambda broker: broker.stop()),
        ]
        for part, stop in steps:
            if part is not None:
                try:
                    stop(part)
                except Exception as error:  # tear down the rest regardless
                    self.log(f"  (teardown: {type(error).__name__}: {error})")
        unpin_this_process(self.pinned)


def measure_live_latency(settings: LiveLatencySettings = LiveLatencySettings(), log: Log = print) -> LiveLatencyReport:
    """One live run at `settings.rate`: bring the parts up, load the site, warm up, probe for `settings.seconds`, and
    report the probes' latencies and what the run looked like."""
    workdir = Path(settings.workdir) if settings.workdir else Path(tempfile.mkdtemp(prefix="live-latency-"))
    workdir.mkdir(parents=True, exist_ok=True)
    placement = Placement.of(settings.pinning)
    run = Run(settings, workdir, placement, log)
    clean = False
    try:
        run.pinned = pin_this_process(placement.others)
        report = _measure(run)
        clean = True
        return report
    finally:
        run.close()
        if clean and settings.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not clean:
            log(f"  logs of the failed run: {workdir}")


def _measure(run: Run) -> LiveLatencyReport:
    site, permits = plan_run(run)
    tables = start_parts(run, site)
    start_load(run, site, permits)
    window = measure_window(run)
    outputs = finish(run)
    return summarise(run, site, permits, tables, window, outputs)


def plan_run(run: Run) -> tuple[LiveSite, list[ProbedPermit]]:
    """The site for the run's rate, moved to now, and the permits the probes drive."""
    settings = run.settings
    if settings.rate > MAX_REPORTS_PER_SECOND * settings.sized_for():
        raise ValueError(f"rate {settings.rate:,} on a site sized for {settings.sized_for():,} records/s would have "
                         f"devices report more than {MAX_REPORTS_PER_SECOND} times a second; raise site_rate")
    run.start_ms = time.time_ns() // 1_000_000
    site = live_site(size_for_rate(settings.sized_for(), settings.permits), run.start_ms)
    permits = probed_permits(site, settings.probe_permits)
    size = site.size
    run.log(f"site: {size.permits} permits, {size.workers:,} workers, {size.devices:,} devices; "
            f"{len(permits)} probed permits; {run.placement.describe()}")
    return site, permits


def start_parts(run: Run, site: LiveSite) -> list[tuple[str, str, bytes]]:
    """Broker, PLC simulator, the site's tables on Kafka, and `interlock run` with the tables read and every PLC
    connected; returns the table rows published."""
    placement = run.placement
    run.broker = DevBrokerProcess(run.workdir, placement.others)
    run.plcs = PlcSimulatorThread(simulator_rows(site))
    site.point_plcs_at(run.plcs.ports)
    tables = site.table_rows()
    publish_rows(run.broker.bootstrap, tables)
    run.log(f"dev broker {run.broker.bootstrap}; {len(run.plcs.ports)} simulated PLCs; {len(tables):,} table rows "
            f"published")
    run.interlock = InterlockProcess(run.broker.bootstrap, run.workdir, placement.interlock,
                                     list(run.settings.interlock_args))
    run.interlock.wait_live()
    wait_until_loaded(run.interlock, tables, len(run.plcs.ports))
    run.log("interlock run has read the tables and connected to every PLC")
    return tables


def start_load(run: Run, site: LiveSite, permits: list[ProbedPermit]) -> None:
    """The load and the probed detectors' readings from one start time; the permits go active once the gas pre-test
    can pass, and every enable is 1 after the warm-up."""
    settings, bootstrap = run.settings, run.broker.bootstrap
    excluded = frozenset(p.detector for p in permits)
    run.load = LoadProducers(bootstrap, site, run.start_ms, settings.rate - len(permits),
                             settings.producer_count(run.placement), excluded, run.placement.others)
    run.driver = ProbeDriver(bootstrap, permits, run.plcs.enable, site.bump_ms, settings.seed, settings.probe_timeout_s)
    run.consumed_before_load = run.interlock.metrics().consumed_total()
    load_start = run.load.start()
    run.driver.start(load_start)
    sleep_until(load_start + ACTIVATE_AFTER_S)
    activations = site.activation_rows()
    publish_rows(bootstrap, activations)
    run.rows_during_load = len(activations)
    enabled_in = wait_until_enabled(run, site)
    run.log(f"load started at {settings.rate:,} records/s; every permit enabled {enabled_in:.1f} s after going "
            f"active; warming up {settings.warmup_s:g} s")
    time.sleep(settings.warmup_s)


@dataclass
class Window:
    """What the measured window saw: when it ran, the lag samples, the interlock's metrics and the records produced
    at both ends, and the CPU each process used."""

    start: float
    seconds: float
    lag: list[tuple[float, int]]
    metrics_before: InterlockMetricsView
    metrics_after: InterlockMetricsView
    records: int
    processes: list[ProcessUse]
    cpu_busy: dict[str, float]


def measure_window(run: Run) -> Window:
    """Probe for `settings.seconds` while sampling the lag; then let the probes in flight finish (the load goes on)."""
    placement = run.placement
    roles = {"interlock run": (run.interlock.process.pid, placement.interlock),
             "dev broker": (run.broker.process.pid, placement.others),
             "bench (PLC simulator, probes)": (os.getpid(), placement.others)}
    for n, pid in enumerate(run.load.pids):
        roles[f"load producer {n}"] = (pid, placement.others)
    cpu = CpuWatch({role: (pid, cpus or sorted(os.sched_getaffinity(0))) for role, (pid, cpus) in roles.items()})
    metrics_before, produced_before = run.interlock.metrics(), run.produced()
    start = time.time()
    cpu.start()
    run.driver.probe_until(start + run.settings.seconds)
    lag = sample_lag(run, start, start + run.settings.seconds)
    metrics_after, produced_after = run.interlock.metrics(), run.produced()
    processes, busy = cpu.stop()
    seconds = time.time() - start
    run.log(f"window of {seconds:.1f} s done; {run.driver.in_flight()} probes in flight")
    grace_end = time.monotonic() + run.settings.grace_s
    while run.driver.in_flight() and time.monotonic() < grace_end:
        time.sleep(0.05)
    return Window(start, seconds, lag, metrics_before, metrics_after, produced_after - produced_before, processes, busy)


@dataclass
class RunOutputs:
    """What the run left: the probes sent, the producers' figures, the interlock's commands and faults, and the
    simulator's write log."""

    probes: list[ProbeRecord]
    driver_failures: list[str]
    producers: list[LoadStats]
    commands: list[CommandView]
    faults: list[FaultView]
    writes: dict[tuple[str, str], list[ReceivedWrite]]
    trips: int


def finish(run: Run) -> RunOutputs:
    """Stop the load, the probes, the interlock and the simulator (before its watchdogs trip for the stopped
    interlock), and read what the interlock sent to Kafka."""
    producers = run.load.stop()
    run.load = None
    run.driver.stop()
    time.sleep(0.5)
    run.interlock.check_running()
    run.interlock.stop()
    writes, trips = plc_log(run.plcs)
    run.plcs.close()
    run.plcs = None
    bootstrap = run.broker.bootstrap
    commands = [msgspec.json.decode(v, type=CommandView) for v in read_topic(bootstrap, COMMANDS_TOPIC)]
    faults = [msgspec.json.decode(v, type=FaultView) for v in read_topic(bootstrap, FAULTS_TOPIC)]
    return RunOutputs(run.driver.probes, run.driver.failures, producers, commands, faults, writes, trips)


def summarise(run: Run, site: LiveSite, permits: list[ProbedPermit], tables: list, window: Window,
              outputs: RunOutputs) -> LiveLatencyReport:
    """The report: probes matched to their commands and coil writes, per path; rates, lag and verdicts; the commands
    and faults no probe explains; where everything ran."""
    settings = run.settings
    outcomes = match_probes(outputs.probes, outputs.commands, outputs.writes)
    hard_stop = path_latency(HARD_STOP, outcomes, window.start)
    enable = path_latency(ENABLE, outcomes, window.start)
    kinds, other_stops = command_counts(outputs.commands, outcomes)
    excluded = {p.detector for p in permits}
    probe_faults, other_faults = fault_counts(outputs.faults, excluded, {p.permit for p in permits})
    lag = lag_summary(window.lag)
    kept_pace = window.records >= PACE_SHARE * settings.rate * window.seconds
    kept_up = lag.end <= KEEP_UP_LAG_S * settings.rate and lag.slope_per_s <= KEEP_UP_SLOPE * settings.rate
    all_seen = hard_stop.sent == hard_stop.observed and enable.sent == enable.observed and hard_stop.sent > 0
    mix = topic_mix(site.plan, frozenset(excluded))
    per_cycle = sum(mix.values())
    size = site.size
    consumed = window.metrics_after.consumed_total() - window.metrics_before.consumed_total()
    return LiveLatencyReport(
        settings=settings,
        site=SiteSummary(size.permits, size.workers, size.devices, len(site.plc_rows()), len(permits), per_cycle,
                         {topic: count / per_cycle for topic, count in sorted(mix.items())}),
        window_s=window.seconds,
        offered_rate=settings.rate,
        achieved_rate=window.records / window.seconds,
        consumed_rate=consumed / window.seconds,
        records=window.records,
        lag=lag,
        producers=outputs.producers,
        hard_stop=hard_stop,
        enable=enable,
        time_split=time_split(window.metrics_before, window.metrics_after),
        commands=kinds,
        other_stops=other_stops,
        probe_faults=probe_faults,
        other_faults=other_faults,
        watchdog_trips=outputs.trips,
        processes=window.processes,
        cpu_busy=window.cpu_busy,
        other_cpu=other_cpu(window),
        producer_kept_pace=kept_pace,
        interlock_kept_up=kept_up,
        sustained=kept_pace and kept_up and all_seen,
        clean=not other_stops and not other_faults and not outputs.trips,
        notes=run_notes(settings, hard_stop, enable, outputs.driver_failures, outputs.producers, outputs.trips,
                        per_cycle, other_cpu(window)),
    )


def other_cpu(window: Window) -> float:
    """The machine's busy time in the window that this run's own processes do not account for, in cores."""
    mine = sum(use.cpu_share for use in window.processes if not use.role.startswith("other: "))
    return max(0.0, sum(window.cpu_busy.values()) - mine)


def command_counts(commands: list[CommandView], outcomes: list[ProbeOutcome]) -> tuple[dict[str, int], list[str]]:
    """Commands by kind, and the HARD_STOPs no probe triggered (with their reasons)."""
    probe_triggers = {(o.probe.topic, o.probe.partition, o.probe.offset) for o in outcomes}
    kinds: dict[str, int] = {}
    other_stops = []
    for command in commands:
        kinds[command.kind] = kinds.get(command.kind, 0) + 1
        trigger = command.trigger
        caused = trigger is not None and (trigger["topic"], trigger["partition"], trigger["offset"]) in probe_triggers
        if command.kind == HARD_STOP and not caused:
            other_stops.append(f"{command.permit}: {', '.join(r['code'] for r in command.reasons)}")
    return kinds, other_stops


def plc_log(plcs: PlcSimulatorThread) -> tuple[dict[tuple[str, str], list[ReceivedWrite]], int]:
    """The simulator's accepted writes by (PLC, item), and its watchdog trips so far."""
    writes: dict[tuple[str, str], list[ReceivedWrite]] = {}
    for write in plcs.sim.writes():
        writes.setdefault((write.plc, write.item), []).append(write)
    return writes, len(plcs.sim.trips())


def run_notes(settings: LiveLatencySettings, hard_stop: PathLatency, enable: PathLatency, failures: list[str],
              producers: list[LoadStats], trips: int, per_cycle: float, others: float) -> list[str]:
    notes = [
        f"each load device reports every {per_cycle / max(1, settings.rate):.2f} s (one round of the site's "
        f"{per_cycle:,.0f} records a cycle at the offered rate)",
    ]
    smallest = min(hard_stop.observed, enable.observed)
    if smallest < 1000:
        notes.append(f"with {smallest} probes on a path, p99.9 is its largest value or next to it (nearest rank)")
    if others >= 0.10:
        notes.append(f"{others:.0%} of a core went to other processes and the kernel in the window (see `where`): the "
                     f"figures are worse than this machine gives the run when it is quiet")
    if trips:
        notes.append(f"{trips} watchdog trip(s) at the PLC simulator: the interlock's watchdog writes stalled for 1 s")
    for stats in producers:
        if stats.undelivered or stats.failures:
            notes.append(f"load producer {stats.index}: {stats.undelivered} undelivered, failures {stats.failures[:3]}")
    notes += [f"probe driver: {failure}" for failure in failures[:5]]
    return notes


def wait_until_loaded(interlock: InterlockProcess, tables: list[tuple[str, str, bytes]], plcs: int,
                      timeout_s: float = 120.0) -> None:
    """Until the interlock has consumed every table row and its links to every PLC are up."""
    expected: dict[str, int] = {}
    for topic, _, _ in tables:
        expected[topic] = expected.get(topic, 0) + 1
    deadline = time.monotonic() + timeout_s
    while True:
        interlock.check_running()
        try:
            view = interlock.metrics()
        except OSError:
            view = None
        if view is not None and all(view.consumed.get(t, 0) >= n for t, n in expected.items()) and \
                sum(1 for up in view.plc_links_up.values() if up == 1) >= plcs:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"interlock run did not load the tables and connect to the {plcs} PLCs within "
                               f"{timeout_s} s; see {interlock.log_path}")
        time.sleep(0.2)


def wait_until_enabled(run: Run, site: LiveSite, timeout_s: float = 60.0) -> float:
    """Seconds until every permit's enable coil is 1 at the simulator."""
    enable_plc = {item: row["device"] for row in site.plc_rows() for item in row["modbus"]["enable_coils"]}
    coils = [(enable_plc[p["equipment"][0]], p["equipment"][0], p["permit"]) for p in site.plan.permits]
    started = time.monotonic()
    while True:
        waiting = [permit for plc, item, permit in coils if not run.plcs.enable(plc, item)]
        if not waiting:
            return time.monotonic() - started
        run.interlock.check_running()
        if time.monotonic() - started > timeout_s:
            stops = [c for c in (msgspec.json.decode(v, type=CommandView)
                                 for v in read_topic(run.broker.bootstrap, COMMANDS_TOPIC)) if c.permit in waiting]
            why = "; ".join(f"{c.permit} {c.kind} {', '.join(r['code'] for r in c.reasons)}" for c in stops[-5:])
            raise RuntimeError(f"{len(waiting)} permits not enabled within {timeout_s} s (e.g. {waiting[:5]}); "
                               f"their latest commands: {why or 'none'}")
        time.sleep(0.05)


def sample_lag(run: Run, window_start: float, window_end: float) -> list[tuple[float, int]]:
    """(seconds into the window, records produced minus consumed) once a second until the window ends."""
    samples = []
    while True:
        now = time.time()
        produced = run.produced()
        consumed = run.interlock.metrics().consumed_total() - run.consumed_before_load
        samples.append((round(now - window_start, 2), max(0, produced - consumed)))
        run.interlock.check_running()
        if now >= window_end:
            return samples
        time.sleep(max(0.0, min(1.0, window_end - time.time())))


def sleep_until(wall_s: float) -> None:
    while (wait := wall_s - time.time()) > 0:
        time.sleep(min(wait, 0.2))


# ---------------------------------------------------------------------------------------------- the maximum rate


def find_max_sustained(settings: LiveLatencySettings = LiveLatencySettings(), rates: tuple[int, ...] = FIND_MAX_RATES,
                       bisect_steps: int = BISECT_STEPS, log: Log = print) -> MaxRateReport:
    """Step the offered rate up until a run is not sustained or its HARD_STOP p99 reaches the target (when even the
    first rate fails, halve it down to MIN_RATE), then bisect between the last rate that passed and the first that
    did not. Each step is a fresh run; the site follows the rate unless `settings.site_rate` fixes it."""
    steps: list[FindMaxStep] = []
    reports: list[LiveLatencyReport] = []

    def attempt(rate: int) -> bool:
        log(f"-- {rate:,} records/s")
        report = measure_live_latency(msgspec.structs.replace(settings, rate=rate), log)
        step = find_max_step(report)
        log(format_step(step))
        steps.append(step)
        reports.append(report)
        return step.passed

    passed, failed, rig_limit = None, None, None
    for rate in rates:
        try:
            ok = attempt(rate)
        except RuntimeError as error:
            rig_limit = f"the rig could not run {rate:,} records/s: {error}"
            log(rig_limit)
            break
        if not ok:
            failed = rate
            break
        passed = rate
    if passed is None and failed is not None:
        rate = failed // 2
        while rate >= MIN_RATE:
            if attempt(rate):
                passed = rate
                break
            failed, rate = rate, rate // 2
    if passed is not None and failed is not None:
        for _ in range(bisect_steps):
            middle = (passed + failed) // 2
            if attempt(middle):
                passed = middle
            else:
                failed = middle
    return MaxRateReport(TARGET_P99_MS, passed, sorted(steps, key=lambda step: step.rate), reports, rig_limit)


def find_max_step(report: LiveLatencyReport) -> FindMaxStep:
    p99 = report.hard_stop.p99_ms
    meets = p99 is not None and p99 < TARGET_P99_MS
    reasons = []
    if not report.producer_kept_pace:
        reasons.append(f"producers reached {report.achieved_rate:,.0f} of {report.offered_rate:,} records/s")
    if not report.interlock_kept_up:
        reasons.append(f"lag ended at {report.lag.end:,} records, growing {report.lag.slope_per_s:,.0f}/s")
    if report.hard_stop.observed < report.hard_stop.sent or report.enable.observed < report.enable.sent:
        reasons.append("probes not observed")
    if not meets:
        reasons.append(f"HARD_STOP p99 {_ms(p99)} ms is not under {TARGET_P99_MS:g} ms")
    return FindMaxStep(report.offered_rate, report.achieved_rate, report.consumed_rate, report.lag.end, p99,
                       report.enable.p99_ms, report.sustained, report.sustained and meets,
                       "; ".join(reasons) or "sustained, p99 under target")


# ---------------------------------------------------------------------------------------------- printing


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_report(report: LiveLatencyReport) -> str:
    """The run's figures and setup as a table for a terminal."""
    s, site, split = report.settings, report.site, report.time_split
    all_seen = report.hard_stop.sent == report.hard_stop.observed and report.enable.sent == report.enable.observed
    lines = [
        "live latency: record produced to Kafka -> enable coil written at the PLC simulator",
        f"parts       dev broker (librdkafka mock cluster, own process); interlock run"
        f"{''.join(' ' + arg for arg in s.interlock_args)} (own process, metrics scraped every second); "
        f"{site.plcs} PLCs simulated by PlcSimulator (pymodbus) and the "
        f"probe driver in the bench process; {len(report.producers)} load producer process(es)",
        f"site        {site.permits} permits, each enable on its own simulated Modbus PLC; {site.workers:,} workers, "
        f"{site.devices:,} devices (sized for {s.sized_for():,} records/s, each device once a second); "
        f"{site.probe_permits} permits probed",
        "load        " + ", ".join(f"{topic} {share:.0%}" for topic, share in site.mix.items())
        + f" of {site.cycle_records:,.0f} records a round of the site",
        f"rate        offered {report.offered_rate:,}/s, produced {report.achieved_rate:,.0f}/s, consumed by the "
        f"interlock {report.consumed_rate:,.0f}/s over {report.window_s:.1f} s ({report.records:,} records) "
        f"after {s.warmup_s:g} s of warm-up",
        f"lag         start {report.lag.start:,}, end {report.lag.end:,}, max {report.lag.max:,} records; "
        f"trend {report.lag.slope_per_s:+,.0f} records/s",
        f"verdict     {'SUSTAINED' if report.sustained else 'NOT SUSTAINED'} (producers kept the pace: "
        f"{_yes(report.producer_kept_pace)}; interlock kept up: {_yes(report.interlock_kept_up)}; every probe "
        f"observed: {_yes(all_seen)}); {'clean' if report.clean else 'NOT CLEAN'} (faults, stops and watchdog "
        f"trips only the probes')",
        "",
        f"{'path':<10} {'probes':>7} {'observed':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} "
        f"{'min ms':>7} {'mean ms':>8}",
    ]
    for path in (report.hard_stop, report.enable):
        lines.append(f"{path.path:<10} {path.sent:>7} {path.observed:>9} {_ms(path.p50_ms):>8} {_ms(path.p99_ms):>8} "
                     f"{_ms(path.p999_ms):>9} {_ms(path.max_ms):>8} {_ms(path.min_ms):>7} {_ms(path.mean_ms):>8}")
        lines += [f"  missing: {m}" for m in path.missing[:5]]
    lines += [
        "",
        f"interlock metrics over the window ({split.commands} commands, means): Kafka timestamp -> command handed to "
        f"the sink {_ms(split.record_to_handed_ms)} ms, of which consumed -> handed {_ms(split.consumed_to_handed_ms)} "
        f"ms; Modbus write round trip {_ms(split.plc_write_ms)} ms ({split.plc_writes:,} writes); garbage "
        f"collections " + ", ".join(f"gen {g} {n}" for g, n in split.gc_collections.items()),
        "commands    " + ", ".join(f"{kind} {n}" for kind, n in sorted(report.commands.items()))
        + (f"; HARD_STOPs no probe caused: {len(report.other_stops)} ({'; '.join(report.other_stops[:3])})"
           if report.other_stops else "; no HARD_STOP other than the probes'"),
        "faults      probes': " + (_faults(report.probe_faults) or "none")
        + "; others: " + (_faults(report.other_faults) or "none"),
        f"watchdog    {report.watchdog_trips} trip(s) at the simulated PLCs",
        "where       " + ", ".join(f"{p.role} (pid {p.pid}" + (f", CPU {_cpu_list(p.cpus)}" if p.cpus else "")
                                   + f") {p.cpu_share:.0%}" for p in report.processes),
        "cpu busy    " + ", ".join(f"{name} {share:.0%}" for name, share in report.cpu_busy.items())
        + f"; {report.other_cpu:.0%} of a core not this run's [pinning: {s.pinning}]",
    ]
    lines += [f"note        {note}" for note in report.notes]
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _faults(counts: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{code} " + "/".join(f"{n} {state}" for state, n in sorted(states.items()))
                     for code, states in sorted(counts.items()))


def format_step(step: FindMaxStep) -> str:
    return (f"{step.rate:>9,}/s  produced {step.achieved_rate:>9,.0f}/s  consumed {step.consumed_rate:>9,.0f}/s  "
            f"lag end {step.lag_end:>7,}  HARD_STOP p99 {_ms(step.hard_stop_p99_ms):>7} ms  ENABLE p99 "
            f"{_ms(step.enable_p99_ms):>7} ms  {'PASS' if step.passed else 'FAIL'}: {step.why}")


def format_max(report: MaxRateReport) -> str:
    lines = [f"find-max: highest offered rate sustained with HARD_STOP p99 under {report.target_p99_ms:g} ms"]
    lines += [format_step(step) for step in report.steps]
    lines.append(f"maximum sustained: {report.max_rate:,} records/s" if report.max_rate is not None
                 else "maximum sustained: none of the rates tried")
    if report.rig_limit is not None:
        lines.append(f"(at least: {report.rig_limit})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- for the release gate


def measure(quick: bool = True, log: Log | None = None) -> SuiteResult:
    """The live latency at 20,000 records/s as a gate suite (quick: 10 s measured after 5 s of warm-up; full: 60 s
    after 10 s). Not wired into the gate: it needs the machine to itself for a minute or two."""
    settings = LiveLatencySettings(seconds=10.0, warmup_s=5.0) if quick else LiveLatencySettings(seconds=60.0)
    report = measure_live_latency(settings, log or (lambda _: None))
    return suite_result(report)


def suite_result(report: LiveLatencyReport) -> SuiteResult:
    """The run's figures as gate metrics (per path p50/p99/p99.9/max) with the run's setup in the notes."""
    label = f"{report.offered_rate // 1000}k"
    metrics = [Metric(f"live_consumed_records_per_s@{label}", report.consumed_rate, "records/s", "higher")]
    for path in (report.hard_stop, report.enable):
        name = path.path.lower()
        for stat in ("p50", "p99", "p999", "max"):
            value = getattr(path, f"{stat}_ms")
            if value is not None:
                metrics.append(Metric(f"live_{name}_{stat}_ms@{label}", value, "ms", "lower"))
    notes = format_report(report).splitlines()
    return SuiteResult("live_latency", metrics, [], notes)


# ---------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_latency", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=int, default=20_000, help="offered records/s of site telemetry (default 20000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds measured after warm-up (default 30)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load after every permit is enabled, "
                        "before measuring (default 10)")
    parser.add_argument("--permits", type=int, default=48, help="permits of the site, each on its own PLC (default 48)")
    parser.add_argument("--probe-permits", type=int, help="gas-tested permits to probe (default: all of them)")
    parser.add_argument("--producers", type=int, help="load producer processes (default: one per 50,000 records/s, "
                        "at most one per CPU the interlock does not have)")
    parser.add_argument("--pinning", choices=("split", "none"), default="split",
                        help="split: interlock run alone on the last CPU, the rest on the others (default); "
                             "none: the kernel places every process")
    parser.add_argument("--find-max", action="store_true", help="find the highest rate sustained with HARD_STOP p99 "
                        f"under {TARGET_P99_MS:g} ms (--rate is then ignored)")
    parser.add_argument("--rates", help="comma-separated rates for --find-max (default "
                        f"{','.join(str(r) for r in FIND_MAX_RATES)})")
    parser.add_argument("--interlock-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for interlock run, e.g. --interlock-arg=--snapshot-interval=30 "
                             "(repeatable)")
    parser.add_argument("--workdir", help="keep the broker's and the interlock's logs here")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    settings = LiveLatencySettings(rate=args.rate, seconds=args.seconds, warmup_s=args.warmup, permits=args.permits,
                                   probe_permits=args.probe_permits, producers=args.producers, pinning=args.pinning,
                                   interlock_args=args.interlock_arg, workdir=args.workdir)
    progress = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    if args.find_max:
        rates = tuple(int(r) for r in args.rates.split(",")) if args.rates else FIND_MAX_RATES
        result = find_max_sustained(settings, rates, log=progress)
        best = [r for r in result.reports if r.offered_rate == result.max_rate]
        if best:
            print(format_report(best[-1]), end="\n\n")
        print(format_max(result))
    else:
        result = measure_live_latency(settings, progress)
        print(format_report(result))
    if args.json:
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(result)) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
