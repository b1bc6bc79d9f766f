"""Specification: the faults the interlock raises (protocols §10, interlock/fault_catalog.py).

A fault is raised once, counted while it recurs and cleared when it ends
(event faults after 60 s without recurrence). Its grade is CRITICAL whenever a
stop rests on it, else its catalog grade. Every command and fault goes into
the evidence chain. And every code of the catalog, and every reason a command
may carry without a fault, is produced by some situation on site: the table at
the end names one situation per code.
"""

from __future__ import annotations

from typing import Callable

import msgspec
import pytest

from interlock.evidence import verify_lines
from interlock.fault_catalog import CATALOG, REASONS_WITHOUT_FAULT
from schemas.envelope import UnreadableRecord
from interlock.site import PLC_LINK_TOPIC
from risk_probe import run_lel
from risk_probe import started as risk_started
from site_records import (
    COMMANDS,
    FAULTS,
    codes,
    commands,
    faults,
    SECOND,
    T0,
    HotWorkSite,
    gas_v2,
    gas_v3,
    harness_v1,
    hot_work_permit,
    iso_ms,
    qualification,
    qubit,
)

EVIDENCE = "interlock.evidence"
HOUR = 3_600_000
QUIET = 60 * SECOND




def advance(site: HotWorkSite, ts: int) -> None:
    """Site time passes to `ts` with no input (a live run's clock)."""
    site.outputs.extend(site.site.advance(ts))
    site.now = ts


def running() -> HotWorkSite:
    s = HotWorkSite().started()
    assert commands(s, "ENABLE")
    return s


def bad_gas(site: HotWorkSite, **changes) -> None:
    payload = gas_v2("GAS-07", site.now - 20, site.next_seq("GAS-07"))
    payload.update(changes)
    site.gas(payload)


def v3_gas(site: HotWorkSite, **fields) -> None:
    site.send("cmdb.devices", "GAS-07", {"device": "GAS-07", "family": "gas", "model": "GD-4", "firmware": "3.0.0"})
    site.gas(gas_v3("GAS-07", site.now - 20, site.next_seq("GAS-07"), **fields))


def action(site: HotWorkSite, what: str, by: str, permit: str = "HW-1") -> None:
    site.send("ptw.actions", permit, {"permit": permit, "action": what, "by": by, "ts": site.now})


def start_with(**changes) -> HotWorkSite:
    """The hot-work site with the permit changed, activated after 6 healthy seconds."""
    s = HotWorkSite()
    s.tables(hot_work_permit(**changes))
    s.run(6)
    s.activate(**changes)
    return s


def tripped() -> HotWorkSite:
    s = running()
    s.run(31, skip=("G1",))
    return s


# ---------------------------------------------------------------------------------------------- raised once, counted, cleared


def test_a_recurring_fault_is_raised_once_and_counted_until_it_clears():
    s = running()
    for _ in range(3):
        s.send("gas.readings", "GAS-99", gas_v2("GAS-99", s.now - 20, s.next_seq("GAS-99")))
        s.now += SECOND
    (raised,) = faults(s, "DEVICE_UNKNOWN")
    assert raised["state"] == "raised"
    assert raised["count"] == 1
    s.send("cmdb.devices", "GAS-99", {"device": "GAS-99", "family": "gas", "model": "GD-4", "firmware": "2.3.1"})
    s.send("gas.readings", "GAS-99", gas_v2("GAS-99", s.now - 20, s.next_seq("GAS-99")))
    raised, cleared = faults(s, "DEVICE_UNKNOWN")
    assert cleared["state"] == "cleared"
    assert cleared["id"] == raised["id"]
    assert cleared["count"] == 3
    assert cleared["ts"] == s.now
    assert cleared["source"]["topic"] == "gas.readings"  # the trusted reading that ended it


def test_a_lasting_fault_clears_with_the_first_record_that_ends_its_condition():
    s = running()
    bad_gas(s, r=[20.9, 20.0, 0.0, 1.0])
    s.now += SECOND
    bad_gas(s, r=[20.9, 21.0, 0.0, 1.0])
    s.now += SECOND
    assert not faults(s, "GAS_LIMIT_EXCEEDED", "cleared")
    s.gas()
    raised, cleared = faults(s, "GAS_LIMIT_EXCEEDED")
    assert (raised["state"], cleared["state"]) == ("raised", "cleared")
    assert cleared["count"] == 2
    assert cleared["ts"] == s.now


