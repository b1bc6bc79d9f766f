"""Specification: the life of a permit and the commands it gets (protocols §8-§10).

ENABLE when the permit is active, every precondition holds and no trip is
latched; HARD_STOP at once when a precondition fails, latched when the
equipment was running; a latched trip lifts only when its causes are gone
and the permit's approver resets it. Every command names the record that
caused it (null for the clock) and the faults its reasons rest on.
"""

from __future__ import annotations

import pytest

from site_records import (
    codes,
    commands,
    faults,
    OUTSIDE,
    SECOND,
    T0,
    HotWorkSite,
    gas_v2,
    hot_work_permit,
    qualification,
)


TK3 = {
    "zone": "TK-3", "name": "3号储罐区", "polygon": [[0, 0], [20, 0], [20, 15], [0, 15]], "z": [0, 12], "risk": "I",
    "forbid": ["hot_work"], "entrance": {"polygon": [[20, 5], [23, 5], [23, 8], [20, 8]]},
}




def action(site: HotWorkSite, what: str, by: str, permit: str = "HW-1", **extra) -> list:
    return site.send("ptw.actions", permit, dict({"permit": permit, "action": what, "by": by, "ts": site.now}, **extra))


def tripped() -> HotWorkSite:
    """HW-1 enabled, then tripped by its guardian's absence (latched); the guardian is still away."""
    s = HotWorkSite().started()
    s.run(31, skip=("G1",))
    (stop,) = commands(s, "HARD_STOP")
    assert stop["latched"] is True
    return s


def guardian_back(s: HotWorkSite) -> None:
    s.run(2)


class ConfinedSite(HotWorkSite):
    """Confined-space permit CS-1 in tank TK-3: entrants W1 and W2 inside, guardian G1 at the entrance."""

    def __init__(self) -> None:
        super().__init__()
        self.spots = {"W1": (10.0, 5.0), "W2": (12.0, 5.0), "G1": (21.5, 6.5)}

    @staticmethod
    def permit(rev: int = 1, state: str = "approved", **changes) -> dict:
        return hot_work_permit(rev=rev, state=state, permit="CS-1", type="confined_space", zone="TK-3", **changes)

    def tables(self, permit: dict | None = None) -> None:
        super().tables(permit or self.permit())
        self.send("gis.zones", "TK-3", TK3)
        for worker in ("W1", "W2"):
            self.send("hr.qualifications", worker, qualification(worker, "confined"))

    def activate(self, rev: int = 2, **changes):
        return self.send("ptw.permits", "CS-1", self.permit(rev=rev, state="active", **changes))

    def close(self, rev: int = 3):
        return self.send("ptw.permits", "CS-1", self.permit(rev=rev, state="closed"))


# ---------------------------------------------------------------------------------------------- ENABLE


def test_enable_names_the_permit_record_that_activated_it_and_its_equipment():
    s = HotWorkSite().started()
    (enable,) = commands(s)
    assert enable["kind"] == "ENABLE"
    assert enable["ts"] == T0 + 6 * SECOND
    assert enable["permit"] == "HW-1"
    assert enable["zone"] == "PR-1"
    assert enable["targets"] == ["WELD-5"]
    assert enable["trigger"] == {"topic": "ptw.permits", "partition": 0, "offset": 1}
    assert codes(enable) == ["ALL_PRECONDITIONS_MET"]
    assert enable["id"]


def test_an_enabled_permit_is_not_enabled_again_while_all_holds():
    s = HotWorkSite().started()
    s.run(120)
    assert [c["kind"] for c in commands(s)] == ["ENABLE"]


def test_a_permit_activated_before_its_preconditions_hold_is_stopped_unlatched_and_enabled_once_they_hold():
    s = HotWorkSite()
    s.spots["G1"] = OUTSIDE
    s.started()
    (stop,) = commands(s)
    assert stop["kind"] == "HARD_STOP"
    assert stop["latched"] is False
    assert codes(stop) == ["GUARDIAN_ABSENT"]
    s.spots["G1"] = (5.0, 5.0)
    mark = len(s.outputs)
    s.run(1)
    (enable,) = commands(s, since=mark)
    assert enable["kind"] == "ENABLE"
    assert codes(enable) == ["ALL_PRECONDITIONS_MET"]  # no reset needed: nothing was running
    assert enable["trigger"]["topic"] == "rtls.position"


# ---------------------------------------------------------------------------------------------- HARD_STOP and the latch


def test_a_stop_while_enabled_is_latched_and_targets_the_permits_equipment():
    s = tripped()
    (stop,) = commands(s, "HARD_STOP")
    assert stop["permit"] == "HW-1"
    assert stop["targets"] == ["WELD-5"]
    assert stop["latched"] is True


