"""Specification: what the interlock accepts from devices and tables as evidence (protocols §0-§9).

Telemetry is evidence only when it comes from a device in the CMDB, fits the
schema of the device's approved firmware, reports that firmware, carries a
clock close to the record time and a new sequence number. Everything else is
a graded fault that says exactly what was wrong.
"""

from __future__ import annotations

import pytest

from schemas.envelope import UnreadableRecord
from site_records import (
    codes,
    commands,
    faults,
    PR1,
    SECOND,
    HotWorkSite,
    anchorline,
    gas_v2,
    gas_v3,
    harness_v1,
    harness_v2,
    hot_work_permit,
    plc_state,
    qualification,
    qubit,
)

QUIET = 60 * SECOND




def only_fault(site: HotWorkSite, code: str, since: int = 0) -> dict:
    raised = faults(site, code, "raised", since)
    assert len(raised) == 1, f"expected one {code}, got {[(f['code'], f['state']) for f in faults(site, since=since)]}"
    return raised[0]


def running(first_seq: int = 0) -> HotWorkSite:
    """HW-1 enabled; GAS-07 (GD-4, approved 2.3.1) is its detector, its sequence numbers starting at `first_seq`."""
    s = HotWorkSite()
    s.seq["GAS-07"] = first_seq - 1
    s.started()
    assert commands(s, "ENABLE")
    return s


def v2(site: HotWorkSite, **changes) -> dict:
    payload = gas_v2("GAS-07", site.now - 20, site.next_seq("GAS-07"))
    payload.update(changes)
    return payload


def advance(site: HotWorkSite, ts: int) -> None:
    """Let site time pass to `ts` without input (a live run's clock)."""
    site.outputs.extend(site.site.advance(ts))
    site.now = ts


def register(site: HotWorkSite, device: str, **row) -> None:
    site.send("cmdb.devices", device, dict(row, device=device))


def stopped_on(site: HotWorkSite, code: str, since: int) -> tuple[dict, dict]:
    """The HARD_STOP since `since` resting on the `code` fault, and that fault (which must be CRITICAL)."""
    (fault,) = faults(site, code, "raised", since)
    stops = [c for c in commands(site, "HARD_STOP", since) if code in codes(c)]
    assert stops, f"no HARD_STOP rests on {code}"
    reason = next(r for r in stops[0]["reasons"] if r["code"] == code)
    assert reason["fault"] == fault["id"]
    assert fault["grade"] == "CRITICAL"
    return stops[0], fault


# ---------------------------------------------------------------------------------------------- the CMDB


def test_telemetry_from_a_device_without_a_cmdb_row_is_device_unknown():
    s = running()
    mark = len(s.outputs)
    s.send("gas.readings", "GAS-99", gas_v2("GAS-99", s.now - 20, 1))
    fault = only_fault(s, "DEVICE_UNKNOWN", mark)
    assert fault["grade"] == "MAJOR"  # nothing active rests on GAS-99
    assert fault["device"] == "GAS-99"
    assert fault["permits"] == []
    assert fault["source"] == {"topic": "gas.readings", "partition": 0, "offset": 6}
    assert not commands(s, since=mark)


def test_telemetry_from_a_device_registered_as_another_family_is_device_unknown():
    s = running()
    mark = len(s.outputs)
    s.send("gas.readings", "T-W1", gas_v2("T-W1", s.now - 20, 1))
    assert only_fault(s, "DEVICE_UNKNOWN", mark)["device"] == "T-W1"


def test_a_device_whose_cmdb_row_arrives_after_its_first_telemetry_becomes_evidence():
    s = running()
    s.send("gas.readings", "GAS-99", gas_v2("GAS-99", s.now - 20, 1))
    s.now += SECOND
    s.send("gas.readings", "GAS-99", gas_v2("GAS-99", s.now - 20, 2))
    register(s, "GAS-99", family="gas", model="GD-4", firmware="2.3.1")
    s.now += SECOND
    s.send("gas.readings", "GAS-99", gas_v2("GAS-99", s.now - 20, 3))
    (cleared,) = faults(s, "DEVICE_UNKNOWN", "cleared")
    assert cleared["device"] == "GAS-99"
    assert cleared["count"] == 2