def test_an_event_fault_clears_60_s_after_it_was_last_seen_not_before():
    s = running()
    s.send("weather.readings", "WX-1", {"wind": 3})
    raised_at = s.now
    advance(s, raised_at + QUIET - 1)
    assert not faults(s, "TOPIC_UNKNOWN", "cleared")
    advance(s, raised_at + QUIET)
    (cleared,) = faults(s, "TOPIC_UNKNOWN", "cleared")
    assert cleared["ts"] == raised_at + QUIET
    assert cleared["source"] is None  # the clock cleared it


def test_an_event_fault_recurring_within_60_s_stays_open_and_clears_60_s_after_the_last():
    s = running()
    first = s.now
    s.send("weather.readings", "WX-1", {"wind": 3})
    s.send("weather.readings", "WX-1", {"wind": 4}, ts=first + 30 * SECOND)
    advance(s, first + QUIET + 10 * SECOND)
    assert len(faults(s, "TOPIC_UNKNOWN", "raised")) == 1
    assert not faults(s, "TOPIC_UNKNOWN", "cleared")
    advance(s, first + 30 * SECOND + QUIET)
    (cleared,) = faults(s, "TOPIC_UNKNOWN", "cleared")
    assert cleared["count"] == 2


def test_a_fault_that_returns_after_clearing_is_raised_afresh():
    s = running()
    s.send("weather.readings", "WX-1", {"wind": 3})
    advance(s, s.now + QUIET)
    s.send("weather.readings", "WX-1", {"wind": 3})
    first, cleared, again = faults(s, "TOPIC_UNKNOWN")
    assert (first["state"], cleared["state"], again["state"]) == ("raised", "cleared", "raised")
    assert again["id"] != first["id"]
    assert again["count"] == 1


def test_faults_about_different_subjects_are_separate():
    s = running()
    s.send("weather.readings", "WX-1", {"wind": 3})
    s.send("traffic.cams", "CAM-1", {"cars": 3})
    assert {f["subject"] for f in faults(s, "TOPIC_UNKNOWN")} == {"weather.readings", "traffic.cams"}


# ---------------------------------------------------------------------------------------------- grades


def test_a_fault_a_stop_rests_on_is_critical_in_its_very_first_record():
    s = running()
    mark = len(s.outputs)
    bad_gas(s, r=[20.9, 20.0, 0.0, 1.0])
    (fault,) = faults(s, since=mark)
    assert CATALOG["GAS_LIMIT_EXCEEDED"].grade == "MAJOR"
    assert fault["grade"] == "CRITICAL"
    (stop,) = commands(s, since=mark)
    assert stop["reasons"][0]["fault"] == fault["id"]
    topics = [o.topic for o in s.outputs[mark:]]
    assert topics.index(FAULTS) < topics.index(COMMANDS)  # the fault goes out before the stop that rests on it


def test_a_fault_raised_below_critical_is_resent_as_critical_when_a_stop_comes_to_rest_on_it():
    s = HotWorkSite()
    s.tables()
    s.run(6)
    bad_gas(s, r=[20.9, 20.0, 0.0, 1.0])  # the permit is only approved: nothing rests on the fault yet
    (major,) = faults(s, "GAS_LIMIT_EXCEEDED")
    assert major["grade"] == "MAJOR"
    assert major["permits"] == ["HW-1"]
    s.activate()
    major, critical = faults(s, "GAS_LIMIT_EXCEEDED")
    assert critical["id"] == major["id"]
    assert critical["state"] == "raised"
    assert critical["grade"] == "CRITICAL"
    (stop,) = commands(s, "HARD_STOP")
    assert stop["reasons"][0]["fault"] == major["id"]


