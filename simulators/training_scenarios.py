"""Randomised sites for the risk model's training data: zones of three kinds, their crews, detectors and equipment,
benign disturbances, and hazards of every kind the gas physics has, all drawn from one seed.

`training_scenario(scenario_id, seed, shape)` builds a `Scenario` (the same Structs a hand-written TOML scenario
loads into, played by `simulators.scenario`) together with a `ZonePlan` per zone that says what the zone is, which
work it hosts and which hazards were put into it, so that labels can name the hazard behind each limit crossing.

Hazards are sized from the zone's ventilation and the gas limits of its work type: a *designed ratio* r is the
steady (or peak) level the hazard would reach over the limit, so r < 1 gives a hazard that should never cross,
1-3 one that develops over minutes, and larger ones that cross fast. The physics decides what really happens;
the labels come from it, not from the design.
"""

from __future__ import annotations

import datetime
import math
import random
from typing import Literal

from msgspec import Struct

from interlock.config import DEFAULT_CONFIG, GasLimits
from interlock.gas_test import limits_for
from simulators.gas_physics import (
    CARBON_MONOXIDE,
    GASES,
    HYDROGEN_SULFIDE,
    OUTSIDE_O2_PERCENT,
    PPM,
    gas_density,
    volume_flow,
)
from simulators.payloads import DeviceRow, ZoneRow
from simulators.scenario import (
    AirSim,
    BumpTest,
    ChannelDrift,
    ChannelSigma,
    DisturbSludge,
    Exhaust,
    FailSignal,
    GasSim,
    Leak,
    OutsideAir,
    PlcSim,
    PowerDetector,
    Purge,
    Release,
    Scenario,
    SetGas,
    SetVentilation,
    TimelineEvent,
    WalkPath,
    Waypoint,
)

ZoneKind = Literal["confined_space", "hot_work_area", "open_area"]
HazardKind = Literal[
    "flammable_leak", "h2s_leak", "release", "nitrogen_purge", "sludge_h2s", "co_exhaust", "ventilation_failure"
]
ZONE_KINDS: tuple[ZoneKind, ...] = ("confined_space", "hot_work_area", "open_area")
HAZARD_KINDS: tuple[HazardKind, ...] = (
    "flammable_leak", "h2s_leak", "release", "nitrogen_purge", "sludge_h2s", "co_exhaust", "ventilation_failure"
)
CHANNELS = ("o2", "lel", "h2s", "co")

# Which hazards each kind of zone gets, and how often (relative weights).
HAZARD_MENU: dict[ZoneKind, dict[HazardKind, float]] = {
    "confined_space": {"nitrogen_purge": 0.2, "sludge_h2s": 0.2, "ventilation_failure": 0.25, "flammable_leak": 0.15,
                       "h2s_leak": 0.1, "co_exhaust": 0.05, "release": 0.05},
    "hot_work_area": {"flammable_leak": 0.35, "release": 0.15, "co_exhaust": 0.2, "h2s_leak": 0.1,
                      "ventilation_failure": 0.2},
    "open_area": {"flammable_leak": 0.45, "release": 0.3, "h2s_leak": 0.25},
}
ZONE_KIND_WEIGHTS: dict[ZoneKind, float] = {"confined_space": 0.4, "hot_work_area": 0.35, "open_area": 0.25}
LEAK_GASES: dict[ZoneKind, tuple[str, ...]] = {
    "confined_space": ("hexane", "toluene", "benzene", "methane", "propane"),
    "hot_work_area": ("methane", "propane", "ethylene", "hydrogen", "butane"),
    "open_area": ("methane", "propane", "hydrogen", "ethylene"),
}
RELEASE_GASES = ("methane", "propane", "hydrogen", HYDROGEN_SULFIDE)

ZONE_PITCH_M = 60.0
ZONE_SIZE_M: dict[ZoneKind, tuple[float, float]] = {
    "confined_space": (8.0, 6.0), "hot_work_area": (20.0, 15.0), "open_area": (30.0, 25.0)
}
TAG_HEIGHT_M = 1.1
GROWTH_STEP_S = 120.0  # a growing leak grows in steps of this length
MIN_HAZARD_GAP_S = 4500.0  # hazards in one zone start at least 75 minutes apart
SHIFT_START_HOUR = 8  # site time at which every scenario starts
SITE_UTC_OFFSET = datetime.timezone(datetime.timedelta(hours=8))
# Sensor trouble per detector per hour of site time.
FAULT_RATE_H = 0.04
STUCK_RATE_H = 0.01
POWER_CYCLE_RATE_H = 0.02
MID_SHIFT_BUMP_RATE_H = 0.05


