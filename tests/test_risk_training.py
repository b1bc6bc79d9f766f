"""Specification: the risk model's training tools (training/), on small hand-made data.

- `risk_metrics.evaluate_grades`: recall >= 10 min and its population, lead time, false RED and false warnings (a
  rising edge with no crossing of the zone in [t - 60 s, t + 720 s], the zone not over a limit, and no hazard of the
  zone between its start and its crossing), their rate per 100 zone-hours, and episode precision
  (training/risk_metrics.py, module docstring).
- `risk_metrics.choose_thresholds` / `threshold_search`: blue <= yellow <= red, red keeping false RED within its cap.
- `risk_labels.parse_labels` and `labels_for`: a site's labels file read, its errors naming the entry and the key;
  label True in the 720 s before a crossing.
- `risk_baselines`: the threshold-only and rate-of-rise scores.
- `risk_eval.main` end to end on a tiny generated training set and a small random model.
- `risk_train.train` (when PyTorch is installed): a tiny model the model file accepts, the same from the same seed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from interlock import risk_inputs as R
from interlock.risk_grade import BLUE, NONE, RED, YELLOW, RiskThresholds, grade_series
from interlock.risk_model import RiskModel, write_model_bytes
from risk_probe import random_model_arrays
from training.risk_baselines import BELOW_LIMIT, rate_of_rise_scores, threshold_only_scores
from training.risk_dataset import load_crossings, load_hazards, load_set
from training.risk_eval import MODEL, _air_trace_ceiling, _table_slack, _target_cost, main as risk_eval_main
from training.risk_eval import evaluate as evaluate_methods
from training.risk_labels import LabelsError, labels_for, parse_labels
from training.risk_metrics import choose_thresholds, evaluate_grades, prepare, threshold_search, yellow_for_recall
from training.zone_sequence import Crossing, Hazard, ZoneSequence

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_825_113_600_000
HOUR = 3600
SCENARIO = "s1"
LIMITS = {"limit_o2_min": 19.5, "limit_o2_max": 23.5, "limit_lel": 10.0, "limit_h2s": 7.0, "limit_co": 26.0}
THRESHOLDS = {"blue": 0.2, "yellow": 0.5, "red": 0.8}


def at(second: float) -> int:
    return T0 + int(round(second * 1000))


def zone_sequence(steps: int = HOUR, zone: str = "Z1", *, crossings_s: tuple[float, ...] = (),
                  over: tuple[int, int] | None = None, active: tuple[int, int] | None = None) -> ZoneSequence:
    t = T0 + 1000 * np.arange(steps, dtype=np.int64)
    label, seconds = labels_for(t, np.array([at(c) for c in crossings_s], dtype=np.int64))
    over_limit = np.zeros(steps, dtype=bool)
    if over is not None:
        over_limit[over[0]:over[1]] = True
    hazard_active = np.zeros(steps, dtype=bool)
    if active is not None:
        hazard_active[active[0]:active[1]] = True
    return ZoneSequence(SCENARIO, zone, "test", "confined_space", "confined_space", t, R.empty_raw(steps), label,
                        seconds, over_limit, hazard_active)


def graded(steps: int = HOUR, *spells: tuple[int, int, int]) -> np.ndarray:
    """Grades NONE but for (first step, one past the last, grade) spells."""
    g = np.full(steps, NONE, dtype=np.int8)
    for a, b, grade in spells:
        g[a:b] = grade
    return g


def hazard(start_s: float, crossing_s: float | None, zone: str = "Z1", kind: str = "flammable_leak") -> Hazard:
    crossed = crossing_s is not None
    return Hazard(SCENARIO, zone, f"{zone}/H1", kind, at(start_s), crossed, at(crossing_s) if crossed else None,
                  crossing_s - start_s if crossed else None)


def crossing(second: float, zone: str = "Z1") -> Crossing:
    return Crossing(SCENARIO, zone, "lel", at(second), None, None)


def evaluate(sequences, grades, hazards=(), crossings=()):
    scores = [np.zeros(len(s)) for s in sequences]
    return evaluate_grades(list(sequences), list(grades), scores, list(hazards), list(crossings))


def one_zone(grades: np.ndarray, hazards=(), crossings=(), **zone):
    return evaluate([zone_sequence(len(grades), **zone)], [grades], hazards, crossings)


def raw_steps(steps: int, **columns) -> np.ndarray:
    """A zone's raw block with one fresh detector, the default limits and the given columns (value or array)."""
    raw = R.empty_raw(steps)
    for name, value in {"dt_s": 1.0, "detectors": 1.0, "fresh": 1.0, "warming": 0.0, "faulted_channels": 0.0,
                        "o2_low": 20.9, "o2_high": 20.9, "lel": 0.0, "h2s": 0.0, "co": 0.0,
                        **LIMITS, **columns}.items():
        raw[:, R.RAW[name]] = value
    return raw


# --- recall >= 10 min and lead time -------------------------------------------------------------------------------


