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

from simulators.detector_behaviour import DetectorBehaviour, power, sensed_readings, stick
from simulators.detector_behaviour import status as detector_status
from simulators.devices import (
    CHANNELS,
    Detector,
    Harness,
    Plc,
    Point,
    anchorline_fix,
    battery_at,
    firmware_major,
    gd4_payload,
    plc_payload,
    position_at,
    qubit_fix,
    sh2_payload,
    standing,
    walk_to,
)
from simulators.gas_physics import (
    GASES,
    INERT_GASES,
    GasSource,
    Sludge,
    ZoneAir,
    add_sludge,
    add_source,
    advance,
    outside_air,
    release,
    volume_flow,
    zone_air,
)
from simulators.harness_behaviour import HarnessHabits, height_of_wearer, hooks_while_moving, reclip_delay_ms
from simulators.payloads import (
    DetectorStatus,
    DeviceRow,
    PermitAction,
    PermitRow,
    PermitState,
    PermitType,
    QubitFix,
    Signatures,
    WorkerRow,
    ZoneRow,
    payload_text,
)
from simulators.recording import Record
from simulators.tag_behaviour import TagBehaviour, anchorline_observed, observed_fix, qubit_observed

AwareDatetime = Annotated[datetime.datetime, Meta(tz=True)]
Place = str | Point
Channel = Literal["o2", "lel", "h2s", "co"]
Hook = Literal[0, 1]
NonNegative = Annotated[float, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]
Probability = Annotated[float, Meta(ge=0, le=1)]

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


class ChannelSigma(Struct, forbid_unknown_fields=True):
    """A noise σ per GD-4 channel, in the channel's unit; a channel left out has none."""

    o2: NonNegative = 0.0
    lel: NonNegative = 0.0
    h2s: NonNegative = 0.0
    co: NonNegative = 0.0


class ChannelDrift(Struct, forbid_unknown_fields=True):
    """A drift per GD-4 channel, in the channel's unit per hour (either sign); a channel left out does not drift."""

    o2: float = 0.0
    lel: float = 0.0
    h2s: float = 0.0
    co: float = 0.0


GAS_LEVEL_DEFAULTS = {"o2": 20.9, "lel": 0.0, "h2s": 0.0, "co": 0.0}


class GasSim(Struct, forbid_unknown_fields=True):
    """How a GD-4 reads: gas levels around it (default fresh air; a detector in a zone with `[air]` reads that air
    instead), status, last bump test (s from start), first seq, faults; and, when asked, Gaussian noise, drift,
    warm-up, when it was switched on, and channels stuck at a value."""

    o2: float | None = None
    lel: float | None = None
    h2s: float | None = None
    co: float | None = None
    st: DetectorStatus = "ok"
    bump: float = -3 * 3600.0
    seq: int | None = None
    fault: list[Channel] = []
    running: str | None = None
    noise: ChannelSigma | None = None
    drift: ChannelDrift | None = None
    warmup: NonNegative = 0.0
    on: float | None = None
    stuck: list[Channel] = []

    def level(self, channel: str) -> float:
        """The level written for a channel, or fresh air's."""
        value = getattr(self, channel)
        return GAS_LEVEL_DEFAULTS[channel] if value is None else value

    def asks_for_behaviour(self) -> bool:
        """Whether the section sets any of noise, drift, warm-up, switch-on time or stuck channels."""
        return (self.noise is not None or self.drift is not None or self.warmup > 0 or self.on is not None
                or bool(self.stuck))


class HarnessSim(Struct, forbid_unknown_fields=True):
    """How an SH-2 is worn: height above grade (m), hooks (0/1 each), battery %, first seq; and, when asked, height
    following the wearer's tag (z − `tag_height`), clipping habits (`unclip`, `reclip`) and battery drain (%/h)."""

    h: float = 0.0
    hooks: list[Hook] = field(default_factory=lambda: [1, 1])
    bat: Annotated[int, Meta(ge=0, le=100)] = 90
    seq: int | None = None
    running: str | None = None
    follow: bool = False
    tag_height: NonNegative = 1.1
    unclip: Probability | None = None
    reclip: NonNegative = 5.0
    drain: NonNegative | None = None


class PlcSim(Struct, forbid_unknown_fields=True):
    """The signals a PLC gateway reports, with their values at the start, and its first seq; `schedule` gives the
    intervals (s from start) in which a signal is true, `worked_by` a worker whose work keeps a signal true."""

    tags: dict[str, bool] = {}
    seq: int | None = None
    schedule: dict[str, list[tuple[float, float]]] = {}
    worked_by: dict[str, str] = {}


class TagSim(Struct, forbid_unknown_fields=True):
    """How a UWB tag's fixes err: Gaussian noise σ (m) across and in height (default σ/2), chance per fix of a
    multipath outlier and its typical jump (m), chance per fix that a dropout starts and how long it lasts (s)."""

    sigma: NonNegative = 0.15
    sigma_z: NonNegative | None = None
    multipath: Probability = 0.0
    multipath_m: NonNegative = 3.0
    dropout: Probability = 0.0
    dropout_s: Positive = 1.0


class OutsideAir(Struct, forbid_unknown_fields=True):
    """The air ventilation brings in, in a detector's units: O2 %vol, H2S and CO ppm."""

    o2: Annotated[float, Meta(ge=0, le=100)] = 20.9
    h2s: NonNegative = 0.0
    co: NonNegative = 0.0