def test_a_fault_behind_an_alert_only_keeps_its_catalog_grade():
    s = HotWorkSite()
    s.tables()
    s.send("hr.qualifications", "W1", qualification("W1", expires="2027-01-10", review_due=None))
    s.run(6)
    s.activate()
    (fault,) = faults(s, "QUALIFICATION_EXPIRING")
    assert fault["grade"] == CATALOG["QUALIFICATION_EXPIRING"].grade == "INFO"


def test_a_device_fault_on_a_device_no_active_permit_uses_keeps_its_catalog_grade():
    s = running()
    s.send("cmdb.devices", "GAS-08", {"device": "GAS-08", "family": "gas", "model": "GD-4", "firmware": "2.3.1"})
    s.send("gas.readings", "GAS-08", gas_v2("GAS-08", s.now - 20, 1, fw="2.9.9"))
    (fault,) = faults(s, "FIRMWARE_UNAPPROVED")
    assert fault["grade"] == "MAJOR"


# ---------------------------------------------------------------------------------------------- fields


def test_a_device_fault_names_its_device_the_permits_it_serves_and_its_source_record():
    s = running()
    bad_gas(s, alm=4)
    (fault,) = faults(s, "GAS_DETECTOR_ALARM")
    assert fault["device"] == "GAS-07"
    assert fault["subject"] == "GAS-07"
    assert fault["permits"] == ["HW-1"]
    assert fault["count"] == 1
    assert fault["state"] == "raised"
    assert fault["ts"] == s.now
    assert fault["source"] == {"topic": "gas.readings", "partition": 0, "offset": 6}
    assert fault["id"].startswith("F-")


def test_a_permit_fault_names_its_permit_and_no_device_and_a_timer_fault_no_source():
    s = tripped()
    (fault,) = faults(s, "GUARDIAN_ABSENT")
    assert fault["device"] is None
    assert fault["subject"] == "HW-1"
    assert fault["permits"] == ["HW-1"]
    assert fault["source"] is None


def test_every_fault_carries_the_operators_action_from_the_catalog():
    s = tripped()
    bad_gas(s, r=[20.9, 20.0, 0.0, 1.0])
    for fault in faults(s):
        assert fault["action"] == CATALOG[fault["code"]].action
        assert fault["detail"]


# ---------------------------------------------------------------------------------------------- the catalog, one situation per code


def s_envelope_unreadable() -> HotWorkSite:
    s = running()
    s.outputs.extend(s.site.process(UnreadableRecord(17, s.now, "truncated")))
    return s


def s_topic_unknown() -> HotWorkSite:
    s = running()
    s.send("weather.readings", "WX-1", {"wind": 3})
    return s


def s_table_row_invalid() -> HotWorkSite:
    s = running()
    s.send("gis.zones", "PR-1", {"zone": "PR-1", "risk": "V"})
    return s


def s_tombstone_without_key() -> HotWorkSite:
    s = running()
    s.send("hr.qualifications", None, None)
    return s


def s_permit_stale_rev() -> HotWorkSite:
    s = running()
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=1, state="cancelled"))
    return s


def s_permit_unknown() -> HotWorkSite:
    s = running()
    action(s, "reset", "A1", permit="HW-404")
    return s


def s_action_unknown() -> HotWorkSite:
    s = running()
    action(s, "pause", "A1")
    return s


def s_device_unknown() -> HotWorkSite:
    s = running()
    s.send("gas.readings", "GAS-99", gas_v2("GAS-99", s.now - 20, 1))
    return s


def s_device_model_unsupported() -> HotWorkSite:
    s = running()
    s.send("cmdb.devices", "GAS-07", {"device": "GAS-07", "family": "gas", "model": "GD-4", "firmware": "9.0.0"})
    bad_gas(s, fw="9.0.0")
    return s


def s_device_id_mismatch() -> HotWorkSite:
    s = running()
    bad_gas(s, dev="GAS-08")
    return s


def s_payload_unparseable() -> HotWorkSite:
    s = running()
    s.gas("{")
    return s


def s_payload_schema_mismatch() -> HotWorkSite:
    s = running()
    s.gas(gas_v3("GAS-07", s.now - 20, s.next_seq("GAS-07")))
    return s