def test_a_stop_is_not_repeated_while_its_causes_persist():
    s = tripped()
    s.run(60, skip=("G1",))
    assert len(commands(s, "HARD_STOP")) == 1


def test_a_stop_names_every_cause_present_each_resting_on_its_fault():
    s = HotWorkSite()
    s.spots["G1"] = OUTSIDE
    s.tables()
    s.run(6)
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=2, state="active", workers=["W1", "W2", "G1"]))
    (stop,) = commands(s, "HARD_STOP")
    assert set(codes(stop)) == {"GUARDIAN_ABSENT", "PERMIT_GUARDIAN_IS_WORKER"}
    emitted = {f["id"]: f for f in faults(s)}
    for reason in stop["reasons"]:
        assert emitted[reason["fault"]]["code"] == reason["code"]
        assert emitted[reason["fault"]]["grade"] == "CRITICAL"
        assert emitted[reason["fault"]]["permits"] == ["HW-1"]


def test_a_new_cause_during_a_latched_stop_is_announced_by_another_latched_stop():
    s = tripped()
    mark = len(s.outputs)
    s.plc({"V-101.isolated": False})
    (stop,) = commands(s, "HARD_STOP", mark)
    assert set(codes(stop)) == {"GUARDIAN_ABSENT", "ISOLATION_NOT_CONFIRMED"}
    assert stop["latched"] is True
    assert stop["trigger"]["topic"] == "plc.state"


def test_a_cause_that_comes_back_while_the_permit_is_still_stopped_is_not_announced_again():
    s = tripped()
    s.run(2)  # the guardian is back: causes gone, the approver is told
    mark = len(s.outputs)
    s.run(31, skip=("G1",))  # and away again
    assert not commands(s, "HARD_STOP", mark)
    assert faults(s, "GUARDIAN_ABSENT", "raised", mark), "the fault itself is raised again"


def test_a_latched_stop_stays_when_its_causes_go_and_the_approver_is_told_a_reset_is_possible():
    s = tripped()
    mark = len(s.outputs)
    s.run(60)  # the guardian is back
    assert not commands(s, "ENABLE", mark)
    (alert,) = commands(s, "ALERT", mark)
    assert alert["targets"] == ["A1"]
    assert codes(alert) == ["TRIP_RESET_REQUIRED"]
    assert alert["reasons"][0]["fault"] is None
    assert alert["trigger"]["topic"] == "rtls.position"
    (cleared,) = faults(s, "GUARDIAN_ABSENT", "cleared", mark)
    assert cleared["permits"] == ["HW-1"]


def test_the_approvers_reset_after_the_causes_are_gone_enables_the_permit():
    s = tripped()
    guardian_back(s)
    mark = len(s.outputs)
    action(s, "reset", "A1")
    (enable,) = commands(s, since=mark)
    assert enable["kind"] == "ENABLE"
    assert codes(enable) == ["RESET_ACCEPTED", "ALL_PRECONDITIONS_MET"]
    assert all(r["fault"] is None for r in enable["reasons"])
    assert enable["trigger"] == {"topic": "ptw.actions", "partition": 0, "offset": 0}
    assert not faults(s, since=mark)


def test_reset_by_someone_other_than_the_approver_is_refused_as_a_security_fault():
    s = tripped()
    guardian_back(s)
    mark = len(s.outputs)
    action(s, "reset", "G1")
    assert not commands(s, "ENABLE", mark)
    (fault,) = faults(s, "RESET_UNAUTHORISED", since=mark)
    assert fault["state"] == "raised"
    assert fault["grade"] == "MAJOR"
    assert fault["permits"] == ["HW-1"]
    assert "G1" in fault["detail"]
    assert fault["source"] == {"topic": "ptw.actions", "partition": 0, "offset": 0}
    s.run(5)
    assert not commands(s, "ENABLE", mark)  # still latched
    action(s, "reset", "A1")
    assert commands(s, "ENABLE", mark)


def test_reset_by_someone_other_than_the_approver_is_refused_even_when_nothing_is_latched():
    s = HotWorkSite().started()
    mark = len(s.outputs)
    action(s, "reset", "W1")
    assert faults(s, "RESET_UNAUTHORISED", since=mark)
    assert not commands(s, since=mark)


def test_reset_while_causes_remain_is_refused():
    s = tripped()  # the guardian is still away
    mark = len(s.outputs)
    action(s, "reset", "A1")
    assert not commands(s, since=mark)
    (fault,) = faults(s, "RESET_REFUSED_CAUSES_PRESENT", since=mark)
    assert fault["grade"] == "INFO"
    assert fault["permits"] == ["HW-1"]
    assert "GUARDIAN_ABSENT" in fault["detail"]
    guardian_back(s)
    assert not commands(s, "ENABLE", mark)  # a refused reset is not remembered
    action(s, "reset", "A1")
    assert commands(s, "ENABLE", mark)


