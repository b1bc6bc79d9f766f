"""The interlock dataflow: records in, decisions out, for replays and live runs alike.

    one shard (the embedded default):
        records (chunks) -> route_to_shards -> interlock (stateful) -> send
    several decision shards (a cluster's workers share them):
        records (chunks) -> to_router -> route (stateful) -> to_shards -> interlock (stateful, per shard) -> send

Items are chunks of records, not single records, so Bytewax's per-item cost
is paid once per chunk. Each shard holds an `interlock.site.Site`; with several
shards the router (`interlock.shard_routing`) sends each record to the shards
whose decisions read it, and each Site decides the permits of its zones.
Timers run on the record clock for replays (the Site advances its clock from
the records, and a shard's from the router's clock) or on the wall clock for
live runs (Bytewax `notify_at`/`on_notify`).
"""

from __future__ import annotations

import datetime
import pickle
import time
from typing import Callable, Iterable

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from interlock.config import DEFAULT_CONFIG, SiteConfig
from dataflows.worker_placement import shard_keys
from interlock.risk_model import RiskModel
from interlock.shard_plan import SINGLE, ShardPlan
from interlock.shard_routing import RoutedChunk, ShardRouter
from interlock.site import COMMANDS_TOPIC, Output, Site
from interlock.state_version import STATE_VERSION
from schemas.envelope import Record, UnreadableRecord

SINGLE_SHARD = "site"
ROUTER = "router"
RECORD_CLOCK = "record"
WALL_CLOCK = "wall"

Chunk = list[Record | UnreadableRecord]


def single_shard(chunks: list[Chunk]) -> Iterable[tuple[str, Chunk]]:
    """Every chunk to the one shard of the embedded default."""
    return [(SINGLE_SHARD, chunk) for chunk in chunks]


def _epoch_ms_now() -> int:
    return time.time_ns() // 1_000_000


def to_router(chunks: list[Chunk]) -> Iterable[tuple[str, Chunk]]:
    """Every chunk to the router, which sends its records on to the decision shards."""
    return [(ROUTER, chunk) for chunk in chunks]


def _record_ts(record: Record | UnreadableRecord) -> int:
    return record.ts


def in_time_order(chunks: list[Chunk]) -> list[Chunk]:
    """Chunks of different partitions delivered together, as one chunk in record time order (a live run decides
    them so); one chunk as it is."""
    if len(chunks) <= 1:
        return chunks
    return [sorted((record for chunk in chunks for record in chunk), key=_record_ts)]


class RouterLogic(StatefulBatchLogic[Chunk, tuple[str, RoutedChunk], bytes]):
    """The router inside Bytewax: one RoutedChunk per decision shard per batch, keyed by the shard's key (the keys
    are kept with the router's state, so a restart on another number of workers finds every shard's snapshot)."""

    def __init__(self, router: ShardRouter, clock: str) -> None:
        self.router = router
        self.clock = clock

    def on_batch(self, chunks: list[Chunk]) -> tuple[Iterable[tuple[str, RoutedChunk]], bool]:
        if self.clock == WALL_CLOCK:
            chunks = in_time_order(chunks)
        keys = self.router.keys
        return [(keys[routed.shard], routed) for routed in self.router.route(chunks)], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps((STATE_VERSION, self.router), protocol=pickle.HIGHEST_PROTOCOL)


class SiteLogic(StatefulBatchLogic[Chunk | RoutedChunk, list[Output], bytes]):
    """One shard's Site inside Bytewax: feeds it chunks, fires its timers on the chosen clock, snapshots it. The Site of
    a decision shard is made when its first RoutedChunk says which shard it is."""

    def __init__(self, site: Site | Callable[[int], Site], clock: str, wall_ms: Callable[[], int] = _epoch_ms_now,
                 resumed: bool = False) -> None:
        self.make_site = site if not isinstance(site, Site) else None
        self.site: Site | None = site if isinstance(site, Site) else None
        self.clock = clock
        self.wall_ms = wall_ms
        self.pending: list[Output] = (
            self.site.resume(wall_ms()) if resumed and clock == WALL_CLOCK and self.site is not None else [])
        """What a live restart said (enabled permits stopped and latched), sent with the first outputs."""

    def _with_pending(self, out: list[Output]) -> list[Output]:
        if self.pending:
            out[:0], self.pending = self.pending, []
        return out

    def on_batch(self, chunks: list[Chunk | RoutedChunk]) -> tuple[Iterable[list[Output]], bool]:
        out: list[Output] = self._with_pending([])
        for chunk in chunks:
            if isinstance(chunk, RoutedChunk):
                site = self.site
                if site is None:
                    site = self.site = self.make_site(chunk.shard)
                out.extend(site.process_batch(chunk.records))
                out.extend(site.advance(chunk.until))
            else:
                out.extend(self.site.process_batch(chunk))
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[list[Output]], bool]:
        out = self._with_pending(self.site.advance(self.wall_ms()))
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime.datetime | None:
        if self.clock != WALL_CLOCK:
            return None
        if self.pending:
            return datetime.datetime.now(tz=datetime.timezone.utc)
        wake = self.site.next_wake()
        if wake is None:
            return None
        return datetime.datetime.fromtimestamp(wake / 1000, tz=datetime.timezone.utc)

    def snapshot(self) -> bytes:
        return pickle.dumps((STATE_VERSION, self.site), protocol=pickle.HIGHEST_PROTOCOL)


