"""A stand-in for the site's PLCs in development: real Modbus TCP and OPC UA servers built from the CMDB's PLC rows.

Each `family: "plc"` row (protocols §5) becomes one simulated PLC with one memory: an enable
per item of equipment and one watchdog value. Its `modbus` link is served by a pymodbus server
(`simulators.plc_modbus`), its `opcua` link by an asyncua server (`simulators.plc_opcua`); an
enable written over either protocol is the same enable, and each protocol reads what the other
wrote.

The PLC's own rules, as §4 states them and where the sheet is silent:

- **De-energise to trip.** Every enable starts at 0. A PLC whose watchdog value has not changed
  for 1 s drops every enable it holds to 0, checked every 50 ms, so a dead interlock is covered
  within about 1.05 s. A write of the value already held is not a change.
- **The 1 s runs from server start.** Enable writes are accepted before the first watchdog
  write, but with no live watchdog they fall back to 0 within about 1 s, trip logged. Rejecting
  them outright would hide from the interlock the order it really wrote in.
- **Outages.** `go_offline` closes the PLC's servers (clients get connection refused) while its
  logic keeps running: the watchdog goes silent, so its enables drop within 1 s, and a PLC back
  online after a longer outage (same ports, same memory) holds nothing enabled until the
  interlock writes again.
- **plc.state** (§4), when a `publish(topic, key, value)` callable is given: on change and every
  5 s per PLC, while online. The tags are the caller's initial tags (e.g. each PLC's last
  plc.state in a recording). A `<equipment>.power` tag of equipment that has an enable reports
  "initial value AND enable": the initial value is the demand (the welder wants to run), and a
  welder is energised only while enabled. `running` and `isolated` are held as given: the fan
  of a confined space runs before anything is enabled, and isolation is a padlock, not a coil.
- **Write log.** Every accepted write is one JSON line, `{"ts", "plc", "protocol", "item",
  "address" | "node", "value"}`, and every trip one `{"event": "watchdog_trip", ...}` line,
  appended to a file and kept in memory (`writes()`, `trips()`). Refused writes (no such coil,
  wrong OPC UA type) are answered with the protocol's error and logged as warnings only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal
from urllib.parse import urlsplit

import msgspec

from schemas.envelope import Record, read_envelope
from schemas.payloads import DeviceRow, PlcState as PlcStateWire
from simulators.devices import Plc as PlcGateway
from simulators.devices import plc_payload

if TYPE_CHECKING:
    from simulators.plc_modbus import ModbusPlc
    from simulators.plc_opcua import OpcuaPlc, OpcuaSecurity

# The protocol servers (pymodbus, asyncua: about 0.5 s to import) are imported where they are first
# needed, so registering the `plc-sim` command costs the `interlock` CLI nothing.

logger = logging.getLogger(__name__)

WATCHDOG_TIMEOUT_S = 1.0
"""§4: a PLC whose watchdog value has not changed for this long drops every enable."""
WATCHDOG_CHECK_S = 0.05
"""How often each PLC checks its watchdog; the trip comes at most this much after the timeout."""
STATE_PERIOD_S = 5.0
"""§4: the edge gateway publishes plc.state on change and at least this often."""
STATE_TOPIC = "plc.state"
CMDB_TOPIC = "cmdb.devices"
WATCHDOG = "watchdog"
"""The item name of a PLC's watchdog in the write log, next to the equipment names of its enables."""
FOLLOWING_SIGNALS = ("power",)
"""Signals of enabled equipment that report "initial value AND enable"; every other signal is held as given."""

Protocol = Literal["modbus", "opcua"]
Publish = Callable[[str, str, bytes], None]
"""`publish(topic, key, value)`: hands one record to Kafka or wherever the caller sends plc.state."""


class PlcConfigError(ValueError):
    """PLC rows or initial tags the simulator cannot serve; the message names each offending value and the fix."""


class PlcStartError(OSError):
    """A PLC's server could not listen; the message names the PLC, the address and the fix."""


