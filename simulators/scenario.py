"""Scenarios: a site, its people and permits, and a timeline, turned into a deterministic recording.

A scenario is written by hand as TOML (see simulators/README.md) and loaded into the Structs
below. `generate` plays it on the site's clock: table rows at their times, every device reporting
at its rate, timeline events changing what devices report. The same scenario always yields the
same records, byte for byte.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct, field

from simulators.devices import (
    CHANNELS,
    Detector,
    Harness,
    Plc,
    Point,
    anchorline_fix,
    firmware_major,
    gd4_payload,
    plc_payload,
    position_at,
    qubit_fix,
    sh2_payload,
    standing,
    walk_to,
)
from simulators.payloads import (
    DetectorStatus,
    DeviceRow,
    PermitAction,
    PermitRow,
    PermitState,
    PermitType,
    Signatures,
    WorkerRow,
    ZoneRow,
    payload_text,
)
from simulators.recording import Record

AwareDatetime = Annotated[datetime.datetime, Meta(tz=True)]
Place = str | Point
Channel = Literal["o2", "lel", "h2s", "co"]
Hook = Literal[0, 1]

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
GAS_SHAPES = {2, 3}
HARNESS_SHAPES = {1, 2}


class ScenarioError(ValueError):
    """A scenario that cannot be played: a reference to something it does not define, or an unknown shape."""


# The scenario description


class Permit(Struct, forbid_unknown_fields=True):
    """A permit as first published; the window may be written as TOML datetimes or ms since the epoch."""

    permit: str
    type: PermitType
    grade: str
    zone: str
    valid_from: AwareDatetime | int
    valid_to: AwareDatetime | int
    workers: list[str]
    guardian: str
    approver: str
    signatures: Signatures
    equipment: list[str] = []
    isolations: list[str] = []
    ventilation: list[str] = []
    detectors: list[str] = []
    harnesses: list[str] = []
    state: PermitState = "approved"
    rev: int = 1


class GasSim(Struct, forbid_unknown_fields=True):
    """How a GD-4 reads: gas levels around it, status, last bump test (s from start), first seq, faults."""

    o2: float = 20.9
    lel: float = 0.0
    h2s: float = 0.0
    co: float = 0.0
    st: DetectorStatus = "ok"
    bump: float = -3 * 3600.0
    seq: int | None = None
    fault: list[Channel] = []
    running: str | None = None


class HarnessSim(Struct, forbid_unknown_fields=True):
    """How an SH-2 is worn: height above grade (m), hooks (0/1 each), battery %, first seq."""

    h: float = 0.0
    hooks: list[Hook] = field(default_factory=lambda: [1, 1])
    bat: Annotated[int, Meta(ge=0, le=100)] = 90
    seq: int | None = None
    running: str | None = None


class PlcSim(Struct, forbid_unknown_fields=True):
    """The signals a PLC gateway reports, with their values at the start, and its first seq."""

    tags: dict[str, bool] = {}
    seq: int | None = None


class Rtls(Struct, forbid_unknown_fields=True):
    """The Qubit gateway's id (the key of its messages) and how many tags it puts in one message.

    `qubit_tags` puts Qubit tags on other gateways (tag id -> gateway id); unlisted tags use `qubit_gateway`.
    """

    qubit_gateway: str = "QGW-01"
    qubit_batch: Annotated[int, Meta(ge=1)] = 4
    qubit_tags: dict[str, str] = {}


class Tables(Struct, forbid_unknown_fields=True):
    """When each table's rows go out (s from start), one every `spacing` seconds in the order written."""

    cmdb: float = 0.0
    gis: float = 1.0
    hr: float = 2.0
    ptw: float = 4.0
    spacing: float = 0.02


class Event(Struct, tag_field="kind", forbid_unknown_fields=True):
    """Something that happens `at` seconds after the start."""

    at: float


class SetFirmware(Event, tag="firmware"):
    """A detector or harness starts running other firmware (and so sends that firmware's shape)."""

    device: str
    firmware: str


class PublishDevice(Event, tag="cmdb"):
    """The CMDB publishes a device row, e.g. approving new firmware."""

    row: DeviceRow


class Decommission(Event, tag="decommission"):
    """The CMDB publishes a tombstone for a device."""

    device: str