class HazardPlan(Struct, frozen=True):
    """One hazard put into a zone: what kind, which channels it may push over the limit, from when until when (s from
    the start; `end` None: to the end), its designed ratio (over 1: designed to cross) and what it is, in words."""

    hazard: str
    kind: HazardKind
    zone: str
    channels: tuple[str, ...]
    start: float
    end: float | None
    designed_ratio: float
    detail: str
    while_on: str | None = None
    """The PLC signal its source runs on (cutting fumes on the tool's power), None when it runs from `start`: the
    hazard then begins when the signal is first on at or after `start`, which only the played scenario tells."""


class ZonePlan(Struct, frozen=True):
    """What one zone of a training scenario is: its kind, the work type whose gas limits label it, its detectors (in
    column order), the PLC signals of its fan and its equipment (None: it has none), its crew, its hazards, and its
    air changes per hour in normal running (how fast a hazard's gas clears)."""

    zone: str
    kind: ZoneKind
    work_type: str
    detectors: tuple[str, ...]
    fan: str | None
    equipment: str | None
    workers: tuple[str, ...]
    hazards: tuple[HazardPlan, ...]
    ach: float


class TrainingScenario(Struct, frozen=True):
    """A scenario to play and what its zones are; `scenario_id` names it in the files and decides its split."""

    scenario_id: str
    seed: int
    scenario: Scenario
    zones: tuple[ZonePlan, ...]


class ScenarioShape(Struct, frozen=True):
    """How big the random scenarios are and how often hazards happen: zones per scenario and hours of site time
    (uniform between the bounds, in half hours), and hazards per zone-hour (Poisson)."""

    min_zones: int = 3
    max_zones: int = 8
    min_hours: float = 2.0
    max_hours: float = 6.0
    hazards_per_zone_hour: float = 0.2

    def __post_init__(self) -> None:
        if not 1 <= self.min_zones <= self.max_zones:
            raise ValueError(f"zones {self.min_zones}..{self.max_zones}: need 1 <= min_zones <= max_zones")
        if not 0 < self.min_hours <= self.max_hours:
            raise ValueError(f"hours {self.min_hours}..{self.max_hours}: need 0 < min_hours <= max_hours")
        if self.hazards_per_zone_hour < 0:
            raise ValueError(f"hazards_per_zone_hour {self.hazards_per_zone_hour} must not be negative")


DEFAULT_SHAPE = ScenarioShape()


class Shift(Struct, frozen=True):
    """When a zone's crew is at work (s from the start), and their common lunch break, if any."""

    start: float
    end: float
    lunch: tuple[float, float] | None


class ZoneAirDesign(Struct, frozen=True):
    """A zone's air as drawn: volume (m³), air changes per hour with the fan running (or always) and stopped,
    whether it has a fan, temperature (°C) and background CO outside (ppm)."""

    volume: float
    ach: float
    ach_off: float
    fan: bool
    temperature: float
    outside_co: float

    def flow(self, ach: float | None = None) -> float:
        """Ventilation in m³/s at `ach` (default: the running rate)."""
        return (self.ach if ach is None else ach) * self.volume / 3600.0


class ZoneBuild(Struct):
    """A zone being drawn: its plan so far, and the scenario sections and events it adds."""

    index: int
    zone: str
    kind: ZoneKind
    work_type: str
    limits: GasLimits
    design: ZoneAirDesign
    shift: Shift | None
    row: ZoneRow
    rows: list[DeviceRow]
    points: dict[str, tuple[float, float, float]]
    positions: dict[str, str]
    gas: dict[str, GasSim]
    plc: PlcSim
    events: list[TimelineEvent]
    hazards: list[HazardPlan]
    seep: bool = False


# Sizes and dates


def scenario_size(seed: int, shape: ScenarioShape) -> tuple[int, float]:
    """How many zones and hours the scenario of this seed has; drawn apart from everything else, so the planner can
    add up zone-hours before any scenario is built."""
    rng = random.Random(f"{seed}:size")
    zones = rng.randint(shape.min_zones, shape.max_zones)
    half_hours = rng.randint(math.ceil(shape.min_hours * 2), max(math.ceil(shape.min_hours * 2),
                                                                  math.floor(shape.max_hours * 2)))
    return zones, half_hours / 2


def start_ms(rng: random.Random) -> int:
    """A shift start at 08:00 site time on a day of 2027, so every month (and its seasonal limits) occurs."""
    day = datetime.date(2027, 1, 1) + datetime.timedelta(days=rng.randrange(365))
    moment = datetime.datetime(day.year, day.month, day.day, SHIFT_START_HOUR, tzinfo=SITE_UTC_OFFSET)
    return int(moment.timestamp()) * 1000