def test_a_decommissioned_detector_is_no_longer_evidence_and_stops_its_permit():
    s = running()
    s.send("cmdb.devices", "GAS-07", None)  # tombstone
    mark = len(s.outputs)
    s.gas()
    stopped_on(s, "DEVICE_UNKNOWN", mark)


def test_a_cmdb_row_naming_firmware_the_protocol_catalog_does_not_know_is_model_unsupported():
    s = running()
    register(s, "GAS-07", family="gas", model="GD-4", firmware="4.0.0")
    mark = len(s.outputs)
    s.gas(gas_v2("GAS-07", s.now - 20, s.next_seq("GAS-07"), fw="4.0.0"))
    stop, fault = stopped_on(s, "DEVICE_MODEL_UNSUPPORTED", mark)
    assert fault["device"] == "GAS-07"
    assert stop["latched"] is True


def test_a_cmdb_row_naming_a_model_the_catalog_does_not_know_is_model_unsupported():
    s = running()
    register(s, "GAS-55", family="gas", model="GD-9", firmware="1.0.0")
    mark = len(s.outputs)
    s.send("gas.readings", "GAS-55", gas_v2("GAS-55", s.now - 20, 1, fw="1.0.0"))
    assert only_fault(s, "DEVICE_MODEL_UNSUPPORTED", mark)["grade"] == "MAJOR"


# ---------------------------------------------------------------------------------------------- payload vs. the approved schema


def test_a_3x_payload_from_a_detector_approved_for_2x_is_a_schema_mismatch_naming_the_field_upgrade():
    s = running()
    mark = len(s.outputs)
    s.gas(gas_v3("GAS-07", s.now - 20, s.next_seq("GAS-07")))
    stop, fault = stopped_on(s, "PAYLOAD_SCHEMA_MISMATCH", mark)
    assert fault["device"] == "GAS-07"
    assert fault["permits"] == ["HW-1"]
    assert fault["firmware_reported"] == "3.0.0"
    assert fault["firmware_approved"] == "2.3.1"
    assert fault["schema_expected"] == "gd4/2"
    assert fault["schema_matches"] == ["gd4/3"]
    assert fault["path"] == "$.r"
    assert fault["expected"] == "array"
    assert fault["got"] == "object with keys o2, lel, h2s, co"
    assert stop["trigger"] == fault["source"]
    assert stop["latched"] is True


def test_a_schema_mismatch_on_a_detector_no_active_permit_uses_stays_major():
    s = running()
    register(s, "GAS-08", family="gas", model="GD-4", firmware="2.3.1")
    mark = len(s.outputs)
    s.send("gas.readings", "GAS-08", gas_v3("GAS-08", s.now - 20, 1))
    fault = only_fault(s, "PAYLOAD_SCHEMA_MISMATCH", mark)
    assert fault["grade"] == "MAJOR"
    assert fault["permits"] == []
    assert not commands(s, since=mark)


def test_a_gd4_2x_reading_must_have_exactly_four_channels():
    s = running()
    mark = len(s.outputs)
    s.gas(v2(s, r=[20.9, 0.0, 0.0, 1.0, 0.0]))
    _, fault = stopped_on(s, "PAYLOAD_SCHEMA_MISMATCH", mark)
    assert (fault["path"], fault["got"]) == ("$.r", "array of length 5")


def test_a_field_the_approved_firmware_does_not_send_is_a_schema_mismatch():
    s = running()
    mark = len(s.outputs)
    s.gas(v2(s, extra=1))
    _, fault = stopped_on(s, "PAYLOAD_SCHEMA_MISMATCH", mark)
    assert (fault["path"], fault["got"]) == ("$.extra", "unknown field")


