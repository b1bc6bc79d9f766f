"""PLC writers of a live run: hold every PLC's equipment enables at the interlock's decisions and keep its watchdog alive (protocols §4).

`PlcLinks.apply(command)` turns a §10 command into the desired enable of each target (ENABLE -> 1, HARD_STOP -> 0,
ALERT -> nothing). One asyncio task per PLC writes those enables over Modbus TCP or OPC UA, increments the
watchdog every period, and after any failure reconnects with exponential backoff and rewrites every desired
enable before it reports the link up again. The tasks share one event loop in a background thread;
`PlcLinks` is the thread-safe facade the Bytewax worker calls.

Desired state is kept per item of equipment, not per PLC or per command: a command for equipment that no
PLC row maps yet is remembered and written as soon as a row maps it, since CMDB rows may arrive after the
first decisions (protocols §0). While a PLC is down its desired enables are only remembered, never queued.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal

import msgspec

from dataflows.plc_modbus_link import ModbusEnableWriter
from dataflows.plc_opcua_link import OpcuaEnableWriter, OpcuaSecurity
from interlock.commands import ALERT, ENABLE, HARD_STOP, CommandRecord
from schemas.payloads import DeviceRow, ModbusLink, OpcuaLink

logger = logging.getLogger(__name__)

WATCHDOG_PERIOD_LIMIT_MS = 250
"""Protocols §4: the watchdog must change at least every 250 ms."""

WATCHDOG_ITEM = "watchdog"
"""The `item` that `on_write` reports for a watchdog write (enable writes report the equipment)."""

MODBUS = "modbus"
OPCUA = "opcua"

OnLink = Callable[[str, bool, str], None]
OnWrite = Callable[[str, str, float, bool], None]
OnCommandWritten = Callable[[str, str, float], None]
OnUnmapped = Callable[[str, str], None]


# Settings -------------------------------------------------------------------


class PlcLinkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of the PLC writers; times in milliseconds. `prefer` picks the protocol for a PLC row that has both.

    `opcua_security_by_plc` overrides `opcua_security` for the named PLCs (each PLC has its own server certificate).
    """

    watchdog_period_ms: int = 200
    prefer: Literal["modbus", "opcua"] = MODBUS
    connect_timeout_ms: int = 2_000
    write_timeout_ms: int = 500
    backoff_initial_ms: int = 250
    backoff_max_ms: int = 5_000
    recent_command_ids: int = 4_096
    opcua_security: OpcuaSecurity = OpcuaSecurity()
    opcua_security_by_plc: dict[str, OpcuaSecurity] = {}

    def __post_init__(self) -> None:
        if self.watchdog_period_ms > WATCHDOG_PERIOD_LIMIT_MS:
            raise ValueError(
                f"watchdog_period_ms={self.watchdog_period_ms} is above the limit of {WATCHDOG_PERIOD_LIMIT_MS} ms "
                f"(protocols §4: a PLC drops its enables when its watchdog stalls); set it to {WATCHDOG_PERIOD_LIMIT_MS} or less"
            )
        for name in ("watchdog_period_ms", "connect_timeout_ms", "write_timeout_ms", "backoff_initial_ms", "recent_command_ids"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ValueError(
                f"backoff_max_ms={self.backoff_max_ms} is below backoff_initial_ms={self.backoff_initial_ms}; raise it"
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> PlcLinkConfig:
        """Settings from a mapping (e.g. a TOML table); unknown keys and out-of-range values are errors."""
        return msgspec.convert(mapping, cls)

    def security_for(self, plc: str) -> OpcuaSecurity:
        return self.opcua_security_by_plc.get(plc, self.opcua_security)


# State types ----------------------------------------------------------------


class PlcTarget(msgspec.Struct, frozen=True):
    """One PLC as the writers see it: the protocol chosen for it and that protocol's addresses."""

    plc: str
    protocol: Literal["modbus", "opcua"]
    modbus: ModbusLink | None = None
    opcua: OpcuaLink | None = None
    security: OpcuaSecurity = OpcuaSecurity()

    @property
    def enables(self) -> Mapping[str, int | str]:
        """Equipment -> coil address or NodeId of its enable on this PLC."""
        if self.modbus is not None:
            return self.modbus.enable_coils
        assert self.opcua is not None
        return self.opcua.enable_nodes

    def connection(self) -> tuple:
        """What identifies the connection; a row change that keeps it only moves addresses, without reconnecting."""
        if self.modbus is not None:
            return (MODBUS, self.modbus.host, self.modbus.port, self.modbus.unit)
        assert self.opcua is not None
        return (OPCUA, self.opcua.endpoint, self.security)

    def describe(self) -> str:
        if self.modbus is not None:
            return f"Modbus TCP {self.modbus.host}:{self.modbus.port} unit {self.modbus.unit}"
        assert self.opcua is not None
        return f"OPC UA {self.opcua.endpoint} (security {self.security.policy})"


class PendingCommand(msgspec.Struct, frozen=True, gc=False):
    """A command waiting for its writes to one PLC; `applied_at` is `time.monotonic()` when `apply` took it."""

    id: str
    applied_at: float


class LinkStatus(msgspec.Struct, frozen=True):
    """One PLC link at a glance. `up` is None until the first connection attempt ends; `attempts` counts
    connection attempts since the link was last up; `tcp_nodelay` is the Modbus socket's option (None for OPC UA
    or while disconnected)."""

    plc: str
    protocol: str
    up: bool | None
    attempts: int
    watchdog_value: int
    watchdog_age_s: float
    tcp_nodelay: bool | None


def target_of(row: DeviceRow, config: PlcLinkConfig) -> PlcTarget | None:
    """The link to use for a PLC row: its only protocol, or `config.prefer` when it has both; None when it has neither."""
    if row.modbus is not None and (row.opcua is None or config.prefer == MODBUS):
        return PlcTarget(row.device, MODBUS, modbus=row.modbus)
    if row.opcua is not None:
        return PlcTarget(row.device, OPCUA, opcua=row.opcua, security=config.security_for(row.device))
    return None


def next_watchdog_value(value: int) -> int:
    """The watchdog is a uint16 that wraps from 65535 to 0."""
    return (value + 1) & 0xFFFF


EnableWriter = ModbusEnableWriter | OpcuaEnableWriter


def writer_for(target: PlcTarget, config: PlcLinkConfig, on_lost: Callable[[], None]) -> EnableWriter:
    """The writer of the target's protocol, with the configured timeouts."""
    timeouts = {"connect_timeout_s": config.connect_timeout_ms / 1000, "write_timeout_s": config.write_timeout_ms / 1000}
    if target.modbus is not None:
        return ModbusEnableWriter(target.modbus, on_lost=on_lost, **timeouts)
    assert target.opcua is not None
    return OpcuaEnableWriter(target.opcua, target.security, on_lost=on_lost, **timeouts)


# One PLC ---------------------------------------------------------------------


class PlcLink:
    """One PLC's connection, enable writes and watchdog, run as one asyncio task of the links' loop.

    Enable writes go before the watchdog so that a HARD_STOP is never queued behind it. `pending` names the
    equipment whose desired enable still has to be written, with the commands waiting for it; the value written
    is always the desired state at the time of the write.
    """

    def __init__(self, links: PlcLinks, target: PlcTarget, up: bool | None = None, watchdog_value: int = 0) -> None:
        self.links = links
        self.target = target
        self.plc = target.plc
        self.wake = asyncio.Event()
        self.writer: EnableWriter = writer_for(target, links.config, self.wake.set)
        self.pending: dict[str, list[PendingCommand]] = {}
        self.up = up
        self.attempts = 0
        self.watchdog_value = watchdog_value
        self.watchdog_written_at: float | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"plc link {self.plc}")

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def retarget(self, target: PlcTarget) -> None:
        """New addresses on the same connection: write every desired enable to them."""
        self.target = target
        if isinstance(self.writer, ModbusEnableWriter):
            assert target.modbus is not None
            self.writer.retarget(target.modbus)
        else:
            assert target.opcua is not None
            self.writer.retarget(target.opcua)
        self.pend_every_desired()
        self.wake.set()

    def mark_pending(self, equipment: Iterable[str], command: PendingCommand) -> None:
        for item in equipment:
            self.pending.setdefault(item, []).append(command)
        self.wake.set()

    def pend_every_desired(self) -> None:
        """Every enable of the PLC is to be written: its decision, or 0 for equipment nothing has enabled yet (after a
        restart, the PLC may still hold an enable the new process never decided)."""
        for item in self.target.enables:
            self.pending.setdefault(item, [])

    def status(self) -> LinkStatus:
        return LinkStatus(
            plc=self.plc,
            protocol=self.target.protocol,
            up=self.up,
            attempts=self.attempts,
            watchdog_value=self.watchdog_value,
            watchdog_age_s=self.watchdog_age_s(),
            tcp_nodelay=self.writer.tcp_nodelay,
        )

    def watchdog_age_s(self) -> float:
        written_at = self.watchdog_written_at
        return math.inf if written_at is None else time.monotonic() - written_at

    async def run(self) -> None:
        config = self.links.config
        backoff = config.backoff_initial_ms / 1000
        try:
            while True:
                try:
                    self.attempts += 1
                    await self.writer.connect()
                    self.pend_every_desired()
                    await self.flush()
                    await self.beat()
                    self.attempts = 0
                    self.report(True, f"connected: {self.target.describe()}")
                    backoff = config.backoff_initial_ms / 1000
                    await self.serve()
                except Exception as error:
                    self.report(False, f"{self.target.describe()}: {type(error).__name__}: {str(error) or 'timed out'}")
                    await self.writer.close()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, config.backoff_max_ms / 1000)
        finally:
            await self.writer.close()

    async def serve(self) -> None:
        """Writes pending enables as they come and the watchdog at a fixed rate, until a write fails."""
        loop = asyncio.get_running_loop()
        period = self.links.config.watchdog_period_ms / 1000
        next_beat = loop.time() + period
        while True:
            delay = next_beat - loop.time()
            if delay > 0 and not self.pending:
                try:
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
                except TimeoutError:
                    pass
            self.wake.clear()
            self.writer.ensure_connected()
            if self.pending:
                await self.flush()
            now = loop.time()
            if now >= next_beat:
                await self.beat()
                next_beat += period
                if next_beat <= now:  # fell behind (a slow write): resume the rate instead of bursting
                    next_beat = now + period

    async def flush(self) -> None:
        """Writes every pending enable; what a failure leaves unwritten goes back to pending for the reconnection."""
        batch, self.pending = self.pending, {}
        remaining = collections.Counter(command.id for waiting in batch.values() for command in waiting)
        try:
            while batch:
                item = next(iter(batch))
                value = self.links.desired_of(item)
                if item in self.target.enables:
                    await self.timed_write(item, self.writer.write_enable(item, bool(value)))
                for command in batch.pop(item):
                    remaining[command.id] -= 1
                    if remaining[command.id] == 0:
                        self.links.emit_command_written(command.id, self.plc, time.monotonic() - command.applied_at)
        except BaseException:
            for item, waiting in batch.items():
                self.pending.setdefault(item, []).extend(waiting)
            raise

    async def beat(self) -> None:
        self.watchdog_value = next_watchdog_value(self.watchdog_value)
        await self.timed_write(WATCHDOG_ITEM, self.writer.write_watchdog(self.watchdog_value))
        self.watchdog_written_at = time.monotonic()

    async def timed_write(self, item: str, write: Awaitable[None]) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.links.config.write_timeout_ms / 1000):
                await write
        except Exception:
            self.links.emit_write(self.plc, item, time.perf_counter() - started, False)
            raise
        self.links.emit_write(self.plc, item, time.perf_counter() - started, True)

    def report(self, up: bool, detail: str) -> None:
        if self.up is up:
            return
        self.up = up
        self.links.emit_link(self.plc, up, detail)