def test_a_hazard_warned_yellow_10_minutes_before_its_crossing_is_warned_10_minutes_ahead():
    m = one_zone(graded(HOUR, (900, 1600, YELLOW)), [hazard(0, 1500)], [crossing(1500)])
    assert (m.population_10min, m.warned_10min, m.recall_10min) == (1, 1, 1.0)


def test_a_hazard_warned_only_9_minutes_ahead_is_not_counted_as_warned_10_minutes_ahead():
    m = one_zone(graded(HOUR, (960, 1600, YELLOW)), [hazard(0, 1500)], [crossing(1500)])
    assert (m.population_10min, m.warned_10min, m.recall_10min) == (1, 0, 0.0)
    assert (m.warned_any, m.recall_any) == (1, 1.0)


def test_the_report_counts_hazards_warned_10_minutes_ahead_by_how_soon_after_their_start_it_had_to_come():
    early = one_zone(graded(HOUR, (20, 700, YELLOW)), [hazard(0, 630)], [crossing(630)])  # had to come by 30 s
    late = one_zone(graded(HOUR, (500, 1600, YELLOW)), [hazard(0, 1500)], [crossing(1500)])  # by 900 s, came at 500
    rows = {row[0]: row[1:] for m in (early, late)
            for row in _table_slack(SimpleNamespace(methods=[SimpleNamespace(label="model", metrics=m)]))[1]
            if row[1] != "0"}
    assert rows == {"0-60 s": ["1", "1/1"], ">= 300 s": ["1", "1/1"]}


def test_how_far_the_air_had_moved_when_a_10_minute_warning_was_last_due_is_measured_on_the_crossed_channel():
    # LEL limit 10 %: 1 % before the leak at 1,000 s, rising 0.01 % a second to cross at 1,900 s; at 1,300 s, the last
    # moment for a 10-minute warning, its last 30 s read 0.385 of the limit (median) against 0.1 before the leak.
    lel = np.r_[np.full(1000, 1.0), 1.0 + 0.01 * np.arange(HOUR - 1000)]
    zone = zone_sequence(crossings_s=(1900,))
    zone = ZoneSequence(**{**zone.__dict__, "raw": raw_steps(HOUR, lel=lel)})
    m = evaluate([zone], [graded(HOUR)], [hazard(1000, 1900)], [crossing(1900)])
    assert m.leads[0].air_moved_10min == pytest.approx(0.2855, abs=1e-3)


def test_a_bump_test_in_the_last_seconds_before_the_warning_was_due_does_not_count_as_air_moved():
    lel = np.r_[np.full(1000, 1.0), 1.0 + 0.01 * np.arange(HOUR - 1000)]
    lel[1285:1295] = 50.0  # the test bottle's gas on the detector for 10 s
    zone = zone_sequence(crossings_s=(1900,))
    zone = ZoneSequence(**{**zone.__dict__, "raw": raw_steps(HOUR, lel=lel)})
    m = evaluate([zone], [graded(HOUR)], [hazard(1000, 1900)], [crossing(1900)])
    assert m.leads[0].air_moved_10min == pytest.approx(0.2855, abs=0.02)


def test_a_bump_test_holding_the_detector_for_most_of_the_last_30_seconds_does_not_count_as_air_moved():
    lel = np.r_[np.full(1000, 1.0), 1.0 + 0.01 * np.arange(HOUR - 1000)]
    gas = {"o2_low": np.full(HOUR, 20.9), "h2s": np.zeros(HOUR), "co": np.zeros(HOUR)}
    for name, value in (("o2_low", 18.0), ("h2s", 25.0), ("co", 100.0)):
        gas[name][1275:1300] = value
    lel[1275:1300] = 50.0  # the test bottle's four gases on the detector for 25 s of the 30
    zone = zone_sequence(crossings_s=(1900,))
    zone = ZoneSequence(**{**zone.__dict__, "raw": raw_steps(HOUR, lel=lel, **gas)})
    m = evaluate([zone], [graded(HOUR)], [hazard(1000, 1900)], [crossing(1900)])
    assert m.leads[0].air_moved_10min == pytest.approx(0.275, abs=0.01)


def test_the_report_says_how_many_hazards_had_left_no_trace_in_the_air_and_the_most_a_scorer_could_warn():
    leads = [SimpleNamespace(warned_10min=w, air_moved_10min=a)
             for w, a in ((False, 0.01), (True, 0.3), (False, 0.2), (True, 0.6), (None, 0.0))]
    ev = SimpleNamespace(methods=[SimpleNamespace(name=MODEL, metrics=SimpleNamespace(leads=leads))])
    text = _air_trace_ceiling(ev)
    assert "1 of the 4 hazards" in text and "at most 75.0 %" in text and "the model warned 2 (66.7 %)" in text


def test_the_air_moved_is_unknown_without_readings_before_the_hazard():
    m = one_zone(graded(HOUR), [hazard(1000, 1900)], [crossing(1900)])
    assert math.isnan(m.leads[0].air_moved_10min)