def test_a_missing_field_is_a_schema_mismatch():
    s = running()
    payload = v2(s)
    del payload["alm"]
    mark = len(s.outputs)
    s.gas(payload)
    _, fault = stopped_on(s, "PAYLOAD_SCHEMA_MISMATCH", mark)
    assert (fault["path"], fault["got"]) == ("$.alm", "missing")


def test_a_sequence_number_beyond_uint16_is_a_schema_mismatch():
    s = running()
    mark = len(s.outputs)
    s.gas(v2(s, seq=70000))
    _, fault = stopped_on(s, "PAYLOAD_SCHEMA_MISMATCH", mark)
    assert fault["path"] == "$.seq"


def test_a_harness_sending_the_twin_lanyard_shape_while_approved_for_1x_is_a_schema_mismatch():
    s = running()
    register(s, "HB-33", family="harness", model="SH-2", firmware="1.4.2", worker="W1")
    mark = len(s.outputs)
    s.send("harness.status", "HB-33", harness_v2("HB-33", s.now - 20, 1))
    fault = only_fault(s, "PAYLOAD_SCHEMA_MISMATCH", mark)
    assert fault["schema_expected"] == "sh2/1"
    assert fault["schema_matches"] == ["sh2/2"]
    assert fault["firmware_reported"] == "2.0.1"


@pytest.mark.parametrize(("r", "path"), [
    ([35.0, 0.0, 0.0, 1.0], "$.r[0]"),
    ([20.9, 101.0, 0.0, 1.0], "$.r[1]"),
    ([20.9, -2.0, 0.0, 1.0], "$.r[1]"),
    ([20.9, 0.0, 600.0, 1.0], "$.r[2]"),
    ([20.9, 0.0, 0.0, 2500.0], "$.r[3]"),
])
def test_a_gas_value_outside_the_measuring_range_is_corrupt_not_a_level(r, path):
    s = running()
    mark = len(s.outputs)
    s.gas(v2(s, r=r))
    _, fault = stopped_on(s, "PAYLOAD_VALUE_OUT_OF_RANGE", mark)
    assert fault["path"] == path
    assert not faults(s, "GAS_LIMIT_EXCEEDED")


def test_a_harness_height_outside_the_barometer_range_is_out_of_range():
    s = running()
    register(s, "HB-33", family="harness", model="SH-2", firmware="1.4.2", worker="W1")
    mark = len(s.outputs)
    s.send("harness.status", "HB-33", harness_v1("HB-33", s.now - 20, 1, h=2000.0))
    fault = only_fault(s, "PAYLOAD_VALUE_OUT_OF_RANGE", mark)
    assert fault["path"] == "$.h"


@pytest.mark.parametrize("payload", ['{"dev": "GAS-07", ', "not json at all", '{"x":"' + "a" * 70_000 + '"}'])
def test_a_payload_that_is_not_json_or_too_large_is_unparseable(payload):
    s = running()
    mark = len(s.outputs)
    s.gas(payload)
    _, fault = stopped_on(s, "PAYLOAD_UNPARSEABLE", mark)
    assert fault["device"] == "GAS-07"


def test_a_null_payload_on_a_telemetry_stream_is_unparseable():
    s = running()
    mark = len(s.outputs)
    s.send("gas.readings", "GAS-07", None)
    stopped_on(s, "PAYLOAD_UNPARSEABLE", mark)


def test_a_payload_that_is_not_utf8_is_unparseable():
    s = running()
    mark = len(s.outputs)
    s.gas(b'{"dev":"GAS-07","fw":"2.3.1","ts":1,"seq":1,"r":[20.9,0,0,1],"alm":0,"x":"\xff"}')
    stopped_on(s, "PAYLOAD_UNPARSEABLE", mark)


