"""A live run's PLC writers report their links; the core stops work it can no longer hold, and a restart latches."""

from __future__ import annotations

from interlock.site import PLC_LINK_TOPIC
from site_records import SECOND, HotWorkSite, commands, faults


def running() -> HotWorkSite:
    s = HotWorkSite().started()
    assert commands(s, "ENABLE")
    return s


def link(s: HotWorkSite, plc: str, up: bool, detail: str = "") -> None:
    s.send(PLC_LINK_TOPIC, plc, {"plc": plc, "up": up, "detail": detail})


def test_a_plc_that_cannot_be_reached_stops_and_latches_the_work_enabled_on_it():
    s = running()
    mark = len(s.outputs)
    link(s, "PLC-3", False, "connection refused")
    (stop,) = commands(s, "HARD_STOP", since=mark)
    (fault,) = faults(s, "PLC_UNREACHABLE", "raised", since=mark)
    assert stop["latched"] and stop["targets"] == ["WELD-5"]
    assert stop["reasons"][0]["code"] == "PLC_UNREACHABLE" and stop["reasons"][0]["fault"] == fault["id"]
    assert fault["grade"] == "CRITICAL" and fault["device"] == "PLC-3" and fault["permits"] == ["HW-1"]
    assert "connection refused" in fault["detail"]


def test_a_plc_link_that_comes_back_clears_the_fault_and_waits_for_the_approvers_reset():
    s = running()
    link(s, "PLC-3", False, "timed out")
    s.run(2)
    mark = len(s.outputs)
    link(s, "PLC-3", True)
    s.run(1)
    assert faults(s, "PLC_UNREACHABLE", "cleared", since=mark)
    assert not commands(s, "ENABLE", since=mark)
    (alert,) = commands(s, "ALERT", since=mark)
    assert alert["reasons"][0]["code"] == "TRIP_RESET_REQUIRED"


def test_a_link_event_for_a_plc_holding_no_enable_of_the_permit_changes_nothing():
    s = running()
    mark = len(s.outputs)
    link(s, "PLC-9", False, "connection refused")
    assert not commands(s, since=mark)
    assert faults(s, "PLC_UNREACHABLE", "raised", since=mark)[0]["permits"] == []


def test_an_unreadable_link_event_is_a_graded_fault_not_a_crash():
    s = running()
    mark = len(s.outputs)
    s.send(PLC_LINK_TOPIC, "PLC-3", {"plc": "PLC-3"})
    assert faults(s, "TABLE_ROW_INVALID", "raised", since=mark)
    assert not commands(s, since=mark)


def test_a_restart_from_a_snapshot_stops_and_latches_every_enabled_permit():
    s = running()
    s.outputs += s.site.resume(s.now + 3 * SECOND)
    (stop,) = commands(s, "HARD_STOP")
    assert stop["latched"] and stop["reasons"][0]["code"] == "INTERLOCK_RESTARTED"
    assert faults(s, "INTERLOCK_RESTARTED", "raised")[0]["permits"] == ["HW-1"]


def test_after_a_restart_fresh_evidence_alone_does_not_enable_until_the_approver_resets():
    s = running()
    s.outputs += s.site.resume(s.now + 3 * SECOND)
    s.now += 3 * SECOND
    mark = len(s.outputs)
    s.run(10)
    assert not commands(s, "ENABLE", since=mark)
    s.send("ptw.actions", "HW-1", {"permit": "HW-1", "action": "reset", "by": "A1", "ts": s.now})
    s.run(1)
    assert commands(s, "ENABLE", since=mark)


def test_a_restart_with_nothing_enabled_says_nothing():
    s = HotWorkSite()
    s.tables()
    assert s.site.resume(s.now) == []