def test_a_red_grade_10_minutes_ahead_also_counts_as_warned():
    m = one_zone(graded(HOUR, (800, 1600, RED)), [hazard(0, 1500)], [crossing(1500)])
    assert m.recall_10min == 1.0


def test_a_blue_grade_is_no_warning():
    m = one_zone(graded(HOUR, (100, 1600, BLUE)), [hazard(0, 1500)], [crossing(1500)])
    assert (m.warned_10min, m.warned_any, m.median_lead_s) == (0, 0, 0.0)


def test_a_warning_that_ended_before_the_hazard_started_does_not_count():
    m = one_zone(graded(HOUR, (0, 100, YELLOW)), [hazard(200, 1500)], [crossing(1500)])
    assert (m.warned_10min, m.warned_any) == (0, 0)


def test_a_hazard_crossing_less_than_10_minutes_after_it_started_is_outside_the_population():
    m = one_zone(graded(HOUR, (1000, 1700, YELLOW)), [hazard(1000, 1599)], [crossing(1599)])
    assert (m.hazards_crossed, m.population_10min, m.warned_any) == (1, 0, 1)
    assert math.isnan(m.recall_10min)
    [lead] = m.leads
    assert lead.warned_10min is None and lead.possible_lead_s == 599


def test_a_hazard_that_never_crossed_counts_as_a_hazard_but_in_no_recall():
    m = one_zone(graded(HOUR), [hazard(100, None)])
    assert (m.hazards, m.hazards_crossed, m.population_10min) == (1, 0, 0)
    assert math.isnan(m.recall_10min) and math.isnan(m.recall_any)


def test_the_lead_time_runs_from_the_first_yellow_after_the_hazard_started_to_the_crossing():
    m = one_zone(graded(HOUR, (900, 1600, YELLOW)), [hazard(0, 1500)], [crossing(1500)])
    assert m.median_lead_s == 600.0 and m.leads[0].lead_s == 600.0


def test_recall_is_also_given_per_hazard_kind():
    sequences = [zone_sequence(zone="Z1"), zone_sequence(zone="Z2")]
    grades = [graded(HOUR, (100, 2000, YELLOW)), graded(HOUR)]
    hazards = [hazard(0, 1500, "Z1", "h2s_leak"), hazard(0, 1500, "Z2", "nitrogen_purge")]
    m = evaluate(sequences, grades, hazards, [crossing(1500, "Z1"), crossing(1500, "Z2")])
    assert m.recall_10min == 0.5
    assert {k.kind: k.recall_10min for k in m.per_kind} == {"h2s_leak": 1.0, "nitrogen_purge": 0.0}


def test_hazards_and_crossings_of_zones_not_evaluated_are_ignored():
    m = one_zone(graded(HOUR), [hazard(0, 1500, zone="Z9")], [crossing(1500, zone="Z9")])
    assert (m.hazards, m.hazards_crossed) == (0, 0)


# --- false RED, false warnings, precision -------------------------------------------------------------------------


def test_a_red_edge_with_no_crossing_near_is_a_false_red():
    m = one_zone(graded(HOUR, (1000, 1100, RED)))
    assert (m.red_edges, m.false_red) == (1, 1)
    assert [e.t_ms for e in m.false_red_events] == [at(1000)]


@pytest.mark.parametrize(("edge_s", "false"), [(1279, 1), (1280, 0), (2000, 0), (2060, 0), (2061, 1)])
def test_a_red_edge_is_true_from_12_minutes_before_to_1_minute_after_a_crossing(edge_s, false):
    m = one_zone(graded(HOUR, (edge_s, edge_s + 50, RED)), crossings=[crossing(2000)])
    assert (m.red_edges, m.false_red) == (1, false)


def test_a_warning_20_minutes_before_the_crossing_of_a_developing_hazard_is_no_false_warning():
    m = one_zone(graded(HOUR, (1000, 1200, YELLOW), (1200, 1300, RED)), hazards=[hazard(900, 2400)],
                 crossings=[crossing(2400)], active=(900, 3000))
    assert (m.warning_edges, m.false_warnings, m.red_edges, m.false_red) == (1, 0, 1, 0)


def test_a_warning_before_a_hazard_started_is_false_however_close_its_crossing():
    m = one_zone(graded(HOUR, (800, 850, YELLOW)), hazards=[hazard(900, 2400)], crossings=[crossing(2400)],
                 active=(900, 3000))
    assert m.false_warnings == 1


def test_a_warning_after_a_hazards_crossing_with_none_to_follow_is_false():
    m = one_zone(graded(HOUR, (3300, 3400, YELLOW)), hazards=[hazard(900, 2400)], crossings=[crossing(2400)],
                 active=(900, 3600))
    assert m.false_warnings == 1


def test_a_false_red_during_a_hazard_that_never_crossed_is_counted_apart_from_one_on_benign_air():
    m = one_zone(graded(HOUR, (1000, 1100, RED), (3000, 3100, RED)), active=(900, 1200))
    assert (m.false_red, m.false_red_benign) == (2, 1)
    assert [e.during_hazard for e in m.false_red_events] == [True, False]