def test_a_payload_whose_device_id_differs_from_the_record_key_is_not_trusted():
    s = running()
    mark = len(s.outputs)
    s.gas(v2(s, dev="GAS-08"))
    _, fault = stopped_on(s, "DEVICE_ID_MISMATCH", mark)
    assert "GAS-08" in fault["detail"]


# ---------------------------------------------------------------------------------------------- firmware


def test_unapproved_firmware_is_not_evidence_even_when_the_payload_fits():
    s = running()
    mark = len(s.outputs)
    s.gas(v2(s, fw="2.4.0"))
    stop, fault = stopped_on(s, "FIRMWARE_UNAPPROVED", mark)
    assert fault["firmware_reported"] == "2.4.0"
    assert fault["firmware_approved"] == "2.3.1"
    assert fault["schema_expected"] == "gd4/2"
    assert fault["device"] == "GAS-07"
    assert fault["permits"] == ["HW-1"]
    assert not faults(s, "PAYLOAD_SCHEMA_MISMATCH")


def test_an_unapproved_firmware_fault_lists_only_schemas_the_payload_really_fits():
    s = running()
    mark = len(s.outputs)
    s.gas(v2(s, fw="3.0.0"))  # the 2.x shape, reporting a 3.x version
    _, fault = stopped_on(s, "FIRMWARE_UNAPPROVED", mark)
    assert "gd4/3" not in (fault.get("schema_matches") or [])


def test_a_detector_upgraded_in_the_field_is_evidence_again_once_the_cmdb_approves_the_new_firmware():
    s = running()
    s.gas(gas_v3("GAS-07", s.now - 20, s.next_seq("GAS-07")))
    register(s, "GAS-07", family="gas", model="GD-4", firmware="3.0.0")
    mark = len(s.outputs)
    s.now += SECOND
    s.gas(gas_v3("GAS-07", s.now - 20, s.next_seq("GAS-07")))
    (cleared,) = faults(s, "PAYLOAD_SCHEMA_MISMATCH", "cleared", mark)
    assert cleared["device"] == "GAS-07"


# ---------------------------------------------------------------------------------------------- device clocks


@pytest.mark.parametrize("offset", [5000, -5000])
def test_a_device_clock_within_5_s_of_the_record_time_is_accepted(offset):
    s = running()
    mark = len(s.outputs)
    s.gas(gas_v2("GAS-07", s.now + offset, s.next_seq("GAS-07")))
    assert not faults(s, since=mark)
    assert not commands(s, since=mark)


@pytest.mark.parametrize("offset", [5001, -5001])
def test_a_device_clock_more_than_5_s_from_the_record_time_is_clock_skew(offset):
    s = running()
    mark = len(s.outputs)
    s.gas(gas_v2("GAS-07", s.now + offset, s.next_seq("GAS-07")))
    _, fault = stopped_on(s, "DEVICE_CLOCK_SKEW", mark)
    assert fault["device"] == "GAS-07"


def test_a_skewed_reading_does_not_count_towards_the_gas_test():
    s = HotWorkSite()
    s.tables()
    s.run(4)
    s.gas(gas_v2("GAS-07", s.now - 6000, s.next_seq("GAS-07")))
    s.activate()
    assert not commands(s, "ENABLE")


def test_a_tag_fix_whose_time_is_more_than_5_s_from_the_record_time_is_not_presence():
    s = running()
    mark = len(s.outputs)
    for _ in range(31):
        s.send("rtls.position", "T-G1", anchorline("T-G1", s.now - 5001, 5.0, 5.0))
        s.run(1, skip=("G1",))
    fault = only_fault(s, "DEVICE_CLOCK_SKEW", mark)
    assert fault["device"] == "T-G1"
    assert any("GUARDIAN_ABSENT" in codes(c) for c in commands(s, "HARD_STOP", mark))


# ---------------------------------------------------------------------------------------------- sequence numbers


