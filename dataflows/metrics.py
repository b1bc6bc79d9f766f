"""Prometheus metrics of a live interlock process, and the HTTP exporter Prometheus scrapes.

Every metric lives in the `CollectorRegistry` given to `InterlockMetrics` (a fresh one when none is
given), never only in prometheus-client's global registry, so tests and several Sites in one process
stay apart. Names follow Prometheus conventions: base units (`_seconds`), counters end in `_total`.
deploy/prometheus/rules.yml alerts on these names; rename one there too.

How a live run uses it (one `InterlockMetrics` per process)::

    metrics = InterlockMetrics(live_registry())
    start_exporter(port, metrics.registry)
    metrics.observe_consumed(chunk)                     # every chunk of input records, once consumed
    metrics.observe_outputs(outputs, consumed_at_s)     # right after the outputs are handed to the producer
    metrics.add_plc("PLC-3")                            # once per configured PLC link
    metrics.observe_plc_write("PLC-3", seconds, ok)     # every enable/watchdog write
    metrics.watchdog_written("PLC-3")                   # every successful watchdog write
    metrics.set_plc_link("PLC-3", up)                   # on connect / disconnect
    metrics.observe_librdkafka_stats(stats_json)        # the consumer's `stats_cb` (statistics.interval.ms)

Metrics must never stop a decision: nothing here raises on odd input; an output it cannot read is
counted in `interlock_output_decode_errors_total` and skipped.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from typing import Callable, Iterable
from wsgiref.simple_server import WSGIServer

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from interlock.commands import ALERT, ENABLE, HARD_STOP
from interlock.fault_catalog import CATALOG
from interlock.site import COMMANDS_TOPIC, FAULTS_TOPIC, Output
from schemas.envelope import TOPICS, Record, UnreadableRecord

DECISION_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
"""Seconds, 0.5 ms to 10 s: fine below the 0.5 s budget (alert threshold on a bucket edge), coarse above it."""

PLC_WRITE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds: a LAN Modbus/OPC UA write takes a few ms; 0.25 s is the watchdog period, so writes near it are trouble."""

RECORD_TS_CLOCK = "record_ts"
"""Latency measured from the input record's Kafka timestamp (broker arrival, protocols §0): the end-to-end figure."""
CONSUMED_CLOCK = "consumed"
"""Latency measured from when this process consumed the input: the in-process part (decode, decide, produce)."""


class _CommandFields(msgspec.Struct):
    """The two fields of an `interlock.commands` value the metrics need; other fields are ignored."""

    ts: float
    kind: str


class _FaultFields(msgspec.Struct):
    """The three fields of an `interlock.faults` value the metrics need; other fields are ignored."""

    grade: str
    code: str
    state: str


class _PartitionStats(msgspec.Struct):
    partition: int
    consumer_lag: int = -1


class _TopicStats(msgspec.Struct):
    partitions: dict[str, _PartitionStats] = {}


class _ClientStats(msgspec.Struct):
    """The part of librdkafka's statistics JSON (STATISTICS.md) that carries consumer lag per partition."""

    topics: dict[str, _TopicStats] = {}


_COMMAND = msgspec.json.Decoder(_CommandFields)
_FAULT = msgspec.json.Decoder(_FaultFields)
_CLIENT_STATS = msgspec.json.Decoder(_ClientStats)


class _WatchdogAges:
    """Collector of `interlock_plc_watchdog_age_seconds`, computed at scrape time from the last successful write.

    Computed when scraped rather than set when written: a watchdog writer that hangs stops setting
    gauges, so a set-on-write age would freeze at a healthy value exactly when it matters.
    """

    NAME = "interlock_plc_watchdog_age_seconds"
    HELP = "Seconds since the last successful watchdog write to the PLC (the PLC trips when it stops changing)."

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.last_write: dict[str, float] = {}

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.NAME, self.HELP, labels=["plc"])]

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["plc"])
        now = self.clock()
        for plc, written in sorted(self.last_write.items()):
            family.add_metric([plc], max(0.0, now - written))
        return [family]