def test_a_false_warning_during_a_hazard_that_never_crossed_is_counted_apart_from_one_on_benign_air():
    m = one_zone(graded(HOUR, (1000, 1100, YELLOW), (3000, 3100, YELLOW)), active=(900, 1200))
    assert (m.false_warnings, m.false_warnings_benign) == (2, 1)


def test_blue_notices_on_benign_air_are_counted_and_those_during_a_hazard_are_not():
    m = one_zone(graded(HOUR, (100, 200, BLUE), (300, 400, YELLOW), (1000, 1100, BLUE), (3000, 3100, BLUE)),
                 active=(900, 1200))
    assert m.blue_notices_benign == 3 and m.blue_notices_benign_per_100h == 300.0


def test_a_red_edge_while_the_zone_is_over_a_limit_is_not_a_false_red():
    m = one_zone(graded(HOUR, (600, 700, RED)), over=(500, 1500))
    assert (m.red_edges, m.false_red) == (1, 0)


def test_a_crossing_of_another_zone_does_not_make_a_red_edge_true():
    m = one_zone(graded(HOUR, (1500, 1600, RED)), crossings=[crossing(2000, zone="Z2")])
    assert m.false_red == 1


def test_a_zone_that_starts_red_has_a_rising_edge_at_its_first_step():
    m = one_zone(graded(HOUR, (0, 100, RED)))
    assert (m.red_edges, m.false_red, m.warning_edges) == (1, 1, 1)


def test_staying_red_is_one_edge_and_rising_again_from_yellow_is_another_red_edge_but_not_another_warning():
    m = one_zone(graded(HOUR, (100, 200, RED), (200, 300, YELLOW), (300, 400, RED), (400, 500, RED)))
    assert (m.red_edges, m.warning_edges) == (2, 1)


def test_the_false_red_rate_is_per_100_zone_hours_of_every_evaluated_step():
    sequences = [zone_sequence(zone="Z1"), zone_sequence(zone="Z2")]
    m = evaluate(sequences, [graded(HOUR, (1000, 1100, RED)), graded(HOUR)])
    assert m.zone_hours == 2.0 and m.false_red == 1 and m.false_red_per_100h == pytest.approx(50.0)


def test_false_warnings_count_rising_edges_into_yellow_or_higher():
    m = one_zone(graded(HOUR, (100, 200, YELLOW), (1000, 1100, RED)))
    assert (m.warning_edges, m.false_warnings, m.false_red) == (2, 2, 1)
    assert m.false_warnings_per_100h == pytest.approx(200.0)


def test_episode_precision_is_true_warning_edges_over_all_warning_edges():
    m = one_zone(graded(HOUR, (100, 200, YELLOW), (2000, 2600, YELLOW)), crossings=[crossing(2500)])
    assert (m.warning_edges, m.true_warning_edges, m.false_warnings) == (2, 1, 1)
    assert m.episode_precision == 0.5


def test_episode_precision_is_undefined_without_a_warning():
    m = one_zone(graded(HOUR, (100, 200, BLUE)), crossings=[crossing(2500)])
    assert m.warning_edges == 0 and math.isnan(m.episode_precision)


def test_average_precision_is_1_for_a_score_that_ranks_every_labelled_step_first():
    sequence = zone_sequence(crossings_s=(2000,))
    score = np.where(sequence.label, 0.9, 0.1)
    m = evaluate_grades([sequence], [graded()], [score], [], [crossing(2000)])
    assert m.positive_rows == 720 and m.average_precision == 1.0


def test_grades_and_sequences_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="steps but"):
        evaluate([zone_sequence(HOUR)], [graded(HOUR - 1)])


def test_a_zone_given_twice_is_refused():
    with pytest.raises(ValueError, match="given twice"):
        evaluate([zone_sequence(), zone_sequence()], [graded(), graded()])


# --- threshold choice ---------------------------------------------------------------------------------------------


def validation_set(spike: float | None) -> tuple[list[ZoneSequence], list[np.ndarray], list[Hazard], list[Crossing]]:
    """Three calm zones (score 0.1; one with a 30 s benign spike to `spike`) and one zone whose hazard starts
    at 600 s and crosses at 2400 s: its score 0.05, then 0.55 from 1690 s (11 min 50 s ahead), 0.95 while over the
    limit (2400-3000 s), 0.05 after."""
    t = np.arange(HOUR, dtype=np.float64)
    sequences, scores = [], []
    for i in range(3):
        sequences.append(zone_sequence(zone=f"B{i}"))
        s = np.full(HOUR, 0.1)
        if spike is not None and i == 1:
            s[1800:1830] = spike
        scores.append(s)
    sequences.append(zone_sequence(zone="H", crossings_s=(2400,), over=(2400, 3000), active=(600, HOUR)))
    scores.append(np.select([t < 1690, t < 2400, t < 3000], [0.05, 0.55, 0.95], 0.05))
    return sequences, scores, [hazard(600, 2400, "H")], [crossing(2400, "H")]