def s_payload_value_out_of_range() -> HotWorkSite:
    s = running()
    bad_gas(s, r=[35.0, 0.0, 0.0, 1.0])
    return s


def s_firmware_unapproved() -> HotWorkSite:
    s = running()
    bad_gas(s, fw="2.4.0")
    return s


def s_device_clock_skew() -> HotWorkSite:
    s = running()
    s.gas(gas_v2("GAS-07", s.now + 6000, s.next_seq("GAS-07")))
    return s


def s_rtls_vendor_mismatch() -> HotWorkSite:
    s = running()
    s.send("rtls.position", "gw-2", qubit(s.now - 30, ("T-W1", 10_000, 5_000, 1200)))
    return s


def s_seq_duplicate() -> HotWorkSite:
    s = running()
    payload = gas_v2("GAS-07", s.now - 20, s.next_seq("GAS-07"))
    s.gas(payload)
    s.gas(payload)
    return s


def s_seq_gap() -> HotWorkSite:
    s = running()
    s.seq["GAS-07"] += 2
    s.gas()
    return s


def s_seq_reset() -> HotWorkSite:
    s = running()
    s.seq["GAS-07"] = -1
    s.gas()
    return s


def s_gas_sensor_fault() -> HotWorkSite:
    s = running()
    bad_gas(s, r=[20.9, -1, 0.0, 1.0])
    return s


def s_gas_detector_not_ready() -> HotWorkSite:
    s = running()
    v3_gas(s, st="warmup")
    return s


def s_gas_bump_test_overdue() -> HotWorkSite:
    s = running()
    v3_gas(s, bump=s.now - 25 * HOUR)
    return s


def s_gas_detector_alarm() -> HotWorkSite:
    s = running()
    bad_gas(s, alm=1)
    return s


def s_gas_limit_exceeded() -> HotWorkSite:
    s = running()
    bad_gas(s, r=[20.9, 0.0, 9.0, 1.0])
    return s


def s_gas_data_stale() -> HotWorkSite:
    s = running()
    s.run(11, skip=("gas",))
    return s


def s_gas_detector_not_listed() -> HotWorkSite:
    return start_with(detectors=[])


def s_permit_outside_validity() -> HotWorkSite:
    return start_with(valid_from=T0 + HOUR, valid_to=T0 + 2 * HOUR)


def s_permit_window_too_long() -> HotWorkSite:
    return start_with(valid_from=T0 - HOUR, valid_to=T0 + 8 * HOUR)


def s_permit_grade_unknown() -> HotWorkSite:
    return start_with(grade="9")


def s_permit_signature_missing() -> HotWorkSite:
    return start_with(signatures={"applicant": "W1", "guardian": "G1", "approver": "A1"})


def s_permit_approver_is_applicant() -> HotWorkSite:
    return start_with(signatures={"applicant": "A1", "guardian": "G1", "approver": "A1", "supervisor": "S1"})


def s_permit_guardian_is_worker() -> HotWorkSite:
    return start_with(workers=["W1", "W2", "G1"])


def s_zone_unknown() -> HotWorkSite:
    return start_with(zone="PR-404")


def s_zone_forbids_work_type() -> HotWorkSite:
    s = running()
    s.send("gis.zones", "PR-1", {"zone": "PR-1", "polygon": [[0, 0], [30, 0], [30, 10], [0, 10]], "z": [0, 15],
                                 "risk": "II", "forbid": ["hot_work"]})
    return s


def s_guardian_absent() -> HotWorkSite:
    return tripped()


def s_unauthorised_entrant() -> HotWorkSite:
    s = running()
    s.send("rtls.position", "T-STRAY", {"tag": "T-STRAY", "ts": iso_ms(s.now), "pos": [15.0, 5.0, 1.0], "q": 0.9})
    return s


def s_worker_not_qualified() -> HotWorkSite:
    s = running()
    s.send("hr.qualifications", "W2", qualification("W2", status="revoked"))
    return s


def s_qualification_expiring() -> HotWorkSite:
    s = running()
    s.send("hr.qualifications", "W2", qualification("W2", expires="2027-01-10", review_due=None))
    return s


def s_equipment_not_on_plc() -> HotWorkSite:
    return start_with(isolations=["V-101", "V-404"])