def site_month(ms: int) -> int:
    """The site-calendar month of a time in ms since the epoch."""
    return datetime.datetime.fromtimestamp(ms / 1000, SITE_UTC_OFFSET).month


def zone_limits(work_type: str, ms: int) -> GasLimits:
    """The interlock's gas limits for a work type in the month of `ms` (site config defaults, GB 30871-2022)."""
    return limits_for(DEFAULT_CONFIG, work_type, site_month(ms))


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; means here are small)."""
    threshold, count, product = math.exp(-mean), 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def weighted(rng: random.Random, weights: dict) -> str:
    """One key of `weights`, drawn in proportion to its weight."""
    keys = list(weights)
    return rng.choices(keys, [weights[k] for k in keys])[0]


# Limits as gas fractions


def limit_fraction(channel: str, gas: str, limits: GasLimits) -> float:
    """The volume fraction of `gas` alone at which `channel` reaches its limit."""
    if channel == "lel":
        return limits.lel_max / 100.0 * GASES[gas].lfl
    if channel == "h2s":
        return limits.h2s_max * PPM
    if channel == "co":
        return limits.co_max * PPM
    raise ValueError(f"channel {channel!r} has no gas fraction limit; use lel, h2s or co")


def inert_ratio_at_o2_limit(limits: GasLimits) -> float:
    """Inert inflow over ventilation flow at which O2 settles at its lower limit: 20.9 / o2_min - 1."""
    return OUTSIDE_O2_PERCENT / limits.o2_min - 1.0


def designed_ratio(rng: random.Random) -> float:
    """How far over its limit a hazard is designed to go: a quarter never reach it (0.3-0.9), most cross over minutes
    (1.1-2.5), a tenth are overwhelming (3-12)."""
    roll = rng.random()
    if roll < 0.25:
        return rng.uniform(0.3, 0.9)
    if roll < 0.9:
        return rng.uniform(1.1, 2.5)
    return rng.uniform(3.0, 12.0)


def kg_per_hour(gas: str, m3_s: float, temperature: float) -> float:
    """The `kg_h` that gives `m3_s` of a gas in the zone (for a liquid, its evaporation rate at 20 °C)."""
    return m3_s / volume_flow(gas, temperature, kg_h=1.0)


def significant(value: float, digits: int = 4) -> float:
    """A rate rounded to a few significant digits, so a scenario reads like one written by hand."""
    return float(f"{value:.{digits}g}")


# A zone


def draw_air(kind: ZoneKind, rng: random.Random) -> ZoneAirDesign:
    """A zone's air by kind: small fan-ventilated vessels, sheltered work areas (half with a fan), open air with wind.
    Figures are rounded as a scenario would write them, so hazards are sized on exactly the air that is played."""
    temperature = round(rng.uniform(0.0, 35.0), 1)
    outside_co = round(rng.uniform(0.0, 1.5), 2)
    if kind == "confined_space":
        volume, ach, ach_off, fan = rng.uniform(30, 400), rng.uniform(8, 30), rng.uniform(0.1, 0.8), True
    elif kind == "hot_work_area" and rng.random() < 0.5:
        volume, ach, ach_off, fan = rng.uniform(200, 2500), rng.uniform(6, 15), rng.uniform(0.5, 2.0), True
    elif kind == "hot_work_area":
        volume, ach, ach_off, fan = rng.uniform(200, 2500), rng.uniform(2, 8), 0.0, False
    else:
        volume, ach, ach_off, fan = rng.uniform(500, 3000), rng.uniform(15, 60), 0.0, False
    return ZoneAirDesign(round(volume, 1), round(ach, 2), round(ach_off, 3), fan, temperature, outside_co)


def draw_shift(duration: float, rng: random.Random) -> Shift | None:
    """The crew's day: in after the start, out before the end, a common lunch break on runs of three hours or more;
    None for an idle zone (15 %)."""
    if rng.random() < 0.15:
        return None
    start = rng.uniform(0.0, 0.15 * duration)
    end = duration - rng.uniform(0.0, 0.15 * duration)
    lunch = None
    if duration >= 3 * 3600:
        begin = rng.uniform(0.4, 0.6) * duration
        lunch = (begin, begin + rng.uniform(1200, 2700))
    return Shift(start, end, lunch)


def new_zone(index: int, kind: ZoneKind, duration: float, start: int, rng: random.Random) -> ZoneBuild:
    """Zone `index` of a kind: its area on the site, air, shift, PLC, and points inside and outside it."""
    zone = f"Z{index:02d}"
    x0 = index * ZONE_PITCH_M
    width, depth = ZONE_SIZE_M[kind]
    polygon = [(x0, 0.0), (x0 + width, 0.0), (x0 + width, depth), (x0, depth)]
    work_type = "confined_space" if kind == "confined_space" else "hot_work"
    if kind == "open_area" and rng.random() < 0.5:
        work_type = "height"
    row = ZoneRow(zone, f"training zone {index}", polygon, (0.0, 15.0), "II", [])
    design = draw_air(kind, rng)
    points = {f"{zone}-stage": (x0 + 2.0, -15.0, TAG_HEIGHT_M)}
    for p in range(3):
        points[f"{zone}-p{p}"] = (x0 + rng.uniform(1.0, width - 1.0), rng.uniform(1.0, depth - 1.0), TAG_HEIGHT_M)
    tags = {f"FAN-{index:02d}.running": False} if design.fan else {}
    tags |= {f"EQ-{index:02d}.power": False, f"V-{index:02d}.isolated": True}
    plc_row = DeviceRow(f"PLC-{index:02d}", "plc", equipment=[e.split(".")[0] for e in tags])
    return ZoneBuild(index, zone, kind, work_type, zone_limits(work_type, start), design, draw_shift(duration, rng),
                     row, [plc_row], points, {}, {}, PlcSim(tags=tags), [], [])


def fan_signal(build: ZoneBuild) -> str | None:
    """The zone's `FAN-nn.running` signal, or None without a fan."""
    return f"FAN-{build.index:02d}.running" if build.design.fan else None