class InterlockMetrics:
    """The interlock's metrics in one registry, with the few calls the live run makes."""

    def __init__(self, registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.time) -> None:
        """`clock` is the wall clock in seconds since the epoch (injectable for tests)."""
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clock = clock
        r = self.registry
        self.decision_latency = Histogram(
            "interlock_decision_latency_seconds",
            "Time from an input to the command it caused, when the command is handed to the producer. "
            "clock=record_ts: from the record's Kafka timestamp (end to end); clock=consumed: from consumption.",
            ["clock"], buckets=DECISION_LATENCY_BUCKETS, registry=r,
        )
        self.records_consumed = Counter(
            "interlock_records_consumed", "Input records consumed, by topic.", ["topic"], registry=r,
        )
        self.commands = Counter(
            "interlock_commands", "Commands sent on interlock.commands, by kind.", ["kind"], registry=r,
        )
        self.faults = Counter(
            "interlock_faults",
            "Fault records sent on interlock.faults, by grade, code and state (raised or cleared). "
            "An escalation is re-sent as raised at the higher grade and counted again.",
            ["grade", "code", "state"], registry=r,
        )
        self.output_decode_errors = Counter(
            "interlock_output_decode_errors",
            "Command or fault outputs the metrics could not read (not counted elsewhere); should stay 0.",
            ["topic"], registry=r,
        )
        self.plc_write_duration = Histogram(
            "interlock_plc_write_duration_seconds", "Duration of one write (enables or watchdog) to a PLC.",
            ["plc"], buckets=PLC_WRITE_BUCKETS, registry=r,
        )
        self.plc_write_failures = Counter(
            "interlock_plc_write_failures", "Writes to a PLC that failed or timed out.", ["plc"], registry=r,
        )
        self.plc_link_up = Gauge(
            "interlock_plc_link_up", "1 while the Modbus TCP / OPC UA link to the PLC is connected, else 0.",
            ["plc"], registry=r,
        )
        self.consumer_lag = Gauge(
            "interlock_consumer_lag_records",
            "Records behind the end of the partition, as the Kafka consumer last reported.",
            ["topic", "partition"], registry=r,
        )
        self.watchdog_ages = _WatchdogAges(clock)
        r.register(self.watchdog_ages)
        self._record_ts_latency = self.decision_latency.labels(RECORD_TS_CLOCK)
        self._consumed_latency = self.decision_latency.labels(CONSUMED_CLOCK)
        # Series exist from the start at 0, so increase()/rate() see the first event and silence is visible.
        self._consumed_by_topic = {topic: self.records_consumed.labels(topic) for topic in TOPICS}
        self._commands_by_kind = {kind: self.commands.labels(kind) for kind in (ENABLE, HARD_STOP, ALERT)}
        for code in CATALOG:
            self.faults.labels("CRITICAL", code, "raised")
        for topic in (COMMANDS_TOPIC, FAULTS_TOPIC):
            self.output_decode_errors.labels(topic)

    def count_consumed(self, topic: str, count: int = 1) -> None:
        """Add `count` records consumed from `topic`."""
        child = self._consumed_by_topic.get(topic)
        if child is None:
            child = self._consumed_by_topic[topic] = self.records_consumed.labels(topic)
        child.inc(count)

    def observe_consumed(self, records: Iterable[Record | UnreadableRecord]) -> None:
        """Count a chunk of input records by topic (one counter update per topic, not per record)."""
        for topic, count in Tally(r.topic for r in records if type(r) is Record).items():
            self.count_consumed(topic, count)

    def observe_outputs(self, outputs: Iterable[Output], consumed_at_s: float | None, now_s: float | None = None) -> None:
        """Count the commands and faults among the core's outputs and time each command.

        Call right after the outputs are handed to the producer. `consumed_at_s` is when the input
        that caused them was consumed (wall clock, seconds since the epoch), None for timer-driven
        outputs; `now_s` defaults to the clock. A command's `ts` (ms) is its decision time on the
        record clock, so `now_s - ts` is the latency from the record's broker timestamp (for a timer,
        from the moment it fell due). Negative values (broker clock ahead of this host) count as 0.
        """
        now = self.clock() if now_s is None else now_s
        for output in outputs:
            topic = output.topic
            if topic == COMMANDS_TOPIC:
                try:
                    command = _COMMAND.decode(output.value)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    self.output_decode_errors.labels(topic).inc()
                    continue
                child = self._commands_by_kind.get(command.kind)
                if child is None:
                    child = self._commands_by_kind[command.kind] = self.commands.labels(command.kind)
                child.inc()
                self._record_ts_latency.observe(max(0.0, now - command.ts / 1000.0))
                if consumed_at_s is not None:
                    self._consumed_latency.observe(max(0.0, now - consumed_at_s))
            elif topic == FAULTS_TOPIC:
                try:
                    fault = _FAULT.decode(output.value)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    self.output_decode_errors.labels(topic).inc()
                    continue
                self.faults.labels(fault.grade, fault.code, fault.state).inc()

    def add_plc(self, plc: str) -> None:
        """Make a configured PLC's series exist before its first write: link down, no failures, watchdog age from now."""
        self.plc_link_up.labels(plc).set(0)
        self.plc_write_failures.labels(plc)
        self.plc_write_duration.labels(plc)
        self.watchdog_ages.last_write.setdefault(plc, self.clock())

    def observe_plc_write(self, plc: str, seconds: float, ok: bool = True) -> None:
        """Time one write to a PLC; a failed or timed-out write also counts as a failure."""
        self.plc_write_duration.labels(plc).observe(seconds)
        if not ok:
            self.plc_write_failures.labels(plc).inc()

    def watchdog_written(self, plc: str, at_s: float | None = None) -> None:
        """Note a successful watchdog write (wall clock, seconds since the epoch; default now)."""
        self.watchdog_ages.last_write[plc] = self.clock() if at_s is None else at_s

    def set_plc_link(self, plc: str, up: bool) -> None:
        """Record whether the link to a PLC is connected."""
        self.plc_link_up.labels(plc).set(1 if up else 0)

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Record a partition's consumer lag in records."""
        self.consumer_lag.labels(topic, str(partition)).set(lag)

    def observe_librdkafka_stats(self, stats_json: str | bytes) -> None:
        """Take consumer lag from librdkafka's statistics JSON (`stats_cb`); unknown lag (-1) and partition -1 are skipped."""
        try:
            stats = _CLIENT_STATS.decode(stats_json)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        for topic, topic_stats in stats.topics.items():
            for partition in topic_stats.partitions.values():
                if partition.partition >= 0 and partition.consumer_lag >= 0:
                    self.set_consumer_lag(topic, partition.partition, partition.consumer_lag)


def live_registry() -> CollectorRegistry:
    """A registry for a live process, already holding process (CPU, memory, fds), platform and GC metrics."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def start_exporter(port: int, registry: CollectorRegistry, addr: str = "0.0.0.0") -> tuple[WSGIServer, threading.Thread]:
    """Serve `registry` at http://addr:port/metrics from a daemon thread; port 0 picks a free port (`server.server_port`)."""
    return start_http_server(port, addr=addr, registry=registry)
