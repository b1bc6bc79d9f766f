"""The scenario generator, and the shape of the committed firmware-change recording against the protocol sheets."""

from __future__ import annotations

import datetime
import re
import shutil
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import Meta, Struct

from simulators.incidents.__main__ import regenerate
from simulators.recording import Envelope, encode_recording, read_recording
from simulators.scenario import (
    MoveWorker,
    Scenario,
    ScenarioError,
    SetFirmware,
    SetPlcSignal,
    generate,
    load_scenario,
)

INCIDENTS = Path(__file__).resolve().parents[1] / "simulators" / "incidents"
SCENARIO = INCIDENTS / "firmware_change.toml"
RECORDING = INCIDENTS / "firmware_change.jsonl"
START_MS = 1795136400000  # 2026-11-20T09:00:00+08:00
RFC3339_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ENVELOPE_FIELDS = ["topic", "partition", "offset", "tstype", "ts", "broker", "key", "payload"]

UInt16 = Annotated[int, Meta(ge=0, le=65535)]


# The protocol sheets as strict Structs, written from the sheets and independent of the generator's own.


class Strict(Struct, forbid_unknown_fields=True):
    """A payload that must not carry fields its sheet does not list."""


class AnchorlineFix(Strict):
    tag: str
    ts: str
    pos: tuple[float, float, float]
    q: Annotated[float, Meta(ge=0.0, le=1.0)]


class QubitCoordinates(Strict):
    x: int
    y: int
    z: int


class QubitData(Strict):
    coordinates: QubitCoordinates


class QubitFix(Strict):
    tagId: str
    timestamp: float
    success: bool
    data: QubitData | None = None


class Gd4v2(Strict):
    dev: str
    fw: str
    ts: int
    seq: UInt16
    r: tuple[float, float, float, float]
    alm: Annotated[int, Meta(ge=0, le=255)]


class Gd4v3Channels(Strict):
    o2: float | None
    lel: float | None
    h2s: float | None
    co: float | None


class Gd4v3(Strict):
    dev: str
    fw: str
    ts: int
    seq: UInt16
    r: Gd4v3Channels
    st: Literal["ok", "warmup", "fault", "cal_due"]
    bump: int


class Sh2v1(Strict):
    dev: str
    fw: str
    ts: int
    seq: UInt16
    hook: Literal["clipped", "unclipped"]
    h: float
    bat: Annotated[int, Meta(ge=0, le=100)]


class Sh2v2(Strict):
    dev: str
    fw: str
    ts: int
    seq: UInt16
    hooks: list[Literal[0, 1]]
    h: float
    bat: Annotated[int, Meta(ge=0, le=100)]


class PlcState(Strict):
    plc: str
    ts: int
    seq: UInt16
    tags: dict[str, bool]


class Modbus(Strict):
    host: str
    port: int
    unit: int
    enable_coils: dict[str, int]
    watchdog_register: int


class CmdbRow(Strict):
    device: str
    family: Literal["gas", "uwb_tag", "harness", "plc"]
    model: str | None = None
    vendor: Literal["anchorline", "qubit"] | None = None
    firmware: str | None = None
    zone: str | None = None
    worker: str | None = None
    equipment: list[str] | None = None
    modbus: Modbus | None = None


class Entrance(Strict):
    polygon: list[tuple[float, float]]


class ZoneRow(Strict):
    zone: str
    name: str
    polygon: list[tuple[float, float]]
    z: tuple[float, float]
    risk: Literal["I", "II", "III", "IV"]
    forbid: list[str]
    entrance: Entrance | None = None


class Cert(Strict):
    no: str
    type: str
    issuer: str
    province: str
    issued: datetime.date
    expires: datetime.date
    review_due: datetime.date
    status: Literal["valid", "renewing", "suspended", "revoked"]


class WorkerRow(Strict):
    worker: str
    name: str
    employer: str
    medical_valid_until: datetime.date
    certs: list[Cert]


class Signatures(Strict):
    applicant: str
    guardian: str
    approver: str
    supervisor: str


class PermitRow(Strict):
    permit: str
    rev: int
    type: Literal["hot_work", "confined_space", "height", "lifting", "temp_electric", "blind_plate", "earthwork", "road_break"]
    grade: str
    zone: str
    state: Literal["draft", "approved", "active", "suspended", "closed", "cancelled"]
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


class PermitAction(Strict):
    permit: str
    action: Literal["reset", "ack"]
    by: str
    ts: int
    alert: str | None = None


