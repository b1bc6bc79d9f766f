"""From a zone's risk score to its grade: BLUE, YELLOW or RED, with confirmation before RED and hysteresis on the way down.

A score at or over a grade's threshold raises the zone to that grade at once, except RED, which needs the score at
or over the red threshold for `red_confirm_steps` consecutive steps (one noisy step must not stop a shift's work);
while RED is being confirmed the zone is YELLOW. The air itself also raises YELLOW: when `air_yellow` is set, a zone
whose air has stayed at or over that fraction of a gas limit for `air_yellow_steps` consecutive steps is YELLOW
whatever the score (a slow creep towards a limit, which the model scores late, is still worth the guardian's look).
A grade falls only after the score has stayed under its threshold times `release_ratio` (and the air under
`air_yellow`) for `release_steps` consecutive steps, so a score hovering at a threshold does not flap. The
evaluation grades held-out data with this same function, so the figures it reports are the ones the stream gives.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
from numba import njit

NONE, BLUE, YELLOW, RED = 0, 1, 2, 3
GRADE_NAMES = ("NONE", "BLUE", "YELLOW", "RED")


class RiskThresholds(msgspec.Struct, frozen=True):
    """Score thresholds of the grades and the rules between them, chosen on validation data and kept in the model file."""

    blue: float
    yellow: float
    red: float
    red_confirm_steps: int = 5
    release_ratio: float = 0.8
    release_steps: int = 60
    air_yellow: float = 0.0
    """YELLOW when the zone's air has stayed at or over this fraction of a gas limit for `air_yellow_steps` steps (the
    worst channel, as the risk features read it); 0: no such rule (model files made before it)."""
    air_yellow_steps: int = 180

    def __post_init__(self) -> None:
        if not 0.0 < self.blue <= self.yellow <= self.red <= 1.0:
            raise ValueError(
                f"risk thresholds must rise 0 < blue <= yellow <= red <= 1, got blue {self.blue}, yellow "
                f"{self.yellow}, red {self.red}: fix the model file's meta.thresholds"
            )
        if self.red_confirm_steps < 1 or self.release_steps < 1 or not 0.0 < self.release_ratio <= 1.0:
            raise ValueError(
                f"risk thresholds: red_confirm_steps {self.red_confirm_steps} and release_steps {self.release_steps} "
                f"must be at least 1 and release_ratio {self.release_ratio} in (0, 1]"
            )
        if not self.air_yellow >= 0.0 or self.air_yellow_steps < 1:
            raise ValueError(
                f"risk thresholds: air_yellow {self.air_yellow} must be 0 (no air rule) or more and air_yellow_steps "
                f"{self.air_yellow_steps} at least 1: fix the model file's meta.thresholds"
            )


class GradeState(msgspec.Struct):
    """A zone's grade and the run lengths the rules count: steps at or over red, steps calm under the grade, steps
    with the air at or over `air_yellow`."""

    grade: int = NONE
    red_run: int = 0
    calm_run: int = 0
    air_run: int = 0


@njit(cache=True)
def _grade_step(grade, red_run, calm_run, p, air_high, blue, yellow, red, confirm, release_ratio, release_steps):
    target = RED if p >= red else YELLOW if p >= yellow or air_high else BLUE if p >= blue else NONE
    red_run = red_run + 1 if p >= red else 0
    if target > grade:
        if target == RED and red_run < confirm:
            target = YELLOW
        if target > grade:
            grade = target
        calm_run = 0
    elif target < grade:
        threshold = red if grade == RED else yellow if grade == YELLOW else blue
        if p < threshold * release_ratio and not (air_high and grade == YELLOW):
            calm_run += 1
            if calm_run >= release_steps:
                grade = target
                calm_run = 0
        else:
            calm_run = 0
    else:
        calm_run = 0
    return grade, red_run, calm_run


@njit(cache=True)
def _grade_series(scores, air, blue, yellow, red, confirm, release_ratio, release_steps, air_yellow, air_steps):
    grades = np.empty(scores.shape[0], dtype=np.int8)
    grade, red_run, calm_run, air_run = NONE, 0, 0, 0
    for i in range(scores.shape[0]):
        air_run = air_run + 1 if air_yellow > 0.0 and air[i] >= air_yellow else 0
        grade, red_run, calm_run = _grade_step(
            grade, red_run, calm_run, scores[i], air_run >= air_steps, blue, yellow, red, confirm, release_ratio,
            release_steps)
        grades[i] = grade
    return grades


def grade_step(state: GradeState, score: float, thresholds: RiskThresholds, air: float = math.nan) -> int:
    """Advance a zone's grade by one scored step (in place), `air` the zone's worst fraction of a gas limit at the
    step (NaN: unknown); returns the new grade."""
    t = thresholds
    if t.air_yellow > 0.0:
        state.air_run = state.air_run + 1 if air >= t.air_yellow else 0
    air_high = t.air_yellow > 0.0 and state.air_run >= t.air_yellow_steps
    if state.grade == NONE and score < t.blue and not air_high:
        state.red_run = state.calm_run = 0  # what _grade_step gives for calm air, without the call
        return NONE
    state.grade, state.red_run, state.calm_run = _grade_step(
        state.grade, state.red_run, state.calm_run, float(score), air_high, t.blue, t.yellow, t.red,
        t.red_confirm_steps, t.release_ratio, t.release_steps)
    return state.grade


def grade_series(scores: np.ndarray, thresholds: RiskThresholds, air: np.ndarray | None = None) -> np.ndarray:
    """Grades (int8, NONE..RED) of a zone's consecutive scores from a fresh state, `air` the zone's worst fraction of
    a gas limit at each step (None: unknown, no air rule): what the stream would show."""
    t = thresholds
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    air = np.full(scores.shape[0], np.nan) if air is None else np.ascontiguousarray(air, dtype=np.float64)
    if air.shape != scores.shape:
        raise ValueError(f"grade_series: {air.shape[0]} air values for {scores.shape[0]} scores")
    return _grade_series(scores, air, t.blue, t.yellow, t.red, t.red_confirm_steps, t.release_ratio,
                         t.release_steps, t.air_yellow, t.air_yellow_steps)