def test_a_duplicate_sequence_number_is_dropped():
    s = running()
    payload = v2(s)
    s.gas(payload)
    mark = len(s.outputs)
    s.gas(dict(payload, r=[20.9, 50.0, 0.0, 1.0]))  # same seq, same device time: a replay, not a reading
    fault = only_fault(s, "SEQ_DUPLICATE", mark)
    assert fault["grade"] == "MINOR"
    assert fault["device"] == "GAS-07"
    assert not faults(s, "GAS_LIMIT_EXCEEDED")
    assert not commands(s, since=mark)


def test_lost_messages_are_counted_in_one_sequence_gap_fault():
    s = running()
    s.seq["GAS-07"] += 3  # 3 messages lost
    mark = len(s.outputs)
    s.gas()
    fault = only_fault(s, "SEQ_GAP", mark)
    assert fault["count"] == 3
    assert fault["grade"] == "MINOR"
    assert not commands(s, since=mark)  # the reading itself is evidence
    s.now += SECOND
    s.seq["GAS-07"] += 2  # 2 more lost
    s.gas()
    assert len(faults(s, "SEQ_GAP")) == 1  # raised once, counted
    advance(s, s.now + QUIET)
    (cleared,) = faults(s, "SEQ_GAP", "cleared")
    assert cleared["count"] == 5


def test_a_sequence_number_wrapping_from_65535_to_0_is_not_a_gap():
    s = running(first_seq=65530)  # 65530..65535 during the start
    assert s.seq["GAS-07"] == 65535
    s.gas()  # seq 0
    s.now += SECOND
    s.gas()  # seq 1
    assert not faults(s, "SEQ_GAP")
    assert not faults(s, "SEQ_RESET")
    assert not faults(s, "SEQ_DUPLICATE")


def test_messages_lost_across_the_wrap_are_counted():
    s = running(first_seq=65529)  # 65529..65534 during the start
    s.seq["GAS-07"] = 0
    s.gas()  # seq 1: 65535 and 0 were lost
    assert only_fault(s, "SEQ_GAP")["count"] == 2


def test_a_device_that_restarts_its_sequence_with_its_clock_moving_forward_is_a_reset():
    s = running(first_seq=200)
    s.seq["GAS-07"] = -1
    mark = len(s.outputs)
    s.gas()  # seq 0, device clock 1 s after the last reading
    fault = only_fault(s, "SEQ_RESET", mark)
    assert fault["grade"] == "MINOR"
    assert not faults(s, "SEQ_DUPLICATE")
    assert not faults(s, "SEQ_GAP")
    s.now += SECOND
    mark = len(s.outputs)
    s.gas(v2(s, r=[20.9, 30.0, 0.0, 1.0]))  # readings after the restart are evidence again
    stopped_on(s, "GAS_LIMIT_EXCEEDED", mark)


def test_an_old_sequence_number_with_an_old_device_time_is_a_replay_and_dropped():
    s = running()
    old = v2(s)
    s.gas(old)
    s.now += SECOND
    s.gas()
    s.now += SECOND
    mark = len(s.outputs)
    s.gas(dict(old, r=[20.9, 50.0, 0.0, 1.0]))
    only_fault(s, "SEQ_DUPLICATE", mark)
    assert not commands(s, since=mark)


def test_a_restart_after_more_than_half_the_sequence_ring_is_a_reset_not_a_gap_of_thousands():
    s = running(first_seq=40000)  # 40000..40005 during the start
    s.seq["GAS-07"] = -1
    s.gas()  # seq 0, one second later on the device clock: nothing can have been lost
    assert not faults(s, "SEQ_GAP")
    only_fault(s, "SEQ_RESET")


def test_a_tag_fix_not_newer_than_the_last_is_a_duplicate_and_dropped():
    s = running()
    fix = anchorline("T-W1", s.now - 30, 10.0, 5.0)
    s.send("rtls.position", "T-W1", fix)
    mark = len(s.outputs)
    s.send("rtls.position", "T-W1", dict(fix, pos=[100.0, 100.0, 1.2]))
    assert only_fault(s, "SEQ_DUPLICATE", mark)["device"] == "T-W1"


