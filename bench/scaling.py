"""Scaling curves for the release gate: cost per record and memory of the decision core as the site grows.

```sh
python -m bench.scaling            # quick: the first points of each sweep
python -m bench.scaling --full     # every point
python -m bench.scaling --full --json /tmp/scaling.json
```

The site is synthetic and written directly as records (no simulator), so it
is fast to build at any size: N zones side by side, each with one permit of
a mix of hot work (a GD-4 detector, an isolation on a PLC), confined space
(a detector, an entrance area, ventilation and an isolation on a PLC) and
work at height (an SH-2 harness per worker, a PLC); every permit has a
guardian and two workers with valid certificates. The other workers stand
outside every zone; devices beyond those the permits need are idle
detectors and idle tags, also outside. The tables go out first (CMDB, GIS,
HR, permits approved), then a few seconds of healthy telemetry, then the
permits go active over ten seconds and are enabled.

The steady workload is the same number of records at every size: the
site's own telemetry (positions from both RTLS vendors, gas at 1 Hz,
harnesses at 1 Hz, PLC state every 5 s), each device at its own phase in
the second, continued from the loading. The devices the permits need report
every second; the devices no permit needs report in turn, as many a second
as at the sweep's smallest site, so along a sweep the records a second, and
their kinds, stay the same while the site around them grows. A large site
covers a fraction of a timer cycle with the workload, a small one many
cycles; the permits' timers are spread over the cycle, so either samples
the time-driven work in proportion.

Sweeps vary one dimension from a small base. A permit needs its crew and its
devices, so the permit sweep raises workers and devices with it, and the
worker sweep raises devices (every worker wears a tag); the notes say where.

Per-record cost is `Site.process_batch` on the steady workload after loading
(perf_counter_ns, best of 5, timed in rounds over a sweep's sites so a slow
spell of the machine falls on every size alike). Memory is the Site's, traced while its
snapshot is restored; per entity it is the slope against the swept count.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import pickle
import pstats
import random
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import msgspec

from bench.results import Metric, Series, SuiteResult
from interlock.site import COMMANDS_TOPIC, FAULTS_TOPIC, Output, Site
from schemas.envelope import Record

T0 = 1_795_658_400_000
"""2026-11-26 10:00:00 +08:00: the moment the permits' telemetry starts."""

SECOND = 1000
TABLE_LEAD_MS = 10_000
"""The table rows go out in the 10 s before the telemetry starts."""

WARMUP_SECONDS = 6
"""Seconds of telemetry before the permits go active: enough for the gas pre-test (5 readings)."""

ACTIVATION_SECONDS = 10
"""The permits go active over 10 s, a tenth each second, as crews ask to start at different moments: their timers
(gas and harness freshness, every 10 s) are then spread over the cycle as on a working site, not fired all at once."""

SETTLE_SECONDS = 1
"""Seconds of telemetry after the last permit goes active, before the site counts as loaded."""

WORK_TYPES = ("hot_work", "confined_space", "height")
PERMIT_PREFIX = {"hot_work": "HW", "confined_space": "CS", "height": "HT"}
CERTIFICATE = {"hot_work": "welding", "confined_space": "confined", "height": "height"}
CREW = 3
"""People on a permit: two workers and a guardian."""

DEVICES_PER_PERMIT = {"hot_work": 2, "confined_space": 2, "height": 3}
"""Devices a permit needs besides its crew's tags: detector and PLC; at height two harnesses and a PLC."""

ZONE_COLUMNS = 100
ZONE_PITCH_M = (40.0, 30.0)
ZONE_SIZE_M = (20.0, 10.0)
YARD_COLUMNS = 250
YARD_PITCH_M = 2.0
"""Workers and idle devices outside every zone stand in a yard south of the zones (y < 0), 2 m apart."""

QUBIT_BATCH = 3
"""Qubit tags per gateway message."""

PLC_PERIOD_S = 5
SEED = 20261126
REPEATS = 5

TABLE_TOPICS = ("cmdb.devices", "gis.zones", "hr.qualifications", "ptw.permits")

QUICK_RECORDS = 20_000
FULL_RECORDS = 100_000


# ---------------------------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class SiteSize:
    """How many permits (one per zone), workers (people with a tag) and devices (tags included) the site has."""

    permits: int
    workers: int
    devices: int

    def count(self, dimension: str) -> int:
        return getattr(self, dimension)


def permit_devices(permits: int) -> int:
    """Devices the permits need besides their crew's tags (permit i is of type WORK_TYPES[i % 3])."""
    full, rest = divmod(permits, len(WORK_TYPES))
    return full * sum(DEVICES_PER_PERMIT.values()) + sum(DEVICES_PER_PERMIT[t] for t in WORK_TYPES[:rest])


def fitted(size: SiteSize) -> SiteSize:
    """The smallest consistent site at least as large: every permit has its crew, every worker a tag."""
    workers = max(size.workers, CREW * size.permits)
    devices = max(size.devices, workers + permit_devices(size.permits))
    return SiteSize(size.permits, workers, devices)


DIMENSIONS = ("permits", "workers", "devices")
SWEEPS: dict[str, tuple[int, ...]] = {
    "permits": (10, 100, 1_000, 10_000),
    "workers": (100, 1_000, 10_000, 50_000),
    "devices": (100, 1_000, 5_000, 20_000),
}
BASE = fitted(SiteSize(permits=10, workers=0, devices=0))
"""The small site each sweep starts from (10 permits, their 30 people and 53 devices); the swept dimension replaces
its figure."""

QUICK_POINTS = {"permits": 3, "workers": 3, "devices": 3}
"""Points of each sweep in quick mode: those whose sites load in seconds."""


def sweep_counts(dimension: str, quick: bool) -> tuple[int, ...]:
    return SWEEPS[dimension][:QUICK_POINTS[dimension]] if quick else SWEEPS[dimension]


def sweep_sizes(dimension: str, quick: bool) -> list[SiteSize]:
    """The consistent sites of one sweep, smallest first."""
    return [fitted(SiteSize(**{**BASE.__dict__, dimension: n})) for n in sweep_counts(dimension, quick)]