def test_chosen_thresholds_rise_from_blue_to_yellow_to_red():
    sequences, scores, hazards, crossings = validation_set(spike=0.6)
    th = choose_thresholds(scores, sequences, hazards, crossings)
    assert 0 < th.blue <= th.yellow <= th.red <= 1


def test_blue_is_half_of_yellow_when_benign_zones_stay_calm_there():
    sequences, scores, hazards, crossings = validation_set(spike=None)
    search = threshold_search(scores, sequences, hazards, crossings, red=1.0)  # yellow 0.55, benign zones at 0.1
    assert search.thresholds.blue == pytest.approx(0.5 * search.thresholds.yellow)
    assert search.blue_notices_benign_per_100h == 0.0


def test_blue_rises_over_a_benign_spike_that_would_notify_the_team_leader_too_often():
    sequences, scores, hazards, crossings = validation_set(spike=0.35)
    search = threshold_search(scores, sequences, hazards, crossings, red=1.0)  # one notice in 4 zone-hours: 25 per 100
    assert 0.35 < search.thresholds.blue <= search.thresholds.yellow
    assert search.blue_notices_benign_per_100h == 0.0 and search.recall_10min == 1.0
    allowed = threshold_search(scores, sequences, hazards, crossings, red=1.0, max_benign_blue_per_100h=25.0)
    assert allowed.thresholds.blue == pytest.approx(0.5 * allowed.thresholds.yellow)
    assert allowed.thresholds.blue < 0.35 and allowed.thresholds.yellow == search.thresholds.yellow


def test_the_chosen_red_keeps_false_red_within_the_cap_on_the_data_it_was_chosen_on():
    sequences, scores, hazards, crossings = validation_set(spike=0.6)
    search = threshold_search(scores, sequences, hazards, crossings, max_false_red_per_100h=0.5)
    grades = [grade_series(s, search.thresholds) for s in scores]
    m = evaluate_grades(sequences, grades, scores, hazards, crossings)
    assert search.red_feasible and search.false_red_per_100h <= 0.5 and m.false_red_per_100h <= 0.5
    assert m.red_edges == 1


def test_the_chosen_red_is_the_lowest_above_a_benign_spike():
    sequences, scores, hazards, crossings = validation_set(spike=0.6)
    th = choose_thresholds(scores, sequences, hazards, crossings)
    assert 0.6 < th.red <= 0.62


def test_yellow_warns_a_slowly_rising_hazard_10_minutes_ahead_when_benign_zones_stay_calm():
    sequences, scores, hazards, crossings = validation_set(spike=None)
    search = threshold_search(scores, sequences, hazards, crossings)
    assert search.recall_10min == 1.0 and search.false_warnings_per_100h == 0.0
    assert 0.1 < search.thresholds.yellow <= 0.55


def test_when_no_red_keeps_false_red_within_the_cap_red_is_the_highest_candidate_and_the_search_says_so():
    sequences, scores, hazards, crossings = validation_set(spike=None)
    scores[0] = np.ones(HOUR)
    search = threshold_search(scores, sequences, hazards, crossings)
    assert not search.red_feasible and search.thresholds.red == 1.0


def test_the_chosen_thresholds_carry_the_air_rule_they_were_chosen_with():
    sequences, scores, hazards, crossings = validation_set(spike=0.6)
    th = choose_thresholds(scores, sequences, hazards, crossings, air_yellow=0.5, air_yellow_steps=120)
    assert (th.air_yellow, th.air_yellow_steps) == (0.5, 120)


def test_a_fixed_red_is_kept():
    sequences, scores, hazards, crossings = validation_set(spike=0.6)
    th = choose_thresholds(scores, sequences, hazards, crossings, red=1.0)
    assert th.red == 1.0 and th.yellow <= 1.0


MISSING_YELLOW = RiskThresholds(blue=0.5, yellow=0.9, red=0.95)
"""Over the validation set's hazard score (0.55 from 11 min 50 s ahead, itself a candidate): its hazard is not warned."""


def test_the_cost_of_the_recall_target_is_read_at_the_highest_yellow_that_meets_it():
    sequences, scores, hazards, crossings = validation_set(spike=0.6)
    cost = yellow_for_recall(scores, MISSING_YELLOW, prepare(sequences, hazards, crossings), 0.95)
    assert cost.yellow == pytest.approx(0.55) and (cost.warned_10min, cost.population_10min) == (1, 1)
    assert cost.false_warnings_per_100h == cost.false_warnings_benign_per_100h == 25.0  # the spike, 1 in 4 zone-hours


def test_the_report_says_what_yellow_would_meet_the_recall_target_and_what_it_would_cost():
    sequences, scores, hazards, crossings = validation_set(spike=0.6)
    ev = evaluate_methods(sequences, hazards, crossings, {MODEL: scores}, {MODEL: (MISSING_YELLOW, "test")})
    text = _target_cost(ev)
    assert "warns 0.0 % (0/1)" in text and "at least 95 % is 0.5500: 100.0 % (1/1)" in text
    assert "25.00 false warnings per 100 zone-hours" in text