# The facade ------------------------------------------------------------------


class PlcLinks:
    """The PLC writers of a live process: thread-safe facade over one asyncio loop in a background thread.

    Callbacks (each optional; exceptions they raise are logged, never propagated):

    - `on_link(plc, up, detail)`: a PLC's link changed state (first connection result included), once per
      transition, not per retry. Called on the links' thread.
    - `on_write(plc, item, seconds, ok)`: one write, its latency; `item` is the equipment or "watchdog".
      Called on the links' thread.
    - `on_command_written(command_id, plc, seconds_since_apply)`: every enable write of that command on that
      PLC has completed (after a reconnection if the PLC was down). Called on the links' thread.
    - `on_unmapped(command_id, equipment)`: a command targets equipment that no PLC row holds an enable for;
      its desired state is still kept. Called synchronously inside `apply`, on the caller's thread.
    """

    def __init__(
        self,
        rows: Iterable[DeviceRow] = (),
        config: PlcLinkConfig | Mapping[str, Any] = PlcLinkConfig(),
        *,
        on_link: OnLink | None = None,
        on_write: OnWrite | None = None,
        on_command_written: OnCommandWritten | None = None,
        on_unmapped: OnUnmapped | None = None,
    ) -> None:
        self.config = config if isinstance(config, PlcLinkConfig) else PlcLinkConfig.from_mapping(config)
        self.on_link = on_link
        self.on_write = on_write
        self.on_command_written = on_command_written
        self.on_unmapped = on_unmapped
        self._lock = threading.Lock()
        self._targets: dict[str, PlcTarget] = {}
        self._plcs_by_equipment: dict[str, list[str]] = {}
        self._desired: dict[str, bool] = {}
        self._recent_ids: set[str] = set()
        self._recent_order: collections.deque[str] = collections.deque()
        self._links: dict[str, PlcLink] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        for row in rows:
            self.update_row(row)

    # caller side (any thread) --------------------------------------------

    def start(self, timeout_s: float = 5.0) -> None:
        """Starts the links' loop thread; returns once every known PLC's link task is running."""
        if self._thread is not None:
            raise RuntimeError("PlcLinks is already started; call stop() before starting it again")
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(ready)), name="plc-links", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"the PLC links' loop did not start within {timeout_s} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Closes every link and ends the loop thread. The watchdogs stop, so the PLCs drop their enables within 1 s (§4)."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is None or stopping is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(stopping.set)
        except RuntimeError:  # the loop already ended
            pass
        thread.join(timeout_s)
        self._loop = self._stopping = self._thread = None

    def apply(self, command: Mapping[str, Any] | CommandRecord) -> None:
        """Takes a decoded §10 command: ENABLE -> desired enable 1, HARD_STOP -> 0, ALERT -> nothing. Never blocks on I/O.

        A command id seen among the last `config.recent_command_ids` is ignored, so a repeated command is harmless.
        """
        command_id, kind, targets = command_fields(command)
        if kind == ALERT:
            return
        if kind not in (ENABLE, HARD_STOP):
            raise ValueError(f"command {command_id!r} has kind {kind!r}; expected {ENABLE}, {HARD_STOP} or {ALERT} (protocols §10)")
        value = kind == ENABLE
        pending = PendingCommand(command_id, time.monotonic())
        by_plc: dict[str, list[str]] = {}
        unmapped: list[str] = []
        with self._lock:
            if command_id in self._recent_ids:
                return
            self._remember(command_id)
            for equipment in targets:
                self._desired[equipment] = value
                plcs = self._plcs_by_equipment.get(equipment)
                if not plcs:
                    unmapped.append(equipment)
                for plc in plcs or ():
                    by_plc.setdefault(plc, []).append(equipment)
        for plc, equipment in by_plc.items():
            self._post(self._mark_pending, plc, equipment, pending)
        for equipment in unmapped:
            self._call(self.on_unmapped, command_id, equipment)

    def update_row(self, row: DeviceRow) -> None:
        """Adds or replaces a PLC's CMDB row. A row whose connection is unchanged only moves addresses, without reconnecting."""
        if row.family != "plc":
            raise ValueError(f"row {row.device!r} is of family {row.family!r}, not 'plc'; pass only PLC rows of cmdb.devices")
        target = target_of(row, self.config)
        with self._lock:
            if target is None:
                self._targets.pop(row.device, None)
            else:
                self._targets[row.device] = target
            self._index()
        self._post(self._reconcile)

    def remove(self, plc: str) -> None:
        """Forgets a PLC (a CMDB tombstone): its link closes and its watchdog stops, so it drops its enables."""
        with self._lock:
            self._targets.pop(plc, None)
            self._index()
        self._post(self._reconcile)

    def plcs(self) -> list[str]:
        with self._lock:
            return sorted(self._targets)

    def watchdog_age_s(self, plc: str) -> float:
        """Seconds since the last successful watchdog write to `plc`; infinite if none yet."""
        link = self._links.get(plc)
        if link is not None:
            return link.watchdog_age_s()
        with self._lock:
            known = plc in self._targets
        if not known:
            raise KeyError(f"no PLC {plc!r} among the rows given to PlcLinks; known: {self.plcs()}")
        return math.inf

    def status(self, plc: str) -> LinkStatus | None:
        """The link's state, or None when `plc` has no running link."""
        link = self._links.get(plc)
        return None if link is None else link.status()

    # shared state (any thread, under the lock) ------------------------------

    def desired_of(self, equipment: str) -> bool | None:
        with self._lock:
            return self._desired.get(equipment)

    def desired_items(self, enables: Iterable[str]) -> list[str]:
        with self._lock:
            return [item for item in enables if item in self._desired]

    def _remember(self, command_id: str) -> None:
        self._recent_ids.add(command_id)
        self._recent_order.append(command_id)
        while len(self._recent_order) > self.config.recent_command_ids:
            self._recent_ids.discard(self._recent_order.popleft())

    def _index(self) -> None:
        index: dict[str, list[str]] = {}
        for plc, target in self._targets.items():
            for equipment in target.enables:
                index.setdefault(equipment, []).append(plc)
        self._plcs_by_equipment = index

    # callbacks -------------------------------------------------------------------

    def emit_link(self, plc: str, up: bool, detail: str) -> None:
        self._call(self.on_link, plc, up, detail)

    def emit_write(self, plc: str, item: str, seconds: float, ok: bool) -> None:
        self._call(self.on_write, plc, item, seconds, ok)

    def emit_command_written(self, command_id: str, plc: str, seconds: float) -> None:
        self._call(self.on_command_written, command_id, plc, seconds)

    @staticmethod
    def _call(callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            logger.exception("PLC link callback %r failed with arguments %r", callback, args)

    # loop side -----------------------------------------------------------------

    def _post(self, function: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return  # not started: start() reconciles and every link writes the desired state on connecting
        try:
            loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop ended between the check and the call (stop() racing)
            pass

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._reconcile()
        ready.set()
        await self._stopping.wait()
        links = list(self._links.values())
        self._links.clear()
        for link in links:
            link.close()
        await asyncio.gather(*(link.task for link in links if link.task is not None), return_exceptions=True)

    def _reconcile(self) -> None:
        """Brings the running links in line with the rows: start new PLCs, move addresses, reconnect changed connections, close removed PLCs."""
        if self._stopping is None or self._stopping.is_set():
            return
        with self._lock:
            targets = dict(self._targets)
        for plc, link in list(self._links.items()):
            target = targets.get(plc)
            if target is None:
                del self._links[plc]
                link.close()
            elif target.connection() != link.target.connection():
                link.close()
                self._links[plc] = replacement = PlcLink(self, target, up=link.up, watchdog_value=link.watchdog_value)
                replacement.start()
            elif target != link.target:
                link.retarget(target)
        for plc, target in targets.items():
            if plc not in self._links:
                self._links[plc] = link = PlcLink(self, target)
                link.start()

    def _mark_pending(self, plc: str, equipment: list[str], command: PendingCommand) -> None:
        link = self._links.get(plc)
        if link is not None:
            link.mark_pending(equipment, command)


def command_fields(command: Mapping[str, Any] | CommandRecord) -> tuple[str, str, list[str]]:
    """(id, kind, targets) of a §10 command given as a decoded dict or a CommandRecord."""
    if isinstance(command, CommandRecord):
        return command.id, command.kind, command.targets
    try:
        return command["id"], command["kind"], list(command["targets"])
    except KeyError as missing:
        raise ValueError(f"command {command!r} has no {missing}; a §10 command needs id, kind and targets") from None