def s_plc_state_stale() -> HotWorkSite:
    s = running()
    s.run(16, skip=("plc",))
    return s


def s_isolation_not_confirmed() -> HotWorkSite:
    s = running()
    s.plc({"V-101.isolated": False})
    return s


def s_ventilation_not_running() -> HotWorkSite:
    s = running()
    s.send("cmdb.devices", "PLC-3", {"device": "PLC-3", "family": "plc", "equipment": ["WELD-5", "V-101", "FAN-2"]})
    s.plc({"V-101.isolated": True, "FAN-2.running": False})
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state="active", ventilation=["FAN-2"]))
    return s


HEIGHT = {"type": "height", "workers": ["W1"], "detectors": [], "isolations": [], "harnesses": ["HB-33"],
          "equipment": ["HOIST-1"]}


def height_site(reports: bool, seconds_after: int) -> HotWorkSite:
    """A height permit on HW-1's record: W1 wears harness HB-33 at 5 m, reporting (if `reports`) every second,
    clipped for 6 s; then the permit goes active, the hook comes off, and `seconds_after` seconds pass."""
    s = HotWorkSite()
    del s.spots["W2"]
    s.send("cmdb.devices", "HB-33", {"device": "HB-33", "family": "harness", "model": "SH-2", "firmware": "1.4.2",
                                     "worker": "W1"})
    s.tables(hot_work_permit(**HEIGHT))
    s.send("hr.qualifications", "W1", qualification("W1", "height"))
    hook = "clipped"
    for second in range(6 + seconds_after):
        if second == 6:
            s.activate(**HEIGHT)
            hook = "unclipped"
        if reports:
            s.send("harness.status", "HB-33", harness_v1("HB-33", s.now - 20, s.next_seq("HB-33"), hook=hook))
        s.run(1)
    return s


def s_harness_untied_warning() -> HotWorkSite:
    return height_site(True, 12)


def s_harness_untied() -> HotWorkSite:
    return height_site(True, 31)


def s_harness_data_stale() -> HotWorkSite:
    return height_site(False, 1)


def s_entrant_left_inside() -> HotWorkSite:
    s = HotWorkSite()
    s.spots = {"W1": (10.0, 5.0), "W2": (12.0, 5.0), "G1": (21.5, 6.5)}
    confined = {"permit": "CS-1", "type": "confined_space", "zone": "TK-3"}
    s.tables(hot_work_permit(**confined))
    s.send("gis.zones", "TK-3", {"zone": "TK-3", "polygon": [[0, 0], [20, 0], [20, 15], [0, 15]], "z": [0, 12],
                                 "risk": "I", "entrance": {"polygon": [[20, 5], [23, 5], [23, 8], [20, 8]]}})
    for worker in ("W1", "W2"):
        s.send("hr.qualifications", worker, qualification(worker, "hazchem"))
    s.run(6)
    s.send("ptw.permits", "CS-1", hot_work_permit(rev=2, state="active", **confined))
    s.run(3)
    s.send("ptw.permits", "CS-1", hot_work_permit(rev=3, state="closed", **confined))
    return s


def s_reset_unauthorised() -> HotWorkSite:
    s = tripped()
    action(s, "reset", "W1")
    return s


def s_reset_refused_causes_present() -> HotWorkSite:
    s = tripped()
    action(s, "reset", "A1")
    return s


def s_permit_not_active() -> HotWorkSite:
    s = running()
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state="suspended"))
    return s


def s_gas_pretest_incomplete() -> HotWorkSite:
    s = HotWorkSite()
    s.tables()
    s.run(4)
    s.activate()
    return s


def s_trip_reset_required() -> HotWorkSite:
    s = tripped()
    s.run(2)
    return s


def s_reset_accepted() -> HotWorkSite:
    s = s_trip_reset_required()
    action(s, "reset", "A1")
    return s


def s_all_preconditions_met() -> HotWorkSite:
    return running()


def s_plc_unreachable() -> HotWorkSite:
    s = running()
    s.send(PLC_LINK_TOPIC, "PLC-3", {"plc": "PLC-3", "up": False, "detail": "connection refused"})
    return s