# ---------------------------------------------------------------------------------------------- positions: two vendors


def test_an_anchorline_fix_is_in_metres():
    s = HotWorkSite()
    register(s, "T-X9", family="uwb_tag", vendor="anchorline", worker="X9")
    s.started()
    s.send("rtls.position", "T-X9", anchorline("T-X9", s.now - 30, 40.0, 5.0))  # 40 m: east of the 30 m zone
    s.run(3)
    assert not commands(s, "HARD_STOP")
    s.send("rtls.position", "T-X9", anchorline("T-X9", s.now - 30, 25.0, 5.0))  # 25 m: inside
    assert any("UNAUTHORISED_ENTRANT" in codes(c) for c in commands(s, "HARD_STOP"))


def test_a_qubit_batch_places_each_located_tag_in_millimetres():
    s = HotWorkSite()
    register(s, "0x6a40", family="uwb_tag", vendor="qubit", worker="X8")
    register(s, "0x6a41", family="uwb_tag", vendor="qubit", worker="X9")
    s.started()
    mark = len(s.outputs)
    s.send("rtls.position", "gw-2", qubit(s.now - 30, ("0x6a41", 100_000, 100_000, 1200), ("0x6a40", 25_000, 5_000, 1200)))
    (stop,) = commands(s, "HARD_STOP", mark)
    assert codes(stop) == ["UNAUTHORISED_ENTRANT"]
    assert "X8" in stop["reasons"][0]["detail"]
    assert "X9" not in stop["reasons"][0]["detail"]


def test_a_guardian_located_through_qubit_keeps_the_permit_running():
    s = HotWorkSite()
    register(s, "0x6a3f", family="uwb_tag", vendor="qubit", worker="G1")
    del s.spots["G1"]
    s.tables()
    for _ in range(6):
        s.send("rtls.position", "gw-2", qubit(s.now - 30, ("0x6a3f", 5_000, 5_000, 1200)))
        s.run(1)
    s.activate()
    for _ in range(40):
        s.send("rtls.position", "gw-2", qubit(s.now - 30, ("0x6a3f", 5_000, 5_000, 1200)))
        s.run(1)
    assert commands(s, "ENABLE")
    assert not commands(s, "HARD_STOP")


def test_a_qubit_tag_not_located_this_cycle_is_not_presence():
    s = HotWorkSite()
    register(s, "0x6a3f", family="uwb_tag", vendor="qubit", worker="G1")
    del s.spots["G1"]
    s.tables()
    for _ in range(6):
        s.send("rtls.position", "gw-2", qubit(s.now - 30, ("0x6a3f", 5_000, 5_000, 1200)))
        s.run(1)
    s.activate()
    for _ in range(31):
        s.send("rtls.position", "gw-2", qubit(s.now - 30, "0x6a3f"))  # success: false
        s.run(1)
    assert any("GUARDIAN_ABSENT" in codes(c) for c in commands(s, "HARD_STOP"))


def test_a_qubit_tag_not_located_this_cycle_keeps_its_last_position():
    s = HotWorkSite()
    register(s, "0x6a40", family="uwb_tag", vendor="qubit", worker="X8")
    s.started()
    s.send("rtls.position", "gw-2", qubit(s.now - 30, ("0x6a40", 25_000, 5_000, 1200)))
    s.now += SECOND
    mark = len(s.outputs)
    s.send("rtls.position", "gw-2", qubit(s.now - 30, "0x6a40"))
    assert not faults(s, "UNAUTHORISED_ENTRANT", "cleared", mark)  # still counted inside
    s.now += SECOND
    s.send("rtls.position", "gw-2", qubit(s.now - 30, ("0x6a40", 100_000, 5_000, 1200)))
    assert faults(s, "UNAUTHORISED_ENTRANT", "cleared")