class AirSim(Struct, forbid_unknown_fields=True):
    """A zone's air as one well-mixed volume (m³) with ventilation in air changes per hour: `ach` while its `fan`
    runs (or always, with no fan), `ach_off` while the fan is stopped; temperature (°C) and outside air."""

    volume: Positive
    ach: NonNegative
    ach_off: NonNegative = 0.0
    fan: str | None = None
    temperature: Annotated[float, Meta(ge=-50, le=80)] = 20.0
    outside: OutsideAir = field(default_factory=OutsideAir)


class Rtls(Struct, forbid_unknown_fields=True):
    """The Qubit gateway's id (the key of its messages) and how many tags it puts in one message.

    `qubit_tags` puts Qubit tags on other gateways (tag id -> gateway id); unlisted tags use `qubit_gateway`.
    `fixes` gives every tag's fix errors unless its `[uwb.<tag>]` section gives its own.
    """

    qubit_gateway: str = "QGW-01"
    qubit_batch: Annotated[int, Meta(ge=1)] = 4
    qubit_tags: dict[str, str] = {}
    fixes: TagSim | None = None


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
    stuck: list[Channel] | None = None


class GasFlow(Event):
    """Pure gas flowing into a zone's air from `at` until `until` (s; default: to the end), and only while the PLC
    signal `while_on` (e.g. "PUMP-4.running") is true if one is named. Exactly one rate: kg_h, g_h, l_min, m3_h."""

    zone: str
    gas: str
    kg_h: NonNegative | None = None
    g_h: NonNegative | None = None
    l_min: NonNegative | None = None
    m3_h: NonNegative | None = None
    until: float | None = None
    while_on: str | None = None


class Leak(GasFlow, tag="leak"):
    """A leak of a gas; for a liquid (hexane, benzene, toluene) the rate is its pool's evaporation at 20 °C, scaled
    to the zone's temperature."""


class Purge(GasFlow, tag="purge"):
    """An inert gas (nitrogen by default) blown in, displacing the air and its oxygen."""

    gas: str = "nitrogen"


class Exhaust(GasFlow, tag="exhaust"):
    """Combustion gas (carbon monoxide by default) from an engine or hot work, usually `while_on` its equipment."""

    gas: str = "carbon_monoxide"


class Release(Event, tag="release"):
    """A sudden release of `kg` (or `m3` at the zone's temperature) of a gas into a zone's air."""

    zone: str
    gas: str
    kg: Positive | None = None
    m3: Positive | None = None


class DisturbSludge(Event, tag="sludge"):
    """Work disturbs sludge holding `h2s_g` grams of H2S, released first-order with time constant `tau` (s), from
    `at` until `until` and while `while_on` if named."""

    zone: str
    h2s_g: Positive
    tau: Positive = 300.0
    until: float | None = None
    while_on: str | None = None


class SetVentilation(Event, tag="ventilation"):
    """A zone's ventilation changes: `ach` (while its fan runs, or always) and/or `ach_off`; a failure and a restart."""

    zone: str
    ach: NonNegative | None = None
    ach_off: NonNegative | None = None


class FailSignal(Event, tag="fail"):
    """A PLC signal fails false (a fan trips, an isolation is lost) until `until` (s; default: to the end), whatever
    schedules, work or `plc` events ask; then it returns to what they ask."""

    plc: str
    tag: str
    until: float | None = None


class PowerDetector(Event, tag="power"):
    """A detector is switched off (it stops reporting) or on (it restarts: seq from 0, then warms up)."""

    device: str
    on: bool


class BumpTest(Event, tag="bump"):
    """A bump test: the detector reads the test gas for `duration` s, then (if `passed`) its bump time is the end."""

    device: str
    duration: NonNegative = 0.0
    passed: bool = True


class Waypoint(Struct, forbid_unknown_fields=True):
    """A stop on a worker's path: where (point name or [x, y, z]), how long they stay (s), the speed of the walk
    there (m/s; default the path's) and whether they work while they stay."""

    to: Place
    dwell: NonNegative = 0.0
    speed: Positive | None = None
    work: bool = False


class WalkPath(Event, tag="path"):
    """A worker walks from where they are through the waypoints in order, at `speed` m/s unless a waypoint says."""

    worker: str
    waypoints: list[Waypoint]
    speed: Positive = 1.2


class ShiftClock(Event, tag="clock"):
    """The clocks of devices (detectors, harnesses, PLC gateways, Anchorline tags, or a Qubit gateway for all its tags)
    run `offset` s off (ahead if positive) from `at` until `until` (s; default: to the end): a gateway's clock jump."""

    devices: list[str]
    offset: float
    until: float | None = None


class Delivery(Event):
    """Records with this `key` (a device, Qubit gateway, PLC, permit, zone or worker id), on `topic` if named, that are
    produced from `at` until `until` (s; default: to the end), at most `count` of them (default: every one)."""

    key: str
    topic: str | None = None
    until: float | None = None
    count: Annotated[int, Meta(ge=1)] | None = None


class DuplicateRecords(Delivery, tag="duplicate"):
    """Each such record is delivered twice: the copy arrives `after` s after the original (a producer's retry)."""

    after: NonNegative = 0.0


class DelayRecords(Delivery, tag="delay", kw_only=True):
    """Each such record arrives `by` s late, after records produced later (a retried batch): out of order."""

    by: Positive


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
    | Leak
    | Purge
    | Exhaust
    | Release
    | DisturbSludge
    | SetVentilation
    | FailSignal
    | PowerDetector
    | BumpTest
    | WalkPath
    | ShiftClock
    | DuplicateRecords
    | DelayRecords
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
    air: dict[str, AirSim] = {}
    uwb: dict[str, TagSim] = {}
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
    places += [w.to for e in scenario.timeline if isinstance(e, WalkPath) for w in e.waypoints]
    problems += [f"no point named {p!r}" for p in places if isinstance(p, str) and p not in scenario.points]
    return problems