class Firmware(Struct):
    """Just the firmware a device payload reports, to pick its schema."""

    fw: str


TABLE_ROWS = {
    "cmdb.devices": CmdbRow,
    "gis.zones": ZoneRow,
    "hr.qualifications": WorkerRow,
    "ptw.permits": PermitRow,
    "ptw.actions": PermitAction,
}


def device_payload_type(topic: str, payload: str) -> type:
    """The strict Struct a device payload must match: by topic, and for GD-4 and SH-2 by firmware major."""
    if topic == "rtls.position":
        return list[QubitFix] if payload.startswith("[") else AnchorlineFix
    if topic == "plc.state":
        return PlcState
    major = msgspec.json.decode(payload, type=Firmware).fw.split(".")[0]
    shapes = {"gas.readings": {"2": Gd4v2, "3": Gd4v3}, "harness.status": {"1": Sh2v1, "2": Sh2v2}}
    return shapes[topic][major]


def decode(envelope: Envelope):
    """The envelope's payload as the Struct its protocol section describes."""
    kind = TABLE_ROWS.get(envelope.topic) or device_payload_type(envelope.topic, envelope.payload)
    return msgspec.json.decode(envelope.payload, type=kind)


def seconds(envelope: Envelope) -> float:
    """The record's time in seconds from the scenario's start."""
    return (envelope.ts - START_MS) / 1000


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SCENARIO)


@pytest.fixture(scope="module")
def recording() -> list[Envelope]:
    return read_recording(RECORDING)


def keyed(recording: list[Envelope], topic: str, key: str) -> list[Envelope]:
    return [e for e in recording if e.topic == topic and e.key == key]


# Determinism


def test_same_scenario_generates_byte_identical_recordings(scenario):
    first = encode_recording(generate(scenario))
    second = encode_recording(generate(load_scenario(SCENARIO)))
    assert first == second


def test_regenerating_firmware_change_reproduces_the_committed_recording(scenario):
    assert encode_recording(generate(scenario)) == RECORDING.read_bytes()


def test_incidents_command_writes_the_recording_beside_its_scenario(tmp_path):
    copy = tmp_path / SCENARIO.name
    shutil.copy(SCENARIO, copy)
    written = regenerate(copy)
    assert written == tmp_path / "firmware_change.jsonl"
    assert written.read_bytes() == RECORDING.read_bytes()


def test_another_seed_changes_the_noise_but_not_the_record_count(scenario):
    reseeded = msgspec.structs.replace(scenario, seed=scenario.seed + 1)
    assert encode_recording(generate(reseeded)) != RECORDING.read_bytes()
    assert len(generate(reseeded)) == len(generate(scenario))


# Envelopes


def test_every_line_is_a_kcat_envelope_with_fields_in_kcat_order():
    for line in RECORDING.read_bytes().splitlines():
        raw = msgspec.json.decode(line)
        assert list(raw) == ENVELOPE_FIELDS
        assert raw["partition"] == 0 and raw["tstype"] == "create" and raw["broker"] == -1
        assert isinstance(raw["ts"], int) and isinstance(raw["offset"], int)
        assert isinstance(raw["key"], str) and isinstance(raw["payload"], str)


def test_offsets_count_up_from_zero_per_topic(recording):
    expected: dict[str, int] = {}
    for envelope in recording:
        assert envelope.offset == expected.get(envelope.topic, 0)
        expected[envelope.topic] = envelope.offset + 1
    assert set(expected) == {
        "rtls.position",
        "gas.readings",
        "harness.status",
        "plc.state",
        "cmdb.devices",
        "gis.zones",
        "hr.qualifications",
        "ptw.permits",
        "ptw.actions",
    }


def test_lines_are_in_record_ts_order(recording):
    times = [e.ts for e in recording]
    assert times == sorted(times)


def test_recording_covers_seven_minutes_from_nine_china_time(recording):
    telemetry = [e for e in recording if e.topic == "gas.readings"]
    assert telemetry[0].ts >= START_MS
    assert recording[0].topic == "cmdb.devices" and recording[0].ts < START_MS
    assert 415 <= seconds(recording[-1]) <= 421


# Payload shapes


def test_every_payload_matches_its_protocol_section(recording):
    for envelope in recording:
        decode(envelope)  # raises on any field, type or value the sheet does not allow


