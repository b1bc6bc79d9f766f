"""Wire structs for every payload of the field protocols (protocols §1-§9).

Device payloads (§1-§4) are strict: unknown fields are a mismatch, because a
field the approved firmware does not send means the payload no longer means
what the interlock thinks. Enterprise table rows (§5-§9) tolerate added
fields: the systems that own them extend rows without changing what the
known fields mean.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import msgspec

UInt16 = Annotated[int, msgspec.Meta(ge=0, le=65535)]
EpochMs = Annotated[int, msgspec.Meta(ge=0)]
Quality = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
UtcTime = Annotated[datetime.datetime, msgspec.Meta(tz=True)]


class _Device(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Base for strict device payloads."""


# §1 UWB positioning ---------------------------------------------------------


class AnchorlineFix(_Device):
    """`anchorline/4`: one tag update, position in metres, RFC 3339 time."""

    tag: str
    ts: UtcTime
    pos: Annotated[list[float], msgspec.Meta(min_length=3, max_length=3)]
    q: Quality


class QubitCoordinates(_Device):
    x: float
    y: float
    z: float


class QubitData(_Device):
    coordinates: QubitCoordinates


class QubitTag(_Device):
    """`qubit/2` element: one tag of a batch, millimetres, epoch seconds."""

    tagId: str
    timestamp: Annotated[float, msgspec.Meta(ge=0.0)]
    success: bool
    data: QubitData | None = None


QubitBatch = Annotated[list[QubitTag], msgspec.Meta(min_length=1)]


# §2 GD-4 four-gas detector --------------------------------------------------


class GD4v2(_Device):
    """`gd4/2`: `r` is exactly [O2, LEL, H2S, CO]; -1 marks a channel in sensor fault."""

    dev: str
    fw: str
    ts: EpochMs
    seq: UInt16
    r: Annotated[list[float], msgspec.Meta(min_length=4, max_length=4)]
    alm: Annotated[int, msgspec.Meta(ge=0, le=255)]


class GD4Channels(_Device):
    """`gd4/3` channels; `null` marks a channel in sensor fault."""

    o2: float | None
    lel: float | None
    h2s: float | None
    co: float | None


class GD4v3(_Device):
    """`gd4/3`: `r` keyed by channel, `st` health, `bump` last bump test (ms)."""

    dev: str
    fw: str
    ts: EpochMs
    seq: UInt16
    r: GD4Channels
    st: Literal["ok", "warmup", "fault", "cal_due"]
    bump: EpochMs


# §3 SH-2 smart harness ------------------------------------------------------


class SH2v1(_Device):
    """`sh2/1`: one hook, height in metres."""

    dev: str
    fw: str
    ts: EpochMs
    seq: UInt16
    hook: Literal["clipped", "unclipped"]
    h: float
    bat: Percent


class SH2v2(_Device):
    """`sh2/2`: twin lanyard, one 0/1 per hook."""

    dev: str
    fw: str
    ts: EpochMs
    seq: UInt16
    hooks: Annotated[list[Literal[0, 1]], msgspec.Meta(min_length=1)]
    h: float
    bat: Percent


# §4 PLC state ---------------------------------------------------------------


class PlcState(_Device):
    """`plc/1`: tag values `<equipment>.<signal>` published by an edge gateway."""

    plc: str
    ts: EpochMs
    seq: UInt16
    tags: dict[str, bool]


# §5-§9 enterprise tables ------------------------------------------------------


class _Row(msgspec.Struct, frozen=True):
    """Base for enterprise rows: added fields are tolerated."""


class ModbusLink(_Row):
    host: str
    port: int
    unit: int
    enable_coils: dict[str, int]
    watchdog_register: int


class OpcuaLink(_Row):
    endpoint: str
    enable_nodes: dict[str, str]
    watchdog_node: str


class DeviceRow(_Row):
    """§5: one CMDB row; `firmware` is the approved firmware."""

    device: str
    family: str
    model: str | None = None
    firmware: str | None = None
    zone: str | None = None
    vendor: str | None = None
    worker: str | None = None
    equipment: list[str] = []
    modbus: ModbusLink | None = None
    opcua: OpcuaLink | None = None


class Entrance(_Row):
    polygon: Annotated[list[Annotated[list[float], msgspec.Meta(min_length=2, max_length=2)]], msgspec.Meta(min_length=3)]


class ZoneRow(_Row):
    """§6: a zone polygon in metres with its height range and forbidden work."""

    zone: str
    polygon: Annotated[list[Annotated[list[float], msgspec.Meta(min_length=2, max_length=2)]], msgspec.Meta(min_length=3)]
    z: Annotated[list[float], msgspec.Meta(min_length=2, max_length=2)]
    risk: Literal["I", "II", "III", "IV"]
    name: str = ""
    forbid: list[str] = []
    entrance: Entrance | None = None


class Certificate(_Row):
    type: str
    status: str
    expires: datetime.date
    no: str = ""
    issuer: str = ""
    province: str = ""
    issued: datetime.date | None = None
    review_due: datetime.date | None = None


class QualificationRow(_Row):
    """§7: a worker's certificates; dates are calendar dates in UTC+8."""

    worker: str
    certs: list[Certificate] = []
    name: str = ""
    employer: str = ""
    medical_valid_until: datetime.date | None = None


class Signatures(_Row):
    applicant: str | None = None
    guardian: str | None = None
    approver: str | None = None
    supervisor: str | None = None


WorkType = Literal[
    "hot_work", "confined_space", "height", "lifting", "temp_electric", "blind_plate", "earthwork", "road_break"
]
PermitState = Literal["draft", "approved", "active", "suspended", "closed", "cancelled"]


class PermitRow(_Row):
    """§8: the full permit record, republished with `rev` + 1 on every change."""

    permit: str
    rev: int
    type: WorkType
    grade: str
    zone: str
    state: PermitState
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
    signatures: Signatures = Signatures()


class PermitAction(_Row):
    """§9: a reset of a latched stop, or a guardian's acknowledgement of an alert."""

    permit: str
    action: str
    by: str
    ts: EpochMs
    alert: str | None = None