def signal_owners(scenario: Scenario) -> dict[str, list[str]]:
    """Which PLCs report each `<equipment>.<signal>`, by signal."""
    owners: dict[str, list[str]] = {}
    for plc in devices_of(scenario, "plc"):
        for tag in plc_sim(scenario, plc).tags:
            owners.setdefault(tag, []).append(plc)
    return owners


def signal_problem(scenario: Scenario, where: str, signal: str) -> list[str]:
    """A complaint unless exactly one PLC reports `signal`."""
    owners = signal_owners(scenario).get(signal, [])
    if not owners:
        return [f"{where}: no PLC reports {signal!r}; add it to a [plc.<id>] tags table"]
    if len(owners) > 1:
        return [f"{where}: {signal!r} is reported by {', '.join(owners)}; rename it on all but one"]
    return []


def air_problems(scenario: Scenario) -> list[str]:
    """`[air.<zone>]` sections naming unknown zones or fans no PLC runs; detectors in such a zone given levels."""
    zones = {z.zone for z in scenario.zones}
    problems = [f"[air.{z}] names no zone" for z in scenario.air if z not in zones]
    for zone, air in scenario.air.items():
        if air.fan is not None:
            problems += signal_problem(scenario, f"[air.{zone}] fan", f"{air.fan}.running")
    for device, row in devices_of(scenario, "gas").items():
        sim = scenario.gas.get(device)
        levels = [c for c in CHANNELS if sim is not None and getattr(sim, c) is not None]
        if row.zone in scenario.air and levels:
            problems.append(f"[gas.{device}] sets {', '.join(levels)} but the detector reads the air of zone "
                            f"{row.zone} ([air.{row.zone}]); remove them and add gas with leak/release events")
    return problems


def behaviour_problems(scenario: Scenario) -> list[str]:
    """`[uwb]` sections naming no tag, following harnesses without a placed wearer, PLC schedules and work links
    naming signals the PLC does not report or workers without a position."""
    tags = devices_of(scenario, "uwb_tag")
    problems = [f"[uwb.{t}] names no uwb_tag device" for t in scenario.uwb if t not in tags]
    harnesses = devices_of(scenario, "harness")
    for device, sim in scenario.harness.items():
        wearer = harnesses[device].worker if device in harnesses else None
        if (sim.follow or sim.unclip is not None) and wearer not in scenario.positions:
            problems.append(f"[harness.{device}] follow/unclip need its wearer ({wearer}) placed in [positions]")
    for plc, sim in scenario.plc.items():
        for signal, intervals in sim.schedule.items():
            if signal not in sim.tags:
                problems.append(f"[plc.{plc}] schedule: {signal!r} is not in its tags")
            problems += [f"[plc.{plc}] schedule {signal}: interval [{a}, {b}] must run forwards"
                         for a, b in intervals if not a < b]
        for signal, worker in sim.worked_by.items():
            if signal not in sim.tags:
                problems.append(f"[plc.{plc}] worked_by: {signal!r} is not in its tags")
            if worker not in scenario.positions:
                problems.append(f"[plc.{plc}] worked_by {signal}: worker {worker} has no position")
    return problems


def air_event_problems(scenario: Scenario, event: TimelineEvent, where: str) -> list[str]:
    """What is wrong with an event that changes a zone's air: no `[air]` for the zone, an unknown gas, a rate the
    physics cannot use, a window that ends before it starts, or an unknown `while_on` signal."""
    if event.zone not in scenario.air:
        return [f"{where}: zone {event.zone} has no [air.{event.zone}] section"]
    problems = []
    gas = getattr(event, "gas", None)
    if gas is not None and gas not in GASES:
        return [f"{where}: unknown gas {gas!r}; use one of {', '.join(sorted(GASES))}"]
    until = getattr(event, "until", None)
    if until is not None and until < event.at:
        problems.append(f"{where}: until {until} s is before at {event.at} s")
    while_on = getattr(event, "while_on", None)
    if while_on is not None:
        problems += signal_problem(scenario, where, while_on)
    if isinstance(event, Purge) and gas not in INERT_GASES:
        problems.append(f"{where}: purge gas {gas!r} is not inert; use one of {', '.join(INERT_GASES)} or a leak")
    try:
        if isinstance(event, GasFlow):
            volume_flow(gas, scenario.air[event.zone].temperature,
                        kg_h=event.kg_h, g_h=event.g_h, l_min=event.l_min, m3_h=event.m3_h)
        elif isinstance(event, Release):
            air = scenario.air[event.zone]
            release(zone_air(event.zone, air.volume, air.ach), gas, event.kg, event.m3)
    except ValueError as error:
        problems.append(f"{where}: {error}")
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
        case SetGas() | PowerDetector() | BumpTest() if event.device not in gas:
            return [f"{where}: {event.device} is not a detector"]
        case SetGas() if gas[event.device].zone in scenario.air and any(getattr(event, c) is not None
                                                                        for c in CHANNELS):
            zone = gas[event.device].zone
            return [f"{where}: {event.device} reads the air of zone {zone}; change that air with leak/release/"
                    f"purge/ventilation events instead of setting levels"]
        case SetHarness() if event.device not in harness:
            return [f"{where}: {event.device} is not a harness"]
        case SetHarness() if event.h is not None and (scenario.harness.get(event.device) or HarnessSim()).follow:
            return [f"{where}: {event.device} follows its wearer's height; move the wearer instead of setting h"]
        case GasFlow() | Release() | DisturbSludge() | SetVentilation():
            return air_event_problems(scenario, event, where)
        case FailSignal() if event.plc not in plcs:
            return [f"{where}: unknown PLC {event.plc}"]
        case FailSignal() if event.tag not in plc_sim(scenario, event.plc).tags:
            return [f"{where}: PLC {event.plc} reports no signal {event.tag}"]
        case FailSignal() if event.until is not None and event.until < event.at:
            return [f"{where}: until {event.until} s is before at {event.at} s"]
        case WalkPath() if event.worker not in scenario.positions:
            return [f"{where}: worker {event.worker} has no position to walk from"]
        case WalkPath() if not event.waypoints:
            return [f"{where}: the path of {event.worker} has no waypoints"]
        case SetPermitState() | SendPermitAction() if event.permit not in permits:
            return [f"{where}: unknown permit {event.permit}"]
        case MoveWorker() if event.worker not in scenario.positions:
            return [f"{where}: worker {event.worker} has no position to move from"]
        case SetPlcSignal() if event.plc not in plcs:
            return [f"{where}: unknown PLC {event.plc}"]
        case SetPlcSignal() if event.tag not in plc_sim(scenario, event.plc).tags:
            return [f"{where}: PLC {event.plc} reports no signal {event.tag}"]
        case ShiftClock() | DuplicateRecords() | DelayRecords():
            return delivery_problems(scenario, event, where)
    return []


