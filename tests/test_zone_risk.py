"""Specification: zone risk grades in the interlock (docs/risk_model.md).

A zone's risk model steps once a second, at the risk tick of record time after its detectors' readings. BLUE alerts
the team leader, YELLOW alerts the guardian, who must acknowledge, RED stops every permit in the zone (latched,
reset by the approver once the grade has fallen) and alerts everyone on it to evacuate. Risk-driven commands carry
RISK_ reason codes, the score and the grade. The tests use a probe model whose score follows the zone's LEL reading,
so each grade is reached on purpose.
"""

from __future__ import annotations

import pickle

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.config import load_config
from interlock.risk_inputs import RAW
from interlock.risk_features import (FEATURE_WIDTH, features_sequence, features_step, new_feature_state,
                                     worst_fraction, worst_fractions)
from interlock.risk_grade import NONE, YELLOW, GradeState, RiskThresholds, grade_series, grade_step
from interlock.site import Site
from interlock.zone_risk import RISK_GROUP_ZONES, tick_phase
from risk_probe import PROBE, blind_model, run_lel, started
from site_records import SECOND, HotWorkSite, codes, commands, faults, gas_v2, hot_work_permit


def risk_commands(site: HotWorkSite, since: int = 0) -> list[dict]:
    return [c for c in commands(site, since=since) if any(code.startswith("RISK_") for code in codes(c))]


def test_calm_air_gives_no_grade_and_no_command():
    site = started()
    run_lel(site, 1.0, 20)
    assert risk_commands(site) == []
    assert [f for f in faults(site) if f["code"].startswith("RISK_")] == []


def test_yellow_alerts_the_guardian_with_score_grade_and_ack_required():
    site = started()
    run_lel(site, 3.0, 3)
    [alert] = risk_commands(site)
    assert alert["kind"] == "ALERT" and codes(alert) == ["RISK_YELLOW"] and alert["targets"] == ["G1"]
    assert alert["risk"]["grade"] == "YELLOW" and 0.5 <= alert["risk"]["score"] < 0.8 and alert["risk"]["ack_required"]
    [fault] = faults(site, "RISK_YELLOW", "raised")
    assert fault["grade"] == "MAJOR" and fault["permits"] == ["HW-1"] and "PR-1" in fault["detail"]


def test_yellow_does_not_stop_the_work():
    site = started()
    run_lel(site, 3.0, 10)
    assert commands(site, "HARD_STOP") == []


def test_blue_alerts_the_team_leader():
    site = started()
    run_lel(site, 2.0, 3)
    [alert] = risk_commands(site)
    assert codes(alert) == ["RISK_BLUE"] and alert["targets"] == ["W1"] and alert["risk"]["grade"] == "BLUE"


def test_red_needs_confirmation_before_it_stops():
    site = started()
    run_lel(site, 6.0, 2)
    assert commands(site, "HARD_STOP") == []
    run_lel(site, 6.0, 1)
    [stop] = commands(site, "HARD_STOP")
    assert "RISK_RED" in codes(stop) and stop["latched"] and stop["risk"]["grade"] == "RED"


def test_red_alerts_everyone_on_the_permit_to_evacuate():
    site = started()
    run_lel(site, 6.0, 4)
    evacuate = [c for c in risk_commands(site) if c["kind"] == "ALERT" and c["risk"]["grade"] == "RED"]
    assert len(evacuate) == 1
    assert set(evacuate[0]["targets"]) == {"G1", "W1", "W2"} and "EVACUATE PR-1" in evacuate[0]["reasons"][0]["detail"]


def test_red_latches_until_the_grade_falls_and_the_approver_resets():
    site = started()
    run_lel(site, 6.0, 5)
    run_lel(site, 0.0, 10)
    assert faults(site, "RISK_RED", "cleared")
    assert commands(site, "ENABLE")[-1]["ts"] < commands(site, "HARD_STOP")[-1]["ts"]  # not re-enabled by itself
    since = len(site.outputs)
    site.send("ptw.actions", "HW-1", {"permit": "HW-1", "action": "reset", "by": "A1", "ts": site.now})
    site.run(1)
    assert [c["kind"] for c in commands(site, since=since)] == ["ENABLE"]


