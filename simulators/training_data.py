"""Training data for the risk model: random sites played through the simulator and written to Parquet, one row per
zone per second, with labels of when each zone's true gas level crossed the interlock's limit.

`interlock training-data --zone-hours 1000 --out DIR [--seed S] [--workers N]` plans enough scenarios
(`simulators.training_scenarios`) to cover the zone-hours asked for, plays each one with the simulator's own `Site`,
and keeps what the interlock would see (every GD-4 and PLC payload decoded by the interlock's decoders) next to
what really happened (the physics' air each second, where the workers are). Labels come from the TRUE air: a
crossing is the second a zone's true level first goes past its work type's limit (`interlock.gas_test.limits_for`);
the first reported reading past the limit is recorded beside it. Each scenario is one file in the split its id
hashes to (train, validation or test); `manifest.json` lists the files, seeds, zone-hours, hazard counts and
limits. The same seed gives byte-identical files with the same pyarrow (docs/training_data.md).
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import hashlib
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from msgspec import Struct

from interlock.config import DEFAULT_CONFIG, GasLimits
from interlock.geometry import Area, area_from_metres
from schemas.catalog import PLC_SCHEMA
from schemas.decoding import payload_decoder
from schemas.readings import GasSample, PlcSnapshot
from simulators.devices import position_at
from simulators.gas_physics import ventilation_rate
from simulators.payloads import Gd4v2, Gd4v3, payload_text
from simulators.scenario import (
    GAS_PERIOD_MS,
    PHYSICS,
    PLC_PERIOD_MS,
    RADIO_JITTER_MS,
    Scenario,
    Site,
    epoch_ms,
    validate,
)
from simulators.training_scenarios import (
    CHANNELS,
    HAZARD_KINDS,
    HazardPlan,
    ScenarioShape,
    TrainingScenario,
    ZonePlan,
    scenario_size,
    site_month,
    training_scenario,
    zone_limits,
)

PREFIX = "interlock training-data:"
FORMAT_VERSION = 1
WARNING_HORIZON_S = 720  # the risk model predicts a crossing within the next 12 minutes
REARM_S = 60  # a channel must be back within its limit this long before a new crossing counts
REPORTED_LOOKBACK_S = 60  # a reported reading past the limit this long before the true crossing still reports it
CLEARING_TIME_CONSTANTS = 3  # a hazard stays "active" this many air-change time constants after its source stops
READING_MAX_AGE_MS = DEFAULT_CONFIG.gas_reading_max_age_ms  # older readings are not evidence (the interlock's rule)
PLC_MAX_AGE_MS = DEFAULT_CONFIG.plc_state_max_age_ms
DETECTOR_SLOTS = 2
SPLITS = ("train", "validation", "test")
STATUSES = ("ok", "warmup", "fault", "cal_due", "missing")
MISSING = STATUSES.index("missing")
UNATTRIBUTED = "unattributed"
LABEL_KINDS = (*HAZARD_KINDS, UNATTRIBUTED)
WORK_TYPES = ("confined_space", "hot_work", "height")
ROW_GROUP_ROWS = 65_536
COMPRESSION = "zstd"
# Counters and clocks compress best as deltas, the physics' floats split by byte; everything else by dictionary.
DELTA_COLUMNS = ("seed", "t_ms", "t_s", "det1_bump_age_s", "det2_bump_age_s", "since_first_entry_s", "occupied_for_s",
                 "seconds_to_crossing")
BYTE_SPLIT_COLUMNS = ("true_o2", "true_lel", "true_h2s", "true_co")
GAS_DECODERS = {Gd4v2: payload_decoder("gd4/2"), Gd4v3: payload_decoder("gd4/3")}
PLC_DECODER = payload_decoder(PLC_SCHEMA)


def category() -> pa.DataType:
    """A string column stored as a dictionary (few distinct values)."""
    return pa.dictionary(pa.int32(), pa.string())


def detector_fields(slot: int) -> list[tuple[str, pa.DataType, str]]:
    """The columns of detector slot `slot` (1 or 2): what its latest fresh reading said."""
    d = f"det{slot}"
    return [
        (f"{d}_device", category(), f"GD-4 in slot {slot} (the zone's detectors in CMDB order); null: no such slot"),
        (f"{d}_firmware", category(), "firmware the reading reports (`fw`); null when missing"),
        (f"{d}_o2", pa.float64(), "O2 %vol as reported; null when the channel is faulted or no fresh reading"),
        (f"{d}_lel", pa.float64(), "LEL % as reported; null when faulted or missing"),
        (f"{d}_h2s", pa.float64(), "H2S ppm as reported; null when faulted or missing"),
        (f"{d}_co", pa.float64(), "CO ppm as reported; null when faulted or missing"),
        (f"{d}_status", category(), "ok / warmup / fault / cal_due as reported (gd4/2 always ok); missing when no "
                                    "reading arrived in the last 10 s"),
        (f"{d}_alarm", pa.int16(), "gd4/2 alarm bits (bit 7: a channel in fault); 0 for gd4/3; null when missing"),
        (f"{d}_age_ms", pa.int32(), "ms since that reading arrived; null when missing"),
        (f"{d}_bump_age_s", pa.int32(), "s since the last passed bump test (gd4/3 only); null for gd4/2 or missing"),
    ]


COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("scenario_id", category(), "the scenario (one per file)"),
    ("seed", pa.int64(), "the scenario's seed"),
    ("split", category(), "train, validation or test (by the hash of scenario_id)"),
    ("zone", category(), "zone id"),
    ("zone_kind", category(), "confined_space, hot_work_area or open_area"),
    ("work_type", category(), "work type whose limits label the zone: confined_space, hot_work or height"),
    ("t_ms", pa.int64(), "site time, ms since the epoch (UTC), on whole seconds from the scenario start"),
    ("t_s", pa.int32(), "seconds since the scenario start"),
    *detector_fields(1),
    *detector_fields(2),
    ("fan_running", pa.bool_(), "the zone fan's `running` signal in the latest PLC report of the last 15 s; null "
                                "without a fan or a fresh report"),
    ("equipment_on", pa.bool_(), "the zone equipment's `power` signal (welder, tool) in the latest fresh PLC report"),
    ("occupancy", pa.int16(), "people inside the zone (where they really are, not UWB fixes)"),
    ("since_first_entry_s", pa.int32(), "s since the first person entered the zone in this scenario; null before"),
    ("occupied_for_s", pa.int32(), "s since the zone last went from empty to occupied; null while empty"),
    ("true_o2", pa.float64(), "the physics' O2 %vol at t (ground truth)"),
    ("true_lel", pa.float64(), "the physics' LEL % at t"),
    ("true_h2s", pa.float64(), "the physics' H2S ppm at t"),
    ("true_co", pa.float64(), "the physics' CO ppm at t"),
    ("true_ach", pa.float32(), "the zone's real air changes per hour at t"),
    ("limit_o2_min", pa.float64(), "the work type's O2 lower limit this month (limits_for)"),
    ("limit_o2_max", pa.float64(), "O2 upper limit"),
    ("limit_lel", pa.float64(), "LEL limit (at or above is over)"),
    ("limit_h2s", pa.float64(), "H2S limit (at or above is over)"),
    ("limit_co", pa.float64(), "CO limit (at or above is over; 15 % lower in June-August)"),
    ("true_over_limit", pa.bool_(), "the true air is past a limit at t"),
    ("reported_over_limit", pa.bool_(), "a fresh reported value of some detector is past a limit at t"),
    ("crossing_within_12min", pa.bool_(), "a true crossing happens in (t, t + 720 s]: THE LABEL"),
    ("seconds_to_crossing", pa.int32(), "s from t to the next true crossing of the zone; null when none ahead"),
    ("hazard_kind", category(), "kind of hazard behind that next crossing (unattributed if none planned)"),
    ("crossing_channel", category(), "channel of that next crossing: o2, lel, h2s or co"),
    ("hazard_active", category(), "planned hazard whose source is on or whose gas is still clearing; null: benign"),
]
SCHEMA = pa.schema([pa.field(name, kind) for name, kind, _ in COLUMNS])


# What happened in one scenario


class Crossing(Struct, frozen=True):
    """One crossing of a limit by a zone's TRUE gas level (the label), the hazard it is put down to, when the truth
    was back within the limit, and the first reported reading past the limit (from 60 s before to 60 s after)."""

    scenario_id: str
    seed: int
    split: str
    zone: str
    zone_kind: str
    work_type: str
    channel: str
    limit: float
    crossing_ms: int
    t_s: int
    hazard_kind: str
    hazard: str | None
    hazard_start_ms: int | None
    lead_s: int | None
    episode_end_ms: int | None
    reported_crossing_ms: int | None
    reported_lag_s: int | None


class HazardRecord(Struct, frozen=True):
    """One planned hazard, whether the truth crossed a limit because of it, and how long after its start."""

    scenario_id: str
    seed: int
    split: str
    zone: str
    zone_kind: str
    work_type: str
    hazard: str
    kind: str
    channels: str
    start_ms: int
    end_ms: int | None
    designed_ratio: float
    detail: str
    crossed: bool
    first_crossing_ms: int | None
    lead_s: int | None


class ScenarioInfo(Struct, frozen=True):
    """What every row of a scenario shares."""

    scenario_id: str
    seed: int
    split: str
    start: int
    seconds: int


class ZoneSamples(Struct):
    """A zone each second: its true air, ventilation and how many people are inside."""

    o2: list[float]
    lel: list[float]
    h2s: list[float]
    co: list[float]
    ach: list[float]
    occupancy: list[int]


class TelemetrySite(Site):
    """The simulator's site, keeping only what training rows need: each GD-4 and PLC payload decoded by the
    interlock's own decoders (with its arrival time), and each second every zone's true air, ventilation and
    occupancy. Table rows, UWB fixes and harness reports are not produced: occupancy comes from where the workers
    really are, which is also much faster."""

    def __init__(self, scenario: Scenario, plans: tuple[ZonePlan, ...]) -> None:
        super().__init__(scenario)
        self.plans = plans
        self.readings: dict[str, list[tuple[int, GasSample]]] = {d: [] for d in self.detectors}
        self.plc_reports: dict[str, list[tuple[int, PlcSnapshot]]] = {p: [] for p in self.plcs}
        self.samples = {plan.zone: ZoneSamples([], [], [], [], [], []) for plan in plans}
        rows = {row.zone: row for row in scenario.zones}
        self.areas: dict[str, Area] = {z: area_from_metres(rows[z].polygon, rows[z].z) for z in self.samples}
        self.undecodable = 0

    def send(self, topic: str, key: str | None, ts: int, payload: Struct | list | None) -> None:
        """Decode gas readings and PLC reports exactly as the interlock would; drop everything else."""
        if topic == "gas.readings":
            sample, _ = GAS_DECODERS[type(payload)](payload_text(payload))
            if sample is None:
                self.undecodable += 1
            else:
                self.readings[key].append((ts, sample))
        elif topic == "plc.state":
            snapshot, _ = PLC_DECODER(payload_text(payload))
            if snapshot is None:
                self.undecodable += 1
            else:
                self.plc_reports[key].append((ts, snapshot))

    def schedule_tables(self) -> None:
        """No table rows: the rows carry the zone's kind and work type themselves."""

    def schedule_devices(self) -> None:
        """Only the detectors and PLC gateways report."""
        for name, detector in self.detectors.items():
            self.every(name, GAS_PERIOD_MS, RADIO_JITTER_MS, partial(self.report_gas, detector))
        for name, plc in self.plcs.items():
            self.every(name, PLC_PERIOD_MS, 0, partial(self.report_plc, plc))

    def schedule_air(self) -> None:
        """Sample the zones at the start too, then once a second after each air step."""
        self.agenda.at(self.start, PHYSICS, self.sample)
        super().schedule_air()

    def step_air(self, ms: int) -> None:
        """One 1 s step of every zone's air, then a sample of it."""
        super().step_air(ms)
        self.sample(ms)

    def sample(self, ms: int) -> None:
        """Every zone's true air, ventilation and occupancy at `ms`."""
        for plan in self.plans:
            air, samples, area = self.air[plan.zone], self.samples[plan.zone], self.areas[plan.zone]
            levels = air.levels
            samples.o2.append(levels["o2"])
            samples.lel.append(levels["lel"])
            samples.h2s.append(levels["h2s"])
            samples.co.append(levels["co"])
            samples.ach.append(ventilation_rate(air, self.signal))
            inside = 0
            for worker in plan.workers:
                x, y, z = position_at(self.walks[worker], ms)
                inside += area.contains(x * 1000.0, y * 1000.0, z * 1000.0)
            samples.occupancy.append(inside)