def test_after_a_gas_trip_a_reset_needs_a_new_gas_test():
    s = HotWorkSite().started()
    s.gas(gas_v2("GAS-07", s.now - 20, s.next_seq("GAS-07"), r=(20.9, 15.0, 0.0, 1.0)))
    s.now += SECOND
    s.run(2)  # two qualified readings since the bad one
    mark = len(s.outputs)
    action(s, "reset", "A1")
    assert faults(s, "RESET_REFUSED_CAUSES_PRESENT", since=mark)
    assert not commands(s, "ENABLE", mark)
    s.run(3)  # five qualified readings since the bad one
    (alert,) = commands(s, "ALERT", mark)
    assert codes(alert) == ["TRIP_RESET_REQUIRED"]
    action(s, "reset", "A1")
    assert commands(s, "ENABLE", mark)


def test_a_reset_when_nothing_is_latched_changes_nothing():
    s = HotWorkSite().started()
    mark = len(s.outputs)
    action(s, "reset", "A1")
    assert not commands(s, since=mark)
    assert not faults(s, since=mark)


def test_a_trip_latched_while_the_permit_is_suspended_still_needs_the_reset_after_reactivation():
    s = tripped()
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state="suspended"))
    guardian_back(s)
    mark = len(s.outputs)
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=4, state="active"))
    s.run(3)
    assert not commands(s, "ENABLE", mark)
    action(s, "reset", "A1")
    assert commands(s, "ENABLE", mark)


# ---------------------------------------------------------------------------------------------- permit state changes


@pytest.mark.parametrize("state", ["suspended", "closed", "cancelled", "approved", "draft"])
def test_an_enabled_permit_that_leaves_the_active_state_is_stopped_without_latch(state):
    s = HotWorkSite().started()
    mark = len(s.outputs)
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state=state))
    (stop,) = commands(s, since=mark)
    assert stop["kind"] == "HARD_STOP"
    assert codes(stop) == ["PERMIT_NOT_ACTIVE"]
    assert stop["reasons"][0]["fault"] is None
    assert stop["latched"] is False
    assert stop["trigger"]["topic"] == "ptw.permits"


def test_a_deleted_permit_is_stopped_like_a_cancelled_one():
    s = HotWorkSite().started()
    mark = len(s.outputs)
    s.send("ptw.permits", "HW-1", None)
    (stop,) = commands(s, since=mark)
    assert (stop["kind"], codes(stop)) == ("HARD_STOP", ["PERMIT_NOT_ACTIVE"])


def test_a_suspended_permit_reactivated_is_enabled_again_without_reset():
    s = HotWorkSite().started()
    mark = len(s.outputs)
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state="suspended"))
    s.run(5)
    assert not commands(s, "ENABLE", mark)
    mark = len(s.outputs)
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=4, state="active"))
    (enable,) = commands(s, since=mark)
    assert enable["kind"] == "ENABLE"


def test_a_permit_leaving_the_active_state_clears_its_open_faults():
    s = tripped()
    mark = len(s.outputs)
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state="suspended"))
    (cleared,) = faults(s, "GUARDIAN_ABSENT", "cleared", mark)
    assert cleared["permits"] == ["HW-1"]


def test_a_suspended_permit_is_not_stopped_by_a_failing_precondition():
    s = HotWorkSite().started()
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state="suspended"))
    mark = len(s.outputs)
    s.run(40, skip=("G1",))
    assert not commands(s, since=mark)


def test_a_stop_of_one_permit_leaves_a_permit_in_another_zone_running():
    s = HotWorkSite()
    s.send("gis.zones", "PR-2", {"zone": "PR-2", "polygon": [[0, 50], [30, 50], [30, 60], [0, 60]], "z": [0, 15],
                                 "risk": "III"})
    s.send("cmdb.devices", "T-W3", {"device": "T-W3", "family": "uwb_tag", "vendor": "anchorline", "worker": "W3"})
    s.send("cmdb.devices", "T-G3", {"device": "T-G3", "family": "uwb_tag", "vendor": "anchorline", "worker": "G3"})
    s.send("hr.qualifications", "W3", qualification("W3", "electrical"))
    s.spots.update({"W3": (10.0, 55.0), "G3": (5.0, 55.0)})
    electric = hot_work_permit(permit="TE-2", type="temp_electric", zone="PR-2", workers=["W3"], guardian="G3",
                               equipment=["PANEL-4"], isolations=[], detectors=[],
                               signatures={"applicant": "W3", "guardian": "G3", "approver": "A1", "supervisor": "S1"})
    s.send("ptw.permits", "TE-2", electric)
    s.started()
    s.send("ptw.permits", "TE-2", dict(electric, rev=2, state="active"))
    s.run(31, skip=("G1",))
    assert {c["permit"] for c in commands(s, "ENABLE")} == {"HW-1", "TE-2"}
    assert [c["permit"] for c in commands(s, "HARD_STOP")] == ["HW-1"]