def test_reset_is_refused_while_the_zone_is_still_red():
    site = started()
    run_lel(site, 6.0, 5)
    since = len(site.outputs)
    site.send("ptw.actions", "HW-1", {"permit": "HW-1", "action": "reset", "by": "A1", "ts": site.now})
    [refusal] = faults(site, "RESET_REFUSED_CAUSES_PRESENT", since=since)
    assert "RISK_RED" in refusal["detail"]


def test_an_alert_not_acknowledged_in_two_minutes_raises_a_major_fault():
    site = started()
    run_lel(site, 3.0, 125)
    [fault] = faults(site, "RISK_ALERT_UNACKNOWLEDGED", "raised")
    assert fault["grade"] == "MAJOR" and "G1" in fault["detail"]


def test_the_guardians_acknowledgement_stops_the_unacknowledged_fault():
    site = started()
    run_lel(site, 3.0, 3)
    [alert] = risk_commands(site)
    site.send("ptw.actions", "HW-1", {"permit": "HW-1", "action": "ack", "by": "G1", "alert": alert["id"], "ts": site.now})
    run_lel(site, 3.0, 125)
    assert faults(site, "RISK_ALERT_UNACKNOWLEDGED") == []


def test_grading_is_off_without_a_model():
    site = started(model=None)
    run_lel(site, 6.0, 10)
    assert risk_commands(site) == [] and commands(site, "HARD_STOP") == []


def test_the_zone_steps_once_a_second_whatever_the_reading_rate():
    site = started()
    steps = site.site.zone_risk["PR-1"].steps
    for _ in range(4):  # two readings 500 ms apart, each second
        site.gas(gas_v2("GAS-07", site.now - 20, site.next_seq("GAS-07")))
        site.now += SECOND // 2
    site.advance()
    assert site.site.zone_risk["PR-1"].steps - steps == 2


def test_a_reading_steps_its_zone_at_the_next_whole_second_of_record_time():
    site = started()
    risk = site.site.zone_risk["PR-1"]
    steps = risk.steps
    site.gas(gas_v2("GAS-07", site.now + 280, site.next_seq("GAS-07")), ts=site.now + 300)
    assert risk.steps == steps
    site.now += SECOND
    site.advance()
    assert risk.steps == steps + 1 and risk.last_step == site.now and risk.raw[RAW["dt_s"]] == 1.0


@pytest.mark.parametrize("period", [0, -1000])
def test_a_risk_tick_that_is_no_period_is_refused_with_the_fix(period):
    with pytest.raises(msgspec.ValidationError, match=f"risk_step_ms: {period} is no period.*1000"):
        load_config(f"risk_step_ms = {period}")


def test_zones_step_in_groups_each_at_its_own_phase_of_the_second():
    site = HotWorkSite(Site(risk_model=PROBE))
    site.tables()
    zones = [f"Z{i:02d}" for i in range(RISK_GROUP_ZONES + 1)]
    for zone in zones:
        site.send("cmdb.devices", f"D-{zone}", {"device": f"D-{zone}", "family": "gas", "model": "GD-4",
                                                "firmware": "2.3.1", "zone": zone})
    for zone in zones:
        site.send("gas.readings", f"D-{zone}", gas_v2(f"D-{zone}", site.now - 20, site.next_seq(f"D-{zone}")))
    risks = [site.site.zone_risk[zone] for zone in zones]
    assert [risk.phase_ms for risk in risks] == [0] * RISK_GROUP_ZONES + [618]
    start = site.now
    site.now = start + 617
    site.advance()
    assert [risk.steps for risk in risks] == [0] * (RISK_GROUP_ZONES + 1)
    site.now = start + 618
    site.advance()
    assert [risk.steps for risk in risks] == [0] * RISK_GROUP_ZONES + [1]
    site.now = start + SECOND
    site.advance()
    assert [risk.steps for risk in risks] == [1] * (RISK_GROUP_ZONES + 1)