def equipment_signal(build: ZoneBuild) -> str:
    """The zone's `EQ-nn.power` signal: the welder or tool its first worker runs while working."""
    return f"EQ-{build.index:02d}.power"


def add_crew(build: ZoneBuild, duration: float, rng: random.Random) -> None:
    """One to four workers who walk in at the shift start, stop at places inside (the first one working the zone's
    equipment there), step out for short breaks and lunch, and leave at the end of the shift."""
    if build.shift is None:
        return
    crew = rng.randint(1, 3 if build.kind != "open_area" else 4)
    stage = f"{build.zone}-stage"
    inside = [p for p in build.points if p != stage]
    for w in range(crew):
        worker = f"W{build.index:02d}{w}"
        build.rows.append(DeviceRow(f"T-{build.index:02d}{w}", "uwb_tag", vendor="anchorline", worker=worker))
        build.positions[worker] = stage
        first = build.shift.start + rng.uniform(0.0, 180.0)
        waypoints = day_of_work(build.shift, first, w == 0, stage, inside, rng)
        build.events.append(WalkPath(at=round(first, 1), worker=worker, waypoints=waypoints))
    build.plc.worked_by[equipment_signal(build)] = f"W{build.index:02d}0"


def day_of_work(shift: Shift, first: float, works: bool, stage: str, inside: list[str],
                rng: random.Random) -> list[Waypoint]:
    """A worker's waypoints from `first` to the shift's end: stops inside of 3-25 minutes, now and then a short
    break outside, lunch outside with the crew, then out."""
    waypoints: list[Waypoint] = []
    now, lunched = first, shift.lunch is None
    while now < shift.end - 120:
        if not lunched and now >= shift.lunch[0] - 60:
            dwell = max(0.0, shift.lunch[1] - now)
            waypoints.append(Waypoint(stage, dwell=round(dwell, 1)))
            now, lunched = now + dwell + 30, True
            continue
        limit = shift.end if lunched else shift.lunch[0]
        if rng.random() < 0.12 and now + 900 < limit:
            dwell = rng.uniform(180, 720)
            waypoints.append(Waypoint(stage, dwell=round(dwell, 1)))
        else:
            dwell = max(60.0, min(rng.uniform(180, 1500), limit - now))
            waypoints.append(Waypoint(rng.choice(inside), dwell=round(dwell, 1), work=works))
        now += dwell + 30
    waypoints.append(Waypoint(stage))
    return waypoints


def add_fan_schedule(build: ZoneBuild, duration: float, rng: random.Random) -> None:
    """The fan starts 5-15 minutes before the crew (at once in an idle zone) and runs to the end; in 40 % of zones it
    is stopped over lunch while nobody is inside (ventilation cycling), unless a gas seeps in there."""
    signal = fan_signal(build)
    if signal is None:
        return
    if build.seep:
        build.plc.schedule[signal] = [(0.0, duration)]  # the seep is harmless only while the fan always runs
        return
    if build.shift is None:
        if rng.random() < 0.2:
            return  # an idle vessel nobody ventilates
        build.plc.schedule[signal] = [(0.0, duration)]
        return
    on = max(0.0, build.shift.start - rng.uniform(300, 900))
    lunch = build.shift.lunch
    if lunch is not None and lunch[1] - lunch[0] > 900 and rng.random() < 0.4:
        build.plc.schedule[signal] = [(on, lunch[0] + 120), (lunch[1] - 300, duration)]
    else:
        build.plc.schedule[signal] = [(on, duration)]