def s_risk_blue() -> HotWorkSite:
    s = risk_started()
    run_lel(s, 2.0, 3)
    return s


def s_risk_yellow() -> HotWorkSite:
    s = risk_started()
    run_lel(s, 3.0, 3)
    return s


def s_risk_red() -> HotWorkSite:
    s = risk_started()
    run_lel(s, 6.0, 5)
    return s


def s_risk_alert_unacknowledged() -> HotWorkSite:
    s = risk_started()
    run_lel(s, 3.0, 125)
    return s


def s_interlock_restarted() -> HotWorkSite:
    s = running()
    s.outputs += s.site.resume(s.now + 3 * SECOND)
    return s


SITUATIONS: dict[str, Callable[[], HotWorkSite]] = {
    "ENVELOPE_UNREADABLE": s_envelope_unreadable,
    "TOPIC_UNKNOWN": s_topic_unknown,
    "TABLE_ROW_INVALID": s_table_row_invalid,
    "TOMBSTONE_WITHOUT_KEY": s_tombstone_without_key,
    "PERMIT_STALE_REV": s_permit_stale_rev,
    "PERMIT_UNKNOWN": s_permit_unknown,
    "ACTION_UNKNOWN": s_action_unknown,
    "DEVICE_UNKNOWN": s_device_unknown,
    "DEVICE_MODEL_UNSUPPORTED": s_device_model_unsupported,
    "DEVICE_ID_MISMATCH": s_device_id_mismatch,
    "PAYLOAD_UNPARSEABLE": s_payload_unparseable,
    "PAYLOAD_SCHEMA_MISMATCH": s_payload_schema_mismatch,
    "PAYLOAD_VALUE_OUT_OF_RANGE": s_payload_value_out_of_range,
    "FIRMWARE_UNAPPROVED": s_firmware_unapproved,
    "DEVICE_CLOCK_SKEW": s_device_clock_skew,
    "RTLS_VENDOR_MISMATCH": s_rtls_vendor_mismatch,
    "SEQ_DUPLICATE": s_seq_duplicate,
    "SEQ_GAP": s_seq_gap,
    "SEQ_RESET": s_seq_reset,
    "GAS_SENSOR_FAULT": s_gas_sensor_fault,
    "GAS_DETECTOR_NOT_READY": s_gas_detector_not_ready,
    "GAS_BUMP_TEST_OVERDUE": s_gas_bump_test_overdue,
    "GAS_DETECTOR_ALARM": s_gas_detector_alarm,
    "GAS_LIMIT_EXCEEDED": s_gas_limit_exceeded,
    "GAS_DATA_STALE": s_gas_data_stale,
    "GAS_DETECTOR_NOT_LISTED": s_gas_detector_not_listed,
    "PERMIT_OUTSIDE_VALIDITY": s_permit_outside_validity,
    "PERMIT_WINDOW_TOO_LONG": s_permit_window_too_long,
    "PERMIT_GRADE_UNKNOWN": s_permit_grade_unknown,
    "PERMIT_SIGNATURE_MISSING": s_permit_signature_missing,
    "PERMIT_APPROVER_IS_APPLICANT": s_permit_approver_is_applicant,
    "PERMIT_GUARDIAN_IS_WORKER": s_permit_guardian_is_worker,
    "ZONE_UNKNOWN": s_zone_unknown,
    "ZONE_FORBIDS_WORK_TYPE": s_zone_forbids_work_type,
    "GUARDIAN_ABSENT": s_guardian_absent,
    "UNAUTHORISED_ENTRANT": s_unauthorised_entrant,
    "WORKER_NOT_QUALIFIED": s_worker_not_qualified,
    "QUALIFICATION_EXPIRING": s_qualification_expiring,
    "EQUIPMENT_NOT_ON_PLC": s_equipment_not_on_plc,
    "PLC_STATE_STALE": s_plc_state_stale,
    "ISOLATION_NOT_CONFIRMED": s_isolation_not_confirmed,
    "VENTILATION_NOT_RUNNING": s_ventilation_not_running,
    "HARNESS_UNTIED_WARNING": s_harness_untied_warning,
    "HARNESS_UNTIED": s_harness_untied,
    "HARNESS_DATA_STALE": s_harness_data_stale,
    "ENTRANT_LEFT_INSIDE": s_entrant_left_inside,
    "RESET_UNAUTHORISED": s_reset_unauthorised,
    "RESET_REFUSED_CAUSES_PRESENT": s_reset_refused_causes_present,
    "PLC_UNREACHABLE": s_plc_unreachable,
    "INTERLOCK_RESTARTED": s_interlock_restarted,
    "RISK_BLUE": s_risk_blue,
    "RISK_YELLOW": s_risk_yellow,
    "RISK_RED": s_risk_red,
    "RISK_ALERT_UNACKNOWLEDGED": s_risk_alert_unacknowledged,
    # reasons a command carries without a fault
    "PERMIT_NOT_ACTIVE": s_permit_not_active,
    "GAS_PRETEST_INCOMPLETE": s_gas_pretest_incomplete,
    "TRIP_RESET_REQUIRED": s_trip_reset_required,
    "RESET_ACCEPTED": s_reset_accepted,
    "ALL_PRECONDITIONS_MET": s_all_preconditions_met,
}