def test_an_unregistered_qubit_tag_not_located_raises_nothing():
    s = running()
    mark = len(s.outputs)
    s.send("rtls.position", "gw-2", qubit(s.now - 30, "0x7777"))
    assert not faults(s, since=mark)


def test_a_qubit_element_claiming_success_without_data_is_a_schema_mismatch():
    s = running()
    mark = len(s.outputs)
    s.send("rtls.position", "gw-2", [{"tagId": "0x6a40", "timestamp": s.now / 1000, "success": True}])
    fault = only_fault(s, "PAYLOAD_SCHEMA_MISMATCH", mark)
    assert (fault["schema_expected"], fault["path"]) == ("qubit/2", "$[0].data")


def test_an_anchorline_tag_reported_through_a_qubit_gateway_is_a_vendor_mismatch():
    s = running()
    mark = len(s.outputs)
    for _ in range(31):
        s.send("rtls.position", "gw-2", qubit(s.now - 30, ("T-G1", 5_000, 5_000, 1200)))
        s.run(1, skip=("G1",))
    fault = only_fault(s, "RTLS_VENDOR_MISMATCH", mark)
    assert fault["device"] == "T-G1"
    assert fault["permits"] == ["HW-1"]
    assert any("GUARDIAN_ABSENT" in codes(c) for c in commands(s, "HARD_STOP", mark))  # the fix was not presence


def test_a_qubit_tag_reported_in_anchorline_format_is_a_vendor_mismatch():
    s = running()
    register(s, "0x6a40", family="uwb_tag", vendor="qubit", worker="X8")
    mark = len(s.outputs)
    s.send("rtls.position", "0x6a40", anchorline("0x6a40", s.now - 30, 20.0, 5.0))
    assert only_fault(s, "RTLS_VENDOR_MISMATCH", mark)["device"] == "0x6a40"
    assert not commands(s, since=mark)  # the fix is not evidence of anyone inside


def test_a_tag_fix_below_quality_0_5_is_not_evidence_of_a_person_inside():
    s = HotWorkSite()
    register(s, "T-X9", family="uwb_tag", vendor="anchorline", worker="X9")
    s.started()
    mark = len(s.outputs)
    s.send("rtls.position", "T-X9", anchorline("T-X9", s.now - 30, 20.0, 5.0, q=0.4))
    assert not commands(s, since=mark)


# ---------------------------------------------------------------------------------------------- PLC state


def test_plc_state_from_a_plc_without_a_cmdb_row_is_device_unknown():
    s = running()
    mark = len(s.outputs)
    s.send("plc.state", "PLC-9", plc_state("PLC-9", s.now - 10, 1, {"V-101.isolated": True}))
    assert only_fault(s, "DEVICE_UNKNOWN", mark)["device"] == "PLC-9"


def test_plc_state_that_does_not_fit_its_schema_does_not_confirm_isolation():
    s = HotWorkSite()
    s.tables()
    s.run(6, skip=("plc",))
    s.send("plc.state", "PLC-3", {"plc": "PLC-3", "ts": s.now - 10, "seq": 1, "tags": {"V-101.isolated": "yes"}})
    s.activate()
    assert faults(s, "PAYLOAD_SCHEMA_MISMATCH")
    assert not commands(s, "ENABLE")
    assert any("PAYLOAD_SCHEMA_MISMATCH" in codes(c) for c in commands(s, "HARD_STOP"))


def test_plc_state_that_does_not_fit_its_schema_stops_running_work_at_once():
    s = running()
    mark = len(s.outputs)
    s.send("plc.state", "PLC-3", {"plc": "PLC-3", "ts": s.now - 10, "seq": 99, "tags": {"V-101.isolated": "yes"}})
    (stop,) = commands(s, "HARD_STOP", mark)
    assert codes(stop) == ["PAYLOAD_SCHEMA_MISMATCH"] and stop["latched"] is True