def test_the_report_gives_no_cost_of_the_recall_target_when_the_model_meets_it():
    sequences, scores, hazards, crossings = validation_set(spike=0.6)
    met = RiskThresholds(blue=0.5, yellow=0.55, red=0.95)
    ev = evaluate_methods(sequences, hazards, crossings, {MODEL: scores}, {MODEL: (met, "test")})
    assert ev.target_cost is None and _target_cost(ev) is None


# --- labels of a site's recordings --------------------------------------------------------------------------------

LABELS = """
format = "interlock-risk-labels/1"

[[recording]]
name = "2027-03-14-day"
split = "train"

[[recording]]
name = "2027-03-15-day"
split = "validation"

[[zone]]
name = "Z03"
kind = "confined_space"
work_type = "confined_space"

[[hazard]]
zone = "Z03"
kind = "flammable_leak"
start = 2027-03-14T10:05:00+08:00
channels = ["lel"]

[[crossing]]
zone = "Z03"
channel = "lel"
at = 2027-03-14T10:21:07+08:00
end = 2027-03-14T10:35:00+08:00
"""


def labels_ms(text: str) -> int:
    return round(dt.datetime.fromisoformat(text).timestamp() * 1000)


def labels_with(extra: str) -> str:
    return LABELS + extra


def test_a_labels_file_gives_each_recording_its_split():
    labels = parse_labels(LABELS)
    assert labels.splits == {"2027-03-14-day": "train", "2027-03-15-day": "validation"}
    assert labels.split_of("2027-03-15-day") == "validation"


def test_a_labels_file_gives_crossings_in_absolute_time_with_their_spell():
    [c] = parse_labels(LABELS).crossings
    assert (c.zone, c.channel) == ("Z03", "lel")
    assert c.crossing_ms == labels_ms("2027-03-14T10:21:07+08:00")
    assert c.end_ms == labels_ms("2027-03-14T10:35:00+08:00")


def test_a_crossing_without_a_hazard_is_put_down_to_the_zones_latest_hazard_on_its_channel():
    labels = parse_labels(LABELS)
    [h] = labels.hazards
    assert (h.hazard, h.kind, h.channels) == ("Z03/H1", "flammable_leak", ("lel",))
    assert h.start_ms == labels_ms("2027-03-14T10:05:00+08:00")
    [c] = labels.crossings
    assert (c.hazard, c.hazard_kind) == ("Z03/H1", "flammable_leak")


def test_a_labels_file_keeps_what_each_zone_is():
    assert parse_labels(LABELS).zones == {"Z03": ("confined_space", "confined_space")}


def test_a_time_as_ms_since_the_epoch_or_an_iso_string_is_the_same_time():
    ms = labels_ms("2027-03-14T11:00:00+08:00")
    for written in (str(ms), '"2027-03-14T11:00:00+08:00"'):
        labels = parse_labels(labels_with(f'\n[[crossing]]\nzone = "Z04"\nchannel = "co"\nat = {written}\n'))
        assert [c.crossing_ms for c in labels.crossings if c.zone == "Z04"] == [ms]


def test_a_crossing_without_zone_is_named_by_its_entry_and_the_key():
    with pytest.raises(LabelsError, match=r"^site\.toml: crossing 2: 'zone' is missing"):
        parse_labels(labels_with('\n[[crossing]]\nchannel = "lel"\nat = 2027-03-14T11:00:00+08:00\n'), "site.toml")


def test_an_unknown_channel_is_named_with_its_entry_and_value():
    with pytest.raises(LabelsError, match=r"crossing 2: channel = 'no2': must be one of o2, lel, h2s, co"):
        parse_labels(labels_with('\n[[crossing]]\nzone = "Z04"\nchannel = "no2"\nat = 2027-03-14T11:00:00+08:00\n'))


def test_a_bad_split_is_named_with_its_recording_entry():
    with pytest.raises(LabelsError, match=r"recording 2: split = 'training': must be one of train, validation, test"):
        parse_labels(LABELS.replace('split = "validation"', 'split = "training"'))


def test_an_unknown_key_is_named_with_its_entry():
    with pytest.raises(LabelsError, match=r"zone 1: unknown key 'colour'"):
        parse_labels(LABELS.replace('work_type = "confined_space"', 'work_type = "confined_space"\ncolour = "red"'))


def test_a_time_without_a_utc_offset_is_refused():
    with pytest.raises(LabelsError, match=r"crossing 1: at = .* has no UTC offset"):
        parse_labels(LABELS.replace("at = 2027-03-14T10:21:07+08:00", "at = 2027-03-14T10:21:07"))


def test_a_recording_not_in_the_labels_file_is_named():
    with pytest.raises(LabelsError, match="'2027-03-16-day' is not listed"):
        parse_labels(LABELS).split_of("2027-03-16-day")