INPUT_TOPICS = ("rtls.position", "gas.readings", "harness.status", "plc.state", "cmdb.devices", "gis.zones",
                "hr.qualifications", "ptw.permits", "ptw.actions")


def qubit_gateways(scenario: Scenario) -> set[str]:
    """The Qubit gateways that send messages: those with at least one Qubit tag."""
    rtls = scenario.rtls
    return {rtls.qubit_tags.get(tag, rtls.qubit_gateway)
            for tag, row in devices_of(scenario, "uwb_tag").items() if row.vendor == "qubit"}


def clocked_devices(scenario: Scenario) -> set[str]:
    """Whatever stamps its own messages with a clock a `clock` event can shift."""
    tags = devices_of(scenario, "uwb_tag")
    own = {d for f in ("gas", "harness", "plc") for d in devices_of(scenario, f)}
    return own | {t for t, row in tags.items() if row.vendor == "anchorline"} | qubit_gateways(scenario)


def record_keys(scenario: Scenario) -> set[str]:
    """Every key the scenario's records are sent under (a Qubit tag is not one: its gateway is)."""
    qubit = {t for t, row in devices_of(scenario, "uwb_tag").items() if row.vendor == "qubit"}
    keys = {d.device for d in scenario.devices if d.device not in qubit} | qubit_gateways(scenario)
    keys |= {p.permit for p in scenario.permits} | {z.zone for z in scenario.zones}
    return keys | {w.worker for w in scenario.workers}


def delivery_problems(scenario: Scenario, event: TimelineEvent, where: str) -> list[str]:
    """What is wrong with a `clock`, `duplicate` or `delay` event: unknown devices, keys or topics, or an `until` before
    `at`."""
    problems = []
    if isinstance(event, ShiftClock):
        known = clocked_devices(scenario)
        problems += [f"{where}: {d} keeps no clock of its own (a detector, harness, PLC, Anchorline tag or Qubit "
                     f"gateway)" for d in event.devices if d not in known]
        if not event.devices:
            problems.append(f"{where}: no devices")
    else:
        if event.key not in record_keys(scenario):
            problems.append(f"{where}: no records are sent with key {event.key!r} (a Qubit tag's are its gateway's)")
        if event.topic is not None and event.topic not in INPUT_TOPICS:
            problems.append(f"{where}: unknown topic {event.topic!r}; use one of {', '.join(INPUT_TOPICS)}")
    if event.until is not None and event.until < event.at:
        problems.append(f"{where}: until {event.until} s is before at {event.at} s")
    return problems


def plc_sim(scenario: Scenario, plc: str) -> PlcSim:
    """The PLC's simulation section, or an empty one."""
    return scenario.plc.get(plc) or PlcSim()


def validate(scenario: Scenario) -> None:
    """Refuse a scenario that references things it does not define; every problem is listed at once."""
    problems = duplicate_problems(scenario) + section_problems(scenario) + position_problems(scenario)
    problems += air_problems(scenario) + behaviour_problems(scenario)
    for event in scenario.timeline:
        problems += event_problems(scenario, event)
    if problems:
        raise ScenarioError("; ".join(problems))


# Playing a scenario

GAS_PERIOD_MS = 1000
HARNESS_PERIOD_MS = 1000
RTLS_PERIOD_MS = 1000
PLC_PERIOD_MS = 5000
AIR_STEP_MS = 1000  # zones' air is integrated in 1 s steps
RADIO_JITTER_MS = 20  # wireless devices' arrival varies; the wired PLC gateways keep their 5 s exactly
DEVICE_LAG_MS = 40  # a device's clock reads 0-40 ms before the record's arrival time
LONG_AGO_MS = 3_600_000  # a detector switched on before the start was switched on this long before its warm-up
EVENT, PHYSICS, TICK = 0, 1, 2  # at the same ms, events apply, then the air moves on, then devices report


