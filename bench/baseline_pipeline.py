"""The reference pipeline of the release gate: the interlock written the way most teams would write it.

One record at a time: `json.loads` of the kcat envelope line into a dataclass, `json.loads` of
its payload, a pydantic (v2) model validating the payload schema (protocols §1-§9), state in
plain dicts, and the permit decisions of the core in spirit: the approved firmware from the
CMDB rows, device clock skew, sequence duplicates, gas limits with the 5-reading pre-test and
the 10 s freshness, guardian presence and entrants by point-in-polygon over the zones, PLC
isolation and ventilation flags, harness tie-off, and an ENABLE / HARD_STOP per permit when its
decision changes, each sent as `json.dumps` bytes.

It is a yardstick, so it does the same kind of work per record as the core and nothing more:
no sleeps, no logging, no fault book or evidence chain, and no timers (a permit is decided
when an input that feeds it arrives). A fix is tested against every zone of the site, as a
straightforward pipeline does (`zone_lookup="scan"`, the gate's reference); `zone_lookup="grid"`
gives it the core's grid of zone boxes, so the report can also show it with that one
optimisation. On a healthy recording it enables every permit once, on the same record as the core.

    run_baseline(lines)                      -> the commands it sends, as dicts
    run_baseline(lines, zone_lookup="grid")  -> the same, with zones looked up through a grid
    measure(lines)                           -> records/s, best of a few repetitions within a time bound
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal, Optional

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel, ValidationError, field_validator, model_validator

from bench.machine_limit import best_rate

SITE_TIME = datetime.timezone(datetime.timedelta(hours=8))
CLOCK_SKEW_MAX_MS = 5_000
FIX_QUALITY_MIN = 0.5
GUARDIAN_ABSENCE_MAX_MS = 30_000
PLC_STATE_MAX_AGE_MS = 15_000
GAS_WORK_TYPES = ("hot_work", "confined_space")
GAS_PRETEST_READINGS = 5
GAS_PRETEST_WINDOW_MS = 180_000
GAS_READING_MAX_AGE_MS = 10_000
BUMP_TEST_MAX_AGE_MS = 24 * 3_600_000
HARNESS_HEIGHT_MIN_M = 2.0
HARNESS_STALE_MS = 10_000
HARNESS_UNTIED_STOP_MS = 30_000
QUALIFICATION_RED_DAYS = 15
CERTIFICATE_TYPES = {
    "hot_work": ("welding",),
    "height": ("height",),
    "temp_electric": ("electrical",),
    "confined_space": ("confined", "hazchem"),
}
MAX_WINDOW_HOURS = {"hot_work": {"special": 8, "0": 8, "1": 8, "2": 72}}
GAS_LIMITS = {"o2_min": 19.5, "o2_max": 23.5, "lel_max": 10.0, "h2s_max": 7.0, "co_max": 26.0}
GAS_LIMIT_OVERRIDES = {"confined_space": {"o2_max": 21.0}}
SUMMER_MONTHS = (6, 7, 8)
SUMMER_CO_FACTOR = 0.85
GAS_CHANNEL_RANGES = {"o2": (0.0, 30.0), "lel": (0.0, 100.0), "h2s": (0.0, 500.0), "co": (0.0, 2000.0)}
GRID_CELL_M = 25.0
WAITING_CODES = frozenset({"GAS_PRETEST_INCOMPLETE"})
"""Reasons that only wait (no fault): once a permit is stopped, they are not news."""
UINT16 = 65536

# ---------------------------------------------------------------------------------------------- payload models

UInt16 = Annotated[int, Field(ge=0, le=65535)]
EpochMs = Annotated[int, Field(ge=0)]


class DeviceMessage(BaseModel):
    """Device payloads (§1-§4) are strict: no unknown field, no coercion from strings."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GasReadingFirmware2(DeviceMessage):
    """`gd4/2`: `r` is exactly [O2, LEL, H2S, CO], -1 for a channel in sensor fault."""

    dev: str
    fw: str
    ts: EpochMs
    seq: UInt16
    r: Annotated[list[float], Field(min_length=4, max_length=4)]
    alm: Annotated[int, Field(ge=0, le=255)]

    @field_validator("r")
    @classmethod
    def channels_in_range(cls, values: list[float]) -> list[float]:
        for value, (low, high) in zip(values, GAS_CHANNEL_RANGES.values()):
            if value != -1 and not low <= value <= high:
                raise ValueError(f"{value} is neither -1 nor within {low:g}..{high:g}")
        return values


class GasChannels(DeviceMessage):
    """`gd4/3` channels, null for a channel in sensor fault."""

    o2: Optional[Annotated[float, Field(ge=0.0, le=30.0)]]
    lel: Optional[Annotated[float, Field(ge=0.0, le=100.0)]]
    h2s: Optional[Annotated[float, Field(ge=0.0, le=500.0)]]
    co: Optional[Annotated[float, Field(ge=0.0, le=2000.0)]]


class GasReadingFirmware3(DeviceMessage):
    """`gd4/3`: channels by name, detector status and the time of the last bump test."""

    dev: str
    fw: str
    ts: EpochMs
    seq: UInt16
    r: GasChannels
    st: Literal["ok", "warmup", "fault", "cal_due"]
    bump: EpochMs