def test_gas_07_sends_a_four_number_array_before_the_upgrade_and_an_object_after(recording):
    readings = [msgspec.json.decode(e.payload) for e in keyed(recording, "gas.readings", "GAS-07")]
    before = [r for r in readings if r["fw"] == "2.3.1"]
    after = [r for r in readings if r["fw"] == "3.0.0"]
    assert before and after and len(before) + len(after) == len(readings)
    assert readings == before + after
    assert all(isinstance(r["r"], list) and len(r["r"]) == 4 and r["alm"] == 0 for r in before)
    assert all(set(r["r"]) == {"o2", "lel", "h2s", "co"} and "alm" not in r for r in after)
    assert all(r["st"] == "ok" and 0 < r["ts"] - r["bump"] < 24 * 3600 * 1000 for r in after)


def test_qubit_payloads_are_arrays_of_located_tags_in_millimetres(recording, scenario):
    batches = keyed(recording, "rtls.position", scenario.rtls.qubit_gateway)
    assert batches
    for envelope in batches:
        fixes = msgspec.json.decode(envelope.payload, type=list[QubitFix])
        assert 1 <= len(fixes) <= scenario.rtls.qubit_batch
        for fix in fixes:
            assert fix.success and fix.data is not None
            assert abs(fix.timestamp * 1000 - envelope.ts) <= 40  # seconds on the wire, near the record's ms
            assert fix.data.coordinates.x > 1000 or fix.data.coordinates.y > 1000  # mm, not metres


def test_anchorline_timestamps_are_rfc3339_utc_with_milliseconds(recording):
    fixes = [decode(e) for e in recording if e.topic == "rtls.position" and not e.payload.startswith("[")]
    assert fixes
    for fix in fixes:
        assert RFC3339_MS_UTC.match(fix.ts), fix.ts
        assert all(abs(v) < 100 for v in fix.pos)  # metres
        assert 0.8 <= fix.q <= 0.99


def test_device_clocks_run_at_most_40_ms_behind_the_record_ts(recording):
    for envelope in recording:
        if envelope.topic in ("gas.readings", "harness.status", "plc.state", "ptw.actions"):
            lag = envelope.ts - msgspec.json.decode(envelope.payload)["ts"]
        elif envelope.topic == "rtls.position" and envelope.payload.startswith("{"):
            stamp = datetime.datetime.fromisoformat(decode(envelope).ts)
            lag = envelope.ts - round(stamp.timestamp() * 1000)
        else:
            continue
        assert 0 <= lag <= 40, envelope


def test_both_rtls_vendors_report_every_second(recording, scenario):
    tags = {row.device: row.vendor for row in scenario.devices if row.family == "uwb_tag"}
    assert set(tags.values()) == {"anchorline", "qubit"}
    seen: dict[str, list[int]] = {tag: [] for tag in tags}
    for envelope in recording:
        if envelope.topic == "rtls.position":
            payload = msgspec.json.decode(envelope.payload)
            for fix in payload if isinstance(payload, list) else [payload]:
                seen[fix.get("tag") or fix.get("tagId")].append(envelope.ts)
    for tag, times in seen.items():
        assert len(times) >= 419, tag
        assert max(b - a for a, b in zip(times, times[1:])) <= 1020, tag


# The story


def test_permits_go_active_at_rev_2_about_20_s_in(recording):
    permits = [decode(e) for e in recording if e.topic == "ptw.permits"]
    assert [(p.permit, p.rev, p.state) for p in permits] == [
        ("HW-201", 1, "approved"),
        ("CS-202", 1, "approved"),
        ("HT-203", 1, "approved"),
        ("HW-201", 2, "active"),
        ("CS-202", 2, "active"),
        ("HT-203", 2, "active"),
    ]
    activations = [seconds(e) for e in recording if e.topic == "ptw.permits" and '"rev":2' in e.payload]
    assert activations == [20.0, 20.3, 20.6]


def test_upgrade_then_cmdb_approval_then_reset_by_the_approver_in_that_order(recording):
    first_upgrade = next(e for e in keyed(recording, "gas.readings", "GAS-07") if '"fw":"3.0.0"' in e.payload)
    approval = next(e for e in keyed(recording, "cmdb.devices", "GAS-07") if '"firmware":"3.0.0"' in e.payload)
    [reset] = [e for e in recording if e.topic == "ptw.actions"]
    assert seconds(first_upgrade) < seconds(approval) < seconds(reset)
    assert 120 <= seconds(first_upgrade) < 121.1
    assert seconds(approval) == 200.0 and seconds(reset) == 240.0
    hot_work = next(decode(e) for e in recording if e.topic == "ptw.permits" and e.key == "HW-201")
    action = decode(reset)
    assert (action.permit, action.action, action.by) == ("HW-201", "reset", hot_work.approver)
    assert hot_work.approver != hot_work.signatures.applicant


