"""Every example of the field protocol sheet decodes as the sheet says it means (shared/protocols/README.md)."""

from __future__ import annotations

import datetime

import msgspec
import pytest

from schemas import payloads as wire
from schemas.decoding import decode_payload
from schemas.envelope import Record, read_envelope
from schemas.readings import GasSample, HarnessSample, PlcSnapshot, TagFix

ENVELOPE = ('{"topic":"gas.readings","partition":0,"offset":812,"tstype":"create","ts":1795358656123,"broker":-1,'
            '"key":"GAS-07","payload":"{\\"dev\\":\\"GAS-07\\",\\"fw\\":\\"2.3.1\\",\\"ts\\":1795358656120,\\"seq\\":4411,'
            '\\"r\\":[20.9,0.0,0.0,1.0],\\"alm\\":0}"}')


def test_the_kcat_envelope_example_is_a_record_whose_payload_is_a_gd4_2_reading():
    record = read_envelope(ENVELOPE, 1, 0)
    assert isinstance(record, Record) and (record.topic, record.offset, record.ts, record.key) == ("gas.readings", 812, 1795358656123, "GAS-07")
    reading, problem = decode_payload("gd4/2", record.payload)
    assert problem is None and reading.seq == 4411


def test_the_anchorline_example_is_a_fix_in_millimetres_at_epoch_milliseconds():
    (fix,), problem = decode_payload("anchorline/4", '{"tag":"T-00012","ts":"2026-03-02T08:15:30.120Z","pos":[12.31,4.02,1.10],"q":0.93}')
    expected_ts = int(datetime.datetime(2026, 3, 2, 8, 15, 30, 120000, tzinfo=datetime.timezone.utc).timestamp() * 1000)
    assert problem is None
    assert (fix.tag, fix.ts, fix.quality, fix.located) == ("T-00012", expected_ts, 0.93, True)
    assert (fix.x, fix.y, fix.z) == pytest.approx((12310, 4020, 1100))


def test_the_qubit_example_is_one_located_tag_and_one_not_located():
    fixes, problem = decode_payload("qubit/2", (
        '[{"tagId":"0x6a3f","timestamp":1795358656.120,"success":true,"data":{"coordinates":{"x":12310,"y":4020,"z":1100}}},'
        ' {"tagId":"0x6a40","timestamp":1795358656.121,"success":false}]'))
    assert problem is None
    assert fixes[0] == TagFix("0x6a3f", 1795358656120, 12310, 4020, 1100, 1.0, True)
    assert fixes[1].tag == "0x6a40" and not fixes[1].located


def test_the_gd4_3_example_is_a_reading_with_status_and_bump_time():
    reading, problem = decode_payload("gd4/3", (
        '{"dev":"GAS-07","fw":"3.0.0","ts":1795358656120,"seq":4411,"r":{"o2":20.9,"lel":0.0,"h2s":0.0,"co":1.0},'
        '"st":"ok","bump":1795300000000}'))
    assert problem is None
    assert reading == GasSample("GAS-07", "3.0.0", 1795358656120, 4411, 20.9, 0.0, 0.0, 1.0, "ok", 1795300000000, 0)


def test_the_sh2_examples_are_tied_off_at_12_5_m():
    one, problem_one = decode_payload("sh2/1", '{"dev":"HB-33","fw":"1.4.2","ts":1795358656120,"seq":77,"hook":"clipped","h":12.5,"bat":87}')
    two, problem_two = decode_payload("sh2/2", '{"dev":"HB-33","fw":"2.0.1","ts":1795358656120,"seq":78,"hooks":[1,0],"h":12.5,"bat":87}')
    assert problem_one is None and problem_two is None
    assert one == HarnessSample("HB-33", "1.4.2", 1795358656120, 77, 12500, True, 87)
    assert two.tied and two.height_mm == 12500


def test_the_plc_state_example_keeps_its_tags():
    state, problem = decode_payload("plc/1", '{"plc":"PLC-3","ts":1795358656120,"seq":9001,"tags":{"FAN-2.running":true,"WELD-5.power":false,"V-101.isolated":true}}')
    assert problem is None
    assert state == PlcSnapshot("PLC-3", 1795358656120, 9001, {"FAN-2.running": True, "WELD-5.power": False, "V-101.isolated": True})


@pytest.mark.parametrize("row", [
    '{"device":"GAS-07","family":"gas","model":"GD-4","firmware":"2.3.1","zone":"TK-3"}',
    '{"device":"T-00012","family":"uwb_tag","vendor":"anchorline","worker":"W0012"}',
    '{"device":"0x6a3f","family":"uwb_tag","vendor":"qubit","worker":"W0044"}',
    '{"device":"HB-33","family":"harness","model":"SH-2","firmware":"1.4.2","worker":"W0012"}',
    '{"device":"PLC-3","family":"plc","equipment":["WELD-5","FAN-2","V-101"],'
    ' "modbus":{"host":"127.0.0.1","port":5020,"unit":1,"enable_coils":{"WELD-5":0,"FAN-2":1},"watchdog_register":100},'
    ' "opcua":{"endpoint":"opc.tcp://127.0.0.1:4840/plc3","enable_nodes":{"WELD-5":"ns=2;s=PLC3.WELD5.Enable"},"watchdog_node":"ns=2;s=PLC3.Watchdog"}}',
])
def test_every_cmdb_example_row_decodes(row):
    assert msgspec.json.decode(row, type=wire.DeviceRow).device


def test_the_zone_example_decodes_with_its_entrance():
    zone = msgspec.json.decode(
        '{"zone":"TK-3","name":"3号储罐区","polygon":[[0,0],[20,0],[20,15],[0,15]],"z":[0,12],"risk":"I","forbid":["hot_work"],'
        '"entrance":{"polygon":[[20,5],[23,5],[23,8],[20,8]]}}', type=wire.ZoneRow)
    assert zone.forbid == ["hot_work"] and zone.entrance is not None


def test_the_qualification_example_decodes_its_dates():
    row = msgspec.json.decode(
        '{"worker":"W0012","name":"张三","employer":"C-03","medical_valid_until":"2026-12-31",'
        '"certs":[{"no":"T31010119800101123X","type":"welding","issuer":"上海市应急管理局","province":"31",'
        '"issued":"2021-05-01","expires":"2027-05-01","review_due":"2027-03-02","status":"valid"}]}', type=wire.QualificationRow)
    assert row.certs[0].expires == datetime.date(2027, 5, 1)


def test_the_permit_example_decodes():
    permit = msgspec.json.decode(
        '{"permit":"HW-113","rev":3,"type":"hot_work","grade":"1","zone":"TK-3","state":"approved",'
        '"valid_from":1795356000000,"valid_to":1795384800000,"workers":["W0012","W0044"],"guardian":"W0100","approver":"W0200",'
        '"equipment":["WELD-5"],"isolations":["V-101"],"ventilation":[],"detectors":["GAS-07"],"harnesses":[],'
        '"signatures":{"applicant":"W0012","guardian":"W0100","approver":"W0200","supervisor":"W0300"}}', type=wire.PermitRow)
    assert permit.valid_to - permit.valid_from == 8 * 3_600_000


@pytest.mark.parametrize("action", [
    '{"permit":"HW-113","action":"reset","by":"W0200","ts":1795358700000}',
    '{"permit":"HW-113","action":"ack","by":"W0100","alert":"<alert command id>","ts":1795358701000}',
])
def test_the_permit_action_examples_decode(action):
    assert msgspec.json.decode(action, type=wire.PermitAction).permit == "HW-113"