class ReceivedWrite(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One write a PLC accepted: wall time (ms), PLC, protocol, item (equipment or "watchdog"), where, value."""

    ts: int
    plc: str
    protocol: Protocol
    item: str
    address: int | None = None
    node: str | None = None
    value: bool | int


class WatchdogTrip(msgspec.Struct, kw_only=True):
    """A PLC dropped its enables: the watchdog value had not changed for `unchanged_ms`."""

    event: Literal["watchdog_trip"] = "watchdog_trip"
    ts: int
    plc: str
    dropped: list[str]
    watchdog: int
    unchanged_ms: int


LogEntry = ReceivedWrite | WatchdogTrip


class PlcMemory(msgspec.Struct):
    """What one simulated PLC holds: its enables, its watchdog and when that last changed, and its gateway's tags."""

    enables: dict[str, bool]
    demand: dict[str, bool]
    gateway: PlcGateway
    watchdog: int = 0
    watchdog_changed_at: float = 0.0
    published_tags: dict[str, bool] | None = None
    published_at: float = 0.0
    online: bool = False


def plc_rows_from_recording(path: str | Path) -> list[DeviceRow]:
    """The PLC rows the CMDB holds at the end of a kcat -J recording: the latest row per key; a tombstone removes it.

    Records are taken in record-time order (stable), as a replay takes them.
    """
    with open(path, "rb") as stream:
        records = _records(stream)
    rows: dict[str, DeviceRow] = {}
    for record in records:
        if record.topic != CMDB_TOPIC:
            continue
        if record.payload is None:
            if record.key is not None:
                rows.pop(record.key, None)
            continue
        row = _device_row(record.payload, f"{path}: {CMDB_TOPIC} offset {record.offset}")
        if row is not None:
            rows[record.key if record.key is not None else row.device] = row
    return [row for row in rows.values() if row.family == "plc"]


def plc_rows_from_jsonl(path: str | Path) -> list[DeviceRow]:
    """The PLC rows of a file of CMDB rows, one JSON object per line; a later row of the same device wins."""
    rows: dict[str, DeviceRow] = {}
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                row = _device_row(line, f"{path}: line {number}")
                if row is not None:
                    rows[row.device] = row
    return [row for row in rows.values() if row.family == "plc"]


def plc_tags_from_recording(path: str | Path) -> dict[str, dict[str, bool]]:
    """Each PLC's tags in its last plc.state payload of a recording; payloads that are not §4 state are skipped."""
    with open(path, "rb") as stream:
        records = _records(stream)
    tags: dict[str, dict[str, bool]] = {}
    for record in records:
        if record.topic == STATE_TOPIC and record.payload is not None:
            try:
                state = msgspec.json.decode(record.payload, type=PlcStateWire)
            except (msgspec.ValidationError, msgspec.DecodeError):
                continue
            tags[state.plc] = dict(state.tags)
    return tags


def _records(stream: BinaryIO) -> list[Record]:
    """The readable records of a recording in record-time order (stable), as `dataflows.recording` orders them."""
    records = []
    previous_ts = 0
    for number, line in enumerate(stream, start=1):
        if line.strip():
            record = read_envelope(line, number, previous_ts)
            previous_ts = record.ts
            if isinstance(record, Record):
                records.append(record)
    records.sort(key=lambda record: record.ts)
    return records


def _device_row(payload: str | bytes, where: str) -> DeviceRow | None:
    """A CMDB row; None for a malformed row of another family; PlcConfigError for a malformed PLC row."""
    try:
        return msgspec.json.decode(payload, type=DeviceRow)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        try:
            family = msgspec.json.decode(payload, type=dict).get("family")
        except (msgspec.ValidationError, msgspec.DecodeError):
            family = None
        if family == "plc":
            raise PlcConfigError(f"{where}: the PLC row is not a §5 row ({error}); fix the row") from error
        return None


def check_plc_rows(rows: Iterable[DeviceRow]) -> list[str]:
    """Every problem that keeps these rows from being simulated together, each naming the value and the fix."""
    from simulators.plc_modbus import check_modbus_link
    from simulators.plc_opcua import DEFAULT_PORT, check_opcua_link

    problems = []
    listeners: dict[tuple[str, int], str] = {}
    plcs: set[str] = set()
    for row in rows:
        if row.family != "plc":
            problems.append(f"{row.device}: family {row.family!r} is not a PLC; pass only rows with family \"plc\"")
            continue
        if row.device in plcs:
            problems.append(f"{row.device}: given twice; pass one row per PLC (the latest)")
        plcs.add(row.device)
        if row.modbus is None and row.opcua is None:
            problems.append(f"{row.device}: the row has neither modbus nor opcua; §5 requires one or both")
        addresses = []
        if row.modbus is not None:
            problems.extend(check_modbus_link(row.device, row.modbus))
            addresses.append((row.modbus.host, row.modbus.port, "modbus"))
        if row.opcua is not None:
            link_problems = check_opcua_link(row.device, row.opcua)
            problems.extend(link_problems)
            if not link_problems:
                parts = urlsplit(row.opcua.endpoint)
                addresses.append((parts.hostname or "", parts.port if parts.port is not None else DEFAULT_PORT,
                                  "opcua"))
        for host, port, protocol in addresses:
            if port == 0:
                continue
            holder = listeners.get((host, port))
            if holder is not None:
                problems.append(f"{row.device}: {protocol} {host}:{port} is already taken by {holder}; "
                                "give each simulated PLC and protocol its own port")
            listeners[(host, port)] = f"{row.device} {protocol}"
    return problems


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class PlcSimulator:
    """Every PLC of the given rows, served over its protocols, with the watchdog rule and optional plc.state.

    Use `async with PlcSimulator(rows) as sim:` or `await sim.start()` / `await sim.stop()`.
    Rows with port 0 get a free port; `modbus_address()` and `opcua_endpoint()` say which.
    """

    def __init__(
        self,
        rows: Iterable[DeviceRow],
        *,
        tags: Mapping[str, Mapping[str, bool]] | None = None,
        publish: Publish | None = None,
        write_log: str | Path | None = None,
        opcua_security: OpcuaSecurity | None = None,
    ) -> None:
        from simulators.plc_modbus import ModbusPlc
        from simulators.plc_opcua import OpcuaPlc, check_opcua_security

        rows = list(rows)
        problems = check_plc_rows(rows)
        if opcua_security is not None and any(row.opcua is not None for row in rows):
            problems.extend(check_opcua_security(opcua_security))
        if problems:
            raise PlcConfigError("cannot simulate these PLC rows:\n  " + "\n  ".join(problems))
        self._rows = {row.device: row for row in rows}
        if not self._rows:
            raise PlcConfigError("no PLC rows to simulate; give rows with family \"plc\" (protocols §5)")
        tags = tags or {}
        unknown = sorted(set(tags) - set(self._rows))
        if unknown:
            logger.warning("initial tags for %s ignored: no PLC row for them", ", ".join(unknown))
        self._publish = publish
        self._write_log_path = Path(write_log) if write_log is not None else None
        self._write_log_file: BinaryIO | None = None
        self._log: list[LogEntry] = []
        self._memory: dict[str, PlcMemory] = {}
        self._modbus: dict[str, ModbusPlc] = {}
        self._opcua: dict[str, OpcuaPlc] = {}
        for plc, row in self._rows.items():
            equipment = [*(row.modbus.enable_coils if row.modbus else {}),
                         *(row.opcua.enable_nodes if row.opcua else {})]
            initial = dict(tags.get(plc, {}))
            self._memory[plc] = PlcMemory(
                enables={name: False for name in equipment},
                demand=initial,
                gateway=PlcGateway(plc, dict(initial), 0),
            )
            self._memory[plc].gateway.tags = self._tags(self._memory[plc])
            if row.modbus is not None:
                self._modbus[plc] = ModbusPlc(self, plc, row.modbus)
            if row.opcua is not None:
                self._opcua[plc] = OpcuaPlc(self, plc, row.opcua, opcua_security)
        self._encoder = msgspec.json.Encoder()
        self._rules: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open the write log, start every PLC's servers, and start the watchdog and publication rules."""
        if self._write_log_path is not None:
            self._write_log_file = open(self._write_log_path, "ab")
        try:
            for plc in self._memory:
                await self._open(plc)
        except BaseException:
            await self.stop()
            raise
        now = time.monotonic()
        for memory in self._memory.values():
            memory.watchdog_changed_at = now
        for plc in self._memory:
            self._publish_state(plc, now)
        self._rules = asyncio.create_task(self._run_rules(), name="plc-sim rules")

    async def stop(self) -> None:
        """Stop the rules and every server, and close the write log."""
        if self._rules is not None:
            self._rules.cancel()
            try:
                await self._rules
            except asyncio.CancelledError:
                pass
            self._rules = None
        for plc in self._memory:
            await self._close(plc)
        for opcua in self._opcua.values():
            await opcua.stop()
        if self._write_log_file is not None:
            self._write_log_file.close()
            self._write_log_file = None

    async def __aenter__(self) -> PlcSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def go_offline(self, plc: str) -> None:
        """Simulate a network outage of `plc`: its servers close (connection refused); its logic and memory carry on."""
        if not self._memory_of(plc).online:
            return
        await self._close(plc)
        logger.warning("%s offline: its servers are closed; its watchdog rule keeps running", plc)

    async def go_online(self, plc: str) -> None:
        """End the outage: reopen `plc`'s servers on the same ports with the memory it kept."""
        if self._memory_of(plc).online:
            return
        await self._open(plc)
        logger.warning("%s online again", plc)
        self._publish_state(plc, time.monotonic(), force=True)

    async def _open(self, plc: str) -> None:
        try:
            if plc in self._modbus:
                await self._modbus[plc].open()
            if plc in self._opcua:
                await self._opcua[plc].open()
        except OSError as error:
            await self._close(plc)
            raise PlcStartError(str(error)) from error
        self._memory[plc].online = True

    async def _close(self, plc: str) -> None:
        self._memory[plc].online = False
        if plc in self._modbus:
            await self._modbus[plc].close()
        if plc in self._opcua:
            await self._opcua[plc].close()

    # -- what tests and the CLI read ---------------------------------------------

    @property
    def plcs(self) -> list[str]:
        return list(self._memory)

    def enable(self, plc: str, equipment: str) -> bool:
        """Whether `plc` holds `equipment`'s enable at 1 now."""
        enables = self._memory_of(plc).enables
        if equipment not in enables:
            raise LookupError(f"{plc} has no enable for {equipment!r}; its enables are {sorted(enables)}")
        return enables[equipment]

    def watchdog(self, plc: str) -> int:
        """The watchdog value `plc` holds now."""
        return self._memory_of(plc).watchdog

    def tags(self, plc: str) -> dict[str, bool]:
        """The tags `plc`'s gateway reports now."""
        return dict(self._memory_of(plc).gateway.tags)

    def online(self, plc: str) -> bool:
        return self._memory_of(plc).online

    def modbus_address(self, plc: str) -> tuple[str, int, int]:
        """(host, port, unit) of `plc`'s Modbus server, with the port actually served."""
        if plc not in self._modbus:
            raise LookupError(f"{plc} has no modbus link in its CMDB row")
        server = self._modbus[plc]
        return server.host, server.port, server.unit

    def opcua_endpoint(self, plc: str) -> str:
        """`plc`'s OPC UA endpoint URL, with the port actually served."""
        if plc not in self._opcua:
            raise LookupError(f"{plc} has no opcua link in its CMDB row")
        return self._opcua[plc].endpoint

    def describe(self, plc: str) -> str:
        """One line saying where `plc` listens and what its addresses are."""
        row = self._rows[plc]
        parts = [plc]
        if row.modbus is not None:
            host, port, unit = self.modbus_address(plc)
            coils = ", ".join(f"{name}={address}" for name, address in row.modbus.enable_coils.items()) or "none"
            parts.append(f"modbus {host}:{port} unit {unit} enable coils {coils} watchdog register "
                         f"{row.modbus.watchdog_register}")
        if row.opcua is not None:
            nodes = ", ".join(f"{name}={node}" for name, node in row.opcua.enable_nodes.items()) or "none"
            parts.append(f"opcua {self.opcua_endpoint(plc)} (security {self._opcua[plc].security}) enable nodes "
                         f"{nodes} watchdog node {row.opcua.watchdog_node}")
        return " | ".join(parts)

    @property
    def log(self) -> list[LogEntry]:
        """Every write-log entry so far, in order."""
        return list(self._log)

    def writes(self, plc: str | None = None) -> list[ReceivedWrite]:
        """The accepted writes so far, of one PLC or all."""
        return [e for e in self._log if isinstance(e, ReceivedWrite) and (plc is None or e.plc == plc)]

    def trips(self, plc: str | None = None) -> list[WatchdogTrip]:
        """The watchdog trips so far, of one PLC or all."""
        return [e for e in self._log if isinstance(e, WatchdogTrip) and (plc is None or e.plc == plc)]

    def _memory_of(self, plc: str) -> PlcMemory:
        if plc not in self._memory:
            raise LookupError(f"{plc} is not simulated; the simulated PLCs are {sorted(self._memory)}")
        return self._memory[plc]

    # -- what the protocol servers call ------------------------------------------

    async def receive_enable(self, plc: str, equipment: str, value: bool, protocol: Protocol, *,
                             address: int | None = None, node: str | None = None) -> None:
        """An accepted enable write: log it, hold it, show it on the other protocol, publish if the tags changed."""
        memory = self._memory[plc]
        self._write(ReceivedWrite(ts=_wall_ms(), plc=plc, protocol=protocol, item=equipment, address=address,
                                  node=node, value=value))
        if memory.enables[equipment] == value:
            return
        memory.enables[equipment] = value
        if protocol != "opcua" and plc in self._opcua:
            await self._opcua[plc].show(equipment, value)
        self._publish_state(plc, time.monotonic())

    async def receive_watchdog(self, plc: str, value: int, protocol: Protocol, *,
                               address: int | None = None, node: str | None = None) -> None:
        """An accepted watchdog write: log it; a new value restarts the 1 s."""
        memory = self._memory[plc]
        self._write(ReceivedWrite(ts=_wall_ms(), plc=plc, protocol=protocol, item=WATCHDOG, address=address,
                                  node=node, value=value))
        if value == memory.watchdog:
            return
        memory.watchdog = value
        memory.watchdog_changed_at = time.monotonic()
        if protocol != "opcua" and plc in self._opcua:
            await self._opcua[plc].show(WATCHDOG, value)

    # -- the PLC's own rules ------------------------------------------------------

    async def _run_rules(self) -> None:
        """Every 50 ms: trip each PLC whose watchdog is stale, publish each state that is due."""
        while True:
            now = time.monotonic()
            for plc, memory in self._memory.items():
                try:
                    await self._trip_if_stale(plc, memory, now)
                    if now - memory.published_at >= STATE_PERIOD_S:
                        self._publish_state(plc, now, force=True)
                except Exception:  # one PLC's failure must not stop the watchdog of the others
                    logger.exception("%s: the watchdog rule failed; it runs again in %.0f ms",
                                     plc, WATCHDOG_CHECK_S * 1000)
            await asyncio.sleep(WATCHDOG_CHECK_S)

    async def _trip_if_stale(self, plc: str, memory: PlcMemory, now: float) -> None:
        unchanged = now - memory.watchdog_changed_at
        if unchanged < WATCHDOG_TIMEOUT_S:
            return
        dropped = [equipment for equipment, on in memory.enables.items() if on]
        if not dropped:
            return
        for equipment in dropped:
            memory.enables[equipment] = False
        trip = WatchdogTrip(ts=_wall_ms(), plc=plc, dropped=dropped, watchdog=memory.watchdog,
                            unchanged_ms=round(unchanged * 1000))
        self._write(trip)
        logger.warning("%s watchdog unchanged for %d ms (value %d): dropped the enables of %s",
                       plc, trip.unchanged_ms, memory.watchdog, ", ".join(dropped))
        if plc in self._opcua:
            for equipment in dropped:
                await self._opcua[plc].show(equipment, False)
        self._publish_state(plc, now)

    def _tags(self, memory: PlcMemory) -> dict[str, bool]:
        """The gateway's tags: the initial ones, with each enabled item's following signals ANDed with its enable."""
        tags = dict(memory.demand)
        for equipment, on in memory.enables.items():
            for signal_name in FOLLOWING_SIGNALS:
                name = f"{equipment}.{signal_name}"
                if name in tags:
                    tags[name] = memory.demand[name] and on
        return tags

    def _publish_state(self, plc: str, now: float, force: bool = False) -> None:
        """Send `plc`'s plc.state if publishing, online, and the tags changed (or `force`, for the 5 s report)."""
        memory = self._memory[plc]
        memory.gateway.tags = self._tags(memory)
        if self._publish is None or not memory.online:
            return
        if not force and memory.gateway.tags == memory.published_tags:
            return
        payload = plc_payload(memory.gateway, _wall_ms())
        memory.published_tags = dict(payload.tags)
        memory.published_at = now
        try:
            self._publish(STATE_TOPIC, plc, self._encoder.encode(payload))
        except Exception:  # a broker hiccup must not stop the PLC
            logger.exception("%s: publishing %s failed; the next report is due in %.0f s", plc, STATE_TOPIC,
                             STATE_PERIOD_S)

    def _write(self, entry: LogEntry) -> None:
        self._log.append(entry)
        if self._write_log_file is not None:
            self._write_log_file.write(self._encoder.encode(entry) + b"\n")
            self._write_log_file.flush()


# -- the `interlock plc-sim` command -------------------------------------------------


def add_plc_sim_command(commands: argparse._SubParsersAction) -> None:
    """Add `plc-sim` to the `interlock` command's subparsers; it runs `plc_sim`."""
    p = commands.add_parser(
        "plc-sim",
        help="serve the CMDB's PLCs over Modbus TCP / OPC UA for development (see simulators/README.md)",
        description="Start a simulated PLC for every PLC row, print where each listens, run until SIGINT/SIGTERM.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--recording", metavar="FILE",
                        help="kcat -J recording: PLC rows from cmdb.devices, initial tags from each PLC's last "
                        "plc.state")
    source.add_argument("--cmdb", metavar="FILE", help="CMDB rows, one JSON object per line (no initial tags)")
    p.add_argument("--publish-state", action="store_true",
                   help="publish plc.state on change and every 5 s (to Kafka with --bootstrap, else to stdout)")
    p.add_argument("--bootstrap", metavar="SERVERS", help="Kafka bootstrap servers for --publish-state")
    p.add_argument("--write-log", metavar="FILE", help="append every write received and every trip as JSON lines")
    p.add_argument("--opcua-cert", metavar="FILE", help="server certificate (PEM/DER): offer only Basic256Sha256 "
                   "SignAndEncrypt")
    p.add_argument("--opcua-key", metavar="FILE", help="private key of --opcua-cert (PEM/DER, unencrypted)")
    p.add_argument("--opcua-trust", metavar="FILE", action="append", default=[],
                   help="a client certificate to trust (repeatable); without it any client certificate is accepted")
    p.set_defaults(run=plc_sim)


def plc_sim(args: argparse.Namespace) -> int:
    """Run every PLC of the recording or CMDB file until SIGINT/SIGTERM; 2 when the input or the ports are unusable."""
    prefix = "interlock plc-sim:"
    if args.bootstrap and not args.publish_state:
        print(f"{prefix} --bootstrap is only used to publish plc.state; add --publish-state", file=sys.stderr)
        return 2
    if bool(args.opcua_cert) != bool(args.opcua_key):
        print(f"{prefix} --opcua-cert and --opcua-key go together; give both or neither", file=sys.stderr)
        return 2
    if args.opcua_trust and not args.opcua_cert:
        print(f"{prefix} --opcua-trust needs --opcua-cert and --opcua-key (trust applies to secured channels)",
              file=sys.stderr)
        return 2
    try:
        if args.recording:
            rows = plc_rows_from_recording(args.recording)
            tags = plc_tags_from_recording(args.recording)
        else:
            rows = plc_rows_from_jsonl(args.cmdb)
            tags = {}
    except (OSError, PlcConfigError) as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return 2
    from simulators.plc_opcua import OpcuaSecurity

    security = None
    if args.opcua_cert:
        security = OpcuaSecurity(Path(args.opcua_cert), Path(args.opcua_key), tuple(Path(p) for p in args.opcua_trust))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("asyncua", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    producer = None
    publish: Publish | None = None
    if args.publish_state and args.bootstrap:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})

        def publish(topic: str, key: str, value: bytes) -> None:
            producer.produce(topic, key=key.encode(), value=value, on_delivery=_delivery_report)
            producer.poll(0)
    elif args.publish_state:
        def publish(topic: str, key: str, value: bytes) -> None:
            print(f"{topic} {key} {value.decode()}", flush=True)
    try:
        simulator = PlcSimulator(rows, tags=tags, publish=publish, write_log=args.write_log, opcua_security=security)
    except PlcConfigError as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(simulator))
    except (PlcStartError, OSError) as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return 2
    finally:
        if producer is not None:
            undelivered = producer.flush(5)
            if undelivered:
                print(f"{prefix} {undelivered} plc.state record(s) not delivered to {args.bootstrap}", file=sys.stderr)


async def _serve(simulator: PlcSimulator) -> int:
    """Start, say where every PLC listens, and run until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    await simulator.start()
    try:
        for plc in simulator.plcs:
            print(simulator.describe(plc), flush=True)
        print(f"{len(simulator.plcs)} PLC(s) running; watchdog {WATCHDOG_TIMEOUT_S:g} s; Ctrl-C to stop",
              file=sys.stderr, flush=True)
        await stopping.wait()
    finally:
        await simulator.stop()
    return 0


def _delivery_report(error: object, message: object) -> None:
    if error is not None:
        logger.error("plc.state not delivered: %s", error)