def test_label_is_true_within_12_minutes_before_a_crossing_and_false_from_the_crossing_on():
    t = T0 + 1000 * np.arange(2000, dtype=np.int64)
    label, _ = labels_for(t, np.array([at(1000)]))
    assert not label[279] and label[280] and label[999] and not label[1000]
    assert np.flatnonzero(label).tolist() == list(range(280, 1000))


def test_seconds_to_crossing_counts_down_to_the_next_crossing_and_is_nan_after_the_last():
    t = T0 + 1000 * np.arange(2000, dtype=np.int64)
    _, seconds = labels_for(t, np.array([at(1000)]))
    assert seconds[0] == 1000.0 and seconds[280] == 720.0 and seconds[999] == 1.0
    assert np.isnan(seconds[1000:]).all()


# --- baselines ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column, value", [("lel", 10.0), ("lel", 14.0), ("h2s", 7.0), ("co", 30.0),
                                           ("o2_low", 19.4), ("o2_high", 23.6)])
def test_threshold_only_is_1_when_a_reported_value_is_over_its_limit(column, value):
    assert threshold_only_scores(raw_steps(1, **{column: value})).tolist() == [1.0]


@pytest.mark.parametrize("column, value, score", [("lel", 5.0, 0.5), ("h2s", 3.5, 0.5), ("co", 6.5, 0.25),
                                                  ("o2_low", 20.2, 0.5), ("lel", 9.9999, 0.99)])
def test_threshold_only_is_the_fraction_of_the_limit_below_1_otherwise(column, value, score):
    [s] = threshold_only_scores(raw_steps(1, **{column: value}))
    assert s == pytest.approx(score, abs=0.01) and s <= BELOW_LIMIT < 1.0


@pytest.mark.parametrize("column, value", [("o2_low", 19.5), ("o2_high", 23.5)])
def test_an_o2_reading_at_its_limit_is_no_alarm_for_threshold_only(column, value):
    assert threshold_only_scores(raw_steps(1, **{column: value})).tolist() == [BELOW_LIMIT]


def test_a_one_step_o2_band_counts_for_threshold_only_only_once_over_its_limit():
    confined = raw_steps(3, limit_o2_max=21.0, o2_high=[20.9, 21.0, 21.1])
    assert threshold_only_scores(confined).tolist() == [0.0, 0.0, 1.0]


def test_threshold_only_is_0_on_fresh_air():
    assert threshold_only_scores(raw_steps(5)).tolist() == [0.0] * 5


def test_threshold_only_does_not_trust_a_detector_warming_up():
    assert threshold_only_scores(raw_steps(1, lel=50.0, warming=1.0)).tolist() == [0.0]


def test_rate_of_rise_is_0_on_flat_air():
    assert not rate_of_rise_scores(raw_steps(900, lel=4.0, co=8.0)).any()


def test_rate_of_rise_rises_on_a_steady_climb_toward_a_limit():
    t = np.arange(1200, dtype=np.float64)
    score = rate_of_rise_scores(raw_steps(1200, lel=3.0 + 0.005 * t))
    assert score[100] > 0 and score[600] > score[100] and score[-1] > score[600]
    assert np.all(np.diff(score[100:]) >= -1e-9) and score.max() <= 1.0


def test_rate_of_rise_ignores_a_climb_far_below_the_limit():
    t = np.arange(1200, dtype=np.float64)
    assert not rate_of_rise_scores(raw_steps(1200, lel=0.0015 * t)).any()


def test_rate_of_rise_is_1_once_a_reported_value_is_over_the_limit():
    assert rate_of_rise_scores(raw_steps(3, lel=[2.0, 12.0, 12.0])).tolist()[1:] == [1.0, 1.0]