# ---------------------------------------------------------------------------------------------- the site


@dataclass
class Reporter:
    """One device's telemetry: when in each second it reports, on which topic, under which key, and its payload."""

    phase_ms: int
    topic: str
    key: str
    payload: Callable[[int, int], str]
    """(device time ms, report number) -> payload text."""
    period_s: int = 1
    offset_s: int = 0
    sent: int = 0
    """Reports so far: the next one's sequence number."""

    def due(self, second: int) -> bool:
        return (second + self.offset_s) % self.period_s == 0


@dataclass
class SitePlan:
    """A synthetic site: its table rows, the devices its permits need, and the devices no permit needs.

    `permit_reporters` (the crews' tags, detectors, harnesses, PLCs) report at their own rate.
    `other_reporters` (bystanders' tags, idle detectors and tags) may report in turn: see `Telemetry`.
    """

    size: SiteSize
    devices: list[dict]
    zones: list[dict]
    people: list[dict]
    permits: list[dict]
    permit_reporters: list[Reporter]
    other_reporters: list[Reporter]


class _Ids:
    """Ids of the synthetic site."""

    @staticmethod
    def zone(i: int) -> str:
        return f"Z-{i:05d}"

    @staticmethod
    def permit(i: int, work_type: str) -> str:
        return f"{PERMIT_PREFIX[work_type]}-{i:05d}"

    @staticmethod
    def tag(person: int, vendor: str) -> str:
        return f"T-{person:06d}" if vendor == "anchorline" else f"0x{person:06x}"


_iso_cache: dict[int, str] = {}


def iso_ms(ts: int) -> str:
    """RFC 3339 UTC with milliseconds, as Anchorline gateways send it (the second's text is cached)."""
    seconds, ms = divmod(ts, 1000)
    prefix = _iso_cache.get(seconds)
    if prefix is None:
        if len(_iso_cache) > 4096:
            _iso_cache.clear()
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
        prefix = _iso_cache[seconds] = moment.strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{prefix}{ms:03d}Z"


def _gas_payload(device: str, firmware: str) -> Callable[[int, int], str]:
    """A healthy GD-4 reading in the shape of its firmware (2.x array with alarm bits, 3.x object with bump time)."""
    if firmware.startswith("3."):
        bump = T0 - 3_600_000
        return lambda ts, n: (f'{{"dev":"{device}","fw":"{firmware}","ts":{ts},"seq":{n % 65536},'
                              f'"r":{{"o2":20.9,"lel":0.0,"h2s":0.0,"co":1.0}},"st":"ok","bump":{bump}}}')
    return lambda ts, n: (f'{{"dev":"{device}","fw":"{firmware}","ts":{ts},"seq":{n % 65536},'
                          f'"r":[20.9,0.0,0.0,1.0],"alm":0}}')


def _harness_payload(device: str, firmware: str) -> Callable[[int, int], str]:
    """An SH-2 report at 5 m, tied off (1.x one hook clipped, 2.x twin lanyard with one hook on)."""
    hooks = '"hook":"clipped"' if firmware.startswith("1.") else '"hooks":[1,0]'
    return lambda ts, n: f'{{"dev":"{device}","fw":"{firmware}","ts":{ts},"seq":{n % 65536},{hooks},"h":5.0,"bat":80}}'


def _plc_payload(device: str, signals: dict[str, bool]) -> Callable[[int, int], str]:
    tags = msgspec.json.encode(signals).decode()
    return lambda ts, n: f'{{"plc":"{device}","ts":{ts},"seq":{n % 65536},"tags":{tags}}}'


def _anchorline_payload(tag: str, spot: tuple[float, float, float]) -> Callable[[int, int], str]:
    x, y, z = spot
    return lambda ts, n: f'{{"tag":"{tag}","ts":"{iso_ms(ts)}","pos":[{x:g},{y:g},{z:g}],"q":0.93}}'


def _qubit_payload(tags: list[tuple[str, tuple[float, float, float]]]) -> Callable[[int, int], str]:
    """One Qubit gateway message for a batch of tags, coordinates in mm and time in float seconds."""
    items = [(tag, round(x * 1000), round(y * 1000), round(z * 1000)) for tag, (x, y, z) in tags]

    def payload(ts: int, n: int) -> str:
        seconds = f"{ts / 1000:.3f}"
        return "[" + ",".join(
            f'{{"tagId":"{tag}","timestamp":{seconds},"success":true,"data":{{"coordinates":{{"x":{x},"y":{y},"z":{z}}}}}}}'
            for tag, x, y, z in items
        ) + "]"

    return payload


def _zone_origin(i: int) -> tuple[float, float]:
    column, row = i % ZONE_COLUMNS, i // ZONE_COLUMNS
    return column * ZONE_PITCH_M[0], 20.0 + row * ZONE_PITCH_M[1]


