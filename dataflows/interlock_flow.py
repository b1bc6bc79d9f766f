"""The interlock dataflow: records in, decisions out, for replays and live runs alike.

    records (chunks) -> route_to_shards -> interlock (stateful, per shard) -> send

Items are chunks of records, not single records, so Bytewax's per-item cost
is paid once per chunk. Each shard holds a whole `interlock.site.Site`; the
embedded default runs one shard. Timers run on the record clock for replays
(the Site advances its clock from the records) or on the wall clock for live
runs (Bytewax `notify_at`/`on_notify`).
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
from interlock.risk_model import RiskModel
from interlock.site import Output, Site
from interlock.state_version import STATE_VERSION
from schemas.envelope import Record, UnreadableRecord

SINGLE_SHARD = "site"
RECORD_CLOCK = "record"
WALL_CLOCK = "wall"

Chunk = list[Record | UnreadableRecord]


def single_shard(chunks: list[Chunk]) -> Iterable[tuple[str, Chunk]]:
    """Every chunk to the one shard of the embedded default."""
    return [(SINGLE_SHARD, chunk) for chunk in chunks]


def _epoch_ms_now() -> int:
    return time.time_ns() // 1_000_000


class SiteLogic(StatefulBatchLogic[Chunk, list[Output], bytes]):
    """One shard's Site inside Bytewax: feeds it chunks, fires its timers on the chosen clock, snapshots it."""

    def __init__(self, site: Site, clock: str, wall_ms: Callable[[], int] = _epoch_ms_now, resumed: bool = False) -> None:
        self.site = site
        self.clock = clock
        self.wall_ms = wall_ms
        self.pending: list[Output] = site.resume(wall_ms()) if resumed and clock == WALL_CLOCK else []
        """What a live restart said (enabled permits stopped and latched), sent with the first outputs."""

    def _with_pending(self, out: list[Output]) -> list[Output]:
        if self.pending:
            out[:0], self.pending = self.pending, []
        return out

    def on_batch(self, chunks: list[Chunk]) -> tuple[Iterable[list[Output]], bool]:
        site = self.site
        out: list[Output] = self._with_pending([])
        for chunk in chunks:
            out.extend(site.process_batch(chunk))
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
    try:
        version, site = pickle.loads(snapshot)
    except Exception:  # an older release's snapshot: a bare Site, or its structs' fields in other positions
        version, site = None, None
    if version != STATE_VERSION or not isinstance(site, Site):
        written = f"state version {version}" if isinstance(version, int) else "a release before versioned snapshots"
        raise SnapshotMismatch(
            f"the recovery folder holds a snapshot of {written}; this release restores state version {STATE_VERSION} "
            f"only: upgrade at a planned stop (docs/live.md, 'Restarts and recovery'): stop every permit, end the old "
            f"process, empty the recovery folder and start this release with --init-recovery"
        )
    return site


def build_flow(
    source: Source[Chunk],
    sink: Sink[tuple[str, list[Output]]],
    config: SiteConfig = DEFAULT_CONFIG,
    clock: str = RECORD_CLOCK,
    route: Callable[[list[Chunk]], Iterable[tuple[str, Chunk]]] = single_shard,
    logic: Callable[..., SiteLogic] | None = None,
    extra_source: Source[Chunk] | None = None,
    risk_model: RiskModel | None = None,
) -> Dataflow:
    """The interlock dataflow from `source` (and `extra_source`, merged in) to `sink`; `logic` swaps in a SiteLogic
    subclass (e.g. an instrumented one, or the live one). `risk_model` turns zone risk grading on."""
    logic_class = logic or SiteLogic

    def build_logic(resume: bytes | None) -> SiteLogic:
        site = restore_site(resume) if resume is not None else Site(config, risk_model)
        return logic_class(site, clock, resumed=resume is not None)

    flow = Dataflow("interlock")
    chunks = op.input("records", flow, source)
    if extra_source is not None:
        chunks = op.merge("with_plc_links", chunks, op.input("plc_links", flow, extra_source))
    keyed = op.flat_map_batch("route_to_shards", chunks, route)
    decisions = op.stateful_batch("interlock", keyed, build_logic)
    op.output("send", decisions, sink)
    return flow