def test_gas_07_keeps_reporting_every_second_through_the_upgrade(recording):
    times = [e.ts for e in keyed(recording, "gas.readings", "GAS-07")]
    assert max(b - a for a, b in zip(times, times[1:])) <= 1020
    approval = START_MS + 200_000
    assert sum(1 for t in times if approval < t < START_MS + 240_000) >= 5  # the gas re-test before the reset


def test_gas_seq_increments_by_one_and_wraps_at_65535(recording):
    for device in ("GAS-07", "GAS-11", "GAS-12"):
        seqs = [decode(e).seq for e in keyed(recording, "gas.readings", device)]
        assert all(b == (a + 1) % 65536 for a, b in zip(seqs, seqs[1:])), device
    wrapped = [decode(e).seq for e in keyed(recording, "gas.readings", "GAS-11")]
    assert 65535 in wrapped and 0 in wrapped


def test_plc_state_is_published_every_5_s_and_on_change(recording, scenario):
    changes = {(e.plc, round(e.at * 1000)) for e in scenario.timeline if isinstance(e, SetPlcSignal)}
    for plc in ("PLC-3", "PLC-4", "PLC-5"):
        reports = keyed(recording, "plc.state", plc)
        times = [e.ts for e in reports]
        assert times[0] - START_MS < 5000
        assert max(b - a for a, b in zip(times, times[1:])) <= 5000
        for change_plc, offset in changes:
            if change_plc == plc:
                assert START_MS + offset in times
        for report in reports:
            assert set(decode(report).tags) == set(scenario.plc[plc].tags)


def test_welder_power_drops_after_the_upgrade_and_returns_after_the_reset(recording):
    power = [(seconds(e), decode(e).tags["WELD-5.power"]) for e in keyed(recording, "plc.state", "PLC-3")]
    changes = [(t, on) for (t, on), (_, before) in zip(power[1:], power) if on != before]
    assert changes == [(30.0, True), (122.0, False), (250.0, True)]


def test_harness_hook_change_is_reported_at_once(recording):
    reports = {seconds(e): decode(e).hooks for e in keyed(recording, "harness.status", "HB-32")}
    assert reports[300.0] == [1, 0] and reports[306.0] == [1, 1]


# Scenario checking


def test_unknown_key_in_a_scenario_file_is_rejected(tmp_path):
    typo = tmp_path / "typo.toml"
    typo.write_text(SCENARIO.read_text(encoding="utf-8").replace("duration = 420.0", "duraton = 420.0"), encoding="utf-8")
    with pytest.raises(msgspec.ValidationError):
        load_scenario(typo)


def test_timeline_naming_an_unknown_device_is_rejected(scenario):
    broken = msgspec.structs.replace(scenario, timeline=[SetFirmware(at=10.0, device="GAS-99", firmware="3.0.0")])
    with pytest.raises(ScenarioError, match="GAS-99"):
        generate(broken)


def test_firmware_without_a_known_payload_shape_is_rejected(scenario):
    broken = msgspec.structs.replace(scenario, timeline=[SetFirmware(at=10.0, device="GAS-07", firmware="4.0.0")])
    with pytest.raises(ScenarioError, match="4.0.0"):
        generate(broken)


def test_moving_to_an_unnamed_point_is_rejected(scenario):
    broken = msgspec.structs.replace(scenario, timeline=[MoveWorker(at=10.0, worker="W0041", to="nowhere")])
    with pytest.raises(ScenarioError, match="nowhere"):
        generate(broken)


def test_a_worker_walks_in_a_straight_line_to_the_point(recording, scenario):
    door = scenario.points["ws_door"]
    fixes = []
    for envelope in keyed(recording, "rtls.position", scenario.rtls.qubit_gateway):
        for fix in msgspec.json.decode(envelope.payload, type=list[QubitFix]):
            if fix.tagId == "0x6a41":
                fixes.append((seconds(envelope), fix.data.coordinates))
    before = [c for t, c in fixes if t < 150]
    after = [c for t, c in fixes if t > 160]
    assert all(abs(c.x - 45000) <= 60 and abs(c.y - 45000) <= 60 for c in before)
    assert all(abs(c.x - door[0] * 1000) <= 60 and abs(c.y - door[1] * 1000) <= 60 for c in after)