class SnapshotMismatch(RuntimeError):
    """The recovery folder holds a snapshot this release cannot restore."""


def restore_site(snapshot: bytes) -> Site:
    """The Site of a snapshot of this release's state version; any other is refused with what to do."""
    return _restore(snapshot, Site)


def restore_router(snapshot: bytes) -> ShardRouter:
    """The router of a snapshot of this release's state version; any other is refused with what to do."""
    return _restore(snapshot, ShardRouter)


def restore_for(snapshot: bytes, plan: ShardPlan, kind: type = Site):
    """A shard's Site (or the router) of a snapshot written with the same decision shards as `plan`; another count is
    refused: a shard started afresh would forget the latched trips of the permits it takes over."""
    state = _restore(snapshot, kind)
    if state.plan != plan:
        raise SnapshotMismatch(
            f"the recovery folder was written with {state.plan.shards} decision shard(s), this start asks for "
            f"{plan.shards}: start with --shards {state.plan.shards}, or change the shards at a planned stop "
            f"(docs/live.md, 'Restarts and recovery')"
        )
    return state


def _restore(snapshot: bytes, kind: type):
    try:
        version, state = pickle.loads(snapshot)
    except Exception:  # an older release's snapshot: a bare Site, or its structs' fields in other positions
        version, state = None, None
    if version != STATE_VERSION or not isinstance(state, kind):
        written = f"state version {version}" if isinstance(version, int) else "a release before versioned snapshots"
        raise SnapshotMismatch(
            f"the recovery folder holds a snapshot of {written}; this release restores state version {STATE_VERSION} "
            f"only: upgrade at a planned stop (docs/live.md, 'Restarts and recovery'): stop every permit, end the old "
            f"process, empty the recovery folder and start this release with --init-recovery"
        )
    return state


def build_flow(
    source: Source[Chunk],
    sink: Sink[tuple[str, list[Output]]],
    config: SiteConfig = DEFAULT_CONFIG,
    clock: str = RECORD_CLOCK,
    logic: Callable[..., SiteLogic] | None = None,
    extra_source: Source[Chunk] | None = None,
    risk_model: RiskModel | None = None,
    plan: ShardPlan = SINGLE,
    plc_writer: Callable[[object | None], StatefulBatchLogic] | None = None,
    workers: int = 1,
) -> Dataflow:
    """The interlock dataflow from `source` (and `extra_source`, merged in) to `sink`; `logic` swaps in a SiteLogic
    subclass (e.g. an instrumented one, or the live one). `risk_model` turns zone risk grading on. `plan` splits the
    decisions over its shards, with a router in front (one shard: no router). `plc_writer` builds the one step, keyed
    `PLC_WRITERS`, that receives every command and every CMDB record: with several shards the PLCs are written from
    one place, so each PLC has a single writer of its enables and watchdog. `workers` (of the whole cluster) places
    shard i on worker i % workers."""
    logic_class = logic or SiteLogic

    def build_logic(resume: bytes | None) -> SiteLogic:
        if resume is not None:
            return logic_class(restore_for(resume, plan), clock, resumed=True)
        if plan.shards == 1:
            return logic_class(Site(config, risk_model), clock)
        return logic_class(lambda shard: Site(config, risk_model, shard, plan), clock)

    def build_router(resume: bytes | None) -> RouterLogic:
        if resume is not None:
            router = restore_for(resume, plan, ShardRouter)
        else:
            router = ShardRouter(plan, config)
            router.keys = shard_keys(plan.shards, workers)
        return RouterLogic(router, clock)

    flow = Dataflow("interlock")
    chunks = op.input("records", flow, source)
    if extra_source is not None:
        chunks = op.merge("with_plc_links", chunks, op.input("plc_links", flow, extra_source))
    if plan.shards == 1:
        keyed = op.flat_map_batch("route_to_shards", chunks, single_shard)
    else:
        routed = op.stateful_batch("route", op.flat_map_batch("to_router", chunks, to_router), build_router)
        keyed = op.map("to_shards", routed, _shard_item)
    decisions = op.stateful_batch("interlock", keyed, build_logic)
    op.output("send", decisions, sink)
    if plc_writer is not None:
        rows = op.flat_map("cmdb_rows", chunks, _cmdb_rows)
        commands = op.flat_map("commands", decisions, _commands)
        op.stateful_batch("write_plcs", op.merge("to_plc_writers", rows, commands), plc_writer)
    return flow


PLC_WRITERS = "plcs"


def _cmdb_rows(chunk: Chunk) -> list[tuple[str, Record]]:
    return [(PLC_WRITERS, record) for record in chunk if getattr(record, "topic", None) == "cmdb.devices"]


def _commands(shard_outputs: tuple[str, list[Output]]) -> list[tuple[str, bytes]]:
    return [(PLC_WRITERS, output.value) for output in shard_outputs[1] if output.topic == COMMANDS_TOPIC]


def _shard_item(routed: tuple[str, tuple[str, RoutedChunk]]) -> tuple[str, RoutedChunk]:
    return routed[1]