def play(training: TrainingScenario) -> TelemetrySite:
    """Play a training scenario through the simulator (as `simulators.scenario.generate` does) and keep its samples."""
    validate(training.scenario)
    site = TelemetrySite(training.scenario, training.zones)
    site.schedule_tables()
    site.schedule_timeline()
    site.schedule_equipment()
    site.schedule_air()
    site.schedule_devices()
    site.agenda.run()
    return site


# Rows of one zone


def latest_before(times: np.ndarray, t: np.ndarray, max_age: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row time, the index of the latest report that arrived at or before it, and whether there is one no
    older than `max_age` ms."""
    index = np.searchsorted(times, t, side="right") - 1
    safe = np.maximum(index, 0)
    if len(times) == 0:
        return safe, np.zeros(len(t), dtype=bool)
    return safe, (index >= 0) & (t - times[safe] <= max_age)


def masked(values: np.ndarray, valid: np.ndarray, kind: pa.DataType) -> pa.Array:
    """An Arrow array of `values`, null where not `valid` (or NaN)."""
    invalid = ~valid
    if values.dtype.kind == "f":
        invalid |= np.isnan(values)
    return pa.array(values, type=kind, mask=invalid)


def categories(indices: np.ndarray, valid: np.ndarray, names: tuple[str, ...] | list[str]) -> pa.Array:
    """A dictionary column: `names[indices]`, null where not `valid`."""
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32), mask=~valid), pa.array(names, pa.string()))


def constant(value: str | None, rows: int) -> pa.Array:
    """A dictionary column holding one value (or null) on every row."""
    if value is None:
        return categories(np.zeros(rows, np.int32), np.zeros(rows, bool), [])
    return categories(np.zeros(rows, np.int32), np.ones(rows, bool), [value])


def detector_columns(slot: int, device: str | None, readings: list[tuple[int, GasSample]],
                     t: np.ndarray) -> dict[str, pa.Array]:
    """Slot `slot`'s columns: at each second the latest reading that arrived in the last 10 s, or missing."""
    d, rows = f"det{slot}", len(t)
    arrived = np.array([ts for ts, _ in readings], dtype=np.int64)
    index, fresh = latest_before(arrived, t, READING_MAX_AGE_MS)
    columns: dict[str, pa.Array] = {f"{d}_device": constant(device, rows)}
    firmwares = sorted({s.firmware for _, s in readings})
    firmware_index = np.array([firmwares.index(s.firmware) for _, s in readings] or [0], dtype=np.int32)
    columns[f"{d}_firmware"] = categories(firmware_index[index], fresh, firmwares)
    for channel in CHANNELS:
        values = np.array([np.nan if getattr(s, channel) is None else getattr(s, channel) for _, s in readings]
                          or [np.nan], dtype=np.float64)
        columns[f"{d}_{channel}"] = masked(values[index], fresh, pa.float64())
    status = np.array([STATUSES.index(s.status) for _, s in readings] or [MISSING], dtype=np.int32)
    columns[f"{d}_status"] = categories(np.where(fresh, status[index], MISSING), np.full(rows, device is not None),
                                        STATUSES)
    alarm = np.array([s.alarm for _, s in readings] or [0], dtype=np.int16)
    columns[f"{d}_alarm"] = masked(alarm[index], fresh, pa.int16())
    columns[f"{d}_age_ms"] = masked((t - arrived[index] if len(arrived) else t * 0).astype(np.int32), fresh,
                                    pa.int32())
    bump = np.array([np.nan if s.bump is None else s.bump for _, s in readings] or [np.nan], dtype=np.float64)
    bump_age = np.floor((t - bump[index]) / 1000.0)
    has_bump = fresh & ~np.isnan(bump_age)
    columns[f"{d}_bump_age_s"] = masked(np.nan_to_num(bump_age).astype(np.int32), has_bump, pa.int32())
    return columns


def signal_column(site: TelemetrySite, signal: str | None, t: np.ndarray) -> pa.Array:
    """A PLC signal as the latest report of the last 15 s gives it; null without the signal or a fresh report."""
    if signal is None:
        return pa.nulls(len(t), pa.bool_())
    reports = site.plc_reports[site.signal_plc[signal].plc]
    arrived = np.array([ts for ts, _ in reports], dtype=np.int64)
    values = np.array([snapshot.tags.get(signal, False) for _, snapshot in reports] or [False], dtype=bool)
    index, fresh = latest_before(arrived, t, PLC_MAX_AGE_MS)
    return pa.array(values[index], pa.bool_(), mask=~fresh)


def presence_columns(occupancy: np.ndarray) -> dict[str, pa.Array]:
    """Occupancy, seconds since the first entry, and seconds since the zone last became occupied."""
    rows = len(occupancy)
    seconds = np.arange(rows, dtype=np.int64)
    occupied = occupancy > 0
    first = int(np.argmax(occupied)) if occupied.any() else rows
    entered = occupied & ~np.concatenate(([False], occupied[:-1]))
    last_entry = np.maximum.accumulate(np.where(entered, seconds, -1))
    return {
        "occupancy": pa.array(occupancy.astype(np.int16), pa.int16()),
        "since_first_entry_s": masked((seconds - first).astype(np.int32), seconds >= first, pa.int32()),
        "occupied_for_s": masked((seconds - last_entry).astype(np.int32), occupied, pa.int32()),
    }


def limit_values(limits: GasLimits) -> dict[str, float]:
    """The limit columns' values."""
    return {"limit_o2_min": limits.o2_min, "limit_o2_max": limits.o2_max, "limit_lel": limits.lel_max,
            "limit_h2s": limits.h2s_max, "limit_co": limits.co_max}


def over_limits(levels: dict[str, np.ndarray], limits: GasLimits) -> dict[str, np.ndarray]:
    """Per channel, where the levels are past the interlock's limit (the rule of `assess_sample`: O2 outside
    [min, max], the others at or above their maximum); NaN (no reading) is never over."""
    o2 = levels["o2"]
    return {
        "o2": (o2 < limits.o2_min) | (o2 > limits.o2_max),
        "lel": levels["lel"] >= limits.lel_max,
        "h2s": levels["h2s"] >= limits.h2s_max,
        "co": levels["co"] >= limits.co_max,
    }


def episodes(over: np.ndarray, rearm: int = REARM_S) -> list[tuple[int, int | None]]:
    """The spells a channel spends past its limit, as (first second over, first second back within or None): a
    spell that starts less than `rearm` s after the last one ended continues it."""
    changes = np.flatnonzero(over[1:] != over[:-1]) + 1
    starts = [int(i) for i in changes if over[i]]
    ends = [int(i) for i in changes if not over[i]]
    if len(over) and over[0]:
        starts.insert(0, 0)
    spells: list[tuple[int, int | None]] = []
    for start in starts:
        after = bisect.bisect_right(ends, start)
        end = ends[after] if after < len(ends) else None
        if spells and spells[-1][1] is not None and start - spells[-1][1] < rearm:
            spells[-1] = (spells[-1][0], end)
        else:
            spells.append((start, end))
    return spells


def behind(plan: ZonePlan, channel: str, second: int) -> HazardPlan | None:
    """The hazard a crossing is put down to: the latest one started in the zone by then that can move the channel."""
    started = [h for h in plan.hazards if channel in h.channels and h.start <= second]
    return max(started, key=lambda h: h.start) if started else None


def first_reported(reported_over: np.ndarray, start: int, end: int | None) -> int | None:
    """The first second from 60 s before a crossing to 60 s after its spell at which a reported value is past the
    limit, or None."""
    stop = len(reported_over) if end is None else min(len(reported_over), end + REPORTED_LOOKBACK_S)
    hits = np.flatnonzero(reported_over[max(0, start - REPORTED_LOOKBACK_S):stop])
    return None if len(hits) == 0 else max(0, start - REPORTED_LOOKBACK_S) + int(hits[0])


def limit_crossed(channel: str, limits: GasLimits, true_level: float) -> float:
    """The limit value a crossing went past (O2: the lower or the upper one)."""
    if channel == "o2":
        return limits.o2_max if true_level > limits.o2_max else limits.o2_min
    return {"lel": limits.lel_max, "h2s": limits.h2s_max, "co": limits.co_max}[channel]


def active_hazards(plan: ZonePlan, rows: int) -> np.ndarray:
    """Per second, the index in LABEL_KINDS of the hazard whose source is on or whose gas is still clearing (three
    air-change time constants after it stops); -1 where none is."""
    active = np.full(rows, -1, dtype=np.int32)
    clearing = CLEARING_TIME_CONSTANTS * 3600.0 / max(plan.ach, 0.1)
    for hazard in sorted(plan.hazards, key=lambda h: h.start):
        end = rows if hazard.end is None else min(rows, math.ceil(hazard.end + clearing))
        active[math.ceil(hazard.start):end] = LABEL_KINDS.index(hazard.kind)
    return active


class ZoneLabels(Struct):
    """A zone's label columns and its crossings."""

    columns: dict[str, pa.Array]
    crossings: list[Crossing]


def zone_labels(info: ScenarioInfo, plan: ZonePlan, limits: GasLimits, truth: dict[str, np.ndarray],
                reported: list[dict[str, np.ndarray]]) -> ZoneLabels:
    """The zone's crossings of its limits by the true air, each put down to a hazard and matched to the first
    reported reading past the limit, and per row: over now (true and reported), a crossing within 12 minutes, the
    seconds to the next crossing, its hazard kind and channel, and the active hazard."""
    rows = info.seconds
    true_over = over_limits(truth, limits)
    reported_over = {c: np.zeros(rows, bool) for c in CHANNELS}
    for levels in reported:
        for channel, over in over_limits(levels, limits).items():
            reported_over[channel] |= over
    crossings: list[Crossing] = []
    for channel in CHANNELS:
        for start, end in episodes(true_over[channel]):
            hazard = behind(plan, channel, start)
            seen = first_reported(reported_over[channel], start, end)
            crossings.append(Crossing(
                info.scenario_id, info.seed, info.split, plan.zone, plan.kind, plan.work_type, channel,
                limit_crossed(channel, limits, float(truth[channel][start])), info.start + start * 1000, start,
                UNATTRIBUTED if hazard is None else hazard.kind, None if hazard is None else hazard.hazard,
                None if hazard is None else info.start + round(hazard.start * 1000),
                None if hazard is None else start - math.ceil(hazard.start),
                None if end is None else info.start + end * 1000,
                None if seen is None else info.start + seen * 1000, None if seen is None else seen - start))
    crossings.sort(key=lambda c: (c.t_s, CHANNELS.index(c.channel)))
    times = np.array([c.t_s for c in crossings], dtype=np.int64)
    seconds = np.arange(rows, dtype=np.int64)
    upcoming = np.searchsorted(times, seconds, side="right")
    ahead = upcoming < len(times)
    nearest = np.minimum(upcoming, max(len(times) - 1, 0))
    to_crossing = (times[nearest] - seconds) if len(times) else np.zeros(rows, np.int64)
    kinds = np.array([LABEL_KINDS.index(c.hazard_kind) for c in crossings] or [0], dtype=np.int32)
    channels = np.array([CHANNELS.index(c.channel) for c in crossings] or [0], dtype=np.int32)
    active = active_hazards(plan, rows)
    columns = {
        "true_over_limit": pa.array(np.logical_or.reduce(list(true_over.values())), pa.bool_()),
        "reported_over_limit": pa.array(np.logical_or.reduce(list(reported_over.values())), pa.bool_()),
        "crossing_within_12min": pa.array(ahead & (to_crossing <= WARNING_HORIZON_S), pa.bool_()),
        "seconds_to_crossing": masked(to_crossing.astype(np.int32), ahead, pa.int32()),
        "hazard_kind": categories(kinds[nearest], ahead, LABEL_KINDS),
        "crossing_channel": categories(channels[nearest], ahead, CHANNELS),
        "hazard_active": categories(np.maximum(active, 0), active >= 0, LABEL_KINDS),
    }
    return ZoneLabels(columns, crossings)


def hazard_records(info: ScenarioInfo, plan: ZonePlan, crossings: list[Crossing]) -> list[HazardRecord]:
    """Each planned hazard of the zone with its first crossing, if the truth crossed because of it."""
    records = []
    for hazard in plan.hazards:
        mine = [c for c in crossings if c.hazard == hazard.hazard]
        first = min(mine, key=lambda c: c.t_s) if mine else None
        records.append(HazardRecord(
            info.scenario_id, info.seed, info.split, plan.zone, plan.kind, plan.work_type, hazard.hazard,
            hazard.kind, ",".join(hazard.channels), info.start + round(hazard.start * 1000),
            None if hazard.end is None else info.start + round(hazard.end * 1000), round(hazard.designed_ratio, 4),
            hazard.detail, first is not None, None if first is None else first.crossing_ms,
            None if first is None else first.lead_s))
    return records


class ZoneRows(Struct):
    """One zone's rows as an Arrow table, its crossings and its hazards."""

    table: pa.Table
    crossings: list[Crossing]
    hazards: list[HazardRecord]


def hazard_onsets(site: TelemetrySite, info: ScenarioInfo, plan: ZonePlan) -> ZonePlan:
    """The plan with each hazard whose source runs on a PLC signal (`HazardPlan.while_on`) starting at the first
    report of that signal on at or after its planned start: before it nothing in the zone shows the hazard, so its
    lead (and the warning anyone could give) counts from there. One that never ran keeps its planned start."""
    hazards = []
    for hazard in plan.hazards:
        if hazard.while_on is not None:
            planned_ms = info.start + round(hazard.start * 1000)
            reports = site.plc_reports[site.signal_plc[hazard.while_on].plc]
            on = next((ts for ts, snapshot in reports if ts >= planned_ms and snapshot.tags.get(hazard.while_on)), None)
            if on is not None and on > planned_ms:
                onset = (on - info.start) / 1000
                if hazard.end is None or onset < hazard.end:
                    late = onset - hazard.start
                    hazard = msgspec.structs.replace(
                        hazard, start=onset, detail=f"{hazard.detail}; {hazard.while_on} first on {late:.0f} s later")
        hazards.append(hazard)
    return msgspec.structs.replace(plan, hazards=tuple(hazards))


def zone_rows(site: TelemetrySite, info: ScenarioInfo, plan: ZonePlan) -> ZoneRows:
    """Every second of one zone: identity, detectors as reported, PLC state, occupancy, the true air, limits and
    labels (a hazard gated by a PLC signal counted from when it first ran: `hazard_onsets`)."""
    plan = hazard_onsets(site, info, plan)
    rows = info.seconds
    t = info.start + np.arange(rows, dtype=np.int64) * 1000
    limits = zone_limits(plan.work_type, info.start)
    samples = site.samples[plan.zone]
    truth = {c: np.array(getattr(samples, c)[:rows], dtype=np.float64) for c in CHANNELS}
    columns: dict[str, pa.Array] = {
        "scenario_id": constant(info.scenario_id, rows),
        "seed": pa.array(np.full(rows, info.seed, dtype=np.int64)),
        "split": constant(info.split, rows),
        "zone": constant(plan.zone, rows),
        "zone_kind": constant(plan.kind, rows),
        "work_type": constant(plan.work_type, rows),
        "t_ms": pa.array(t),
        "t_s": pa.array(np.arange(rows, dtype=np.int32)),
    }
    reported = []
    for slot in range(1, DETECTOR_SLOTS + 1):
        device = plan.detectors[slot - 1] if slot <= len(plan.detectors) else None
        slot_columns = detector_columns(slot, device, site.readings.get(device, []), t)
        columns |= slot_columns
        if device is not None:
            reported.append({c: slot_columns[f"det{slot}_{c}"].to_numpy(zero_copy_only=False) for c in CHANNELS})
    columns["fan_running"] = signal_column(site, plan.fan, t)
    columns["equipment_on"] = signal_column(site, plan.equipment, t)
    columns |= presence_columns(np.array(samples.occupancy[:rows], dtype=np.int64))
    columns |= {f"true_{c}": pa.array(truth[c]) for c in CHANNELS}
    columns["true_ach"] = pa.array(np.array(samples.ach[:rows], dtype=np.float32))
    columns |= {name: pa.array(np.full(rows, value)) for name, value in limit_values(limits).items()}
    labels = zone_labels(info, plan, limits, truth, [{c: np.asarray(v, dtype=np.float64) for c, v in r.items()}
                                                     for r in reported])
    columns |= labels.columns
    table = pa.Table.from_arrays([columns[name] for name in SCHEMA.names], schema=SCHEMA)
    return ZoneRows(table, labels.crossings, hazard_records(info, plan, labels.crossings))


def scenario_rows(training: TrainingScenario, split: str) -> tuple[list[ZoneRows], int]:
    """Play a training scenario and return every zone's rows, and how many payloads the interlock could not decode."""
    site = play(training)
    seconds = int(training.scenario.duration)
    info = ScenarioInfo(training.scenario_id, training.seed, split, epoch_ms(training.scenario.start), seconds)
    return [zone_rows(site, info, plan) for plan in training.zones], site.undecodable


# Files, split and manifest


class SplitRule(Struct, frozen=True):
    """How scenarios are split: the fractions for train, validation and test of a hash of the scenario id."""

    train: float = 0.70
    validation: float = 0.15
    test: float = 0.15
    rule: str = "sha256(scenario_id) read as a fraction in [0, 1): train below `train`, validation below " \
                "`train + validation`, test above"

    def __post_init__(self) -> None:
        shares = (self.train, self.validation, self.test)
        if any(s < 0 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-9):
            raise ValueError(f"split {self.train}/{self.validation}/{self.test}: give three non-negative shares "
                             "adding up to 1 (or 100), e.g. 70/15/15")


def split_of(scenario_id: str, rule: SplitRule) -> str:
    """The part a scenario belongs to, from the hash of its id alone (so it never depends on what else was made)."""
    share = int.from_bytes(hashlib.sha256(scenario_id.encode()).digest()[:8], "big") / 2**64
    if share < rule.train:
        return "train"
    return "validation" if share < rule.train + rule.validation else "test"


def scenario_seed(seed: int, index: int) -> int:
    """The seed of scenario `index` of a set made with `seed`: a hash, so every scenario has its own seed."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "big")


class TrainingSettings(Struct, frozen=True):
    """What to make: at least `zone_hours` zone-hours from the master `seed`, in `workers` processes."""

    zone_hours: float
    seed: int = 2027
    workers: int = 1
    split: SplitRule = SplitRule()
    shape: ScenarioShape = ScenarioShape()

    def __post_init__(self) -> None:
        if not self.zone_hours > 0:
            raise ValueError(f"zone-hours {self.zone_hours}: ask for a positive number, e.g. --zone-hours 1000")
        if self.workers < 1:
            raise ValueError(f"workers {self.workers}: use 1 or more processes, e.g. --workers 2")


class ScenarioJob(Struct, frozen=True):
    """One scenario to make and where its file goes (relative to the output folder)."""

    index: int
    scenario_id: str
    seed: int
    split: str
    zones: int
    hours: float
    path: str
    shape: ScenarioShape


def plan_jobs(settings: TrainingSettings) -> list[ScenarioJob]:
    """Scenarios in index order until their zone-hours reach what was asked for; sizes are drawn from each
    scenario's seed alone, so the plan is the same whatever the number of workers."""
    jobs, total, index = [], 0.0, 0
    while total < settings.zone_hours:
        seed = scenario_seed(settings.seed, index)
        scenario_id = f"s{settings.seed}-{index:04d}"
        zones, hours = scenario_size(seed, settings.shape)
        split = split_of(scenario_id, settings.split)
        jobs.append(ScenarioJob(index, scenario_id, seed, split, zones, hours, f"{split}/{scenario_id}.parquet",
                                settings.shape))
        total += zones * hours
        index += 1
    return jobs


class FileEntry(Struct, frozen=True):
    """A file of the set: where, which scenario and split, its seed, size in zones, hours, zone-hours and rows, its
    bytes and sha256."""

    path: str
    split: str
    scenario_id: str
    seed: int
    start_ms: int
    month: int
    zones: int
    hours: float
    zone_hours: float
    rows: int
    bytes: int
    sha256: str


class ScenarioResult(Struct, frozen=True):
    """A written scenario: its file, its crossings and hazards, and undecodable payloads (0 expected)."""

    index: int
    entry: FileEntry
    crossings: list[Crossing]
    hazards: list[HazardRecord]
    undecodable: int


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_zone_tables(path: Path, tables: list[pa.Table], metadata: dict[bytes, bytes]) -> None:
    """One Parquet file, each zone in its own row groups (at most 65,536 rows each), zstd-compressed; counters as
    deltas and the true levels byte-split, which makes the file less than half the size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = SCHEMA.with_metadata(metadata)
    encodings = {name: "DELTA_BINARY_PACKED" for name in DELTA_COLUMNS}
    encodings |= {name: "BYTE_STREAM_SPLIT" for name in BYTE_SPLIT_COLUMNS}
    dictionary = [name for name in SCHEMA.names if name not in encodings]
    with pq.ParquetWriter(path, schema, compression=COMPRESSION, use_dictionary=dictionary, column_encoding=encodings,
                          write_statistics=True) as out:
        for table in tables:
            out.write_table(table.replace_schema_metadata(metadata), row_group_size=ROW_GROUP_ROWS)


def write_scenario(out: Path, job: ScenarioJob) -> ScenarioResult:
    """Make one scenario and write its file."""
    training = training_scenario(job.scenario_id, job.seed, job.shape)
    zones, undecodable = scenario_rows(training, job.split)
    path = out / job.path
    metadata = {b"scenario_id": job.scenario_id.encode(), b"seed": str(job.seed).encode(),
                b"split": job.split.encode(), b"format_version": str(FORMAT_VERSION).encode()}
    write_zone_tables(path, [z.table for z in zones], metadata)
    start = epoch_ms(training.scenario.start)
    rows = sum(z.table.num_rows for z in zones)
    entry = FileEntry(job.path, job.split, job.scenario_id, job.seed, start, site_month(start), job.zones, job.hours,
                      job.zones * job.hours, rows, path.stat().st_size, file_digest(path))
    return ScenarioResult(job.index, entry, [c for z in zones for c in z.crossings],
                          [h for z in zones for h in z.hazards], undecodable)


def write_all(out: Path, jobs: list[ScenarioJob], workers: int, progress=None) -> list[ScenarioResult]:
    """Write every scenario, in `workers` processes (largest first, so they finish together); results in index order.
    Workers are spawned, not forked, so they never inherit the threads of an Arrow writer."""
    if workers == 1:
        results = []
        for job in jobs:
            results.append(write_scenario(out, job))
            if progress is not None:
                progress(job.zones * job.hours)
        return results
    results = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(write_scenario, out, job): job
                   for job in sorted(jobs, key=lambda j: -j.zones * j.hours)}
        for future in as_completed(futures):
            results.append(future.result())
            if progress is not None:
                job = futures[future]
                progress(job.zones * job.hours)
    return sorted(results, key=lambda r: r.index)


def struct_table(items: list[Struct], kind: type[Struct]) -> pa.Table:
    """A table with one column per field of `kind`, one row per item."""
    fields = kind.__struct_fields__
    return pa.table({name: [getattr(item, name) for item in items] for name in fields}) if items else \
        pa.table({name: pa.nulls(0) for name in fields})


class TableEntry(Struct, frozen=True):
    """A side table: where, rows, bytes and sha256."""

    path: str
    rows: int
    bytes: int
    sha256: str


def write_side_table(out: Path, name: str, items: list[Struct], kind: type[Struct]) -> TableEntry:
    """Write crossings or hazards as one Parquet file."""
    path = out / f"{name}.parquet"
    pq.write_table(struct_table(items, kind), path, compression=COMPRESSION)
    return TableEntry(path.name, len(items), path.stat().st_size, file_digest(path))


class HazardCount(Struct, frozen=True):
    """Hazards of one kind: put in, designed to cross (designed ratio over 1), that crossed, crossings put down to the
    kind, and of those how many came at least 10 minutes after the hazard began (a 10-minute warning was possible)."""

    injected: int
    designed_to_cross: int
    crossed: int
    crossings: int
    crossings_10min_after_start: int


class LimitsUsed(Struct, frozen=True):
    """The limits a work type has in some months (interlock.gas_test.limits_for with the default site config)."""

    work_type: str
    months: list[int]
    limits: GasLimits


class SplitSummary(Struct, frozen=True):
    """What went into one part of the split."""

    scenarios: int
    zone_hours: float
    rows: int
    crossings: int


class Manifest(Struct):
    """Everything about a training set: how it was made, what is in it, and its files."""

    format_version: int
    seed: int
    zone_hours_requested: float
    zone_hours: float
    scenarios: int
    rows: int
    bytes: int
    shape: ScenarioShape
    split_rule: SplitRule
    splits: dict[str, SplitSummary]
    labels: dict[str, str]
    limits: list[LimitsUsed]
    hazards: dict[str, HazardCount]
    crossings_by_channel: dict[str, int]
    unattributed_crossings: int
    undecodable_payloads: int
    rows_crossing_within_12min: int
    rows_true_over_limit: int
    rows_reported_over_limit: int
    rows_hazard_active: int
    pyarrow: str
    columns: list[str]
    tables: dict[str, TableEntry]
    files: list[FileEntry]


LABEL_RULES = {
    "truth": "labels come from the physics' true air (true_*), not from reported readings",
    "crossing": "the first second a channel's true level is past its limit (O2 outside [o2_min, o2_max]; LEL, H2S, "
                "CO at or above their maxima) after at least 60 s within it",
    "limits": "interlock.gas_test.limits_for(DEFAULT_CONFIG, zone work_type, site month of the scenario start)",
    "crossing_within_12min": "a crossing of any channel of the zone in (t, t + 720 s]",
    "reported_crossing": "first second from 60 s before a crossing to 60 s after its spell at which any detector's "
                         "fresh reported value of that channel is past the limit",
    "hazard_kind": "the latest planned hazard of the zone started by the crossing that can move its channel; "
                   "unattributed when none",
    "fresh_reading": f"a detector's latest reading that arrived at most {READING_MAX_AGE_MS} ms before t",
}


def limits_used() -> list[LimitsUsed]:
    """Each work type's limits, grouped by the months in which they hold."""
    used = []
    for work_type in WORK_TYPES:
        groups: dict[GasLimits, list[int]] = {}
        for month in range(1, 13):
            moment = epoch_ms(datetime.datetime(2027, month, 15, 12, tzinfo=datetime.UTC))
            groups.setdefault(zone_limits(work_type, moment), []).append(month)
        used += [LimitsUsed(work_type, months, limits) for limits, months in groups.items()]
    return used


def hazard_counts(results: list[ScenarioResult]) -> dict[str, HazardCount]:
    """Hazards by kind, with their crossings."""
    hazards = [h for r in results for h in r.hazards]
    crossings = [c for r in results for c in r.crossings]
    counts = {}
    for kind in LABEL_KINDS:
        mine = [h for h in hazards if h.kind == kind]
        crossed = [c for c in crossings if c.hazard_kind == kind]
        if mine or crossed:
            counts[kind] = HazardCount(len(mine), sum(h.designed_ratio > 1 for h in mine), sum(h.crossed for h in mine),
                                       len(crossed), sum(c.lead_s is not None and c.lead_s >= 600 for c in crossed))
    return counts


def build_manifest(settings: TrainingSettings, results: list[ScenarioResult], tables: dict[str, TableEntry],
                   row_counts: dict[str, int]) -> Manifest:
    """The manifest of a written set."""
    files = [r.entry for r in results]
    crossings = [c for r in results for c in r.crossings]
    splits = {
        part: SplitSummary(sum(f.split == part for f in files), sum(f.zone_hours for f in files if f.split == part),
                           sum(f.rows for f in files if f.split == part), sum(c.split == part for c in crossings))
        for part in SPLITS
    }
    return Manifest(
        FORMAT_VERSION, settings.seed, settings.zone_hours, sum(f.zone_hours for f in files), len(files),
        sum(f.rows for f in files), sum(f.bytes for f in files), settings.shape, settings.split, splits,
        LABEL_RULES, limits_used(), hazard_counts(results),
        {c: sum(x.channel == c for x in crossings) for c in CHANNELS},
        sum(c.hazard_kind == UNATTRIBUTED for c in crossings), sum(r.undecodable for r in results),
        row_counts["crossing_within_12min"], row_counts["true_over_limit"], row_counts["reported_over_limit"],
        row_counts["hazard_active"], pa.__version__, SCHEMA.names, tables, files)


def count_rows(out: Path, files: list[FileEntry]) -> dict[str, int]:
    """Rows with each label set, read back from the files."""
    counts = {"crossing_within_12min": 0, "true_over_limit": 0, "reported_over_limit": 0, "hazard_active": 0}
    for entry in files:
        table = pq.read_table(out / entry.path, columns=list(counts))
        for name in ("crossing_within_12min", "true_over_limit", "reported_over_limit"):
            counts[name] += pc.sum(table[name]).as_py() or 0
        counts["hazard_active"] += table.num_rows - table["hazard_active"].null_count
    return counts


class Timing(Struct, frozen=True):
    """How long a set took to make (not part of the deterministic files)."""

    workers: int
    wall_s: float
    zone_hours: float
    zone_hours_per_s: float
    rows_per_s: float


def clear_earlier_set(out: Path) -> None:
    """Make room in `out`: it must be new, empty, or hold an earlier training set (its manifest.json), whose files
    are removed; anything else is left alone and refused."""
    if not out.exists() or not any(out.iterdir()):
        return
    manifest = out / "manifest.json"
    if not manifest.exists():
        raise ValueError(f"{out} is not empty and holds no training set (no manifest.json); choose a new or empty "
                         "folder, e.g. runs/training_data")
    for part in SPLITS:
        for old in (out / part).glob("*.parquet"):
            old.unlink()
        if (out / part).is_dir() and not any((out / part).iterdir()):
            (out / part).rmdir()
    for name in ("crossings.parquet", "hazards.parquet", "timing.json", "manifest.json"):
        (out / name).unlink(missing_ok=True)


def make_training_set(settings: TrainingSettings, out: Path, progress=None) -> tuple[Manifest, Timing]:
    """Plan, play and write a training set into `out`: the scenario files, crossings.parquet, hazards.parquet,
    manifest.json (deterministic) and timing.json (how fast it went)."""
    started = time.perf_counter()
    clear_earlier_set(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(settings)
    results = write_all(out, jobs, settings.workers, progress)
    tables = {
        "crossings": write_side_table(out, "crossings", [c for r in results for c in r.crossings], Crossing),
        "hazards": write_side_table(out, "hazards", [h for r in results for h in r.hazards], HazardRecord),
    }
    manifest = build_manifest(settings, results, tables, count_rows(out, [r.entry for r in results]))
    (out / "manifest.json").write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
    elapsed = time.perf_counter() - started
    timing = Timing(settings.workers, round(elapsed, 2), manifest.zone_hours, round(manifest.zone_hours / elapsed, 3),
                    round(manifest.rows / elapsed, 1))
    (out / "timing.json").write_bytes(msgspec.json.format(msgspec.json.encode(timing), indent=2) + b"\n")
    return manifest, timing


def read_manifest(out: Path) -> Manifest:
    """The manifest of a training set folder."""
    return msgspec.json.decode((out / "manifest.json").read_bytes(), type=Manifest)


# The command


def parse_split(text: str) -> SplitRule:
    """`70/15/15` (percent or fractions) as a split rule."""
    try:
        shares = [float(part) for part in text.split("/")]
    except ValueError:
        shares = []
    if len(shares) != 3:
        raise argparse.ArgumentTypeError(f"split {text!r}: give three shares train/validation/test, e.g. 70/15/15")
    total = sum(shares)
    try:
        return SplitRule(*(s / total for s in shares)) if total > 0 else SplitRule(*shares)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_training_data_command(commands: argparse._SubParsersAction) -> None:
    """Add `training-data` to the `interlock` command's subparsers; it runs `training_data`."""
    p = commands.add_parser(
        "training-data",
        help="generate labelled zone telemetry for the risk model into Parquet (docs/training_data.md)",
        description="Play random sites with benign work and hazards through the simulator; write per-zone "
                    "per-second telemetry as the interlock sees it, the true air, and labels of limit crossings.",
    )
    p.add_argument("--zone-hours", type=float, required=True, help="at least this many zone-hours, e.g. 1000")
    p.add_argument("--out", required=True, help="folder for the set (new, empty, or an earlier set to replace)")
    p.add_argument("--seed", type=int, default=2027, help="master seed (default 2027)")
    p.add_argument("--workers", type=int, default=1, help="processes to generate in (default 1)")
    p.add_argument("--split", type=parse_split, default=SplitRule(), help="train/validation/test shares "
                   "(default 70/15/15), by the hash of the scenario id")
    p.add_argument("--hazards-per-zone-hour", type=float, default=ScenarioShape().hazards_per_zone_hour,
                   help="mean hazards per zone-hour (default %(default)s)")
    p.set_defaults(run=training_data)


def training_data(args: argparse.Namespace) -> int:
    """Make the set; print what is in it and how fast it went; 2 when the arguments or the folder cannot be used."""
    from tqdm import tqdm

    try:
        shape = ScenarioShape(hazards_per_zone_hour=args.hazards_per_zone_hour)
        settings = TrainingSettings(args.zone_hours, args.seed, args.workers, args.split, shape)
    except ValueError as error:
        print(f"{PREFIX} {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    with tqdm(total=settings.zone_hours, unit="zone-h", desc="training-data", file=sys.stderr,
              disable=not sys.stderr.isatty(), leave=False) as bar:
        try:
            manifest, timing = make_training_set(settings, out, bar.update)
        except (ValueError, OSError) as error:
            print(f"{PREFIX} {error}", file=sys.stderr)
            return 2
    print(summary(manifest, timing, out))
    return 0


def summary(manifest: Manifest, timing: Timing, out: Path) -> str:
    """What was made, in a few lines."""
    lines = [
        f"{manifest.scenarios} scenarios, {manifest.zone_hours:g} zone-hours, {manifest.rows:,} rows, "
        f"{manifest.bytes:,} bytes of Parquet in {out}/",
        f"{timing.wall_s:.1f} s wall clock with {timing.workers} worker(s): {timing.zone_hours_per_s:.2f} "
        f"zone-hours/s ({timing.rows_per_s:,.0f} rows/s)",
        "split: " + ", ".join(f"{p} {s.scenarios} scenarios / {s.zone_hours:g} zone-h / {s.crossings} crossings"
                              for p, s in manifest.splits.items()),
        f"rows: {manifest.rows_crossing_within_12min:,} with a crossing within 12 min, "
        f"{manifest.rows_true_over_limit:,} over a limit, {manifest.rows_hazard_active:,} with a hazard active",
        "hazards (injected / designed to cross / crossed / crossings / >=10 min after start): "
        + ", ".join(f"{k} {c.injected}/{c.designed_to_cross}/{c.crossed}/{c.crossings}/"
                    f"{c.crossings_10min_after_start}" for k, c in manifest.hazards.items()),
    ]
    if manifest.unattributed_crossings or manifest.undecodable_payloads:
        lines.append(f"warning: {manifest.unattributed_crossings} crossings put down to no planned hazard, "
                     f"{manifest.undecodable_payloads} payloads the interlock could not decode")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m simulators.training_data --zone-hours N --out DIR ...`: the same as `interlock training-data`."""
    parser = argparse.ArgumentParser(prog="python -m simulators.training_data")
    add_training_data_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["training-data", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