NEVER_EMITTED: dict[str, str] = {}


def _situation(code: str):
    marks = [pytest.mark.xfail(strict=True, reason=NEVER_EMITTED[code])] if code in NEVER_EMITTED else []
    return pytest.param(code, id=code, marks=marks)


def test_the_situation_table_names_exactly_the_catalog_codes_and_the_reasons_without_fault():
    assert set(SITUATIONS) == set(CATALOG) | set(REASONS_WITHOUT_FAULT)
    assert not set(CATALOG) & set(REASONS_WITHOUT_FAULT)


@pytest.mark.parametrize("code", [_situation(code) for code in CATALOG])
def test_every_catalog_code_is_raised_by_its_situation(code):
    s = SITUATIONS[code]()
    raised = faults(s, code, "raised")
    assert raised, f"{code} not raised; got {[(f['code'], f['state']) for f in faults(s)]}"
    first = raised[0]
    assert first["grade"] in (CATALOG[code].grade, "CRITICAL")
    assert first["count"] >= 1
    assert first["action"] == CATALOG[code].action


@pytest.mark.parametrize("code", [_situation(code) for code in REASONS_WITHOUT_FAULT])
def test_every_reason_without_fault_is_given_by_its_situation(code):
    s = SITUATIONS[code]()
    reasons = [r for c in commands(s) for r in c["reasons"] if r["code"] == code]
    assert reasons, f"no command gives {code}; got {[codes(c) for c in commands(s)]}"
    assert all(r["fault"] is None for r in reasons)


@pytest.mark.parametrize("code", list(SITUATIONS))
def test_in_every_situation_each_command_reason_rests_on_an_emitted_fault_of_its_code_or_on_none(code):
    s = SITUATIONS[code]()
    emitted = {f["id"]: f for f in faults(s)}
    for command in commands(s):
        assert command["kind"] in ("ENABLE", "HARD_STOP", "ALERT")
        assert command["targets"]
        for reason in command["reasons"]:
            if reason["code"] in REASONS_WITHOUT_FAULT:
                assert reason["fault"] is None, reason
            else:
                assert reason["code"] in CATALOG, reason
                assert reason["fault"] in emitted, reason
                assert emitted[reason["fault"]]["code"] == reason["code"]


@pytest.mark.parametrize("code", list(SITUATIONS))
def test_in_every_situation_a_fault_is_critical_exactly_when_a_stop_rests_on_it(code):
    s = SITUATIONS[code]()
    records = faults(s)
    stopped_on = {r["fault"] for c in commands(s, "HARD_STOP") for r in c["reasons"] if r["fault"]}
    for fault_id in {f["id"] for f in records}:
        history = [f for f in records if f["id"] == fault_id]
        base = CATALOG[history[0]["code"]].grade
        if fault_id in stopped_on:
            assert any(f["grade"] == "CRITICAL" for f in history), history[0]["code"]
        else:
            assert all(f["grade"] == base for f in history), history[0]["code"]
        if base != "CRITICAL" and any(f["grade"] == "CRITICAL" for f in history):
            assert fault_id in stopped_on, history[0]["code"]