# ---------------------------------------------------------------------------------------------- alerts


def test_a_warning_alerts_the_guardian_once_not_every_second():
    s = HotWorkSite()
    s.tables()
    row = qualification("W1", expires="2027-01-10", review_due=None)  # within 90 days of T0
    s.send("hr.qualifications", "W1", row)
    s.run(6)
    s.activate()
    s.run(60)
    alerts = commands(s, "ALERT")
    assert [codes(a) for a in alerts] == [["QUALIFICATION_EXPIRING"]]
    assert alerts[0]["targets"] == ["G1"]


def test_an_acknowledgement_by_the_guardian_changes_no_decision():
    s = HotWorkSite().started()
    mark = len(s.outputs)
    action(s, "ack", "G1", alert="C-0000")
    assert not s.outputs[mark:]


# ---------------------------------------------------------------------------------------------- permit actions that make no sense


def test_an_action_for_a_permit_the_interlock_does_not_hold_is_permit_unknown():
    s = HotWorkSite().started()
    mark = len(s.outputs)
    action(s, "reset", "A1", permit="HW-404")
    (fault,) = faults(s, "PERMIT_UNKNOWN", since=mark)
    assert fault["grade"] == "MINOR"
    assert not commands(s, since=mark)


def test_an_action_other_than_reset_or_ack_is_ignored_as_action_unknown():
    s = tripped()
    guardian_back(s)
    mark = len(s.outputs)
    action(s, "unlatch", "A1")
    (fault,) = faults(s, "ACTION_UNKNOWN", since=mark)
    assert fault["grade"] == "MINOR"
    assert not commands(s, "ENABLE", mark)


# ---------------------------------------------------------------------------------------------- closing a confined space


def test_closing_a_confined_space_with_someone_last_located_inside_raises_critical_entrant_left_inside():
    s = ConfinedSite().started()
    assert commands(s, "ENABLE")
    s.spots["W2"] = (25.0, 12.0)  # W2 comes out; W1 stays in
    s.run(2)
    mark = len(s.outputs)
    s.close()
    (fault,) = faults(s, "ENTRANT_LEFT_INSIDE", since=mark)
    assert fault["state"] == "raised"
    assert fault["grade"] == "CRITICAL"
    assert fault["permits"] == ["CS-1"]
    assert "W1" in fault["detail"] and "W2" not in fault["detail"]
    (stop,) = commands(s, "HARD_STOP", mark)
    assert stop["reasons"][0] == {"code": "ENTRANT_LEFT_INSIDE", "detail": stop["reasons"][0]["detail"], "fault": fault["id"]}
    assert stop["trigger"]["topic"] == "ptw.permits"


def test_an_entrant_whose_tag_went_silent_inside_counts_as_left_inside():
    s = ConfinedSite().started()
    del s.spots["W1"]  # W1's tag stops reporting; the last fix is inside
    s.run(60)
    mark = len(s.outputs)
    s.close()
    assert faults(s, "ENTRANT_LEFT_INSIDE", "raised", mark)


def test_entrant_left_inside_clears_when_the_last_entrant_is_located_outside():
    s = ConfinedSite().started()
    s.close()
    s.spots["W1"] = (25.0, 12.0)
    s.run(2)
    assert not faults(s, "ENTRANT_LEFT_INSIDE", "cleared")  # W2 is still inside
    s.spots["W2"] = (26.0, 12.0)
    s.run(2)
    (cleared,) = faults(s, "ENTRANT_LEFT_INSIDE", "cleared")
    assert cleared["permits"] == ["CS-1"]


def test_closing_an_empty_confined_space_raises_no_entrant_fault():
    s = ConfinedSite().started()
    s.spots["W1"] = (25.0, 12.0)
    s.spots["W2"] = (26.0, 12.0)
    s.run(2)
    mark = len(s.outputs)
    s.close()
    assert not faults(s, "ENTRANT_LEFT_INSIDE")
    (stop,) = commands(s, since=mark)
    assert codes(stop) == ["PERMIT_NOT_ACTIVE"]


def test_closing_a_hot_work_permit_with_workers_inside_is_no_confined_space_alarm():
    s = HotWorkSite().started()
    s.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state="closed"))
    assert not faults(s, "ENTRANT_LEFT_INSIDE")
