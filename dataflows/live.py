"""`interlock run`: the interlock dataflow live on the site's Kafka, holding the equipment enables on the PLCs.

    Kafka input topics ─┐
                        ├─ route_to_shards ─ interlock (wall clock) ─ send ─┬─ Kafka output topics
    PLC link events  ───┘                                                   └─ PLC writers (Modbus TCP / OPC UA)

The decision core is the replay's (`dataflows.interlock_flow.build_flow`); what
is live is around it: records come from Kafka, timers fire on the wall clock
(a detector that goes silent trips its permit with nothing else arriving),
every command goes to Kafka and, at once, to the PLC writers, whose link state
comes back in as `interlock.plc_link` records so an unreachable PLC stops the
work it can no longer hold. The shard step learns the PLC rows of the CMDB
(it sees every table row) and keeps the writers' addresses current.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import logging
import threading
import time
from collections import deque
from typing import Callable, Iterable

import msgspec
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.operators import StatefulBatchLogic

from dataflows.interlock_flow import WALL_CLOCK, Chunk, SiteLogic, build_flow, in_time_order
from dataflows.kafka_io import KafkaOutputSink, KafkaRecordSource
from dataflows.metrics import InterlockMetrics
from dataflows.plc_link import PlcLinks
from dataflows.risk_model_file import add_risk_model_argument
from interlock.config import SiteConfig
from interlock.risk_model import RiskModel
from interlock.shard_plan import SINGLE, ShardPlan
from interlock.shard_routing import RoutedChunk
from interlock.site import COMMANDS_TOPIC, PLC_LINK_TOPIC, Output, Site
from schemas.envelope import TOPICS, Record
from schemas.payloads import DeviceRow

logger = logging.getLogger(__name__)

_DEVICE_ROW = msgspec.json.Decoder(DeviceRow)
_COMMAND = msgspec.json.Decoder(dict)
_EVENT = msgspec.json.Encoder()


class PlcLinkEvents:
    """The PLC writers' link changes, queued (from the writers' thread) as `interlock.plc_link` records."""

    def __init__(self, wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._queue: deque[Record] = deque()
        self._offsets = itertools.count()
        self._wall_ms = wall_ms
        self._lock = threading.Lock()

    def on_link(self, plc: str, up: bool, detail: str) -> None:
        payload = _EVENT.encode({"plc": plc, "up": up, "detail": detail})
        with self._lock:
            self._queue.append(Record(PLC_LINK_TOPIC, 0, next(self._offsets), self._wall_ms(), plc, payload))

    def take(self) -> list[Record]:
        with self._lock:
            taken = list(self._queue)
            self._queue.clear()
        return taken


class _LinkEventPartition(StatelessSourcePartition[Chunk]):
    def __init__(self, events: PlcLinkEvents) -> None:
        self.events = events

    def next_batch(self) -> list[Chunk]:
        taken = self.events.take()
        return [taken] if taken else []

    def next_awake(self) -> datetime.datetime | None:
        return datetime.datetime.now(tz=datetime.timezone.utc) + datetime.timedelta(milliseconds=20)


class PlcLinkEventSource(DynamicSource[Chunk]):
    """The link events of this process's PLC writers as chunks of records (looked at every 20 ms)."""

    def __init__(self, events: PlcLinkEvents) -> None:
        self.events = events

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _LinkEventPartition:
        return _LinkEventPartition(self.events)


class LiveSiteLogic(SiteLogic):
    """The shard's Site on the wall clock, keeping the PLC writers' rows current and the metrics of its decisions."""

    def __init__(self, site: Site, clock: str, *, links: PlcLinks | None, metrics: InterlockMetrics | None,
                 resumed: bool = False) -> None:
        super().__init__(site, clock, resumed=resumed)
        self.links = links
        self.metrics = metrics

    def on_batch(self, chunks: list[Chunk | RoutedChunk]) -> tuple[Iterable[list[Output]], bool]:
        consumed_at = time.time()
        routed = bool(chunks) and isinstance(chunks[0], RoutedChunk)
        if not routed:  # with several shards, the router has put them in time order
            chunks = in_time_order(chunks)
        if self.links is not None:
            for chunk in chunks:
                for record in (chunk.records if routed else chunk):
                    if getattr(record, "topic", None) == "cmdb.devices":
                        self._learn_plc_row(record)
        emitted, retain = super().on_batch(chunks)
        if self.metrics is not None:
            for outputs in emitted:
                self.metrics.observe_outputs(outputs, consumed_at)
        return emitted, retain

    def on_notify(self) -> tuple[Iterable[list[Output]], bool]:
        emitted, retain = super().on_notify()
        if self.metrics is not None:
            for outputs in emitted:
                self.metrics.observe_outputs(outputs, None)
        return emitted, retain

    def _learn_plc_row(self, record: Record) -> None:
        learn_plc_row(self.links, record)