# --- risk_eval end to end -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def training_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("training_set") / "set"
    subprocess.run([sys.executable, "-m", "simulators.training_data", "--zone-hours", "4", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def evaluation(training_set, tmp_path_factory) -> tuple[int, Path]:
    folder = tmp_path_factory.mktemp("risk_eval")
    model = folder / "model.npz"
    model.write_bytes(write_model_bytes(random_model_arrays(7, hidden=4), {"thresholds": THRESHOLDS}))
    out = folder / "report"
    code = risk_eval_main(["--data", str(training_set), "--splits", "train,validation,test", "--model", str(model),
                           "--out", str(out)])
    return code, out


def test_risk_eval_writes_the_markdown_html_and_json_reports(evaluation):
    _, out = evaluation
    for name in ("risk_eval.md", "risk_eval.html", "risk_eval.json"):
        assert (out / name).stat().st_size > 0
    assert (out / "risk_eval.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_risk_eval_judges_the_model_and_both_baselines_on_every_zone_given(evaluation, training_set):
    _, out = evaluation
    report = json.loads((out / "risk_eval.json").read_text(encoding="utf-8"))
    assert [m["name"] for m in report["methods"]] == ["model", "rate_of_rise", "threshold_only"]
    zones = len(load_set(training_set, ("train", "validation", "test")))
    assert {m["metrics"]["sequences"] for m in report["methods"]} == {zones}
    assert report["methods"][0]["thresholds"]["red"] == THRESHOLDS["red"]


def test_risk_eval_exits_0_when_the_model_passes_and_1_when_it_misses_a_criterion(evaluation):
    code, out = evaluation
    report = json.loads((out / "risk_eval.json").read_text(encoding="utf-8"))
    assert code == (0 if report["passed"] else 1)


def test_risk_eval_exits_2_when_the_data_folder_is_not_a_training_set(tmp_path):
    assert risk_eval_main(["--data", str(tmp_path), "--out", str(tmp_path / "report")]) == 2


# --- training -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_twice(training_set):
    pytest.importorskip("torch")
    from training.risk_train import train

    sequences = load_set(training_set, ("train", "validation", "test"))
    validation = [s for s in sequences if s.zone == "Z01"] or sequences[-1:]
    training = [s for s in sequences if s not in validation]
    keys = {(s.scenario_id, s.zone) for s in validation}
    hazards = [h for h in load_hazards(training_set) if (h.scenario_id, h.zone) in keys]
    crossings = [c for c in load_crossings(training_set) if (c.scenario_id, c.zone) in keys]

    def once():
        return train(training, validation, epochs=1, hidden=4, seed=11, threads=1, hazards_validation=hazards,
                     crossings_validation=crossings, log=lambda text: None)

    return once(), once()


def test_training_returns_arrays_and_meta_the_model_file_accepts(trained_twice):
    (arrays, meta), _ = trained_twice
    model = RiskModel.from_bytes(write_model_bytes(arrays, meta))
    assert model.hidden == 4 and arrays["weight_hh"].shape == (16, 4)
    th = meta["thresholds"]
    RiskThresholds(**th)
    assert 0 < th["blue"] <= th["yellow"] <= th["red"] <= 1
    assert meta["trained"]["epochs"] == 1 and meta["trained"]["seed"] == 11


def test_training_twice_with_the_same_seed_gives_the_same_model(trained_twice):
    (a, meta_a), (b, meta_b) = trained_twice
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert meta_a["thresholds"] == meta_b["thresholds"]


def test_training_refuses_to_run_without_validation_sequences(training_set):
    pytest.importorskip("torch")
    from training.risk_train import train

    sequences = load_set(training_set, ("train", "validation", "test"))
    with pytest.raises(ValueError, match="no validation sequences"):
        train(sequences, [], epochs=1, hidden=4, log=lambda text: None)


def test_the_run_up_to_a_crossing_weighs_run_up_weight_and_other_negatives_weigh_1():
    from training.risk_train import _prepare

    # A hazard from 100 s, crossing at 2,000 s: its steps 1,280-1,999 are positive (the 12-minute label), 680-1,279
    # are its run-up (12 to 22 minutes ahead), before that and after the hazard they are plain negatives.
    zone = zone_sequence(crossings_s=(2000,), active=(100, 2100))
    features = [np.zeros((len(zone), 1))]
    prepared = _prepare([zone], features, np.zeros(1), np.ones(1), pos_weight=8.0, over_limit_weight=1.0,
                        run_up_weight=0.0)
    w = prepared.w[0]
    assert w[1279] == w[680] == 0.0
    assert w[679] == w[50] == w[2500] == 1.0
    assert w[1280] == w[1999] == 8.0


def test_the_run_up_is_an_ordinary_negative_by_default():
    from training.risk_train import _prepare

    zone = zone_sequence(crossings_s=(2000,), active=(100, 2100))
    prepared = _prepare([zone], [np.zeros((len(zone), 1))], np.zeros(1), np.ones(1), pos_weight=8.0, over_limit_weight=1.0)
    assert prepared.w[0][1000] == 1.0


def test_the_cosine_decay_runs_from_the_learning_rate_down_to_its_floor():
    from training.risk_train import LR_FLOOR, _cosine_rate

    assert _cosine_rate(0.004, 0.0) == pytest.approx(0.004)
    assert _cosine_rate(0.004, 0.5) == pytest.approx(0.004 * (1 + LR_FLOOR) / 2)
    assert _cosine_rate(0.004, 1.0) == pytest.approx(0.004 * LR_FLOOR)


def test_the_weight_average_moves_towards_the_weights_and_swapping_twice_restores_them():
    torch = pytest.importorskip("torch")
    from training.risk_train import _WeightAverage

    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
    average = _WeightAverage(net, 0.75)
    with torch.no_grad():
        net.weight.fill_(5.0)
    average.update(net)
    average.swap(net)
    assert torch.equal(net.weight, torch.full((1, 2), 2.0))  # 0.75 x 1 + 0.25 x 5
    average.swap(net)
    assert torch.equal(net.weight, torch.full((1, 2), 5.0))


def test_training_refuses_an_unknown_learning_rate_schedule(training_set):
    pytest.importorskip("torch")
    from training.risk_train import train

    sequences = load_set(training_set, ("train", "validation", "test"))
    with pytest.raises(ValueError, match="lr_decay must be one of none, cosine, got 'step'"):
        train(sequences, sequences[:1], epochs=1, hidden=4, lr_decay="step", log=lambda text: None)