def test_the_phases_of_the_groups_spread_over_the_second():
    phases = [tick_phase(group, SECOND) for group in range(50)]
    assert len(set(phases)) == 50 and all(0 <= phase < SECOND for phase in phases)
    assert max(b - a for a, b in zip(sorted(phases), sorted(phases)[1:] + [SECOND])) < 3 * SECOND / 50


def test_a_live_run_wakes_for_the_risk_tick():
    site = started()
    site.gas(gas_v2("GAS-07", site.now + 280, site.next_seq("GAS-07")), ts=site.now + 300)
    assert site.site.next_wake() <= site.now + SECOND


def test_a_snapshot_resumes_with_the_same_scores():
    site = started()
    run_lel(site, 2.5, 5)
    copy = pickle.loads(pickle.dumps(site.site))
    for lel in (3.5, 4.5, 6.0):
        record = site.writer.record("gas.readings", "GAS-07",
                                    gas_v2("GAS-07", site.now - 20, site.next_seq("GAS-07"), r=(20.9, lel, 0.0, 1.0)),
                                    site.now)
        assert site.site.process(record) == copy.process(record)
        assert site.site.zone_risk["PR-1"].score == copy.zone_risk["PR-1"].score
        site.now += SECOND


@pytest.mark.parametrize("second_lel, grade", [(0.0, "NONE"), (3.0, "YELLOW")])
def test_the_zone_reads_its_worst_detector(second_lel, grade):
    site = HotWorkSite(Site(risk_model=PROBE))
    site.tables()
    site.send("cmdb.devices", "GAS-08", {"device": "GAS-08", "family": "gas", "model": "GD-4", "firmware": "2.3.1",
                                         "zone": "PR-1"})
    for _ in range(4):
        site.gas()
        site.send("gas.readings", "GAS-08",
                  gas_v2("GAS-08", site.now - 10, site.next_seq("GAS-08"), r=(20.9, second_lel, 0.0, 1.0)))
        site.now += SECOND
    assert site.site.zone_risk["PR-1"].grade_name == grade


def test_a_detector_registered_after_the_zone_has_stepped_is_read_from_then_on():
    site = started()
    run_lel(site, 1.0, 3)
    site.send("cmdb.devices", "GAS-08", {"device": "GAS-08", "family": "gas", "model": "GD-4", "firmware": "2.3.1",
                                         "zone": "PR-1"})
    for _ in range(4):
        site.send("gas.readings", "GAS-08",
                  gas_v2("GAS-08", site.now - 10, site.next_seq("GAS-08"), r=(20.9, 3.0, 0.0, 1.0)))
        run_lel(site, 1.0, 1)
    assert site.site.zone_risk["PR-1"].grade_name == "YELLOW"


def test_a_permit_revision_changes_the_signals_and_occupancy_the_zone_reads():
    site = started()
    run_lel(site, 1.0, 6)
    raw = site.site.zone_risk["PR-1"].raw
    assert (raw[RAW["equipment"]], raw[RAW["occupancy"]]) == (1.0, 3.0)
    site.send("ptw.permits", "HW-1", hot_work_permit(rev=3, state="closed"))
    run_lel(site, 1.0, 2)
    raw = site.site.zone_risk["PR-1"].raw
    assert np.isnan(raw[RAW["equipment"]]) and np.isnan(raw[RAW["occupancy"]])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.1, 0.19, 0.2, 0.45, 0.5, 0.7, 0.8, 0.95]), min_size=1, max_size=80))
def test_grading_one_step_at_a_time_gives_the_grades_of_the_whole_series(scores):
    thresholds = PROBE.thresholds
    state = GradeState()
    stepped = [grade_step(state, score, thresholds) for score in scores]
    assert stepped == grade_series(np.array(scores), thresholds).tolist()