def learn_plc_row(links: PlcLinks, record: Record) -> None:
    """Keep the PLC writers' addresses at the CMDB's PLC rows (a tombstone closes the PLC's link)."""
    if record.payload is None:
        if record.key is not None and record.key in links.plcs():
            links.remove(record.key)
        return
    try:
        row = _DEVICE_ROW.decode(record.payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return  # the Site raises TABLE_ROW_INVALID for it
    if row.family == "plc":
        links.update_row(row)


class PlcWriterLogic(StatefulBatchLogic[Record | bytes, None, None]):
    """With several decision shards: every shard's commands and the CMDB's rows reach this one step, whose process
    drives every PLC (one writer of each PLC's enables and watchdog, whichever process decided the permit). Its state
    is the live links, not snapshotted: after a restart the shards' resume stops rewrite what matters."""

    def __init__(self, links: PlcLinks) -> None:
        self.links = links

    def on_batch(self, items: list[Record | bytes]) -> tuple[Iterable[None], bool]:
        for item in items:
            if isinstance(item, Record):
                learn_plc_row(self.links, item)
            else:
                self.links.apply(_COMMAND.decode(item))
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> None:
        return None


def command_to_plcs(links: PlcLinks) -> Callable[[Output], None]:
    """The sink's hook: every command goes to the PLC writers as it is handed to Kafka."""

    def send(output: Output) -> None:
        if output.topic == COMMANDS_TOPIC:
            links.apply(_COMMAND.decode(output.value))

    return send


def build_live_flow(
    bootstrap: str,
    config: SiteConfig,
    *,
    kafka_settings: dict[str, str] | None = None,
    links: PlcLinks | None = None,
    link_events: PlcLinkEvents | None = None,
    metrics: InterlockMetrics | None = None,
    streams_from: str = "end",
    risk_model: RiskModel | None = None,
    plan: ShardPlan = SINGLE,
    workers: int = 1,
) -> Dataflow:
    """The live dataflow: Kafka in (plus the PLC writers' link events), decisions on the wall clock, Kafka and PLCs out.
    One shard writes the PLCs as its commands go to Kafka; several send every command to one PLC writer step."""
    on_records = metrics.count_consumed if metrics is not None else None
    source = KafkaRecordSource(bootstrap, TOPICS, settings=kafka_settings, on_records=on_records, streams_from=streams_from)
    sharded = plan.shards > 1
    in_sink = links is not None and not sharded
    sink = KafkaOutputSink(bootstrap, settings=kafka_settings, on_output=command_to_plcs(links) if in_sink else None)
    logic = functools.partial(LiveSiteLogic, links=links if in_sink else None, metrics=metrics)
    extra = PlcLinkEventSource(link_events) if link_events is not None else None
    writer = (lambda resume: PlcWriterLogic(links)) if links is not None and sharded else None
    return build_flow(source, sink, config, clock=WALL_CLOCK, logic=logic, extra_source=extra, risk_model=risk_model,
                      plan=plan, plc_writer=writer, workers=workers)


def _kafka_settings(path: str | None, pairs: list[str]) -> dict[str, str]:
    """librdkafka settings (TLS, SASL, timeouts) from a TOML file of `key = value` and `-X key=value` pairs."""
    from dataflows.kafka_io import settings_from_pairs

    settings: dict[str, str] = {}
    if path is not None:
        with open(path, "rb") as handle:
            settings.update({key: str(value) for key, value in msgspec.toml.decode(handle.read()).items()})
    settings.update(settings_from_pairs(pairs))
    return settings


def run(args) -> int:
    """`interlock run`: until SIGINT/SIGTERM, or `--duration` seconds."""
    from pathlib import Path

    from bytewax._bytewax import cli_main
    from bytewax.errors import BytewaxRuntimeError
    from bytewax.recovery import RecoveryConfig, init_db_dir

    from dataflows.cli import _config
    from dataflows.metrics import live_registry, start_exporter
    from dataflows.plc_link import PlcLinkConfig
    from dataflows.risk_model_file import load_risk_model

    config = _config(args.config)
    risk_model = load_risk_model(args.risk_model)
    settings = _kafka_settings(args.kafka_config, args.X or [])
    plc_config = PlcLinkConfig()
    if args.plc_config is not None:
        with open(args.plc_config, "rb") as handle:
            plc_config = PlcLinkConfig.from_mapping(msgspec.toml.decode(handle.read()))
    metrics = InterlockMetrics(live_registry())
    if args.metrics_port is not None:
        start_exporter(args.metrics_port, metrics.registry)
    events = PlcLinkEvents()

    def on_link(plc: str, up: bool, detail: str) -> None:
        events.on_link(plc, up, detail)
        metrics.set_plc_link(plc, up)
        logger.warning("PLC %s link %s %s", plc, "up" if up else "DOWN", detail)

    def on_write(plc: str, item: str, seconds: float, ok: bool) -> None:
        metrics.observe_plc_write(plc, seconds, ok)
        if ok and item == "watchdog":
            metrics.watchdog_written(plc)

    links = PlcLinks(config=plc_config, on_link=on_link, on_write=on_write)
    addresses = cluster_addresses(args.addresses) if args.addresses else None
    workers = len(addresses or [None])
    plan = ShardPlan(args.shards if args.shards is not None else workers)
    flow = build_live_flow(args.bootstrap, config, kafka_settings=settings, links=links, link_events=events,
                           metrics=metrics, streams_from=args.streams_from, risk_model=risk_model, plan=plan,
                           workers=workers)
    recovery = None
    if args.recovery_dir is not None:
        directory = Path(args.recovery_dir)
        if args.init_recovery and not any(directory.glob("part-*.sqlite3")):
            directory.mkdir(parents=True, exist_ok=True)
            init_db_dir(directory, 1)
        recovery = RecoveryConfig(directory, backup_interval=datetime.timedelta(0))
    if args.duration is not None:
        timer = threading.Timer(args.duration, lambda: __import__("_thread").interrupt_main())
        timer.daemon = True
        timer.start()
    links.start()
    print(f"interlock live on {args.bootstrap}" + (f", metrics on :{args.metrics_port}" if args.metrics_port else "")
          + (f", {plan.shards} decision shards" if plan.shards > 1 else ""), flush=True)
    try:
        cli_main(flow, workers_per_process=1, process_id=args.process_id, addresses=addresses,
                 epoch_interval=epoch_interval(args.snapshot_interval, recovery is not None), recovery_config=recovery)
    except KeyboardInterrupt:
        pass
    except BytewaxRuntimeError as error:
        if "signal received" not in str(error):
            raise
    finally:
        links.stop()
    return 0


def cluster_addresses(given: str) -> list[str]:
    """`host:port;host:port`, or a file with one `host:port` a line (blank lines and `#` comments skipped)."""
    import os

    if os.path.isfile(given):
        with open(given, encoding="utf-8") as handle:
            lines = [line.split("#", 1)[0].strip() for line in handle]
        return [line for line in lines if line]
    return [address.strip() for address in given.split(";") if address.strip()]


NO_RECOVERY_EPOCH = datetime.timedelta(days=1)
"""Bytewax snapshots every stateful step at each epoch close, recovery or not; without recovery nothing reads the
snapshot, and pickling a large site's state stalls decisions (and the PLC writers' thread) for tenths of a second."""


def epoch_interval(snapshot_interval_s: float, recovering: bool) -> datetime.timedelta:
    """The Bytewax epoch: the snapshot interval with recovery, one day without (outputs do not wait for epochs here)."""
    if not recovering:
        return NO_RECOVERY_EPOCH
    if snapshot_interval_s <= 0:
        raise ValueError(f"--snapshot-interval {snapshot_interval_s}: give a positive number of seconds, e.g. 10")
    return datetime.timedelta(seconds=snapshot_interval_s)


def add_run_command(commands) -> None:
    p = commands.add_parser("run", help="run the interlock live on Kafka, holding the enables on the PLCs")
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers (interlock dev-broker prints one)")
    p.add_argument("--config", help="site settings (TOML); see docs/config.md")
    add_risk_model_argument(p)
    p.add_argument("--kafka-config", help="librdkafka settings (TOML key = value: TLS, SASL)")
    p.add_argument("-X", action="append", metavar="KEY=VALUE", help="one librdkafka setting (repeatable)")
    p.add_argument("--plc-config", help="PLC writer settings (TOML; see docs/live.md)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--recovery-dir", help="snapshot state here; a restart resumes from it")
    p.add_argument("--init-recovery", action="store_true", help="create the recovery partitions if the folder has none")
    p.add_argument("--snapshot-interval", type=float, default=10.0,
                   help="seconds between snapshots with --recovery-dir (default 10; each stalls decisions while the "
                        "state is pickled: docs/live.md)")
    p.add_argument("--process-id", type=int, help="this process's index in a cluster (with --addresses)")
    p.add_argument("--addresses", help="host:port of every cluster process, ';'-separated, or a file of one a line")
    p.add_argument("--shards", type=int,
                   help="decision shards the zones are spread over (default: one per cluster process; docs/live.md)")
    p.add_argument("--streams-from", choices=("end", "beginning"), default="end",
                   help="where telemetry streams start on a fresh run (tables always from the beginning)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (tests, demos)")
    p.set_defaults(run=run)
