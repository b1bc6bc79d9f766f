"""What the simulated site puts on the wire: one Struct per payload schema of the field protocols (§1-§9).

Field order follows the protocol sheets, so encoded payloads read like the vendors' examples.
"""

from __future__ import annotations

import datetime
from typing import Literal

import msgspec
from msgspec import Struct

Risk = Literal["I", "II", "III", "IV"]
CertStatus = Literal["valid", "renewing", "suspended", "revoked"]
PermitType = Literal[
    "hot_work",
    "confined_space",
    "height",
    "lifting",
    "temp_electric",
    "blind_plate",
    "earthwork",
    "road_break",
]
PermitState = Literal["draft", "approved", "active", "suspended", "closed", "cancelled"]
DetectorStatus = Literal["ok", "warmup", "fault", "cal_due"]


# §1 UWB positioning (`rtls.position`)


class AnchorlineFix(Struct):
    """One tag update from an Anchorline gateway (`anchorline/4`): metres, RFC 3339 time."""

    tag: str
    ts: str
    pos: tuple[float, float, float]
    q: float


class Coordinates(Struct):
    """A Qubit position in millimetres."""

    x: int
    y: int
    z: int


class QubitData(Struct):
    """The located part of a Qubit fix."""

    coordinates: Coordinates


class QubitFix(Struct, omit_defaults=True):
    """One element of a Qubit gateway's array (`qubit/2`); a failed fix carries no `data`."""

    tagId: str
    timestamp: float
    success: bool
    data: QubitData | None = None


# §2 GD-4 four-gas detector (`gas.readings`)


class Gd4v2(Struct):
    """A GD-4 reading on firmware 2.x (`gd4/2`): `r` is O2, LEL, H2S, CO, with -1 for a faulted channel."""

    dev: str
    fw: str
    ts: int
    seq: int
    r: tuple[float, float, float, float]
    alm: int


class Gd4v3Readings(Struct):
    """The channels of a `gd4/3` reading; a faulted channel is null."""

    o2: float | None
    lel: float | None
    h2s: float | None
    co: float | None


class Gd4v3(Struct):
    """A GD-4 reading on firmware 3.x (`gd4/3`): readings by name, status and last bump test."""

    dev: str
    fw: str
    ts: int
    seq: int
    r: Gd4v3Readings
    st: DetectorStatus
    bump: int


# §3 SH-2 smart harness (`harness.status`)


class Sh2v1(Struct):
    """An SH-2 report on firmware 1.x (`sh2/1`): one hook."""

    dev: str
    fw: str
    ts: int
    seq: int
    hook: Literal["clipped", "unclipped"]
    h: float
    bat: int


class Sh2v2(Struct):
    """An SH-2 report on firmware 2.x (`sh2/2`): one 0/1 per lanyard hook."""

    dev: str
    fw: str
    ts: int
    seq: int
    hooks: list[int]
    h: float
    bat: int


# §4 PLC state (`plc.state`)


class PlcState(Struct):
    """A PLC edge gateway's report of every `<equipment>.<signal>` it holds."""

    plc: str
    ts: int
    seq: int
    tags: dict[str, bool]


# §5 CMDB (`cmdb.devices`)


class ModbusLink(Struct, forbid_unknown_fields=True):
    """Where the interlock writes a PLC's enables and watchdog over Modbus TCP."""

    host: str
    port: int
    unit: int
    enable_coils: dict[str, int]
    watchdog_register: int


class OpcUaLink(Struct, forbid_unknown_fields=True):
    """Where the interlock writes a PLC's enables and watchdog over OPC UA."""

    endpoint: str
    enable_nodes: dict[str, str]
    watchdog_node: str


class DeviceRow(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """A CMDB row; only the fields of the device's family are set, the rest stay off the wire."""

    device: str
    family: Literal["gas", "uwb_tag", "harness", "plc"]
    model: str | None = None
    vendor: Literal["anchorline", "qubit"] | None = None
    firmware: str | None = None
    zone: str | None = None
    worker: str | None = None
    equipment: list[str] | None = None
    modbus: ModbusLink | None = None
    opcua: OpcUaLink | None = None


# §6 Zones (`gis.zones`)


class Entrance(Struct, forbid_unknown_fields=True):
    """The area outside a confined space where its guardian stands."""

    polygon: list[tuple[float, float]]


class ZoneRow(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """A GIS zone: polygon and height range in site metres, risk grade and forbidden work types."""

    zone: str
    name: str
    polygon: list[tuple[float, float]]
    z: tuple[float, float]
    risk: Risk
    forbid: list[PermitType]
    entrance: Entrance | None = None


# §7 Qualifications (`hr.qualifications`)


class Cert(Struct, forbid_unknown_fields=True):
    """One certificate; dates are China Standard Time calendar dates."""

    no: str
    type: str
    issuer: str
    province: str
    issued: datetime.date
    expires: datetime.date
    review_due: datetime.date
    status: CertStatus


class WorkerRow(Struct, forbid_unknown_fields=True):
    """A worker's qualification record."""

    worker: str
    name: str
    employer: str
    medical_valid_until: datetime.date
    certs: list[Cert]


# §8 Permits (`ptw.permits`)


class Signatures(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """Who signed the permit; a missing signature is absent from the record."""

    applicant: str | None = None
    guardian: str | None = None
    approver: str | None = None
    supervisor: str | None = None


class PermitRow(Struct):
    """The full permit record the permit-to-work system publishes on every change."""

    permit: str
    rev: int
    type: PermitType
    grade: str
    zone: str
    state: PermitState
    valid_from: int
    valid_to: int
    workers: list[str]
    guardian: str
    approver: str
    equipment: list[str]
    isolations: list[str]
    ventilation: list[str]
    detectors: list[str]
    harnesses: list[str]
    signatures: Signatures


# §9 Permit actions (`ptw.actions`)


class PermitAction(Struct, omit_defaults=True, kw_only=True):
    """A reset by the approver or an acknowledgement of an alert by the guardian."""

    permit: str
    action: Literal["reset", "ack"]
    by: str
    alert: str | None = None
    ts: int


_encoder = msgspec.json.Encoder()


def payload_text(payload: Struct | list[Struct]) -> str:
    """The payload's JSON as the string that goes into a recording's `payload` field."""
    return _encoder.encode(payload).decode("utf-8")