def fan_cycles(build: ZoneBuild) -> bool:
    """Whether the zone's air is ever left unventilated by its own schedule (cycling, an idle unventilated vessel)."""
    signal = fan_signal(build)
    if signal is None:
        return False
    intervals = build.plc.schedule.get(signal, [])
    return len(intervals) != 1 or intervals[0][0] > 0


def benign_flow(build: ZoneBuild) -> float:
    """The least ventilation (m³/s) the zone has in normal running: the fan stopped if it ever is, else running."""
    design = build.design
    return design.flow(design.ach_off) if fan_cycles(build) else design.flow()


def add_benign_sources(build: ZoneBuild, rng: random.Random) -> None:
    """Normal work's gases, each sized to stay well under the limit in normal running: CO (and in some vessels argon
    shielding gas) from the welder while it is powered, and in a third of the zones a whiff of solvent."""
    design, limits, zone = build.design, build.limits, build.zone
    if build.shift is not None and build.work_type != "height" and (build.kind != "confined_space"
                                                                    or rng.random() < 0.5):
        co_m3_s = rng.uniform(0.1, 0.4) * limit_fraction("co", CARBON_MONOXIDE, limits) * design.flow()
        build.events.append(Exhaust(at=0.0, zone=zone, l_min=significant(co_m3_s * 60_000),
                                    while_on=equipment_signal(build)))
        if build.kind == "confined_space" and rng.random() < 0.3:
            build.events.append(Leak(at=0.0, zone=zone, gas="argon", l_min=round(rng.uniform(8, 20), 1),
                                     while_on=equipment_signal(build)))
    if rng.random() < 0.33:
        gas = rng.choice(("hexane", "toluene", "methane"))
        m3_s = rng.uniform(0.02, 0.15) * limit_fraction("lel", gas, limits) * benign_flow(build)
        build.events.append(Leak(at=0.0, zone=zone, gas=gas, kg_h=significant(kg_per_hour(gas, m3_s,
                                                                                            design.temperature))))


# Detectors


def add_detectors(build: ZoneBuild, duration: float, rng: random.Random) -> None:
    """Two GD-4s in a vessel, one or two in a work area, one in open air; firmware 2.x or 3.x; each with noise, drift,
    and by chance a late switch-on with warm-up, a bump test, sensor faults, a stuck channel and power cycles."""
    count = {"confined_space": 2, "hot_work_area": rng.randint(1, 2), "open_area": 1}[build.kind]
    hours = duration / 3600
    for letter in "AB"[:count]:
        device = f"GAS-{build.index:02d}{letter}"
        firmware = rng.choice(("2.3.1", "3.0.0"))
        build.rows.append(DeviceRow(device, "gas", model="GD-4", firmware=firmware, zone=build.zone))
        noise = ChannelSigma(o2=round(rng.uniform(0.02, 0.06), 3), lel=round(rng.uniform(0.1, 0.4), 2),
                             h2s=round(rng.uniform(0.05, 0.2), 2), co=round(rng.uniform(0.2, 0.8), 2))
        drift = ChannelDrift(o2=round(rng.uniform(-0.05, 0.02), 3), lel=round(rng.uniform(-0.05, 0.1), 3),
                             h2s=round(rng.uniform(0.0, 0.05), 3), co=round(rng.uniform(-0.1, 0.3), 3))
        sim = GasSim(noise=noise, drift=drift)
        ready = 0.0
        if rng.random() < 0.35:
            sim.on = round(rng.uniform(0.0, min(900.0, duration / 4)), 1)
            sim.warmup = round(rng.uniform(30, 120), 1)
            ready = sim.on + sim.warmup
        if firmware.startswith("3") and rng.random() < 0.03:
            sim.st = "cal_due"
        build.gas[device] = sim
        if rng.random() < 0.3:
            build.events.append(BumpTest(at=round(ready + rng.uniform(10, 120), 1), device=device,
                                         duration=round(rng.uniform(10, 45), 1)))
        add_sensor_trouble(build, device, duration, hours, rng)