def _yard_spot(k: int) -> tuple[float, float, float]:
    """The k-th place in the yard, outside every zone."""
    return (k % YARD_COLUMNS) * YARD_PITCH_M, -10.0 - (k // YARD_COLUMNS) * YARD_PITCH_M, 1.1


def _rectangle(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


def _qualification(worker: str, cert_type: str) -> dict:
    return {
        "worker": worker, "name": worker, "employer": "C-01", "medical_valid_until": "2027-12-31",
        "certs": [{"no": f"C-{worker}", "type": cert_type, "issuer": "应急管理局", "province": "31",
                   "issued": "2024-01-01", "expires": "2028-06-30", "review_due": "2028-01-31", "status": "valid"}],
    }


def _detector_firmware(i: int) -> str:
    """Every fourth permit's detector runs GD-4 firmware 3.x (the `gd4/3` shape), the others 2.x."""
    return "3.0.0" if i % 4 == 3 else "2.3.1"


def _zone_row(zone: str, work_type: str, x: float, y: float) -> dict:
    """A rectangular zone; a confined space is risk I, forbids hot work, and has an entrance area to its east."""
    w, h = ZONE_SIZE_M
    row = {"zone": zone, "name": zone, "polygon": _rectangle(x, y, w, h), "z": [0, 15], "risk": "II", "forbid": []}
    if work_type == "confined_space":
        row.update(risk="I", forbid=["hot_work"], entrance={"polygon": _rectangle(x + w, y + 3, 4, 4)})
    return row


def _permit_row(i: int, work_type: str, zone: str, workers: list[str], guardian: str) -> dict:
    """The approved permit record (rev 1), valid from an hour before the telemetry starts to six hours after."""
    approver = f"A-{i % 10}"
    return {
        "permit": _Ids.permit(i, work_type), "rev": 1, "type": work_type, "grade": "1", "zone": zone,
        "state": "approved", "valid_from": T0 - 3_600_000, "valid_to": T0 + 6 * 3_600_000,
        "workers": workers, "guardian": guardian, "approver": approver,
        "equipment": [], "isolations": [], "ventilation": [], "detectors": [], "harnesses": [],
        "signatures": {"applicant": workers[0], "guardian": guardian, "approver": approver, "supervisor": "S-1"},
    }


class _Builder:
    """Accumulates the rows and reporters of a synthetic site."""

    def __init__(self, size: SiteSize) -> None:
        self.size = size
        self.rng = random.Random(SEED)
        self.devices: list[dict] = []
        self.zones: list[dict] = []
        self.people: list[dict] = []
        self.permits: list[dict] = []
        self.reporters: list[Reporter] = []
        self.qubit_waiting: list[tuple[str, tuple[float, float, float]]] = []
        self.persons = 0
        self.gateways = 0

    def reporter(self, topic: str, key: str, payload: Callable[[int, int], str], period_s: int = 1) -> None:
        offset = self.rng.randrange(period_s)
        self.reporters.append(Reporter(self.rng.randrange(SECOND), topic, key, payload, period_s, offset))

    def tag(self, worker: str | None, spot: tuple[float, float, float]) -> None:
        """A UWB tag (vendors alternate) worn by `worker` (None: an idle tag) at `spot`; Qubit tags report in batches."""
        vendor = "anchorline" if self.persons % 2 == 0 else "qubit"
        device = _Ids.tag(self.persons, vendor)
        self.persons += 1
        row = {"device": device, "family": "uwb_tag", "vendor": vendor}
        if worker is not None:
            row["worker"] = worker
        self.devices.append(row)
        if vendor == "anchorline":
            self.reporter("rtls.position", device, _anchorline_payload(device, spot))
            return
        self.qubit_waiting.append((device, spot))
        if len(self.qubit_waiting) == QUBIT_BATCH:
            self.flush_qubit()

    def flush_qubit(self) -> None:
        if self.qubit_waiting:
            self.gateways += 1
            self.reporter("rtls.position", f"QGW-{self.gateways:05d}", _qubit_payload(self.qubit_waiting))
            self.qubit_waiting = []

    def person(self, worker: str, cert_type: str, spot: tuple[float, float, float]) -> None:
        self.people.append(_qualification(worker, cert_type))
        self.tag(worker, spot)

    def detector(self, device: str, firmware: str, zone: str | None) -> None:
        self.devices.append({"device": device, "family": "gas", "model": "GD-4", "firmware": firmware, "zone": zone})
        self.reporter("gas.readings", device, _gas_payload(device, firmware))

    def harness(self, device: str, firmware: str, worker: str) -> None:
        self.devices.append({"device": device, "family": "harness", "model": "SH-2", "firmware": firmware, "worker": worker})
        self.reporter("harness.status", device, _harness_payload(device, firmware))

    def plc(self, device: str, equipment: list[str], signals: dict[str, bool], enables: list[str]) -> None:
        port = 5020 + len(self.devices) % 1000
        self.devices.append({
            "device": device, "family": "plc", "equipment": equipment,
            "modbus": {"host": "127.0.0.1", "port": port, "unit": 1,
                       "enable_coils": {e: n for n, e in enumerate(enables)}, "watchdog_register": 100},
        })
        self.reporter("plc.state", device, _plc_payload(device, signals), PLC_PERIOD_S)

    def permit_zone(self, i: int) -> None:
        """Zone i with its permit, its crew, and the kit of its work type."""
        work_type = WORK_TYPES[i % len(WORK_TYPES)]
        zone = _Ids.zone(i)
        x, y = _zone_origin(i)
        self.zones.append(_zone_row(zone, work_type, x, y))
        workers, guardian = self.crew(i, work_type, x, y)
        permit = _permit_row(i, work_type, zone, workers, guardian)
        getattr(self, f"{work_type}_kit")(i, zone, workers, permit)
        self.permits.append(permit)

    def crew(self, i: int, work_type: str, x: float, y: float) -> tuple[list[str], str]:
        """Two workers in the zone (on the platform at height) and the guardian (at the entrance of a confined space)."""
        workers, guardian = [f"W-{i:05d}-1", f"W-{i:05d}-2"], f"G-{i:05d}"
        height = 5.2 if work_type == "height" else 1.2
        cert = CERTIFICATE[work_type]
        self.person(workers[0], cert, (x + 5, y + 5, height))
        self.person(workers[1], cert, (x + 10, y + 5, height))
        width = ZONE_SIZE_M[0]
        self.person(guardian, cert, (x + width + 2, y + 5, 1.1) if work_type == "confined_space" else (x + 2, y + 2, 1.1))
        return workers, guardian

    def hot_work_kit(self, i: int, zone: str, workers: list[str], permit: dict) -> None:
        """A welder to enable, a valve isolated on the same PLC, a GD-4 detector."""
        welder, valve, detector = f"WELD-{i:05d}", f"V-{i:05d}", f"GAS-{i:05d}"
        permit.update(equipment=[welder], isolations=[valve], detectors=[detector])
        self.detector(detector, _detector_firmware(i), zone)
        self.plc(f"PLC-{i:05d}", [welder, valve], {f"{welder}.power": True, f"{valve}.isolated": True}, [welder])

    def confined_space_kit(self, i: int, zone: str, workers: list[str], permit: dict) -> None:
        """A pump to enable, a fan running and a valve isolated on the same PLC, a GD-4 detector."""
        pump, fan, valve, detector = f"PUMP-{i:05d}", f"FAN-{i:05d}", f"V-{i:05d}", f"GAS-{i:05d}"
        permit.update(equipment=[pump], isolations=[valve], ventilation=[fan], detectors=[detector])
        self.detector(detector, _detector_firmware(i), zone)
        signals = {f"{pump}.running": True, f"{fan}.running": True, f"{valve}.isolated": True}
        self.plc(f"PLC-{i:05d}", [pump, fan, valve], signals, [pump, fan])

    def height_kit(self, i: int, zone: str, workers: list[str], permit: dict) -> None:
        """A drill to enable on a PLC, and an SH-2 harness on each worker (firmware 1.x and 2.x)."""
        drill, harnesses = f"DRILL-{i:05d}", [f"HB-{i:05d}-1", f"HB-{i:05d}-2"]
        permit.update(equipment=[drill], harnesses=harnesses)
        self.harness(harnesses[0], "1.4.2", workers[0])
        self.harness(harnesses[1], "2.0.1", workers[1])
        self.plc(f"PLC-{i:05d}", [drill], {f"{drill}.power": True}, [drill])

    def bystanders(self, count: int) -> None:
        """Workers on no permit, standing in the yard."""
        for k in range(count):
            self.person(f"W-X{k:06d}", "welding", _yard_spot(k))

    def idle_devices(self, count: int, first_spot: int) -> None:
        """Devices no permit uses: idle detectors and idle tags, alternately, in the yard."""
        for k in range(count):
            if k % 2 == 0:
                self.detector(f"GAS-X{k:06d}", "2.3.1", None)
            else:
                self.tag(None, _yard_spot(first_spot + k))

    def plan(self) -> SitePlan:
        size = self.size
        for i in range(size.permits):
            self.permit_zone(i)
        self.flush_qubit()
        permit_reporters, self.reporters = self.reporters, []
        extra_workers = size.workers - CREW * size.permits
        self.bystanders(extra_workers)
        self.idle_devices(size.devices - size.workers - permit_devices(size.permits), extra_workers)
        self.flush_qubit()
        permit_reporters.sort(key=lambda r: r.phase_ms)
        return SitePlan(size, self.devices, self.zones, self.people, self.permits, permit_reporters, self.reporters)


def plan_site(size: SiteSize) -> SitePlan:
    """The synthetic site of `size` (made consistent first: see `fitted`)."""
    return _Builder(fitted(size)).plan()


# ---------------------------------------------------------------------------------------------- records


class RecordStream:
    """Numbers records per topic, as one partition of each topic would."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def record(self, topic: str, key: str | None, payload: str | None, ts: int) -> Record:
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        return Record(topic, 0, offset, ts, key, payload)


def table_records(plan: SitePlan, stream: RecordStream) -> list[Record]:
    """CMDB, GIS, HR and the approved permits, spread over the 10 s before the telemetry starts."""
    rows = [("cmdb.devices", r["device"], r) for r in plan.devices]
    rows += [("gis.zones", r["zone"], r) for r in plan.zones]
    rows += [("hr.qualifications", r["worker"], r) for r in plan.people]
    rows += [("ptw.permits", r["permit"], r) for r in plan.permits]
    start = T0 - TABLE_LEAD_MS
    encode = msgspec.json.encode
    return [
        stream.record(topic, key, encode(row).decode(), start + n * (TABLE_LEAD_MS - 1) // len(rows))
        for n, (topic, key, row) in enumerate(rows)
    ]


def activation_records(permits: list[dict], stream: RecordStream, ts: int) -> list[Record]:
    """The permits' next revisions, active: their crews ask to start."""
    encode = msgspec.json.encode
    return [
        stream.record("ptw.permits", p["permit"], encode({**p, "rev": p["rev"] + 1, "state": "active"}).decode(), ts)
        for p in permits
    ]


class Telemetry:
    """The site's telemetry, second after second from T0, each device at its own phase within the second.

    The devices the permits need report every second (PLCs every 5 s). The others (bystanders' tags,
    idle devices) all report in the first second; after it, `rotation` of them a second report in turn
    (None: all of them every second). A sweep sets `rotation` to how many of them its smallest site
    has, so every site of the sweep gets the same records a second, of the same kinds, while the
    devices that send them are spread over the whole, growing, site.
    """

    def __init__(self, plan: SitePlan, stream: RecordStream, rotation: int | None = None) -> None:
        self.permit_reporters = plan.permit_reporters
        self.others = plan.other_reporters
        self.rotation = len(self.others) if rotation is None else min(rotation, len(self.others))
        self.cursor = 0
        self.stream = stream
        self.second = 0
        self.pending: list[Record] = []

    def _others_due(self, second: int) -> list[Reporter]:
        """The devices no permit needs that report this second: all at first, then the next ones in turn."""
        if second == 0:
            return list(self.others)
        count, start = self.rotation, self.cursor
        self.cursor = (start + count) % len(self.others) if self.others else 0
        chosen = self.others[start:start + count]
        return chosen + self.others[:count - len(chosen)]

    def next_second(self) -> list[Record]:
        """The records of the next whole second, in time order."""
        second = self.second
        self.second += 1
        due = [r for r in self.permit_reporters if r.period_s == 1 or r.due(second)] + self._others_due(second)
        due.sort(key=lambda r: r.phase_ms)
        base = T0 + second * SECOND
        record = self.stream.record
        out = []
        for r in due:
            ts = base + r.phase_ms
            out.append(record(r.topic, r.key, r.payload(ts - 20, r.sent), ts))
            r.sent += 1
        return out

    def seconds(self, count: int) -> list[Record]:
        """The records of the next `count` whole seconds (after any records left over from `take`)."""
        out, self.pending = self.pending, []
        for _ in range(count):
            out += self.next_second()
        return out

    def take(self, count: int) -> list[Record]:
        """The next `count` records; a second that is cut keeps its rest for the next call."""
        out, self.pending = self.pending, []
        while len(out) < count:
            out += self.next_second()
        self.pending = out[count:]
        return out[:count]

    @property
    def clock(self) -> int:
        """The time the next whole second starts."""
        return T0 + self.second * SECOND


@dataclass
class Loading:
    """The records that bring a site up: tables, warm-up telemetry, the permits going active amid telemetry, and a
    settling second."""

    tables: list[Record]
    warmup: list[Record]
    activation: list[Record]
    settle: list[Record]

    def all(self) -> list[Record]:
        return self.tables + self.warmup + self.activation + self.settle


def loading_records(plan: SitePlan, telemetry: Telemetry) -> Loading:
    stream = telemetry.stream
    tables = table_records(plan, stream)
    warmup = telemetry.seconds(WARMUP_SECONDS)
    activation: list[Record] = []
    for second in range(ACTIVATION_SECONDS):
        activation += activation_records(plan.permits[second::ACTIVATION_SECONDS], stream, telemetry.clock)
        activation += telemetry.seconds(1)
    settle = telemetry.seconds(SETTLE_SECONDS)
    return Loading(tables, warmup, activation, settle)


# ---------------------------------------------------------------------------------------------- health


@dataclass
class Health:
    """What a run of the site said: ENABLEs per permit, stops, CRITICAL faults."""

    enables: dict[str, int]
    stops: int
    critical: list[str]

    @property
    def healthy(self) -> bool:
        return not self.stops and not self.critical


def health(outputs: Iterable[Output]) -> Health:
    """Commands and faults of a run, counted."""
    enables: dict[str, int] = {}
    stops = 0
    critical = []
    decode = msgspec.json.decode
    for out in outputs:
        if out.topic == COMMANDS_TOPIC:
            command = decode(out.value)
            if command["kind"] == "ENABLE":
                enables[command["permit"]] = enables.get(command["permit"], 0) + 1
            elif command["kind"] == "HARD_STOP":
                stops += 1
        elif out.topic == FAULTS_TOPIC:
            fault = decode(out.value)
            if fault["grade"] == "CRITICAL":
                critical.append(f"{fault['code']} {fault['subject']}")
    return Health(enables, stops, critical)


# ---------------------------------------------------------------------------------------------- bringing a site up


class LoadBudgetExceeded(Exception):
    """Bringing the site up would take longer than allowed: how far it got, and what its latest rows cost."""

    def __init__(self, topic: str, done: int, total: int, elapsed_s: float, row_us: float, budget_s: float) -> None:
        super().__init__(
            f"not loaded within {budget_s:g} s: {done:,} of {total:,} loading records in {elapsed_s:.1f} s, "
            f"the latest {topic} rows cost {row_us:,.0f} us each"
        )
        self.topic, self.done, self.total, self.elapsed_s, self.row_us = topic, done, total, elapsed_s, row_us


def _kind(record: Record) -> str:
    """A table's topic, or `telemetry` for every device topic."""
    return record.topic if record.topic in TABLE_TOPICS else "telemetry"


def _runs(records: list[Record]) -> Iterator[list[Record]]:
    """Contiguous stretches of rows of one table, or of telemetry (records of one kind cost alike)."""
    start = 0
    for n in range(1, len(records) + 1):
        if n == len(records) or _kind(records[n]) != _kind(records[start]):
            yield records[start:n]
            start = n


class BudgetedLoader:
    """Feeds loading records to a Site in chunks and stops as soon as the budget cannot be kept.

    After each chunk, the rest of its run of same-topic records is assumed to cost at least what the
    chunk cost per record; if that overruns the budget after two chunks in a row, loading stops (one
    chunk may take a garbage collection's pause). Table rows whose cost grows with the site are stopped
    early, long before the budget is spent.
    """

    CHUNKS_PER_RUN = 50
    MIN_CHUNK = 50

    def __init__(self, site: Site, total: int, budget_s: float | None) -> None:
        self.site = site
        self.total = total
        self.budget_ns = None if not budget_s else int(budget_s * 1e9)
        self.budget_s = budget_s or 0.0
        self.started = time.perf_counter_ns()
        self.done = 0
        self.outputs: list[Output] = []
        self.overruns = 0

    def feed(self, records: list[Record]) -> int:
        """Process `records`; returns the nanoseconds they took."""
        began = time.perf_counter_ns()
        for run in _runs(records):
            size = max(len(run) // self.CHUNKS_PER_RUN, self.MIN_CHUNK)
            for at in range(0, len(run), size):
                chunk = run[at:at + size]
                t = time.perf_counter_ns()
                self.outputs += self.site.process_batch(chunk)
                now = time.perf_counter_ns()
                self.done += len(chunk)
                self._check(_kind(run[0]), (now - t) / len(chunk), len(run) - at - len(chunk), now)
        return time.perf_counter_ns() - began

    def _check(self, topic: str, per_record_ns: float, left_in_run: int, now: int) -> None:
        if self.budget_ns is None:
            return
        if (now - self.started) + left_in_run * per_record_ns <= self.budget_ns:
            self.overruns = 0
            return
        self.overruns += 1
        if self.overruns >= 2 or now - self.started > self.budget_ns:
            raise LoadBudgetExceeded(topic, self.done, self.total, (now - self.started) / 1e9, per_record_ns / 1e3,
                                     self.budget_s)


@dataclass
class LoadedSite:
    """A site brought up from its records: the Site, its telemetry stream (to continue), and what loading said and cost."""

    plan: SitePlan
    site: Site
    telemetry: Telemetry
    health: Health
    phase_s: dict[str, float]
    phase_records: dict[str, int]
    clock: int
    """Timestamp of the latest record the Site has seen."""
    permit_revisions: int = 1
    """Revisions each permit has had since its approved record (its activation)."""

    @property
    def load_s(self) -> float:
        return sum(self.phase_s.values())


def load_site(size: SiteSize, budget_s: float | None = None, rotation: int | None = None) -> LoadedSite:
    """Build the site of `size` and bring it up through `Site.process_batch`: tables, warm-up, activation, settling.

    `rotation`: how many devices no permit needs report a second (see `Telemetry`). Raises
    LoadBudgetExceeded when loading would take longer than `budget_s` (None: no limit).
    """
    plan = plan_site(size)
    telemetry = Telemetry(plan, RecordStream(), rotation)
    loading = loading_records(plan, telemetry)
    phases = {"tables": loading.tables, "warmup": loading.warmup, "activation": loading.activation,
              "settle": loading.settle}
    gc.collect()
    loader = BudgetedLoader(Site(), sum(len(r) for r in phases.values()), budget_s)
    phase_s = {name: loader.feed(records) / 1e9 for name, records in phases.items()}
    said = health(loader.outputs)
    clock = loading.settle[-1].ts if loading.settle else telemetry.clock
    return LoadedSite(plan, loader.site, telemetry, said, phase_s, {n: len(r) for n, r in phases.items()}, clock)


def site_memory(site: Site) -> int:
    """Bytes the Site holds, traced (tracemalloc) while its snapshot is restored.

    A snapshot is the pickled Site; restoring it allocates exactly the Site's live state, and nothing
    of the records or outputs that built it. This equals tracing the loading itself (within 0.2 % on
    the synthetic sites) at a fraction of the time, since tracing slows the loading several times.
    """
    snapshot = pickle.dumps(site, protocol=pickle.HIGHEST_PROTOCOL)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        restored = pickle.loads(snapshot)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del restored
    return grown


# ---------------------------------------------------------------------------------------------- measuring


@dataclass
class SteadyCost:
    """Per-record cost of the steady workload: the best of the repeats, each repeat's figure, and what it said."""

    us_per_record: float
    repeats_us: list[float]
    site_seconds: float
    """Site time one repeat covers."""
    health: Health


def steady_cost(loaded: LoadedSite, records: int, repeats: int = REPEATS) -> SteadyCost:
    """Time `Site.process_batch` on `repeats` consecutive slices of `records` telemetry records; best of them counts.

    The slices continue the site's telemetry, so every repeat is the same steady work at a later time.
    """
    return steady_costs([loaded], records, repeats)[0]


def steady_costs(sites: list[LoadedSite], records: int, repeats: int = REPEATS) -> list[SteadyCost]:
    """`steady_cost` of several sites measured in rounds, one slice of each site per round: a slow spell of the
    machine falls on every size of a sweep alike instead of on one, so the sweep's ratio holds on a noisy machine."""
    figures: list[list[float]] = [[] for _ in sites]
    outputs: list[list[Output]] = [[] for _ in sites]
    started_at = [loaded.clock for loaded in sites]
    for _ in range(repeats):
        for i, loaded in enumerate(sites):
            batch = loaded.telemetry.take(records)
            gc.collect()
            elapsed, out = _timed(loaded.site, batch)
            figures[i].append(elapsed / len(batch) / 1e3)
            outputs[i] += out
            loaded.clock = batch[-1].ts
    return [
        SteadyCost(min(figures[i]), figures[i], (loaded.clock - started_at[i]) / SECOND / repeats, health(outputs[i]))
        for i, loaded in enumerate(sites)
    ]


def _timed(site: Site, records: list[Record]) -> tuple[int, list[Output]]:
    started = time.perf_counter_ns()
    outputs = site.process_batch(records)
    return time.perf_counter_ns() - started, outputs


def _probe_rows(loaded: LoadedSite, topic: str, samples: int) -> list[tuple[str, dict]]:
    """`samples` rows of a table spread over the site, as its owner would re-publish them (a permit as its next rev)."""
    plan = loaded.plan
    if topic == "ptw.permits":
        loaded.permit_revisions += 1
        rev = 1 + loaded.permit_revisions
        return [(p["permit"], {**p, "rev": rev, "state": "active"}) for p in _spread(plan.permits, samples)]
    table, key = {"cmdb.devices": (plan.devices, "device"), "gis.zones": (plan.zones, "zone"),
                  "hr.qualifications": (plan.people, "worker")}[topic]
    return [(row[key], row) for row in _spread(table, samples)]


def _spread(rows: list[dict], samples: int) -> list[dict]:
    step = max(len(rows) // samples, 1)
    return rows[step // 2::step][:samples]


def table_row_cost(loaded: LoadedSite, samples: int = REPEATS) -> tuple[dict[str, float], Health]:
    """Microseconds one table row costs on the loaded site, per table (best of `samples` rows spread over the site).

    The rows change nothing (the CMDB, GIS and HR re-publish a row, the permit system a revision of an
    active permit), so every permit stays enabled: the cost is the Site's bookkeeping for a table row.
    """
    stream = loaded.telemetry.stream
    costs: dict[str, float] = {}
    outputs: list[Output] = []
    encode = msgspec.json.encode
    for topic in TABLE_TOPICS:
        figures = []
        for key, row in _probe_rows(loaded, topic, samples):
            record = stream.record(topic, key, encode(row).decode(), loaded.clock)
            elapsed, out = _timed(loaded.site, [record])
            figures.append(elapsed / 1e3)
            outputs += out
        costs[topic] = min(figures)
    return costs, health(outputs)


@dataclass
class PointResult:
    """One point of a sweep: the site, what loading it cost, and the figures measured on it (None: not measured)."""

    dimension: str
    size: SiteSize
    load_s: float | None = None
    load_phases: dict[str, float] | None = None
    memory_bytes: int | None = None
    cost: SteadyCost | None = None
    table_row_us: dict[str, float] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.size.count(self.dimension)

    @property
    def measured(self) -> bool:
        return self.cost is not None


def measure_point(dimension: str, size: SiteSize, records: int, budget_s: float | None = None,
                  rotation: int | None = None, repeats: int = REPEATS) -> PointResult:
    """Load the site, then measure its memory, the steady workload's cost per record, and a table row's cost."""
    point, loaded = load_point(dimension, size, budget_s, rotation)
    if loaded is not None:
        point.cost = steady_cost(loaded, records, repeats)
        finish_point(point, loaded)
    return point


def load_point(dimension: str, size: SiteSize, budget_s: float | None = None,
               rotation: int | None = None) -> tuple[PointResult, LoadedSite | None]:
    """Load the site of one point and measure its memory; no loaded site when it could not be loaded in time."""
    point = PointResult(dimension, fitted(size))
    try:
        loaded = load_site(size, budget_s, rotation)
    except LoadBudgetExceeded as exceeded:
        point.problems.append(str(exceeded))
        return point, None
    point.load_s, point.load_phases = loaded.load_s, loaded.phase_s
    point.problems += _health_problems("loading", loaded.health, expected_enables=len(loaded.plan.permits))
    point.memory_bytes = site_memory(loaded.site)
    return point, loaded


def finish_point(point: PointResult, loaded: LoadedSite) -> None:
    """After the steady workload: its health, and a table row's cost."""
    point.problems += _health_problems("steady workload", point.cost.health)
    point.table_row_us, probe_health = table_row_cost(loaded)
    point.problems += _health_problems("table rows", probe_health)


def _health_problems(what: str, said: Health, expected_enables: int = 0) -> list[str]:
    """What in a run departs from a healthy site: stops, CRITICAL faults, permits not enabled exactly once."""
    problems = []
    if said.stops:
        problems.append(f"{what}: {said.stops} HARD_STOP(s)")
    if said.critical:
        problems.append(f"{what}: {len(said.critical)} CRITICAL fault(s), e.g. {said.critical[0]}")
    if expected_enables and (len(said.enables) != expected_enables or any(n != 1 for n in said.enables.values())):
        problems.append(f"{what}: {len(said.enables)} of {expected_enables} permits enabled, "
                        f"{sum(said.enables.values())} ENABLEs")
    elif not expected_enables and said.enables:
        problems.append(f"{what}: {sum(said.enables.values())} new ENABLE(s)")
    return problems


# ---------------------------------------------------------------------------------------------- the suite


ENTITY = {"permits": "permit", "workers": "worker", "devices": "device"}
LOAD_BUDGET_S = {True: 10.0, False: 45.0}
"""Seconds a point may take to load (quick, full); a site the product cannot load in time is reported, not measured."""

COST_Y = "us per record"
MEMORY_Y = "bytes per entity"
TABLE_Y = "us per table row"
SIZE_X = "site size (permits, workers or devices)"


def run_sweeps(quick: bool, budget_s: float | None, progress: Callable[[str], None] = lambda _: None) -> list[PointResult]:
    """Every point of every sweep, smallest first; a sweep stops at its first point that cannot be loaded in time. A
    sweep's sites are loaded first and their steady workloads timed in rounds (`steady_costs`)."""
    records = QUICK_RECORDS if quick else FULL_RECORDS
    points = []
    for dimension in DIMENSIONS:
        sizes = sweep_sizes(dimension, quick)
        rotation = len(plan_site(sizes[0]).other_reporters)
        loaded: list[tuple[PointResult, LoadedSite]] = []
        started = time.perf_counter()
        for i, size in enumerate(sizes):
            point, site = load_point(dimension, size, budget_s, rotation)
            points.append(point)
            if site is None:
                progress(f"  {dimension:<8} {_describe(point)}")
                points += [PointResult(dimension, s, problems=["not tried: a smaller site could not be loaded in time"])
                           for s in sizes[i + 1:]]
                break
            loaded.append((point, site))
        for (point, site), cost in zip(loaded, steady_costs([site for _, site in loaded], records)):
            point.cost = cost
            finish_point(point, site)
            progress(f"  {dimension:<8} {_describe(point)}")
        progress(f"  {dimension} sweep [{time.perf_counter() - started:.1f} s]")
    return points


def _describe(point: PointResult) -> str:
    size = point.size
    where = f"{size.permits:,} permits, {size.workers:,} workers, {size.devices:,} devices"
    if not point.measured:
        return f"{where}: {'; '.join(point.problems)}"
    cost = point.cost
    rows = ", ".join(f"{topic.split('.')[0]} {us:,.0f}" for topic, us in point.table_row_us.items())
    text = (f"{where}: loaded in {point.load_s:.1f} s; {cost.us_per_record:.2f} us/record "
            f"(repeats {', '.join(f'{u:.2f}' for u in cost.repeats_us)}; {cost.site_seconds:,.1f} s of site time each); "
            f"site {point.memory_bytes / 1e6:,.1f} MB; table row us: {rows}")
    return text + (f"; PROBLEMS: {'; '.join(point.problems)}" if point.problems else "")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y against x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def sweep_metrics(dimension: str, points: list[PointResult]) -> list[Metric]:
    """Flatness and cost at the largest site of one sweep (only when every point was measured), and memory per entity."""
    measured = [p for p in points if p.measured]
    metrics = []
    if measured and len(measured) == len(points):
        costs = [p.cost.us_per_record for p in measured]
        metrics += [
            Metric(f"scaling.{dimension}.cost_ratio", max(costs) / min(costs), "x", "lower"),
            Metric(f"scaling.{dimension}.cost_us_at_max", costs[-1], "us", "lower"),
            Metric(f"scaling.{dimension}.table_row_us_at_max", max(measured[-1].table_row_us.values()), "us", "lower"),
        ]
    if len(measured) >= 2:
        per_entity = slope([(p.count, p.memory_bytes) for p in measured])
        metrics.append(Metric(f"memory_bytes_per_{ENTITY[dimension]}", per_entity, "bytes", "lower"))
    return metrics


def sweep_series(dimension: str, points: list[PointResult]) -> list[Series]:
    """Cost per record, memory per entity and cost of a table row against the size of the swept dimension."""
    measured = [p for p in points if p.measured]
    entity = ENTITY[dimension]
    return [
        Series(f"steady telemetry vs {dimension}", SIZE_X, COST_Y,
               [(p.count, p.cost.us_per_record) for p in measured], log_x=True),
        Series(f"site memory per {entity} vs {dimension}", SIZE_X, MEMORY_Y,
               [(p.count, p.memory_bytes / p.count) for p in measured], log_x=True),
        Series(f"slowest table row vs {dimension}", SIZE_X, TABLE_Y,
               [(p.count, max(p.table_row_us.values())) for p in measured], log_x=True),
    ]


def sweep_notes(dimension: str, points: list[PointResult], quick: bool) -> list[str]:
    """How the sweep's sites were made consistent, and each point's figures and problems."""
    asked = sweep_counts(dimension, quick)
    raised = [f"{n:,} -> {p.size.workers:,} workers, {p.size.devices:,} devices" for n, p in zip(asked, points)
              if (p.size.workers, p.size.devices) != (BASE.workers if dimension != "workers" else n,
                                                      BASE.devices if dimension != "devices" else n)]
    notes = []
    if raised:
        notes.append(f"{dimension} sweep raised the other dimensions to keep the site consistent "
                     f"(3 people per permit, a tag per worker, the permits' own devices): {'; '.join(raised)}")
    notes += [f"{dimension} sweep: {_describe(p)}" for p in points]
    return notes


MEMORY_NOTE = (
    "memory per entity is the slope of the Site's memory against the swept count: a permit's figure includes its "
    "zone, its crew of 3 and its devices; a worker's includes the worker's tag; a device's is an idle detector or tag. "
    "The Site's memory is traced (tracemalloc) while its snapshot (the pickled Site) is restored."
)


def suite_result(points: list[PointResult], quick: bool, run_s: float, budget_s: float | None) -> SuiteResult:
    """The suite's metrics, series and notes from the measured points."""
    metrics: list[Metric] = []
    series: list[Series] = []
    notes: list[str] = []
    for dimension in DIMENSIONS:
        mine = [p for p in points if p.dimension == dimension]
        metrics += sweep_metrics(dimension, mine)
        series += sweep_series(dimension, mine)
        notes += sweep_notes(dimension, mine, quick)
        if any(not p.measured for p in mine):
            notes.append(f"{dimension} sweep incomplete: scaling.{dimension}.cost_ratio and cost_us_at_max are not "
                         f"reported, since the largest sites could not be brought up within the load budget")
    records = QUICK_RECORDS if quick else FULL_RECORDS
    notes.append(f"steady workload: {records:,} telemetry records per repeat, best of {REPEATS} (in rounds over the "
                 f"sweep's sites), through "
                 f"Site.process_batch after loading; load budget per point: {f'{budget_s:g} s' if budget_s else 'none'}")
    notes.append(MEMORY_NOTE)
    notes.append(f"{'quick' if quick else 'full'} mode ran in {run_s:.1f} s")
    return SuiteResult("scaling", metrics, series, notes)


def measure(quick: bool, load_budget_s: float | None = None, progress: Callable[[str], None] = lambda _: None) -> SuiteResult:
    """The scaling suite: every sweep (quick: its first points), as the release gate reads it.

    `load_budget_s`: seconds a point may take to load (None: the mode's budget; 0: no limit).
    """
    budget = LOAD_BUDGET_S[quick] if load_budget_s is None else load_budget_s
    started = time.perf_counter()
    points = run_sweeps(quick, budget, progress)
    return suite_result(points, quick, time.perf_counter() - started, budget)


# ---------------------------------------------------------------------------------------------- profiling


def steady_profile(size: SiteSize, records: int, rotation: int | None = None) -> dict[str, tuple[float, float]]:
    """Calls and own microseconds per record of every function on the steady workload of the site of `size` (cProfile).

    One slice of `records` is processed first unprofiled, so the profile sees the site in its steady state.
    """
    loaded = load_site(size, rotation=rotation)
    steady_cost(loaded, records, repeats=1)
    batch = loaded.telemetry.take(records)
    profiler = cProfile.Profile()
    profiler.enable()
    loaded.site.process_batch(batch)
    profiler.disable()
    n = len(batch)
    return {
        f"{Path(file).name}:{line}({name})": (calls / n, own / n * 1e6)
        for (file, line, name), (_, calls, own, _, _) in pstats.Stats(profiler).stats.items()
    }


def profile_growth(small: SiteSize, large: SiteSize, records: int, top: int = 25) -> str:
    """The functions whose own time per record grows most from the small site to the large one, with calls per record.

    The same calls per record at a higher cost mean the same work on memory further from the CPU; more calls
    per record mean work that grows with the site. Devices no permit needs report at the small site's rate.
    """
    rotation = len(plan_site(small).other_reporters)
    before, after = steady_profile(small, records, rotation), steady_profile(large, records, rotation)
    names = sorted(set(before) | set(after),
                   key=lambda f: after.get(f, (0, 0))[1] - before.get(f, (0, 0))[1], reverse=True)
    lines = [f"{'own us/record':>17} {'calls/record':>17}  function (profiled: times include the profiler's overhead)",
             f"{'small':>8} {'large':>8} {'small':>8} {'large':>8}"]
    for name in names[:top]:
        (c0, t0), (c1, t1) = before.get(name, (0, 0)), after.get(name, (0, 0))
        lines.append(f"{t0:8.3f} {t1:8.3f} {c0:8.3f} {c1:8.3f}  {name}")
    total = [sum(t for _, t in profile.values()) for profile in (before, after)]
    lines.append(f"{total[0]:8.3f} {total[1]:8.3f} {'':>17}  total")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--full", action="store_true", help="every point of every sweep (default: the first points)")
    parser.add_argument("--load-budget", type=float, default=None,
                        help=f"seconds a point may take to load (default {LOAD_BUDGET_S[True]:g} quick, "
                             f"{LOAD_BUDGET_S[False]:g} full; 0: no limit)")
    parser.add_argument("--json", type=Path, help="write the SuiteResult here")
    parser.add_argument("--profile", nargs=2, metavar=("P,W,D", "P,W,D"),
                        help="instead: compare cProfiles of the steady workload on a small and a large site")
    args = parser.parse_args(argv)
    quick = not args.full
    if args.profile:
        small, large = (fitted(SiteSize(*(int(n) for n in text.split(",")))) for text in args.profile)
        print(profile_growth(small, large, QUICK_RECORDS if quick else FULL_RECORDS))
        return 0
    result = measure(quick, args.load_budget, progress=lambda text: print(text, file=sys.stderr, flush=True))
    for metric in result.metrics:
        print(f"{metric.name:<40} {metric.value:>14,.3f} {metric.unit}")
    for note in result.notes:
        print(f"- {note}")
    if args.json:
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(result)) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