def test_trusted_plc_state_after_an_untrusted_one_confirms_isolation_again():
    s = running()
    s.send("plc.state", "PLC-3", {"plc": "PLC-3", "ts": s.now - 10, "seq": 99, "tags": {"V-101.isolated": "yes"}})
    s.now += 1000
    s.plc()
    assert faults(s, "PAYLOAD_SCHEMA_MISMATCH", "cleared")


# ---------------------------------------------------------------------------------------------- tables and topics


@pytest.mark.parametrize("rev", [2, 1])
def test_a_permit_record_whose_rev_is_not_newer_is_stale_and_changes_nothing(rev):
    s = running()  # HW-1 is at rev 2, active
    mark = len(s.outputs)
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=rev, state="cancelled"))
    fault = only_fault(s, "PERMIT_STALE_REV", mark)
    assert fault["grade"] == "MINOR"
    s.run(20)
    assert not commands(s, since=mark)


@pytest.mark.parametrize(("topic", "key", "row"), [
    ("gis.zones", "PR-1", dict(PR1, risk="V")),
    ("gis.zones", "PR-1", {"zone": "PR-1", "risk": "II", "z": [0, 15]}),
    ("ptw.permits", "HW-1", {k: v for k, v in hot_work_permit(rev=3, state="active").items() if k != "guardian"}),
    ("ptw.permits", "HW-1", hot_work_permit(rev=3, state="on_hold")),
    ("hr.qualifications", "W1", dict(qualification("W1"), medical_valid_until="2027-13-01")),
    ("cmdb.devices", "GAS-07", {"device": "GAS-07", "model": "GD-4", "firmware": "2.3.1"}),
    ("ptw.actions", "HW-1", {"permit": "HW-1", "action": "reset"}),
])
def test_a_table_row_that_does_not_fit_its_sheet_is_invalid_and_the_previous_row_stays(topic, key, row):
    s = running()
    mark = len(s.outputs)
    s.send(topic, key, row)
    fault = only_fault(s, "TABLE_ROW_INVALID", mark)
    assert fault["grade"] == "MAJOR"
    s.run(20)
    assert not commands(s, since=mark)  # HW-1 runs on as before


def test_added_fields_in_an_enterprise_row_are_tolerated():
    s = running()
    mark = len(s.outputs)
    s.send("gis.zones", "PR-1", dict(PR1, owner="unit 3"))
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state="active", ticket="T-1"))
    s.run(5)
    assert not faults(s, since=mark)
    assert not commands(s, "HARD_STOP", mark)


def test_a_tombstone_without_a_key_deletes_nothing():
    s = running()
    mark = len(s.outputs)
    s.send("cmdb.devices", None, None)
    fault = only_fault(s, "TOMBSTONE_WITHOUT_KEY", mark)
    assert fault["grade"] == "MINOR"
    s.run(20)
    assert not commands(s, since=mark)


def test_a_record_on_a_topic_the_interlock_does_not_read_is_ignored_for_the_record():
    s = running()
    mark = len(s.outputs)
    s.send("weather.readings", "WX-1", {"wind": 3.2})
    fault = only_fault(s, "TOPIC_UNKNOWN", mark)
    assert fault["grade"] == "INFO"
    assert fault["device"] is None
    assert fault["source"]["topic"] == "weather.readings"
    assert not commands(s, since=mark)


def test_a_recording_line_that_is_not_an_envelope_is_skipped_with_a_fault():
    s = running()
    mark = len(s.outputs)
    s.outputs.extend(s.site.process(UnreadableRecord(812, s.now, "truncated line")))
    fault = only_fault(s, "ENVELOPE_UNREADABLE", mark)
    assert fault["grade"] == "MAJOR"
    assert "812" in fault["detail"]
    assert not commands(s, since=mark)