def add_sensor_trouble(build: ZoneBuild, device: str, duration: float, hours: float, rng: random.Random) -> None:
    """Faulted channels (cleared after 1-20 minutes), stuck channels, power cycles with warm-up, mid-shift bump
    tests: each a Poisson number of times per hour."""
    def moments(rate: float) -> list[float]:
        return sorted(round(rng.uniform(60, duration - 60), 1) for _ in range(poisson(rng, rate * hours)))

    for at in moments(FAULT_RATE_H):
        channel = rng.choice(CHANNELS)
        build.events.append(SetGas(at=at, device=device, fault=[channel]))
        build.events.append(SetGas(at=min(duration, round(at + rng.uniform(60, 1200), 1)), device=device, fault=[]))
    for at in moments(STUCK_RATE_H):
        channel = rng.choice(CHANNELS)
        build.events.append(SetGas(at=at, device=device, stuck=[channel]))
        build.events.append(SetGas(at=min(duration, round(at + rng.uniform(300, 2400), 1)), device=device, stuck=[]))
    for at in moments(POWER_CYCLE_RATE_H):
        build.events.append(PowerDetector(at=at, device=device, on=False))
        build.events.append(PowerDetector(at=min(duration, round(at + rng.uniform(5, 90), 1)), device=device, on=True))
        build.gas[device].warmup = build.gas[device].warmup or round(rng.uniform(30, 90), 1)
    for at in moments(MID_SHIFT_BUMP_RATE_H):
        build.events.append(BumpTest(at=at, device=device, duration=round(rng.uniform(10, 45), 1)))


# Hazards


def hazard_times(build: ZoneBuild, duration: float, shape: ScenarioShape, rng: random.Random) -> list[float]:
    """When the zone's hazards start: a Poisson number over the run, at least 75 minutes apart, none in the last
    quarter hour."""
    count = poisson(rng, shape.hazards_per_zone_hour * duration / 3600)
    latest = duration - 900.0
    if latest <= 0.05 * duration:
        return []
    starts: list[float] = []
    for at in sorted(rng.uniform(0.05 * duration, latest) for _ in range(count)):
        if not starts or at - starts[-1] >= MIN_HAZARD_GAP_S:
            starts.append(round(at, 1))
    return starts


def hazard_end(start: float, duration: float, rng: random.Random) -> float | None:
    """When a hazard's source stops: repaired after 20-90 minutes, or (30 %) not before the end."""
    if rng.random() < 0.3:
        return None
    end = start + rng.uniform(1200, 5400)
    return round(end, 1) if end < duration else None


def growth(rng: random.Random, ratio: float) -> float:
    """How long a leak takes to grow to its full rate: an overwhelming one (ratio over 3) and a tenth of the others at
    once, the rest over 15-60 minutes (a weeping flange opening up, a valve creeping open)."""
    return 0.0 if ratio > 3 or rng.random() < 0.1 else rng.uniform(900, 3600)


def growing_flow(kind: type[Leak] | type[Purge], zone: str, gas: str, start: float, end: float | None,
                 ramp: float, kg_h: float | None = None, m3_h: float | None = None) -> list[TimelineEvent]:
    """A source that grows to its full rate over `ramp` s in equal steps (one event per step), or starts at once."""
    steps = max(1, round(ramp / GROWTH_STEP_S))
    events: list[TimelineEvent] = []
    for i in range(steps):
        at = round(start + i * ramp / steps, 1)
        rate = {"kg_h": significant(kg_h / steps)} if kg_h is not None else {"m3_h": significant(m3_h / steps)}
        events.append(kind(at=at, zone=zone, gas=gas, until=end, **rate))
    return events