class HarnessReportFirmware1(DeviceMessage):
    """`sh2/1`: one hook."""

    dev: str
    fw: str
    ts: EpochMs
    seq: UInt16
    hook: Literal["clipped", "unclipped"]
    h: Annotated[float, Field(ge=-100.0, le=1000.0)]
    bat: Annotated[int, Field(ge=0, le=100)]


class HarnessReportFirmware2(DeviceMessage):
    """`sh2/2`: twin lanyard, one 0/1 per hook."""

    dev: str
    fw: str
    ts: EpochMs
    seq: UInt16
    hooks: Annotated[list[Literal[0, 1]], Field(min_length=1)]
    h: Annotated[float, Field(ge=-100.0, le=1000.0)]
    bat: Annotated[int, Field(ge=0, le=100)]


class AnchorlineTagFix(DeviceMessage):
    """`anchorline/4`: one tag, metres, RFC 3339 time."""

    tag: str
    ts: Annotated[AwareDatetime, Field(strict=False)]
    pos: Annotated[list[float], Field(min_length=3, max_length=3)]
    q: Annotated[float, Field(ge=0.0, le=1.0)]


class QubitCoordinates(DeviceMessage):
    x: float
    y: float
    z: float


class QubitLocation(DeviceMessage):
    coordinates: QubitCoordinates


class QubitTagUpdate(DeviceMessage):
    """One element of a `qubit/2` batch: millimetres, epoch seconds; `data` only when located."""

    tagId: str
    timestamp: Annotated[float, Field(ge=0.0)]
    success: bool
    data: Optional[QubitLocation] = None

    @model_validator(mode="after")
    def data_only_when_located(self) -> "QubitTagUpdate":
        if self.success != (self.data is not None):
            raise ValueError("a located tag has data, an unlocated one has none")
        return self


class QubitBatch(RootModel[Annotated[list[QubitTagUpdate], Field(min_length=1)]]):
    """`qubit/2`: a JSON array of tag updates."""


class PlcStateMessage(DeviceMessage):
    """`plc/1`: `<equipment>.<signal>` values from an edge gateway."""

    plc: str
    ts: EpochMs
    seq: UInt16
    tags: dict[str, bool]


class TableRow(BaseModel):
    """Enterprise rows (§5-§9) tolerate added fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class CmdbDeviceRow(TableRow):
    """§5: `firmware` is the approved firmware."""

    device: str
    family: str
    model: Optional[str] = None
    firmware: Optional[str] = None
    zone: Optional[str] = None
    vendor: Optional[str] = None
    worker: Optional[str] = None
    equipment: list[str] = []
    modbus: Optional[dict[str, Any]] = None
    opcua: Optional[dict[str, Any]] = None


class ZoneEntrance(TableRow):
    polygon: Annotated[list[Annotated[list[float], Field(min_length=2, max_length=2)]], Field(min_length=3)]


class GisZoneRow(TableRow):
    """§6: polygon in metres, height range, forbidden work types, optional entrance."""

    zone: str
    polygon: Annotated[list[Annotated[list[float], Field(min_length=2, max_length=2)]], Field(min_length=3)]
    z: Annotated[list[float], Field(min_length=2, max_length=2)]
    risk: Literal["I", "II", "III", "IV"]
    name: str = ""
    forbid: list[str] = []
    entrance: Optional[ZoneEntrance] = None


class WorkerCertificate(TableRow):
    type: str
    status: str
    expires: datetime.date
    no: str = ""
    issuer: str = ""
    province: str = ""
    issued: Optional[datetime.date] = None
    review_due: Optional[datetime.date] = None


class HrQualificationRow(TableRow):
    """§7: certificates and medical check, site calendar dates."""

    worker: str
    certs: list[WorkerCertificate] = []
    name: str = ""
    employer: str = ""
    medical_valid_until: Optional[datetime.date] = None


class PermitSignatures(TableRow):
    applicant: Optional[str] = None
    guardian: Optional[str] = None
    approver: Optional[str] = None
    supervisor: Optional[str] = None


class WorkPermitRow(TableRow):
    """§8: the full permit record."""

    permit: str
    rev: int
    type: Literal["hot_work", "confined_space", "height", "lifting", "temp_electric", "blind_plate", "earthwork",
                  "road_break"]
    grade: str
    zone: str
    state: Literal["draft", "approved", "active", "suspended", "closed", "cancelled"]
    valid_from: EpochMs
    valid_to: EpochMs
    guardian: str
    approver: str
    workers: list[str] = []
    equipment: list[str] = []
    isolations: list[str] = []
    ventilation: list[str] = []
    detectors: list[str] = []
    harnesses: list[str] = []
    signatures: PermitSignatures = PermitSignatures()


class PermitActionMessage(TableRow):
    """§9: a reset of a latched stop or an acknowledgement."""

    permit: str
    action: str
    by: str
    ts: EpochMs
    alert: Optional[str] = None


FIRMWARE_MODELS: dict[str, dict[str, type[DeviceMessage]]] = {
    "GD-4": {"2": GasReadingFirmware2, "3": GasReadingFirmware3},
    "SH-2": {"1": HarnessReportFirmware1, "2": HarnessReportFirmware2},
}
"""The protocol catalog: device model -> approved firmware major -> payload model."""

# ---------------------------------------------------------------------------------------------- per-record objects


@dataclass
class KafkaRecord:
    """One kcat envelope line (protocols §0)."""

    topic: str
    partition: int
    offset: int
    ts: int
    key: Optional[str]
    payload: Optional[str]


@dataclass
class GasSample:
    """A GD-4 reading in one form whatever the firmware; None for a channel in sensor fault."""

    device: str
    ts: int
    seq: int
    o2: Optional[float]
    lel: Optional[float]
    h2s: Optional[float]
    co: Optional[float]
    status: str
    alarm: int
    bump: Optional[int]


@dataclass
class HarnessSample:
    device: str
    ts: int
    seq: int
    height_m: float
    tied: bool


@dataclass
class TagFix:
    """One UWB tag update in one form whatever the vendor: metres, ms; quality 0 when the tag was not located."""

    tag: str
    ts: int
    x: float
    y: float
    z: float
    quality: float


@dataclass
class TagPosition:
    """A tag's last trusted fix, metres, record time."""

    x: float
    y: float
    z: float
    ts: int