class DeliveryRule:
    """Which records a `duplicate` or `delay` event takes (key, topic, produced before `until` ms, how many are left)
    and what it does to them (a copy `shift_ms` later, or arrival `shift_ms` later)."""

    def __init__(self, key: str, topic: str | None, until: int, count: int | None, duplicate: bool,
                 shift_ms: int) -> None:
        self.key, self.topic, self.until, self.left = key, topic, until, count
        self.duplicate, self.shift_ms = duplicate, shift_ms

    def takes(self, record: Record) -> bool:
        """Whether the rule applies to this record (counting it if so)."""
        if record.key != self.key or record.ts >= self.until or self.left == 0:
            return False
        if self.topic is not None and record.topic != self.topic:
            return False
        if self.left is not None:
            self.left -= 1
        return True


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
        self._setup_behaviour()

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
        levels = {c: sim.level(c) for c in CHANNELS}
        bump = self.start + round(sim.bump * 1000)
        seq = self.first_seq(row.device, sim.seq)
        firmware = running_firmware(row, sim.running)
        return Detector(row.device, firmware, levels, sim.st, bump, seq, list(sim.fault))

    def _harness(self, row: DeviceRow) -> Harness:
        """An SH-2 as its `[harness.<id>]` section (or the defaults) sets it up."""
        sim = self.scenario.harness.get(row.device) or HarnessSim()
        firmware = running_firmware(row, sim.running)
        seq = self.first_seq(row.device, sim.seq)
        return Harness(row.device, firmware, sim.h, list(sim.hooks), sim.bat, seq, sim.drain)

    def _plc(self, plc: str) -> Plc:
        """A PLC gateway with the signals of its `[plc.<id>]` section."""
        sim = plc_sim(self.scenario, plc)
        return Plc(plc, dict(sim.tags), self.first_seq(plc, sim.seq))

    def _setup_behaviour(self) -> None:
        """The state of what a scenario may ask for beyond fixed levels: zones' air, detector, tag and harness
        behaviour, signals driven by schedules, failures and work, and workers' paths. Empty when not asked for."""
        scenario = self.scenario
        self.air = {zone: self._zone_air(zone, sim) for zone, sim in scenario.air.items()}
        gas_rows = devices_of(scenario, "gas")
        self.detector_air = {d: self.air[row.zone] for d, row in gas_rows.items() if row.zone in self.air}
        asked = {e.device for e in scenario.timeline
                 if isinstance(e, PowerDetector | BumpTest) or (isinstance(e, SetGas) and e.stuck is not None)}
        self.detector_behaviour = {
            d: self._detector_behaviour(scenario.gas.get(d) or GasSim())
            for d in gas_rows
            if d in asked or (d in scenario.gas and scenario.gas[d].asks_for_behaviour())
        }
        tags = devices_of(scenario, "uwb_tag")
        self.tag_behaviour = {t: self._tag_behaviour(sim) for t in tags
                              if (sim := scenario.uwb.get(t) or scenario.rtls.fixes) is not None}
        harness_rows = devices_of(scenario, "harness")
        self.harness_follow = {d: (harness_rows[d].worker, sim.tag_height)
                               for d, sim in scenario.harness.items() if sim.follow and d in harness_rows}
        self.harness_habits = {d: HarnessHabits(sim.unclip, sim.reclip)
                               for d, sim in scenario.harness.items() if sim.unclip is not None and d in harness_rows}
        self.habit_harnesses: dict[str, list[str]] = {}
        for device in self.harness_habits:
            self.habit_harnesses.setdefault(harness_rows[device].worker, []).append(device)
        self.signal_plc = {tag: plc for plc in self.plcs.values() for tag in plc.tags}
        self.demand = {(p, tag): value for p, plc in self.plcs.items() for tag, value in plc.tags.items()}
        self.failed_until: dict[tuple[str, str], int] = {}
        self.work_signals: dict[str, list[tuple[str, str]]] = {}
        for plc, sim in scenario.plc.items():
            for tag, worker in sim.worked_by.items():
                self.work_signals.setdefault(worker, []).append((plc, tag))
        self.itinerary = {worker: 0 for worker in scenario.positions}
        self.working: set[str] = set()
        self.clock_offset: dict[str, int] = {}
        """ms by which a device's clock runs off (`clock` events)."""
        self.deliveries: list[DeliveryRule] = []
        """Records delivered twice or late (`duplicate` and `delay` events), in the order the events came."""

    def _zone_air(self, zone: str, sim: AirSim) -> ZoneAir:
        """A zone's air as its `[air.<zone>]` section sets it up, full of outside air."""
        fan = None if sim.fan is None else f"{sim.fan}.running"
        outside = outside_air(sim.outside.o2, sim.outside.h2s, sim.outside.co)
        return zone_air(zone, sim.volume, sim.ach, ach_off=sim.ach_off, fan=fan, temperature=sim.temperature,
                        outside=outside)

    def _detector_behaviour(self, sim: GasSim) -> DetectorBehaviour:
        """Noise, drift, warm-up and stuck channels as the detector's section asks; switched on long ago unless `on`."""
        warmup = round(sim.warmup * 1000)
        powered_at = self.start - warmup - LONG_AGO_MS if sim.on is None else self.ms(sim.on)
        noise = None if sim.noise is None else msgspec.structs.asdict(sim.noise)
        drift = {} if sim.drift is None else msgspec.structs.asdict(sim.drift)
        powered = sim.on is None or sim.on <= 0
        stuck: dict[str, float | None] = {c: None for c in sim.stuck}
        return DetectorBehaviour(noise, drift, warmup, powered_at, powered, self.start, stuck)

    def _tag_behaviour(self, sim: TagSim) -> TagBehaviour:
        """A tag's fix errors; height noise is half the horizontal unless given, a dropout lasts whole 1 s fixes."""
        sigma_z = sim.sigma / 2 if sim.sigma_z is None else sim.sigma_z
        fixes = max(1, round(sim.dropout_s * 1000 / RTLS_PERIOD_MS))
        return TagBehaviour(sim.sigma, sigma_z, sim.multipath, sim.multipath_m, sim.dropout, fixes)

    # sending

    def send(self, topic: str, key: str | None, ts: int, payload: Struct | list | None) -> None:
        """Add a record arriving at `ts`; a None payload is a tombstone. `duplicate` and `delay` events may deliver
        it twice or late."""
        text = None if payload is None else payload_text(payload)
        record = Record(topic, key, ts, text)
        if self.deliveries:
            self.deliver(record)
        else:
            self.records.append(record)

    def deliver(self, record: Record) -> None:
        """Apply the delivery rules that take this record, in the order they were set: a delay moves its arrival
        later, a duplicate adds a copy after it."""
        copies = []
        for rule in self.deliveries:
            if rule.takes(record):
                if rule.duplicate:
                    copies.append(rule.shift_ms)
                else:
                    record = msgspec.structs.replace(record, ts=record.ts + rule.shift_ms)
        self.records.append(record)
        self.records.extend(msgspec.structs.replace(record, ts=record.ts + shift) for shift in copies)

    def device_clock(self, ts: int, rng: random.Random, device: str | None = None) -> int:
        """A device's own clock for a record arriving at `ts`: a few ms earlier, and off by what a `clock` event set."""
        clock = ts - rng.randint(0, DEVICE_LAG_MS)
        if device is not None and self.clock_offset:
            clock += self.clock_offset.get(device, 0)
        return clock

    def ms(self, seconds: float) -> int:
        """A time in seconds from the start as ms since the epoch."""
        return self.start + round(seconds * 1000)

    # scheduling

    def later(self, ms: int, action: Callable[[int], None]) -> None:
        """Run `action` at `ms` as an event, unless that is after the scenario ends."""
        if ms < self.end:
            self.agenda.at(ms, EVENT, action)

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

    def schedule_equipment(self) -> None:
        """Signals' schedules (true inside each interval) and detectors switched on after the start."""
        for plc, sim in self.scenario.plc.items():
            for tag, intervals in sim.schedule.items():
                for begin, stop in intervals:
                    for seconds, value in ((begin, True), (stop, False)):
                        if 0 <= seconds <= self.scenario.duration:
                            self.later(self.ms(seconds), partial(self.drive_signal, plc, tag, value))
        for device, sim in self.scenario.gas.items():
            if device in self.detector_behaviour and sim.on is not None and sim.on > 0:
                self.later(self.ms(sim.on), partial(self.switch_detector, device, True, False))

    def schedule_air(self) -> None:
        """Integrate every zone's air once a second, from the start to the end."""
        if self.air:
            self.agenda.at(self.start + AIR_STEP_MS, PHYSICS, self.step_air)

    def step_air(self, ms: int) -> None:
        """One 1 s step of every zone's air, then the next."""
        for air in self.air.values():
            advance(air, ms, self.signal, AIR_STEP_MS / 1000)
        if ms + AIR_STEP_MS < self.end:
            self.agenda.at(ms + AIR_STEP_MS, PHYSICS, self.step_air)

    def signal(self, name: str) -> bool:
        """The value a PLC reports now for `<equipment>.<signal>`."""
        return self.signal_plc[name].tags[name]

    # reports

    def report_gas(self, detector: Detector, ts: int, rng: random.Random) -> None:
        """A GD-4 reading: of the zone's air when the zone has `[air]`, through its behaviour when it has one."""
        air = self.detector_air.get(detector.dev)
        if air is not None:
            detector.levels = air.levels
        behaviour = self.detector_behaviour.get(detector.dev)
        if behaviour is None:
            clock = self.device_clock(ts, rng, detector.dev)
            self.send("gas.readings", detector.dev, ts, gd4_payload(detector, clock, rng))
        elif behaviour.powered:
            clock = self.device_clock(ts, rng, detector.dev)
            readings = sensed_readings(detector.levels, detector.fault, behaviour, clock, rng)
            payload = gd4_payload(detector, clock, rng, readings, detector_status(detector.st, behaviour, clock))
            self.send("gas.readings", detector.dev, ts, payload)

    def report_harness(self, harness: Harness, ts: int, rng: random.Random) -> None:
        """An SH-2 report; a following harness takes its wearer's height, a flat one (with `drain` set) is silent."""
        follow = self.harness_follow.get(harness.dev)
        if follow is not None:
            worker, tag_height = follow
            harness.h = height_of_wearer(position_at(self.walks[worker], ts)[2], tag_height)
        if harness.drain is not None and battery_at(harness, ts - self.start) == 0:
            return
        payload = sh2_payload(harness, self.device_clock(ts, rng, harness.dev), ts - self.start, rng)
        self.send("harness.status", harness.dev, ts, payload)

    def tag_position(self, tag: str, ts: int) -> Point:
        """Where the wearer of `tag` is at `ts`."""
        return position_at(self.walks[self.wearers[tag]], ts)

    def report_anchorline(self, tag: str, ts: int, rng: random.Random) -> None:
        """One Anchorline tag update, keyed by the tag; a tag with fix errors may send an outlier or nothing."""
        point = self.tag_position(tag, ts)
        clock = self.device_clock(ts, rng, tag)
        behaviour = self.tag_behaviour.get(tag)
        if behaviour is None:
            fix = anchorline_fix(tag, point, clock, rng)
        else:
            fix = anchorline_observed(tag, observed_fix(point, behaviour, self.rng(tag)), clock)
        if fix is not None:
            self.send("rtls.position", tag, ts, fix)

    def report_qubit(self, gateway: str, tags: list[str], ts: int, rng: random.Random) -> None:
        """A Qubit gateway's cycle: its tags in batches, one message per batch, keyed by the gateway."""
        size = self.scenario.rtls.qubit_batch
        for i in range(0, len(tags), size):
            sent = ts + i // size
            fixes = [self.qubit_element(t, sent, rng, gateway) for t in tags[i : i + size]]
            self.send("rtls.position", gateway, sent, fixes)

    def qubit_element(self, tag: str, sent: int, rng: random.Random, gateway: str) -> QubitFix:
        """One tag's element of a Qubit message, stamped by its gateway's clock; a tag with fix errors may be an
        outlier or not located."""
        point = self.tag_position(tag, sent)
        clock = self.device_clock(sent, rng, gateway)
        behaviour = self.tag_behaviour.get(tag)
        if behaviour is None:
            return qubit_fix(tag, point, clock, rng)
        return qubit_observed(tag, observed_fix(point, behaviour, self.rng(tag)), clock)

    def report_plc(self, plc: Plc, ts: int, rng: random.Random) -> None:
        """A PLC gateway's state report."""
        self.send("plc.state", plc.plc, ts, plc_payload(plc, self.device_clock(ts, rng, plc.plc)))

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
                self.move_worker(event, ts)
            case SetPlcSignal():
                self.drive_signal(event.plc, event.tag, event.value, ts)
            case SetHarness():
                self.set_harness(event, ts)
            case SetGas():
                self.set_gas(event)
            case GasFlow():
                self.start_flow(event, ts)
            case Release():
                release(self.air[event.zone], event.gas, event.kg, event.m3)
            case DisturbSludge():
                end = self.end if event.until is None else self.ms(event.until)
                add_sludge(self.air[event.zone], Sludge(event.h2s_g / 1000, event.tau, ts, end, event.while_on))
            case SetVentilation():
                self.set_ventilation(event)
            case FailSignal():
                self.fail_signal(event, ts)
            case PowerDetector():
                self.switch_detector(event.device, event.on, True, ts)
            case BumpTest():
                self.bump_test(event, ts)
            case WalkPath():
                self.start_path(event, ts)
            case ShiftClock():
                self.shift_clocks(event, ts)
            case DuplicateRecords() | DelayRecords():
                self.add_delivery(event, ts)

    def shift_clocks(self, event: ShiftClock, ts: int) -> None:
        """The devices' clocks run `offset` s off until `until`, then are right again."""
        offset = round(event.offset * 1000)
        for device in event.devices:
            self.clock_offset[device] = offset
        if event.until is not None:
            self.later(self.ms(event.until), partial(self.reset_clocks, list(event.devices)))

    def reset_clocks(self, devices: list[str], ts: int) -> None:
        """The devices' clocks are set right (NTP)."""
        for device in devices:
            self.clock_offset[device] = 0

    def add_delivery(self, event: DuplicateRecords | DelayRecords, ts: int) -> None:
        """From now on, records with the event's key are delivered twice or late."""
        duplicate = isinstance(event, DuplicateRecords)
        shift = round((event.after if duplicate else event.by) * 1000)
        until = self.end if event.until is None else self.ms(event.until)
        self.deliveries.append(DeliveryRule(event.key, event.topic, until, event.count, duplicate, shift))

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

    def set_plc_signal(self, plc_name: str, tag: str, value: bool, ts: int) -> None:
        """Change a signal; the gateway reports on change."""
        plc = self.plcs[plc_name]
        if plc.tags[tag] != value:
            plc.tags[tag] = value
            self.report_plc(plc, ts, self.rng(plc_name))

    def drive_signal(self, plc: str, tag: str, value: bool, ts: int) -> None:
        """What a `plc` event, a schedule or work asks of a signal; a failed signal stays false until it is repaired."""
        self.demand[(plc, tag)] = value
        failed = self.failed_until.get((plc, tag), 0) > ts
        self.set_plc_signal(plc, tag, value and not failed, ts)

    def fail_signal(self, event: FailSignal, ts: int) -> None:
        """The signal drops to false until `until`, then returns to what is asked of it."""
        key = (event.plc, event.tag)
        repaired = self.end if event.until is None else self.ms(event.until)
        self.failed_until[key] = repaired
        self.set_plc_signal(event.plc, event.tag, False, ts)
        self.later(repaired, partial(self.repair_signal, event.plc, event.tag))

    def repair_signal(self, plc: str, tag: str, ts: int) -> None:
        """A failure is over: the signal takes the value last asked of it."""
        self.drive_signal(plc, tag, self.demand[(plc, tag)], ts)

    def set_harness(self, event: SetHarness, ts: int) -> None:
        """Change height or hooks; the harness reports a hook change at once."""
        harness = self.harnesses[event.device]
        if event.h is not None:
            harness.h = event.h
        if event.hooks is not None:
            self.change_hooks(harness, list(event.hooks), ts)

    def change_hooks(self, harness: Harness, hooks: list[int], ts: int) -> None:
        """Set the hooks; a change is reported at once."""
        if hooks != harness.hooks:
            harness.hooks = hooks
            self.report_harness(harness, ts, self.rng(harness.dev))

    def set_gas(self, event: SetGas) -> None:
        """Change the gas around a detector, its status, bump test, faulted or stuck channels."""
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
        if event.stuck is not None:
            stick(self.detector_behaviour[event.device], list(event.stuck))

    # detectors

    def switch_detector(self, device: str, on: bool, restart: bool, ts: int) -> None:
        """Switch a detector off or on; switched back on after running, it restarts its seq from 0."""
        behaviour = self.detector_behaviour[device]
        if on and not behaviour.powered and restart:
            self.detectors[device].seq = 0
        power(behaviour, on, ts)

    def bump_test(self, event: BumpTest, ts: int) -> None:
        """The detector reads the test gas for the test's duration; a passed test sets its bump time to the end."""
        ends = ts + round(event.duration * 1000)
        self.detector_behaviour[event.device].bump_gas_until = ends
        if event.passed and ends == ts:
            self.record_bump(event.device, ts)
        elif event.passed:
            self.later(ends, partial(self.record_bump, event.device))

    def record_bump(self, device: str, ts: int) -> None:
        """A passed bump test ends: the detector's last bump test is now."""
        self.detectors[device].bump = ts

    # zones' air

    def start_flow(self, event: GasFlow, ts: int) -> None:
        """A leak, purge or exhaust starts flowing into the zone's air (and stops at `until`)."""
        air = self.air[event.zone]
        m3_s = volume_flow(event.gas, air.temperature, kg_h=event.kg_h, g_h=event.g_h, l_min=event.l_min,
                           m3_h=event.m3_h)
        end = self.end if event.until is None else self.ms(event.until)
        add_source(air, GasSource(event.gas, m3_s, ts, end, event.while_on))

    def set_ventilation(self, event: SetVentilation) -> None:
        """A zone's ventilation fails or is restored."""
        air = self.air[event.zone]
        if event.ach is not None:
            air.ach = event.ach
        if event.ach_off is not None:
            air.ach_off = event.ach_off

    # workers

    def move_worker(self, event: MoveWorker, ts: int) -> None:
        """Walk a worker straight to a point, ending any path they were on."""
        self.itinerary[event.worker] += 1
        self.stop_working(event.worker, ts)
        self.walks[event.worker] = walk_to(self.walks[event.worker], self.point(event.to), ts, event.speed)
        self.set_off(event.worker, ts)
        if event.worker in self.habit_harnesses:
            self.later(self.walks[event.worker].arrive, partial(self.stop_moving, event.worker))

    def start_path(self, event: WalkPath, ts: int) -> None:
        """A worker starts along a path, ending any walk or path they were on."""
        self.itinerary[event.worker] += 1
        self.walk_leg(event, 0, self.itinerary[event.worker], ts)

    def walk_leg(self, path: WalkPath, index: int, itinerary: int, ts: int) -> None:
        """Leave the current stop (ending any work there) for waypoint `index`, unless another walk has begun."""
        worker = path.worker
        if self.itinerary[worker] != itinerary:
            return
        self.stop_working(worker, ts)
        if index == len(path.waypoints):
            return
        waypoint = path.waypoints[index]
        speed = waypoint.speed or path.speed
        self.walks[worker] = walk_to(self.walks[worker], self.point(waypoint.to), ts, speed)
        self.set_off(worker, ts)
        self.later(self.walks[worker].arrive, partial(self.reach_waypoint, path, index, itinerary))

    def reach_waypoint(self, path: WalkPath, index: int, itinerary: int, ts: int) -> None:
        """Arrive at waypoint `index`: stop, work there if it says so, and leave when the dwell is over."""
        worker = path.worker
        if self.itinerary[worker] != itinerary:
            return
        self.stop_moving(worker, ts)
        waypoint = path.waypoints[index]
        if waypoint.work and waypoint.dwell > 0:
            self.start_working(worker, ts)
        self.later(ts + round(waypoint.dwell * 1000), partial(self.walk_leg, path, index + 1, itinerary))

    def start_working(self, worker: str, ts: int) -> None:
        """The worker works: every signal `worked_by` them goes true (a welder's output is energised)."""
        self.working.add(worker)
        for plc, tag in self.work_signals.get(worker, ()):
            self.drive_signal(plc, tag, True, ts)

    def stop_working(self, worker: str, ts: int) -> None:
        """The worker stops working: their signals go false."""
        if worker in self.working:
            self.working.discard(worker)
            for plc, tag in self.work_signals.get(worker, ()):
                self.drive_signal(plc, tag, False, ts)

    def set_off(self, worker: str, ts: int) -> None:
        """The wearer of harnesses with clipping habits sets off: hooks as the habit has them while moving."""
        for device in self.habit_harnesses.get(worker, ()):
            harness, habits = self.harnesses[device], self.harness_habits[device]
            habits.moves += 1
            self.change_hooks(harness, hooks_while_moving(harness.hooks, habits, self.rng(device)), ts)

    def stop_moving(self, worker: str, ts: int) -> None:
        """The wearer stops: every hook goes back on after the habit's delay, unless they set off before."""
        for device in self.habit_harnesses.get(worker, ()):
            habits = self.harness_habits[device]
            delay = reclip_delay_ms(habits, self.rng(device))
            self.later(ts + delay, partial(self.reclip, device, habits.moves))

    def reclip(self, device: str, moves: int, ts: int) -> None:
        """Clip every hook back on, if the wearer has not set off again since."""
        harness = self.harnesses[device]
        if self.harness_habits[device].moves == moves:
            self.change_hooks(harness, [1] * len(harness.hooks), ts)


def generate(scenario: Scenario) -> list[Record]:
    """Play a scenario and return its records in the order they were produced (a recording sorts them)."""
    validate(scenario)
    site = Site(scenario)
    site.schedule_tables()
    site.schedule_timeline()
    site.schedule_equipment()
    site.schedule_air()
    site.schedule_devices()
    site.agenda.run()
    return site.records