class SetPermitState(Event, tag="permit"):
    """The permit system moves a permit to a state and republishes it with the next rev."""

    permit: str
    state: PermitState


class SendPermitAction(Event, tag="action"):
    """The permit system sends a reset or an acknowledgement on `ptw.actions`."""

    permit: str
    action: Literal["reset", "ack"]
    by: str
    alert: str | None = None


class MoveWorker(Event, tag="move"):
    """A worker walks in a straight line to a point at `speed` m/s."""

    worker: str
    to: Place
    speed: Annotated[float, Meta(gt=0)] = 1.0


class SetPlcSignal(Event, tag="plc"):
    """A PLC signal changes; the gateway reports at once."""

    plc: str
    tag: str
    value: bool


class SetHarness(Event, tag="harness"):
    """A harness changes height or hooks; a hook change is reported at once."""

    device: str
    h: float | None = None
    hooks: list[Hook] | None = None


class SetGas(Event, tag="gas"):
    """The gas around a detector, its status, bump test (s from start) or faulted channels change."""

    device: str
    o2: float | None = None
    lel: float | None = None
    h2s: float | None = None
    co: float | None = None
    st: DetectorStatus | None = None
    bump: float | None = None
    fault: list[Channel] | None = None


TimelineEvent = (
    SetFirmware
    | PublishDevice
    | Decommission
    | SetPermitState
    | SendPermitAction
    | MoveWorker
    | SetPlcSignal
    | SetHarness
    | SetGas
)


class Scenario(Struct, forbid_unknown_fields=True):
    """Everything a recording is generated from; see simulators/README.md for the TOML form."""

    seed: int
    start: AwareDatetime | int
    duration: Annotated[float, Meta(gt=0)]
    name: str = ""
    description: str = ""
    tables: Tables = field(default_factory=Tables)
    rtls: Rtls = field(default_factory=Rtls)
    points: dict[str, Point] = {}
    positions: dict[str, Place] = {}
    zones: list[ZoneRow] = []
    devices: list[DeviceRow] = []
    workers: list[WorkerRow] = []
    permits: list[Permit] = []
    gas: dict[str, GasSim] = {}
    harness: dict[str, HarnessSim] = {}
    plc: dict[str, PlcSim] = {}
    timeline: list[TimelineEvent] = []


def load_scenario(path: Path) -> Scenario:
    """Read a scenario TOML file; unknown keys are errors, so a typo cannot silently change the site."""
    return msgspec.toml.decode(Path(path).read_bytes(), type=Scenario)


def epoch_ms(moment: datetime.datetime | int) -> int:
    """A TOML datetime or a number of ms as ms since the epoch."""
    if isinstance(moment, int):
        return moment
    return (moment - EPOCH) // datetime.timedelta(milliseconds=1)


def permit_row(permit: Permit, rev: int, state: PermitState) -> PermitRow:
    """The full record the permit system publishes for `permit` at `rev` in `state`."""
    return PermitRow(
        permit=permit.permit,
        rev=rev,
        type=permit.type,
        grade=permit.grade,
        zone=permit.zone,
        state=state,
        valid_from=epoch_ms(permit.valid_from),
        valid_to=epoch_ms(permit.valid_to),
        workers=list(permit.workers),
        guardian=permit.guardian,
        approver=permit.approver,
        equipment=list(permit.equipment),
        isolations=list(permit.isolations),
        ventilation=list(permit.ventilation),
        detectors=list(permit.detectors),
        harnesses=list(permit.harnesses),
        signatures=permit.signatures,
    )


# Checking a scenario before it is played


def devices_of(scenario: Scenario, family: str) -> dict[str, DeviceRow]:
    """The scenario's CMDB rows of one family, by device id."""
    return {row.device: row for row in scenario.devices if row.family == family}


def tag_wearers(scenario: Scenario) -> dict[str, str]:
    """Which worker wears each UWB tag, by tag id."""
    return {tag: row.worker for tag, row in devices_of(scenario, "uwb_tag").items() if row.worker}


def running_firmware(row: DeviceRow, running: str | None) -> str:
    """The firmware a device runs at the start: its own setting if given, else what the CMDB approved."""
    return running or row.firmware or ""


