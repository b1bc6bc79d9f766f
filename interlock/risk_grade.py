"""From a zone's risk score to its grade: BLUE, YELLOW or RED, with confirmation before RED and hysteresis on the way down.

A score at or over a grade's threshold raises the zone to that grade at once, except RED, which needs the score at
or over the red threshold for `red_confirm_steps` consecutive steps (one noisy step must not stop a shift's work);
while RED is being confirmed the zone is YELLOW. A grade falls only after the score has stayed under its threshold
times `release_ratio` for `release_steps` consecutive steps, so a score hovering at a threshold does not flap. The
evaluation grades held-out data with this same function, so the figures it reports are the ones the stream gives.
"""

from __future__ import annotations

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


class GradeState(msgspec.Struct):
    """A zone's grade and the two run lengths the rules count: steps at or over red, steps calm under the grade."""

    grade: int = NONE
    red_run: int = 0
    calm_run: int = 0


@njit(cache=True)
def _grade_step(grade, red_run, calm_run, p, blue, yellow, red, confirm, release_ratio, release_steps):
    target = RED if p >= red else YELLOW if p >= yellow else BLUE if p >= blue else NONE
    red_run = red_run + 1 if p >= red else 0
    if target > grade:
        if target == RED and red_run < confirm:
            target = YELLOW
        if target > grade:
            grade = target
        calm_run = 0
    elif target < grade:
        threshold = red if grade == RED else yellow if grade == YELLOW else blue
        if p < threshold * release_ratio:
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
def _grade_series(scores, blue, yellow, red, confirm, release_ratio, release_steps):
    grades = np.empty(scores.shape[0], dtype=np.int8)
    grade, red_run, calm_run = NONE, 0, 0
    for i in range(scores.shape[0]):
        grade, red_run, calm_run = _grade_step(
            grade, red_run, calm_run, scores[i], blue, yellow, red, confirm, release_ratio, release_steps)
        grades[i] = grade
    return grades


def grade_step(state: GradeState, score: float, thresholds: RiskThresholds) -> int:
    """Advance a zone's grade by one scored step (in place); returns the new grade."""
    t = thresholds
    if state.grade == NONE and score < t.blue:
        state.red_run = state.calm_run = 0  # what _grade_step gives for calm air, without the call
        return NONE
    state.grade, state.red_run, state.calm_run = _grade_step(
        state.grade, state.red_run, state.calm_run, float(score), t.blue, t.yellow, t.red,
        t.red_confirm_steps, t.release_ratio, t.release_steps)
    return state.grade


def grade_series(scores: np.ndarray, thresholds: RiskThresholds) -> np.ndarray:
    """Grades (int8, NONE..RED) of a zone's consecutive scores from a fresh state: what the stream would show."""
    t = thresholds
    return _grade_series(np.ascontiguousarray(scores, dtype=np.float64), t.blue, t.yellow, t.red,
                         t.red_confirm_steps, t.release_ratio, t.release_steps)