def plan_hazard(build: ZoneBuild, kind: HazardKind, number: int, start: float, duration: float,
                rng: random.Random) -> HazardPlan:
    """Add one hazard's events to the zone, sized by a designed ratio against the zone's ventilation and limits."""
    design, limits, zone = build.design, build.limits, build.zone
    ratio, end, flow = designed_ratio(rng), hazard_end(start, duration, rng), design.flow()
    hazard_id = f"{zone}/H{number}"
    until = "" if end is None else f" until {end:.0f} s"
    if kind in ("flammable_leak", "h2s_leak"):
        gas = rng.choice(LEAK_GASES[build.kind]) if kind == "flammable_leak" else HYDROGEN_SULFIDE
        channel = "lel" if kind == "flammable_leak" else "h2s"
        ramp = min(growth(rng, ratio), 0.8 * ((duration if end is None else end) - start))
        kg_h = kg_per_hour(gas, ratio * limit_fraction(channel, gas, limits) * flow, design.temperature)
        build.events += growing_flow(Leak, zone, gas, start, end, ramp, kg_h=kg_h)
        detail = f"{gas} leak {significant(kg_h)} kg/h, growing over {ramp / 60:.0f} min{until}"
        return HazardPlan(hazard_id, kind, zone, (channel,), start, end, ratio, detail)
    if kind == "release":
        gas = rng.choice(RELEASE_GASES)
        channel = "h2s" if gas == HYDROGEN_SULFIDE else "lel"
        kg = ratio * limit_fraction(channel, gas, limits) * design.volume * gas_density(gas, design.temperature)
        build.events.append(Release(at=start, zone=zone, gas=gas, kg=significant(kg)))
        return HazardPlan(hazard_id, kind, zone, (channel,), start, start, ratio, f"{gas} release {significant(kg)} kg")
    if kind == "nitrogen_purge":
        ramp = min(growth(rng, ratio), 0.8 * ((duration if end is None else end) - start))
        m3_h = ratio * inert_ratio_at_o2_limit(limits) * flow * 3600
        build.events += growing_flow(Purge, zone, "nitrogen", start, end, ramp, m3_h=m3_h)
        detail = f"nitrogen {significant(m3_h)} m³/h through a passing valve, opening over {ramp / 60:.0f} min{until}"
        return HazardPlan(hazard_id, kind, zone, ("o2",), start, end, ratio, detail)
    if kind == "sludge_h2s":
        tau = rng.uniform(600, 2400)
        pockets = 1 if rng.random() < 0.25 else rng.randint(3, 8)
        offsets = [0.0] + sorted(rng.uniform(300, 600) for _ in range(pockets - 1))
        offsets = [sum(offsets[: i + 1]) for i in range(pockets)]
        latest = (duration if end is None else end) - start
        offsets = [o for o in offsets if o < latest]
        grams = ratio * limit_fraction("h2s", HYDROGEN_SULFIDE, limits) / sludge_peak_per_m3(design, tau, offsets)
        grams *= gas_density(HYDROGEN_SULFIDE, design.temperature) * 1000
        for offset in offsets:
            build.events.append(DisturbSludge(at=round(start + offset, 1), zone=zone,
                                              h2s_g=significant(grams / len(offsets)), tau=round(tau, 1), until=end))
        return HazardPlan(hazard_id, kind, zone, ("h2s",), start, end, ratio,
                          f"sludge holding {significant(grams)} g H2S dug into in {len(offsets)} pockets over "
                          f"{offsets[-1] / 60:.0f} min, tau {tau:.0f} s{until}")
    if kind == "co_exhaust":
        m3_s = ratio * limit_fraction("co", CARBON_MONOXIDE, limits) * flow
        if build.shift is not None and rng.random() < 0.4:
            signal = equipment_signal(build)
            build.events.append(Exhaust(at=start, zone=zone, l_min=significant(m3_s * 60_000), until=end,
                                        while_on=signal))
            detail = f"cutting fumes {significant(m3_s * 60_000)} L/min CO while the equipment runs{until}"
            return HazardPlan(hazard_id, kind, zone, ("co",), start, end, ratio, detail, signal)
        g_h = m3_s * gas_density(CARBON_MONOXIDE, design.temperature) * 3.6e6
        build.events.append(Exhaust(at=start, zone=zone, g_h=significant(g_h), until=end))
        return HazardPlan(hazard_id, kind, zone, ("co",), start, end, ratio,
                          f"engine exhaust {significant(g_h)} g/h CO{until}")
    return plan_ventilation_failure(build, hazard_id, start, end, rng)


def sludge_peak_per_m3(design: ZoneAirDesign, tau: float, offsets: list[float]) -> float:
    """Peak gas fraction per m³ of H2S held in sludge, dug into in equal pockets at `offsets` (s) and each worked out
    with time constant `tau` under running ventilation: the sum of the pockets' responses
    (1/V)·ks/(k − ks)·(e^(−ks·t) − e^(−k·t)), at its highest on a 10 s grid."""
    k, ks = design.flow() / design.volume, 1.0 / tau
    if abs(k - ks) < 1e-6:
        ks *= 0.99
    share = 1.0 / len(offsets)
    peak = 0.0
    for step in range(int((offsets[-1] + 3 * tau) / 10) + 1):
        t = step * 10.0
        level = sum(math.exp(-ks * (t - o)) - math.exp(-k * (t - o)) for o in offsets if t >= o)
        peak = max(peak, level)
    return share * ks / (k - ks) * peak / design.volume