# --- the air rule: YELLOW when the air has stayed near a limit, whatever the score ----------------------------------


def test_air_held_at_half_a_limit_for_the_rules_steps_raises_yellow_whatever_the_score():
    site = started(blind_model(air_yellow=0.5, air_yellow_steps=3))
    run_lel(site, 6.0, 2)  # 0.6 of the 10 %LEL limit
    assert risk_commands(site) == []
    run_lel(site, 6.0, 1)
    [alert] = risk_commands(site)
    assert codes(alert) == ["RISK_YELLOW"] and alert["risk"]["grade"] == "YELLOW" and alert["risk"]["score"] < 0.05
    [fault] = faults(site, "RISK_YELLOW", "raised")
    assert "the air has stayed at 0.5 of a gas limit or more for 3 risk steps" in fault["detail"]
    assert "LEL 6 %" in fault["detail"]


def test_air_under_the_rules_level_raises_nothing_from_a_model_that_scores_low():
    site = started(blind_model(air_yellow=0.5, air_yellow_steps=3))
    run_lel(site, 4.0, 10)
    assert risk_commands(site) == []


def test_the_air_rule_counts_steps_in_a_row():
    rule = RiskThresholds(blue=0.2, yellow=0.5, red=0.8, air_yellow=0.5, air_yellow_steps=3)
    grades = grade_series(np.zeros(7), rule, np.array([0.6, 0.6, 0.4, 0.6, 0.6, 0.6, 0.6]))
    assert grades.tolist() == [NONE, NONE, NONE, NONE, NONE, YELLOW, YELLOW]


def test_a_yellow_by_the_air_falls_only_after_the_air_is_back_under_the_level_for_the_release_steps():
    rule = RiskThresholds(blue=0.2, yellow=0.5, red=0.8, release_steps=2, air_yellow=0.5, air_yellow_steps=1)
    grades = grade_series(np.zeros(6), rule, np.array([0.6, 0.6, 0.6, 0.3, 0.3, 0.3]))
    assert grades.tolist() == [YELLOW, YELLOW, YELLOW, YELLOW, NONE, NONE]


def test_model_files_made_before_the_air_rule_grade_by_the_score_alone():
    rule = RiskThresholds(blue=0.2, yellow=0.5, red=0.8)
    assert rule.air_yellow == 0.0
    assert grade_series(np.zeros(5), rule, np.full(5, 2.0)).tolist() == [NONE] * 5


def test_the_air_rule_reads_the_worst_channel_the_features_hold():
    raw = np.full((3, len(RAW)), np.nan)
    raw[:, RAW["dt_s"]] = 1.0
    raw[:, RAW["lel"]], raw[:, RAW["limit_lel"]] = (2.0, 7.0, np.nan), 10.0
    raw[:, RAW["co"]], raw[:, RAW["limit_co"]] = 13.0, 26.0
    assert worst_fractions(features_sequence(raw)).tolist() == [0.5, 0.7, 0.7]  # an unknown channel holds its value
    state = new_feature_state()
    for row in raw:
        features_step(row, state, np.empty(FEATURE_WIDTH))
    assert worst_fraction(state) == 0.7


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.85]), st.sampled_from([0.0, 0.4, 0.5, 0.9])),
                min_size=1, max_size=80))
def test_grading_one_step_at_a_time_with_the_air_rule_gives_the_grades_of_the_whole_series(steps):
    rule = RiskThresholds(blue=0.2, yellow=0.6, red=0.8, red_confirm_steps=2, release_steps=3, air_yellow=0.5,
                          air_yellow_steps=2)
    state = GradeState()
    stepped = [grade_step(state, score, rule, air) for score, air in steps]
    assert stepped == grade_series(np.array([s for s, _ in steps]), rule, np.array([a for _, a in steps])).tolist()