def duplicate_problems(scenario: Scenario) -> list[str]:
    """Ids written twice in one table."""
    tables = {
        "zone": [z.zone for z in scenario.zones],
        "device": [d.device for d in scenario.devices],
        "worker": [w.worker for w in scenario.workers],
        "permit": [p.permit for p in scenario.permits],
    }
    return [
        f"{kind} {name} is defined more than once"
        for kind, names in tables.items()
        for name in sorted({n for n in names if names.count(n) > 1})
    ]


def shape_problem(device: str, firmware: str, shapes: set[int]) -> list[str]:
    """A complaint if no payload shape is known for this firmware."""
    try:
        known = firmware_major(firmware) in shapes
    except ValueError:
        known = False
    return [] if known else [f"{device}: no payload shape for firmware {firmware!r}"]


def section_problems(scenario: Scenario) -> list[str]:
    """Simulation sections that name a device of another family, and devices whose shape is unknown."""
    problems = []
    sections = (("gas", scenario.gas, GAS_SHAPES), ("harness", scenario.harness, HARNESS_SHAPES))
    for family, section, shapes in sections:
        rows = devices_of(scenario, family)
        problems += [f"[{family}.{d}] names no {family} device" for d in section if d not in rows]
        for device, row in rows.items():
            sim = section.get(device)
            firmware = running_firmware(row, sim.running if sim else None)
            problems += shape_problem(device, firmware, shapes)
    plcs = devices_of(scenario, "plc")
    problems += [f"[plc.{p}] names no plc device" for p in scenario.plc if p not in plcs]
    return problems


def position_problems(scenario: Scenario) -> list[str]:
    """Tags without a vendor or a placed wearer, placed workers without a tag, unknown points."""
    problems = []
    wearers = tag_wearers(scenario)
    for tag, row in devices_of(scenario, "uwb_tag").items():
        if row.vendor is None:
            problems.append(f"tag {tag} has no vendor")
        if row.worker not in scenario.positions:
            problems.append(f"tag {tag}: its wearer {row.worker} has no position")
    qubit = {tag for tag, row in devices_of(scenario, "uwb_tag").items() if row.vendor == "qubit"}
    problems += [f"[rtls.qubit_tags] {t} is not a qubit tag" for t in scenario.rtls.qubit_tags if t not in qubit]
    worn = set(wearers.values())
    problems += [f"worker {w} has a position but wears no tag" for w in scenario.positions if w not in worn]
    places = list(scenario.positions.values()) + [e.to for e in scenario.timeline if isinstance(e, MoveWorker)]
    problems += [f"no point named {p!r}" for p in places if isinstance(p, str) and p not in scenario.points]
    return problems


def event_problems(scenario: Scenario, event: TimelineEvent) -> list[str]:
    """What is wrong with one timeline event, if anything."""
    gas, harness, plcs = (devices_of(scenario, f) for f in ("gas", "harness", "plc"))
    permits = {p.permit for p in scenario.permits}
    where = f"{event.at} s {type(event).__struct_config__.tag}"
    if not 0 <= event.at <= scenario.duration:
        return [f"{where}: outside the scenario's 0..{scenario.duration} s"]
    match event:
        case SetFirmware() if event.device in gas:
            return shape_problem(event.device, event.firmware, GAS_SHAPES)
        case SetFirmware() if event.device in harness:
            return shape_problem(event.device, event.firmware, HARNESS_SHAPES)
        case SetFirmware():
            return [f"{where}: {event.device} is neither a detector nor a harness"]
        case SetGas() if event.device not in gas:
            return [f"{where}: {event.device} is not a detector"]
        case SetHarness() if event.device not in harness:
            return [f"{where}: {event.device} is not a harness"]
        case SetPermitState() | SendPermitAction() if event.permit not in permits:
            return [f"{where}: unknown permit {event.permit}"]
        case MoveWorker() if event.worker not in scenario.positions:
            return [f"{where}: worker {event.worker} has no position to move from"]
        case SetPlcSignal() if event.plc not in plcs:
            return [f"{where}: unknown PLC {event.plc}"]
        case SetPlcSignal() if event.tag not in plc_sim(scenario, event.plc).tags:
            return [f"{where}: PLC {event.plc} reports no signal {event.tag}"]
    return []


def plc_sim(scenario: Scenario, plc: str) -> PlcSim:
    """The PLC's simulation section, or an empty one."""
    return scenario.plc.get(plc) or PlcSim()