def plan_ventilation_failure(build: ZoneBuild, hazard_id: str, start: float, end: float | None,
                             rng: random.Random) -> HazardPlan:
    """The fan trips (or, without a fan, the doors are shut and the wind drops) and what normal work gives off piles
    up; in most fan-ventilated zones nitrogen seeps in all day, harmless while the fan runs, so O2 falls."""
    design, zone = build.design, build.zone
    until = "" if end is None else f" until {end:.0f} s"
    signal = fan_signal(build)
    if signal is None:
        low = design.ach * rng.uniform(0.05, 0.2)
        build.events.append(SetVentilation(at=start, zone=zone, ach=round(low, 2)))
        if end is not None:
            build.events.append(SetVentilation(at=end, zone=zone, ach=design.ach))
        detail = f"ventilation falls from {design.ach:.1f} to {low:.2f} air changes/h{until}"
        return HazardPlan(hazard_id, "ventilation_failure", zone, CHANNELS, start, end, 1.0, detail)
    build.events.append(FailSignal(at=start, plc=f"PLC-{build.index:02d}", tag=signal, until=end))
    detail = f"{signal.split('.')[0]} trips, {design.ach_off:.2f} air changes/h remain{until}"
    ratio = 1.0
    if rng.random() < 0.7:
        share = rng.uniform(0.004, 0.02)
        m3_h = share * design.flow() * 3600
        build.events.append(Purge(at=0.0, zone=zone, gas="nitrogen", m3_h=significant(m3_h)))
        build.seep = True
        ratio = share * design.ach / max(design.ach_off, 1e-9) / inert_ratio_at_o2_limit(build.limits)
        detail += f"; nitrogen seeps in at {significant(m3_h)} m³/h all day"
    return HazardPlan(hazard_id, "ventilation_failure", zone, CHANNELS, start, end, ratio, detail)


def add_hazards(build: ZoneBuild, duration: float, shape: ScenarioShape, rng: random.Random) -> None:
    """The zone's hazards, each of a kind its zone kind gets (a ventilation failure only where there is ventilation
    to fail)."""
    for number, start in enumerate(hazard_times(build, duration, shape, rng), 1):
        kind = weighted(rng, HAZARD_MENU[build.kind])
        build.hazards.append(plan_hazard(build, kind, number, start, duration, rng))


# The scenario


def training_scenario(scenario_id: str, seed: int, shape: ScenarioShape = DEFAULT_SHAPE) -> TrainingScenario:
    """A random site of several zones for `scenario_size(seed)` hours, with crews, detectors, benign disturbances
    and hazards, all drawn from `seed`."""
    zones, hours = scenario_size(seed, shape)
    duration = hours * 3600.0
    rng = random.Random(f"{seed}:site")
    start = start_ms(rng)
    builds = []
    for index in range(zones):
        kind = weighted(rng, ZONE_KIND_WEIGHTS)
        build = new_zone(index, kind, duration, start, rng)
        add_hazards(build, duration, shape, rng)
        add_crew(build, duration, rng)
        add_fan_schedule(build, duration, rng)
        add_benign_sources(build, rng)
        add_detectors(build, duration, rng)
        builds.append(build)
    scenario = assemble(scenario_id, seed, start, duration, builds)
    return TrainingScenario(scenario_id, seed, scenario, tuple(zone_plan(b) for b in builds))


def assemble(name: str, seed: int, start: int, duration: float, builds: list[ZoneBuild]) -> Scenario:
    """The scenario of the zones drawn: their rows, sections and events (in time order)."""
    events = sorted((e for b in builds for e in b.events), key=lambda e: e.at)
    return Scenario(
        seed=seed,
        start=start,
        duration=duration,
        name=name,
        description="random training site (simulators/training_scenarios.py)",
        points={name: p for b in builds for name, p in b.points.items()},
        positions={w: p for b in builds for w, p in b.positions.items()},
        zones=[b.row for b in builds],
        devices=[r for b in builds for r in b.rows],
        gas={d: sim for b in builds for d, sim in b.gas.items()},
        plc={f"PLC-{b.index:02d}": b.plc for b in builds},
        air={b.zone: AirSim(volume=b.design.volume, ach=b.design.ach, ach_off=b.design.ach_off,
                            fan=f"FAN-{b.index:02d}" if b.design.fan else None, temperature=b.design.temperature,
                            outside=OutsideAir(co=b.design.outside_co))
             for b in builds},
        timeline=events,
    )


def zone_plan(build: ZoneBuild) -> ZonePlan:
    """What the labels need to know of a drawn zone."""
    detectors = tuple(r.device for r in build.rows if r.family == "gas")
    workers = tuple(build.positions)
    return ZonePlan(build.zone, build.kind, build.work_type, detectors, fan_signal(build),
                    equipment_signal(build), workers, tuple(build.hazards), build.design.ach)