@pytest.mark.parametrize("code", list(SITUATIONS))
def test_in_every_situation_every_command_and_fault_is_followed_by_its_entry_in_an_unbroken_evidence_chain(code):
    s = SITUATIONS[code]()
    outputs = s.outputs
    for index, output in enumerate(outputs):
        if output.topic in (COMMANDS, FAULTS):
            entry = msgspec.json.decode(outputs[index + 1].value)
            assert outputs[index + 1].topic == EVIDENCE
            assert entry["type"] == ("command" if output.topic == COMMANDS else "fault")
            assert entry["record"] == msgspec.json.decode(output.value)
    chain = [o.value for o in outputs if o.topic == EVIDENCE]
    assert len(chain) == len([o for o in outputs if o.topic in (COMMANDS, FAULTS)])
    assert verify_lines(chain) is None


def test_an_edited_evidence_entry_breaks_the_chain():
    s = tripped()
    chain = [o.value for o in s.outputs if o.topic == EVIDENCE]
    assert len(chain) >= 2
    chain[0] = chain[0].replace(b"HW-1", b"HW-2")
    broken = verify_lines(chain)
    assert broken is not None and broken.line == 1


def test_entries_resent_after_a_restart_are_skipped_as_repeats():
    chain = [o.value for o in tripped().outputs if o.topic == EVIDENCE]
    resent = chain[:3] + chain[1:3] + chain[3:]
    assert verify_lines(resent) is None


def test_a_chain_that_continues_from_an_earlier_entry_after_a_restart_verifies_as_a_branch():
    from interlock.evidence import EvidenceChain, check_chain

    chain = EvidenceChain()
    lines = [chain.append("fault", {"n": n}) for n in range(4)]
    restored = EvidenceChain()
    replayed = [restored.append("fault", {"n": n}) for n in range(2)]
    assert replayed == lines[:2]
    branch = [restored.append("command", {"after": "restart"})]
    checked = check_chain(lines + branch)
    assert (checked.entries, checked.repeats, checked.restarts) == (5, 0, 1)


def test_an_entry_inserted_in_the_middle_still_breaks_the_chain():
    chain = [o.value for o in tripped().outputs if o.topic == EVIDENCE]
    forged = chain[:2] + [chain[0].replace(b'"seq":1', b'"seq":3')] + chain[2:]
    assert verify_lines(forged) is not None


# ---------------------------------------------------------------------------------------------- found by the incident library


def test_the_values_of_a_detector_warming_up_are_not_measured_against_the_limits():
    s = running()
    mark = len(s.outputs)
    v3_gas(s, st="warmup", r={"o2": 4.7, "lel": 0.0, "h2s": 0.0, "co": 1.0})
    assert faults(s, "GAS_DETECTOR_NOT_READY", "raised", mark)
    assert not faults(s, "GAS_LIMIT_EXCEEDED", since=mark)


def test_a_reading_refused_for_its_clock_starts_the_sequence_afresh_instead_of_counting_it_lost():
    s = running()
    for _ in range(5):  # the device clock jumps 8 h ahead: refused, not evidence
        s.gas(gas_v2("GAS-07", s.now + 8 * 3_600_000, s.next_seq("GAS-07")))
        s.now += SECOND
    mark = len(s.outputs)
    s.run(2)  # the clock is back
    assert faults(s, "DEVICE_CLOCK_SKEW", "raised")
    assert not faults(s, "SEQ_GAP", since=mark)


def test_a_detector_that_stays_silent_keeps_its_fault_open_while_the_permit_is_stopped():
    s = running()
    s.run(15, skip=("gas",))
    (stop,) = commands(s, "HARD_STOP")
    assert codes(stop) == ["GAS_DATA_STALE"]
    s.run(30, skip=("gas",))  # positions and PLC states keep arriving and re-decide the permit
    assert not faults(s, "GAS_DATA_STALE", "cleared")
    assert len(commands(s, "HARD_STOP")) == 1