def validate(scenario: Scenario) -> None:
    """Refuse a scenario that references things it does not define; every problem is listed at once."""
    problems = duplicate_problems(scenario) + section_problems(scenario) + position_problems(scenario)
    for event in scenario.timeline:
        problems += event_problems(scenario, event)
    if problems:
        raise ScenarioError("; ".join(problems))


# Playing a scenario

GAS_PERIOD_MS = 1000
HARNESS_PERIOD_MS = 1000
RTLS_PERIOD_MS = 1000
PLC_PERIOD_MS = 5000
RADIO_JITTER_MS = 20  # wireless devices' arrival varies; the wired PLC gateways keep their 5 s exactly
DEVICE_LAG_MS = 40  # a device's clock reads 0-40 ms before the record's arrival time
EVENT, TICK = 0, 1  # at the same ms, events apply before devices report


class Agenda:
    """What happens next on the site's clock: actions ordered by ms, then rank, then when they were added."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Callable[[int], None]]] = []
        self._order = itertools.count()

    def at(self, ms: int, rank: int, action: Callable[[int], None]) -> None:
        """Run `action(ms)` at `ms`."""
        heapq.heappush(self._heap, (ms, rank, next(self._order), action))

    def run(self) -> None:
        """Run every action in order, including those that actions add."""
        while self._heap:
            ms, _, _, action = heapq.heappop(self._heap)
            action(ms)


class Site:
    """A scenario being played: the devices' state, the agenda, and the records sent so far."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.start = epoch_ms(scenario.start)
        self.end = self.start + round(scenario.duration * 1000)
        self.records: list[Record] = []
        self.agenda = Agenda()
        self._rngs: dict[str, random.Random] = {}
        self.permits: dict[str, PermitRow] = {}
        self.detectors = {d: self._detector(row) for d, row in devices_of(scenario, "gas").items()}
        self.harnesses = {d: self._harness(row) for d, row in devices_of(scenario, "harness").items()}
        self.plcs = {p: self._plc(p) for p in devices_of(scenario, "plc")}
        self.walks = {w: standing(self.point(place)) for w, place in scenario.positions.items()}
        self.wearers = tag_wearers(scenario)

    # state at the start

    def rng(self, name: str) -> random.Random:
        """The random stream of one device or system, seeded from the scenario seed and its name."""
        if name not in self._rngs:
            self._rngs[name] = random.Random(f"{self.scenario.seed}:{name}")
        return self._rngs[name]

    def first_seq(self, device: str, seq: int | None) -> int:
        """The device's first sequence number: as written, or drawn from its stream."""
        return self.rng(device).randrange(65536) if seq is None else seq

    def point(self, place: Place) -> Point:
        """A named point or literal [x, y, z], in site metres."""
        return self.scenario.points[place] if isinstance(place, str) else place

    def _detector(self, row: DeviceRow) -> Detector:
        """A GD-4 as its `[gas.<id>]` section (or the defaults) sets it up."""
        sim = self.scenario.gas.get(row.device) or GasSim()
        levels = {c: getattr(sim, c) for c in CHANNELS}
        bump = self.start + round(sim.bump * 1000)
        seq = self.first_seq(row.device, sim.seq)
        firmware = running_firmware(row, sim.running)
        return Detector(row.device, firmware, levels, sim.st, bump, seq, list(sim.fault))

    def _harness(self, row: DeviceRow) -> Harness:
        """An SH-2 as its `[harness.<id>]` section (or the defaults) sets it up."""
        sim = self.scenario.harness.get(row.device) or HarnessSim()
        firmware = running_firmware(row, sim.running)
        seq = self.first_seq(row.device, sim.seq)
        return Harness(row.device, firmware, sim.h, list(sim.hooks), sim.bat, seq)

    def _plc(self, plc: str) -> Plc:
        """A PLC gateway with the signals of its `[plc.<id>]` section."""
        sim = plc_sim(self.scenario, plc)
        return Plc(plc, dict(sim.tags), self.first_seq(plc, sim.seq))

    # sending

    def send(self, topic: str, key: str | None, ts: int, payload: Struct | list | None) -> None:
        """Add a record arriving at `ts`; a None payload is a tombstone."""
        text = None if payload is None else payload_text(payload)
        self.records.append(Record(topic, key, ts, text))

    def device_clock(self, ts: int, rng: random.Random) -> int:
        """A device's own clock for a record arriving at `ts`: a few ms earlier."""
        return ts - rng.randint(0, DEVICE_LAG_MS)

    def ms(self, seconds: float) -> int:
        """A time in seconds from the start as ms since the epoch."""
        return self.start + round(seconds * 1000)

    # scheduling

    def every(self, name: str, period: int, jitter: int, report: Callable[[int, random.Random], None]) -> None:
        """Have `report` run every `period` ms from a random phase until the end, arriving 0..jitter ms late."""
        rng = self.rng(name)

        def schedule(nominal: int) -> None:
            if nominal < self.end:
                self.agenda.at(nominal + rng.randint(0, jitter), TICK, partial(tick, nominal=nominal))

        def tick(ts: int, nominal: int) -> None:
            report(ts, rng)
            schedule(nominal + period)

        schedule(self.start + rng.randrange(period))

    def schedule_tables(self) -> None:
        """Publish every table row at its table's time, in the order the scenario lists them."""
        tables = self.scenario.tables
        rows = (
            (tables.cmdb, "cmdb.devices", [(r.device, r) for r in self.scenario.devices]),
            (tables.gis, "gis.zones", [(z.zone, z) for z in self.scenario.zones]),
            (tables.hr, "hr.qualifications", [(w.worker, w) for w in self.scenario.workers]),
        )
        for start, topic, keyed in rows:
            for i, (key, row) in enumerate(keyed):
                when = self.ms(start + i * tables.spacing)
                self.agenda.at(when, EVENT, partial(self.send, topic, key, payload=row))
        for i, permit in enumerate(self.scenario.permits):
            when = self.ms(tables.ptw + i * tables.spacing)
            row = permit_row(permit, permit.rev, permit.state)
            self.agenda.at(when, EVENT, partial(self.publish_permit, row=row))

    def schedule_devices(self) -> None:
        """Start every detector, harness, tag, Qubit gateway and PLC gateway reporting."""
        for name, detector in self.detectors.items():
            self.every(name, GAS_PERIOD_MS, RADIO_JITTER_MS, partial(self.report_gas, detector))
        for name, harness in self.harnesses.items():
            self.every(name, HARNESS_PERIOD_MS, RADIO_JITTER_MS, partial(self.report_harness, harness))
        tags = devices_of(self.scenario, "uwb_tag")
        for tag in (t for t, row in tags.items() if row.vendor == "anchorline"):
            self.every(tag, RTLS_PERIOD_MS, RADIO_JITTER_MS, partial(self.report_anchorline, tag))
        rtls = self.scenario.rtls
        gateways: dict[str, list[str]] = {}
        for tag in (t for t, row in tags.items() if row.vendor == "qubit"):
            gateways.setdefault(rtls.qubit_tags.get(tag, rtls.qubit_gateway), []).append(tag)
        for gateway, qubit_tags in gateways.items():
            self.every(gateway, RTLS_PERIOD_MS, RADIO_JITTER_MS, partial(self.report_qubit, gateway, qubit_tags))
        for name, plc in self.plcs.items():
            self.every(name, PLC_PERIOD_MS, 0, partial(self.report_plc, plc))

    def schedule_timeline(self) -> None:
        """Apply each timeline event at its time."""
        for event in self.scenario.timeline:
            self.agenda.at(self.ms(event.at), EVENT, partial(self.apply, event))

    # reports

    def report_gas(self, detector: Detector, ts: int, rng: random.Random) -> None:
        """A GD-4 reading."""
        self.send("gas.readings", detector.dev, ts, gd4_payload(detector, self.device_clock(ts, rng), rng))

    def report_harness(self, harness: Harness, ts: int, rng: random.Random) -> None:
        """An SH-2 report."""
        payload = sh2_payload(harness, self.device_clock(ts, rng), ts - self.start, rng)
        self.send("harness.status", harness.dev, ts, payload)

    def tag_position(self, tag: str, ts: int) -> Point:
        """Where the wearer of `tag` is at `ts`."""
        return position_at(self.walks[self.wearers[tag]], ts)

    def report_anchorline(self, tag: str, ts: int, rng: random.Random) -> None:
        """One Anchorline tag update, keyed by the tag."""
        fix = anchorline_fix(tag, self.tag_position(tag, ts), self.device_clock(ts, rng), rng)
        self.send("rtls.position", tag, ts, fix)

    def report_qubit(self, gateway: str, tags: list[str], ts: int, rng: random.Random) -> None:
        """A Qubit gateway's cycle: its tags in batches, one message per batch, keyed by the gateway."""
        size = self.scenario.rtls.qubit_batch
        for i in range(0, len(tags), size):
            sent = ts + i // size
            fixes = [qubit_fix(t, self.tag_position(t, sent), self.device_clock(sent, rng), rng) for t in tags[i : i + size]]
            self.send("rtls.position", gateway, sent, fixes)

    def report_plc(self, plc: Plc, ts: int, rng: random.Random) -> None:
        """A PLC gateway's state report."""
        self.send("plc.state", plc.plc, ts, plc_payload(plc, self.device_clock(ts, rng)))

    def publish_permit(self, ts: int, row: PermitRow) -> None:
        """Publish a permit record and remember it as the permit's latest."""
        self.permits[row.permit] = row
        self.send("ptw.permits", row.permit, ts, row)

    # timeline events

    def apply(self, event: TimelineEvent, ts: int) -> None:
        """Make one timeline event happen at `ts`."""
        match event:
            case SetFirmware():
                self.set_firmware(event)
            case PublishDevice():
                self.send("cmdb.devices", event.row.device, ts, event.row)
            case Decommission():
                self.send("cmdb.devices", event.device, ts, None)
            case SetPermitState():
                row = self.permits[event.permit]
                self.publish_permit(ts, msgspec.structs.replace(row, rev=row.rev + 1, state=event.state))
            case SendPermitAction():
                self.send_action(event, ts)
            case MoveWorker():
                self.walks[event.worker] = walk_to(self.walks[event.worker], self.point(event.to), ts, event.speed)
            case SetPlcSignal():
                self.set_plc_signal(event, ts)
            case SetHarness():
                self.set_harness(event, ts)
            case SetGas():
                self.set_gas(event)

    def set_firmware(self, event: SetFirmware) -> None:
        """The device runs other firmware from now on."""
        if event.device in self.detectors:
            self.detectors[event.device].firmware = event.firmware
        else:
            self.harnesses[event.device].firmware = event.firmware

    def send_action(self, event: SendPermitAction, ts: int) -> None:
        """A `ptw.actions` record stamped by the permit system's clock."""
        clock = self.device_clock(ts, self.rng("ptw"))
        action = PermitAction(permit=event.permit, action=event.action, by=event.by, alert=event.alert, ts=clock)
        self.send("ptw.actions", event.permit, ts, action)

    def set_plc_signal(self, event: SetPlcSignal, ts: int) -> None:
        """Change a signal; the gateway reports on change."""
        plc = self.plcs[event.plc]
        if plc.tags[event.tag] != event.value:
            plc.tags[event.tag] = event.value
            self.report_plc(plc, ts, self.rng(event.plc))

    def set_harness(self, event: SetHarness, ts: int) -> None:
        """Change height or hooks; the harness reports a hook change at once."""
        harness = self.harnesses[event.device]
        if event.h is not None:
            harness.h = event.h
        if event.hooks is not None and event.hooks != harness.hooks:
            harness.hooks = list(event.hooks)
            self.report_harness(harness, ts, self.rng(event.device))

    def set_gas(self, event: SetGas) -> None:
        """Change the gas around a detector, its status, bump test or faulted channels."""
        detector = self.detectors[event.device]
        for channel in CHANNELS:
            if getattr(event, channel) is not None:
                detector.levels[channel] = getattr(event, channel)
        if event.st is not None:
            detector.st = event.st
        if event.bump is not None:
            detector.bump = self.ms(event.bump)
        if event.fault is not None:
            detector.fault = list(event.fault)


def generate(scenario: Scenario) -> list[Record]:
    """Play a scenario and return its records in the order they were produced (a recording sorts them)."""
    validate(scenario)
    site = Site(scenario)
    site.schedule_tables()
    site.schedule_timeline()
    site.schedule_devices()
    site.agenda.run()
    return site.records