@dataclass
class GasTrack:
    """One detector as evidence for one permit: times of the current run of qualified readings."""

    run: list[int] = field(default_factory=list)
    last_good: Optional[int] = None
    problem: Optional[str] = None
    detail: str = ""


@dataclass
class HarnessState:
    last_ts: int
    height_m: float
    tied: bool
    untied_since: Optional[int]


@dataclass
class PlcState:
    ts: int
    tags: dict[str, bool]


@dataclass
class PermitDecision:
    """What the pipeline last decided for a permit."""

    enabled: bool = False
    latched: bool = False
    stop_codes: tuple[str, ...] = ()
    reset_alerted: bool = False
    guardian_seen: Optional[int] = None


class UntrustedData(Exception):
    """A device payload that is not evidence: the code says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# ---------------------------------------------------------------------------------------------- geometry


def point_in_polygon(x: float, y: float, polygon: list[list[float]]) -> bool:
    """Even-odd ray casting."""
    inside = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < xi + (y - yi) * (xj - xi) / (yj - yi):
            inside = not inside
        j = i
    return inside


def in_zone(zone: GisZoneRow, x: float, y: float, z: float) -> bool:
    return zone.z[0] <= z <= zone.z[1] and point_in_polygon(x, y, zone.polygon)


def grid_cells(polygon: list[list[float]]) -> list[tuple[int, int]]:
    """The grid cells a polygon's bounding box touches."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    return [(cx, cy)
            for cx in range(int(min(xs) // GRID_CELL_M), int(max(xs) // GRID_CELL_M) + 1)
            for cy in range(int(min(ys) // GRID_CELL_M), int(max(ys) // GRID_CELL_M) + 1)]


# ---------------------------------------------------------------------------------------------- rules


def site_date(ts: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(ts / 1000, SITE_TIME).date()


def gas_limits(work_type: str, ts: int) -> dict[str, float]:
    """Base limits, the work type's overrides, the summer CO factor."""
    limits = dict(GAS_LIMITS)
    limits.update(GAS_LIMIT_OVERRIDES.get(work_type, {}))
    if datetime.datetime.fromtimestamp(ts / 1000, SITE_TIME).month in SUMMER_MONTHS:
        limits["co_max"] *= SUMMER_CO_FACTOR
    return limits


def gas_problem(sample: GasSample, limits: dict[str, float], now: int) -> Optional[str]:
    """Why a reading is not qualified, or None when it is."""
    if sample.status != "ok":
        return "GAS_DETECTOR_NOT_READY"
    if None in (sample.o2, sample.lel, sample.h2s, sample.co):
        return "GAS_SENSOR_FAULT"
    if sample.alarm:
        return "GAS_DETECTOR_ALARM"
    if sample.bump is not None and now - sample.bump > BUMP_TEST_MAX_AGE_MS:
        return "GAS_BUMP_TEST_OVERDUE"
    if not (limits["o2_min"] <= sample.o2 <= limits["o2_max"]) or sample.lel >= limits["lel_max"] \
            or sample.h2s >= limits["h2s_max"] or sample.co >= limits["co_max"]:
        return "GAS_LIMIT_EXCEEDED"
    return None


def gas_sample(reading: GasReadingFirmware2 | GasReadingFirmware3) -> GasSample:
    if isinstance(reading, GasReadingFirmware2):
        o2, lel, h2s, co = (None if value == -1 else value for value in reading.r)
        return GasSample(reading.dev, reading.ts, reading.seq, o2, lel, h2s, co, "ok", reading.alm, None)
    r = reading.r
    return GasSample(reading.dev, reading.ts, reading.seq, r.o2, r.lel, r.h2s, r.co, reading.st, 0, reading.bump)


def harness_sample(report: HarnessReportFirmware1 | HarnessReportFirmware2) -> HarnessSample:
    tied = report.hook == "clipped" if isinstance(report, HarnessReportFirmware1) else 1 in report.hooks
    return HarnessSample(report.dev, report.ts, report.seq, report.h, tied)


def anchorline_fixes(document: Any) -> list[TagFix]:
    fix = AnchorlineTagFix.model_validate(document)
    x, y, z = fix.pos
    return [TagFix(fix.tag, round(fix.ts.timestamp() * 1000), x, y, z, fix.q)]


def qubit_fixes(document: Any) -> list[TagFix]:
    """Millimetres to metres, seconds to ms; a Qubit fix that succeeded counts as quality 1."""
    fixes = []
    for update in QubitBatch.model_validate(document).root:
        ts = round(update.timestamp * 1000)
        if update.success:
            c = update.data.coordinates
            fixes.append(TagFix(update.tagId, ts, c.x / 1000, c.y / 1000, c.z / 1000, 1.0))
        else:
            fixes.append(TagFix(update.tagId, ts, 0.0, 0.0, 0.0, 0.0))
    return fixes


def sequence_is_duplicate(last: Optional[tuple[int, int]], seq: int, device_ts: int) -> bool:
    """A number at or behind the last one is a duplicate, unless the device clock moved on (a counter restart)."""
    if last is None:
        return False
    ahead = (seq - last[0]) % UINT16
    return (ahead == 0 or ahead >= UINT16 // 2) and device_ts <= last[1]


def certificate_problem(worker: str, row: Optional[HrQualificationRow], accepted: tuple[str, ...],
                        today: datetime.date) -> Optional[str]:
    """Why a worker may not do the work today, or None: HR row, medical check, a valid certificate not due within 15 days."""
    if row is None:
        return f"{worker} has no qualification record"
    if row.medical_valid_until is None or row.medical_valid_until < today:
        return f"{worker} medical check missing or expired"
    for cert in row.certs:
        if cert.type in accepted and cert.status == "valid":
            due = min(cert.expires, cert.review_due or cert.expires)
            if (due - today).days > QUALIFICATION_RED_DAYS:
                return None
    return f"{worker} holds no valid {' or '.join(accepted)} certificate"


def permit_record_problems(permit: WorkPermitRow, zone: Optional[GisZoneRow], now: int) -> list[tuple[str, str]]:
    """Validity window and its maximum, signatures, roles, zone, listed detectors."""
    problems = []
    if not permit.valid_from <= now <= permit.valid_to:
        problems.append(("PERMIT_OUTSIDE_VALIDITY", f"{permit.permit} is outside its validity"))
    hours = MAX_WINDOW_HOURS.get(permit.type, {}).get(permit.grade)
    if hours is not None and permit.valid_to - permit.valid_from > hours * 3_600_000:
        problems.append(("PERMIT_WINDOW_TOO_LONG", f"{permit.permit} window exceeds {hours} h"))
    signatures = permit.signatures
    if not (signatures.applicant and signatures.guardian and signatures.approver and signatures.supervisor):
        problems.append(("PERMIT_SIGNATURE_MISSING", f"{permit.permit} lacks a signature"))
    if signatures.applicant == permit.approver:
        problems.append(("PERMIT_APPROVER_IS_APPLICANT", f"{permit.permit} approver is the applicant"))
    if permit.guardian in permit.workers:
        problems.append(("PERMIT_GUARDIAN_IS_WORKER", f"{permit.permit} guardian is a worker"))
    if zone is None:
        problems.append(("ZONE_UNKNOWN", f"{permit.permit} zone {permit.zone} has no GIS row"))
    elif permit.type in zone.forbid:
        problems.append(("ZONE_FORBIDS_WORK_TYPE", f"zone {zone.zone} forbids {permit.type}"))
    if permit.type in GAS_WORK_TYPES and not permit.detectors:
        problems.append(("GAS_DETECTOR_NOT_LISTED", f"{permit.permit} lists no gas detector"))
    return problems


# ---------------------------------------------------------------------------------------------- the pipeline


class BaselinePipeline:
    """All state of the site in plain dicts; `handle` takes one recording line."""

    def __init__(self, zone_lookup: Literal["scan", "grid"] = "scan") -> None:
        self.zone_lookup = zone_lookup
        self.devices: dict[str, CmdbDeviceRow] = {}
        self.zones: dict[str, GisZoneRow] = {}
        self.zone_grid: dict[tuple[int, int], list[str]] = {}
        self.qualifications: dict[str, HrQualificationRow] = {}
        self.permits: dict[str, WorkPermitRow] = {}
        self.decisions: dict[str, PermitDecision] = {}
        self.permits_of_device: dict[str, list[str]] = {}
        self.permits_of_zone: dict[str, list[str]] = {}
        self.permits_of_guardian: dict[str, list[str]] = {}
        self.equipment_plc: dict[str, str] = {}
        self.sequences: dict[str, tuple[int, int]] = {}
        self.untrusted: dict[str, str] = {}
        self.gas: dict[tuple[str, str], GasTrack] = {}
        self.harness: dict[str, HarnessState] = {}
        self.plc: dict[str, PlcState] = {}
        self.positions: dict[str, TagPosition] = {}
        self.tag_zones: dict[str, set[str]] = {}
        self.zone_tags: dict[str, set[str]] = {}
        self.commands: list[dict] = []
        self.sent: list[bytes] = []
        self.handlers: dict[str, Callable[[KafkaRecord], list[str]]] = {
            "rtls.position": self.on_position,
            "gas.readings": self.on_gas,
            "harness.status": self.on_harness,
            "plc.state": self.on_plc,
            "cmdb.devices": self.on_device_row,
            "gis.zones": self.on_zone_row,
            "hr.qualifications": self.on_qualification_row,
            "ptw.permits": self.on_permit_row,
            "ptw.actions": self.on_permit_action,
        }

    def handle(self, line: bytes) -> None:
        """Read one kcat line, apply it, and decide the active permits it feeds."""
        envelope = json.loads(line)
        record = KafkaRecord(envelope["topic"], envelope["partition"], envelope["offset"], envelope["ts"],
                             envelope.get("key"), envelope.get("payload"))
        handler = self.handlers.get(record.topic)
        if handler is None:
            return
        for permit in dict.fromkeys(handler(record)):
            self.decide(permit, record)

    # ------------------------------------------------------------------ device data

    def trusted_payload(self, record: KafkaRecord, family: str) -> Any:
        """The validated payload of a gas detector, harness or PLC whose data is evidence; raises UntrustedData."""
        device = record.key or "?"
        row = self.devices.get(device)
        if record.payload is None:
            raise UntrustedData("PAYLOAD_UNPARSEABLE", f"{device}: empty payload")
        if row is None or row.family != family:
            raise UntrustedData("DEVICE_UNKNOWN", f"{device} is not a {family} in the CMDB")
        if family == "plc":
            model: type[BaseModel] = PlcStateMessage
        else:
            model = FIRMWARE_MODELS.get(row.model or "", {}).get((row.firmware or "").split(".")[0])
            if model is None:
                raise UntrustedData("DEVICE_MODEL_UNSUPPORTED", f"{device}: no schema for {row.model} {row.firmware}")
        try:
            message = model.model_validate(json.loads(record.payload))
        except json.JSONDecodeError as error:
            raise UntrustedData("PAYLOAD_UNPARSEABLE", f"{device}: {error}") from None
        except ValidationError as error:
            first = error.errors()[0]
            where = "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in first["loc"])
            raise UntrustedData("PAYLOAD_SCHEMA_MISMATCH", f"{device} ({row.model} {row.firmware}): {where}: {first['msg']}") from None
        reported = message.plc if family == "plc" else message.dev
        if reported != device:
            raise UntrustedData("DEVICE_ID_MISMATCH", f"record key {device}, payload {reported}")
        if family != "plc" and message.fw != row.firmware:
            raise UntrustedData("FIRMWARE_UNAPPROVED", f"{device} reports {message.fw}, approved {row.firmware}")
        if abs(message.ts - record.ts) > CLOCK_SKEW_MAX_MS:
            raise UntrustedData("DEVICE_CLOCK_SKEW", f"{device} clock is off by {abs(message.ts - record.ts)} ms")
        return message

    def accept_sequence(self, device: str, seq: int, device_ts: int) -> bool:
        """False for a duplicate or replay; otherwise the number is remembered."""
        if sequence_is_duplicate(self.sequences.get(device), seq, device_ts):
            return False
        self.sequences[device] = (seq, device_ts)
        self.untrusted.pop(device, None)
        return True

    def distrust(self, device: str, problem: UntrustedData) -> list[str]:
        """Data that cannot be trusted fails the preconditions it feeds at once."""
        self.untrusted[device] = problem.code
        self.sequences.pop(device, None)
        for permit in self.permits_of_device.get(device, ()):
            track = self.gas.get((permit, device))
            if track is not None:
                track.run.clear()
                track.problem, track.detail = problem.code, problem.detail
        return self.permits_of_device.get(device, [])

    def on_gas(self, record: KafkaRecord) -> list[str]:
        try:
            sample = gas_sample(self.trusted_payload(record, "gas"))
        except UntrustedData as problem:
            return self.distrust(record.key or "?", problem)
        if not self.accept_sequence(sample.device, sample.seq, sample.ts):
            return []
        permits = self.permits_of_device.get(sample.device, [])
        for permit in permits:
            track = self.gas.get((permit, sample.device))
            if track is None:
                continue
            problem = gas_problem(sample, gas_limits(self.permits[permit].type, record.ts), record.ts)
            if problem is None:
                track.run.append(record.ts)
                del track.run[:-GAS_PRETEST_READINGS]
                track.last_good = record.ts
                track.problem = None
            else:
                track.run.clear()
                track.problem, track.detail = problem, f"{sample.device} reading is not qualified"
        return permits

    def on_harness(self, record: KafkaRecord) -> list[str]:
        try:
            sample = harness_sample(self.trusted_payload(record, "harness"))
        except UntrustedData as problem:
            return self.distrust(record.key or "?", problem)
        if not self.accept_sequence(sample.device, sample.seq, sample.ts):
            return []
        now = record.ts
        untied_at_height = sample.height_m >= HARNESS_HEIGHT_MIN_M and not sample.tied
        state = self.harness.get(sample.device)
        if state is None or not untied_at_height:
            untied_since = now if untied_at_height else None
        elif state.untied_since is not None:
            untied_since = state.untied_since
        else:
            silent_at_height = state.height_m >= HARNESS_HEIGHT_MIN_M and now - state.last_ts > HARNESS_STALE_MS
            untied_since = state.last_ts if silent_at_height else now
        self.harness[sample.device] = HarnessState(now, sample.height_m, sample.tied, untied_since)
        return self.permits_of_device.get(sample.device, [])

    def on_plc(self, record: KafkaRecord) -> list[str]:
        try:
            message = self.trusted_payload(record, "plc")
        except UntrustedData as problem:
            return self.distrust(record.key or "?", problem)
        if not self.accept_sequence(message.plc, message.seq, message.ts):
            return []
        state = self.plc.setdefault(message.plc, PlcState(record.ts, {}))
        state.ts = record.ts
        state.tags.update(message.tags)
        return self.permits_of_device.get(message.plc, [])

    def on_position(self, record: KafkaRecord) -> list[str]:
        """Validate the gateway's payload (shape says the vendor), then place every located, trusted fix."""
        if record.payload is None:
            return []
        try:
            document = json.loads(record.payload)
            vendor = "qubit" if isinstance(document, list) else "anchorline"
            fixes = qubit_fixes(document) if vendor == "qubit" else anchorline_fixes(document)
        except (json.JSONDecodeError, ValidationError):
            return []
        touched: list[str] = []
        for fix in fixes:
            row = self.devices.get(fix.tag)
            if row is not None and (row.family != "uwb_tag" or row.vendor != vendor):
                continue
            if abs(fix.ts - record.ts) > CLOCK_SKEW_MAX_MS or fix.quality < FIX_QUALITY_MIN:
                continue
            last = self.positions.get(fix.tag)
            if last is not None and fix.ts <= last.ts:
                continue
            self.positions[fix.tag] = TagPosition(fix.x, fix.y, fix.z, fix.ts)
            touched += self.place(fix.tag, row.worker if row is not None else None, fix.x, fix.y, fix.z, record.ts)
        return touched

    def place(self, tag: str, worker: Optional[str], x: float, y: float, z: float, now: int) -> list[str]:
        """Move a tag between zones and see its wearer's guardian duties; returns the permits this feeds."""
        if self.zone_lookup == "scan":
            candidates: Any = self.zones
        else:
            candidates = self.zone_grid.get((int(x // GRID_CELL_M), int(y // GRID_CELL_M)), ())
        inside = {zone for zone in candidates if in_zone(self.zones[zone], x, y, z)}
        before = self.tag_zones.get(tag, set())
        touched: list[str] = []
        for zone in inside ^ before:
            occupants = self.zone_tags.setdefault(zone, set())
            if zone in inside:
                occupants.add(tag)
            else:
                occupants.discard(tag)
            touched += self.permits_of_zone.get(zone, ())
        self.tag_zones[tag] = inside
        if worker is not None:
            for permit in self.permits_of_guardian.get(worker, ()):
                area = self.guardian_area(self.permits[permit])
                if area is not None and point_in_polygon(x, y, area):
                    self.decisions[permit].guardian_seen = now
                    touched.append(permit)
        return touched

    def guardian_area(self, permit: WorkPermitRow) -> Optional[list[list[float]]]:
        """The zone, or the entrance of a confined space, in metres."""
        zone = self.zones.get(permit.zone)
        if zone is None:
            return None
        if permit.type == "confined_space":
            return zone.entrance.polygon if zone.entrance is not None else None
        return zone.polygon

    # ------------------------------------------------------------------ tables

    def on_device_row(self, record: KafkaRecord) -> list[str]:
        if record.payload is None:
            self.devices.pop(record.key or "", None)
        else:
            try:
                row = CmdbDeviceRow.model_validate(json.loads(record.payload))
            except (json.JSONDecodeError, ValidationError):
                return []
            self.devices[row.device] = row
        self.index_permits()
        return list(self.permits)

    def on_zone_row(self, record: KafkaRecord) -> list[str]:
        if record.payload is None:
            self.zones.pop(record.key or "", None)
        else:
            try:
                row = GisZoneRow.model_validate(json.loads(record.payload))
            except (json.JSONDecodeError, ValidationError):
                return []
            self.zones[row.zone] = row
        self.zone_grid = {}
        for zone_id, zone in self.zones.items():
            for cell in grid_cells(zone.polygon):
                self.zone_grid.setdefault(cell, []).append(zone_id)
        return list(self.permits)

    def on_qualification_row(self, record: KafkaRecord) -> list[str]:
        if record.payload is None:
            self.qualifications.pop(record.key or "", None)
            return list(self.permits)
        try:
            row = HrQualificationRow.model_validate(json.loads(record.payload))
        except (json.JSONDecodeError, ValidationError):
            return []
        self.qualifications[row.worker] = row
        return [pid for pid, permit in self.permits.items() if row.worker in permit.workers]

    def on_permit_row(self, record: KafkaRecord) -> list[str]:
        if record.payload is None:
            held = self.permits.get(record.key or "")
            if held is None:
                return []
            row = held.model_copy(update={"state": "cancelled"})
        else:
            try:
                row = WorkPermitRow.model_validate(json.loads(record.payload))
            except (json.JSONDecodeError, ValidationError):
                return []
            held = self.permits.get(row.permit)
            if held is not None and row.rev <= held.rev:
                return []
        self.permits[row.permit] = row
        decision = self.decisions.setdefault(row.permit, PermitDecision())
        if held is not None and (held.guardian, held.zone, held.type) != (row.guardian, row.zone, row.type):
            decision.guardian_seen = None
        for device in row.detectors:
            self.gas.setdefault((row.permit, device), GasTrack())
        self.index_permits()
        return [row.permit] + self.permits_of_zone.get(row.zone, [])

    def on_permit_action(self, record: KafkaRecord) -> list[str]:
        """A reset by the permit's approver clears a latched stop once its causes are gone."""
        if record.payload is None:
            return []
        try:
            action = PermitActionMessage.model_validate(json.loads(record.payload))
        except (json.JSONDecodeError, ValidationError):
            return []
        permit = self.permits.get(action.permit)
        decision = self.decisions.get(action.permit)
        if permit is None or decision is None or action.action != "reset" or action.by != permit.approver:
            return []
        if decision.latched and not self.stop_reasons(permit, decision, record.ts):
            decision.latched = False
            return [action.permit]
        return []

    def index_permits(self) -> None:
        """Which permits each device, zone and guardian feeds (permits still open)."""
        equipment_plc = {equipment: row.device for row in self.devices.values() if row.family == "plc"
                         for equipment in row.equipment}
        devices: dict[str, list[str]] = {}
        zones: dict[str, list[str]] = {}
        guardians: dict[str, list[str]] = {}
        for pid, permit in self.permits.items():
            if permit.state in ("closed", "cancelled"):
                continue
            plcs = {equipment_plc[e] for e in permit.isolations + permit.ventilation if e in equipment_plc}
            for device in dict.fromkeys(permit.detectors + permit.harnesses + sorted(plcs)):
                devices.setdefault(device, []).append(pid)
            zones.setdefault(permit.zone, []).append(pid)
            guardians.setdefault(permit.guardian, []).append(pid)
        self.permits_of_device, self.permits_of_zone, self.permits_of_guardian = devices, zones, guardians
        self.equipment_plc = equipment_plc

    # ------------------------------------------------------------------ decisions

    def decide(self, pid: str, record: KafkaRecord) -> None:
        """ENABLE when every precondition holds, HARD_STOP when one fails (latched if it was enabled)."""
        permit = self.permits[pid]
        decision = self.decisions[pid]
        now = record.ts
        if permit.state != "active":
            if decision.enabled:
                self.send("HARD_STOP", permit, [("PERMIT_NOT_ACTIVE", f"{pid} is {permit.state}")], record, latched=False)
                decision.enabled = False
            decision.stop_codes = ()
            return
        reasons = self.stop_reasons(permit, decision, now)
        if reasons:
            codes = tuple(dict.fromkeys(code for code, _ in reasons))
            news = [code for code in codes if code not in decision.stop_codes
                    and (code not in WAITING_CODES or not decision.stop_codes)]
            if decision.enabled or news:
                latched = decision.enabled or decision.latched
                self.send("HARD_STOP", permit, reasons, record, latched=latched)
                decision.enabled, decision.latched = False, latched
            decision.stop_codes = codes
            decision.reset_alerted = False
            return
        decision.stop_codes = ()
        if decision.latched:
            if not decision.reset_alerted:
                self.send("ALERT", permit, [("TRIP_RESET_REQUIRED", f"{permit.approver} may reset {pid}")], record,
                          targets=[permit.approver])
                decision.reset_alerted = True
        elif not decision.enabled:
            self.send("ENABLE", permit, [("ALL_PRECONDITIONS_MET", f"{pid} {permit.type} in {permit.zone}: every "
                                                                   f"precondition holds")], record)
            decision.enabled = True

    def stop_reasons(self, permit: WorkPermitRow, decision: PermitDecision, now: int) -> list[tuple[str, str]]:
        """Every failed precondition of an active permit, as (code, detail)."""
        zone = self.zones.get(permit.zone)
        reasons = permit_record_problems(permit, zone, now)
        if zone is not None:
            reasons += self.guardian_reasons(permit, decision, now)
            inside = self.people_inside(permit, reasons)
            reasons += self.crew_reasons(permit, inside, now)
        reasons += self.plc_reasons(permit, now)
        if permit.type in GAS_WORK_TYPES:
            reasons += self.gas_reasons(permit, decision.enabled, now)
        reasons += self.harness_reasons(permit, decision.enabled, now)
        return reasons

    def guardian_reasons(self, permit: WorkPermitRow, decision: PermitDecision, now: int) -> list[tuple[str, str]]:
        if self.guardian_area(permit) is None:
            return [("GUARDIAN_ABSENT", f"{permit.zone} has no area to locate guardian {permit.guardian}")]
        if decision.guardian_seen is None or now - decision.guardian_seen > GUARDIAN_ABSENCE_MAX_MS:
            return [("GUARDIAN_ABSENT", f"guardian {permit.guardian} not located in {permit.zone}")]
        return []

    def people_inside(self, permit: WorkPermitRow, reasons: list[tuple[str, str]]) -> set[str]:
        """The authorised people inside the permit's zone; anyone else inside is an unauthorised entrant."""
        authorised = set()
        for pid in self.permits_of_zone.get(permit.zone, ()):
            other = self.permits[pid]
            if other.state == "active":
                authorised.update(other.workers)
                authorised.add(other.guardian)
        inside = set()
        for tag in self.zone_tags.get(permit.zone, ()):
            row = self.devices.get(tag)
            worker = row.worker if row is not None else None
            if worker in authorised:
                inside.add(worker)
            else:
                reasons.append(("UNAUTHORISED_ENTRANT", f"{worker or 'unregistered tag ' + tag} inside {permit.zone}"))
        return inside

    def crew_reasons(self, permit: WorkPermitRow, inside: set[str], now: int) -> list[tuple[str, str]]:
        accepted = CERTIFICATE_TYPES.get(permit.type)
        if not accepted:
            return []
        today = site_date(now)
        reasons = []
        for worker in permit.workers:
            if worker in inside:
                problem = certificate_problem(worker, self.qualifications.get(worker), accepted, today)
                if problem is not None:
                    reasons.append(("WORKER_NOT_QUALIFIED", problem))
        return reasons

    def plc_reasons(self, permit: WorkPermitRow, now: int) -> list[tuple[str, str]]:
        reasons = []
        for names, signal, code in ((permit.isolations, "isolated", "ISOLATION_NOT_CONFIRMED"),
                                    (permit.ventilation, "running", "VENTILATION_NOT_RUNNING")):
            for equipment in names:
                plc = self.equipment_plc.get(equipment)
                state = self.plc.get(plc) if plc is not None else None
                if plc is None:
                    reasons.append(("EQUIPMENT_NOT_ON_PLC", f"{equipment} is on no PLC"))
                elif plc in self.untrusted:
                    reasons.append((self.untrusted[plc], f"latest state of {plc} is not trusted"))
                elif state is None or now - state.ts > PLC_STATE_MAX_AGE_MS:
                    reasons.append(("PLC_STATE_STALE", f"no fresh state from {plc}"))
                elif state.tags.get(f"{equipment}.{signal}") is not True:
                    reasons.append((code, f"{plc} {equipment}.{signal} is not true"))
        return reasons

    def gas_reasons(self, permit: WorkPermitRow, enabled: bool, now: int) -> list[tuple[str, str]]:
        """The latest reading qualified; fresh while working; 5 consecutive within 180 s and the latest fresh to start."""
        reasons = []
        for device in permit.detectors:
            track = self.gas[(permit.permit, device)]
            fresh = track.last_good is not None and now - track.last_good <= GAS_READING_MAX_AGE_MS
            if track.problem is not None:
                reasons.append((track.problem, track.detail))
            elif enabled and not fresh:
                reasons.append(("GAS_DATA_STALE", f"{device}: no fresh qualified reading"))
            elif not enabled and not (fresh and len(track.run) >= GAS_PRETEST_READINGS
                                      and now - track.run[-GAS_PRETEST_READINGS] <= GAS_PRETEST_WINDOW_MS):
                reasons.append(("GAS_PRETEST_INCOMPLETE", f"{device}: pre-test not complete"))
        return reasons

    def harness_reasons(self, permit: WorkPermitRow, enabled: bool, now: int) -> list[tuple[str, str]]:
        """Fresh, trusted data to start; untied at height (or silent at height) for 30 s stops."""
        reasons = []
        for device in permit.harnesses:
            state = self.harness.get(device)
            if state is None:
                reasons.append(("HARNESS_DATA_STALE", f"{device} has not reported"))
                continue
            stale = device in self.untrusted or now - state.last_ts > HARNESS_STALE_MS
            if stale and not enabled:
                reasons.append((self.untrusted.get(device, "HARNESS_DATA_STALE"), f"{device} has no fresh trusted report"))
                continue
            since = state.untied_since
            if since is None and stale and state.height_m >= HARNESS_HEIGHT_MIN_M:
                since = state.last_ts
            if since is not None and now - since >= HARNESS_UNTIED_STOP_MS:
                reasons.append(("HARNESS_UNTIED", f"{device} untied at height for {(now - since) // 1000} s"))
        return reasons

    # ------------------------------------------------------------------ outputs

    def send(self, kind: str, permit: WorkPermitRow, reasons: list[tuple[str, str]], record: KafkaRecord,
             latched: Optional[bool] = None, targets: Optional[list[str]] = None) -> None:
        """One command (protocols §10), encoded as it would go to `interlock.commands`."""
        command = {
            "id": f"C-{permit.permit}-{len(self.commands) + 1}",
            "ts": record.ts,
            "kind": kind,
            "permit": permit.permit,
            "targets": list(permit.equipment) if targets is None else targets,
            "reasons": [{"code": code, "detail": detail, "fault": None} for code, detail in reasons],
            "trigger": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
            "zone": permit.zone,
        }
        if latched is not None:
            command["latched"] = latched
        self.commands.append(command)
        self.sent.append(json.dumps(command).encode())


def run_baseline(lines: list[bytes], zone_lookup: Literal["scan", "grid"] = "scan") -> list[dict]:
    """Run the reference pipeline over recording lines in time order (as the workloads write them); returns the commands
    it sent."""
    pipeline = BaselinePipeline(zone_lookup)
    handle = pipeline.handle
    for line in lines:
        handle(line)
    return pipeline.commands


def measure(lines: list[bytes], repeats: int = 3, budget_s: float = 30.0) -> float:
    """Records/s of the reference pipeline over `lines`: the best of up to `repeats` runs, stopping once `budget_s` is spent."""
    return best_rate(run_baseline, lines, repeats, budget_s)
