"""Two baselines the risk model must beat, computed from the raw vectors alone (the model's own input).

Both give a per-step score in [0, 1] and are graded by `interlock.risk_grade.grade_series` with their own
thresholds, exactly as the model's scores are, so the evaluation compares like with like.

* **threshold-only** (`threshold_only_scores`): the gas alarm the interlock already has. Per channel the reported
  *hazard fraction* of its limit::

      lel / limit_lel,  h2s / limit_h2s,  co / limit_co,
      (20.9 - o2_low) / (20.9 - limit_o2_min),  (o2_high - 20.9) / (limit_o2_max - 20.9)

  The score is the largest fraction over the channels, clipped to [0, 1]. It is 1 exactly when a reported value is
  over its limit as the interlock means it (`assess_sample`: LEL, H2S, CO at or above the maximum, O2 outside
  [min, max]), and at most `BELOW_LIMIT` otherwise, so an O2 reading *at* a limit (21.0 in a confined space) is not
  an alarm. An O2 fraction whose band from 20.9 to its limit is under `MIN_O2_BAND` (0.5 %vol; the confined-space
  maximum 21.0 is one 0.1 %vol detector step above fresh air, so its fraction is quantised noise) counts only once
  over the limit. A step whose every fresh reading comes from a detector warming up (`warming >= fresh`) has no evidence
  (the interlock does not trust warm-up readings): its fractions are unknown. Its red threshold is fixed at 1.0 (the limit: RED, after the grading's confirmation); its yellow is a
  pre-alarm fraction chosen on validation data like the model's (`training.risk_metrics.choose_thresholds` with
  `red=THRESHOLD_ONLY_RED`), which the precision-recall curve sweeps.
* **rate-of-rise** (`rate_of_rise_scores`): per channel, the least-squares slope of the fraction over the last
  `window_s` (300 s) of valid readings and the fitted level at the step; the projected time to reach 1.0 is
  ``(1 - level) / slope`` (0 once the level is at 1 or a reported value is over the limit, never when the slope is
  not positive). The channel's score falls linearly from 1 at a projection of 0 s to 0 at `horizon_s` (1800 s) or
  more, and is 0 while the fitted level is under `min_fraction` (0.25), so flat noise far from a limit does not
  alarm. The score is the largest over the channels; its thresholds are chosen on validation data like the model's.

`DEFAULT_THRESHOLDS` holds each baseline's thresholds as chosen by `training.risk_metrics.choose_thresholds` (its
defaults then) on the validation parts of the seed-2027 and seed-2028 sets as first generated (`interlock risk-eval
--calibrate runs/training_data --calibrate runs/risk_train_2028`, 302 zone-hours); `--calibrate DIR` chooses them
again. On today's sets (243 zone-hours) and rules it gives yellow 0.56 and 0.64 (blue equal to yellow), which warn
fewer hazards (rate-of-rise 64.9 % against 69.5 % of the fresh set's): the defaults are kept as the more generous
comparison. Neither baseline gets false RED under the cap there: detector warm-ups settling up from 0 %vol O2 and
bump tests (50 %LEL, 25 ppm H2S, 100 ppm CO, 18 % O2 for 10-45 s) are reported over the limit, so red stays at 1.0
(the limit) for both and their yellow caps count on top of what their RED alone gives.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from interlock import risk_inputs as R
from interlock.risk_grade import RiskThresholds

AMBIENT_O2 = 20.9
"""%vol of fresh air: the zero of the O2 fractions."""
CHANNELS = ("o2_low", "o2_high", "lel", "h2s", "co")
"""The fraction columns `hazard_fractions` returns, in order."""
MIN_O2_BAND = 0.5
"""%vol: an O2 fraction whose band between 20.9 and its limit is narrower counts only once over the limit."""
BELOW_LIMIT = 0.9999
"""The highest threshold-only score of a step with no reported value over its limit."""
THRESHOLD_ONLY_RED = 1.0

WINDOW_S = 300.0
HORIZON_S = 1800.0
MIN_FRACTION = 0.25
MIN_POINTS = 60
"""Valid readings a channel needs in its window before its slope counts."""

THRESHOLD_ONLY = "threshold_only"
RATE_OF_RISE = "rate_of_rise"
BASELINES = (RATE_OF_RISE, THRESHOLD_ONLY)

DEFAULT_THRESHOLDS: dict[str, RiskThresholds] = {
    THRESHOLD_ONLY: RiskThresholds(blue=0.25, yellow=0.5, red=THRESHOLD_ONLY_RED),
    RATE_OF_RISE: RiskThresholds(blue=0.31, yellow=0.62, red=1.0),
}
"""Chosen by `choose_thresholds` on the validation parts of the seed-2027 and seed-2028 sets as first generated (302
zone-hours; kept as the more generous comparison, see the module docstring); `interlock risk-eval --calibrate DIR`
chooses them again."""


BUMP_GAS_CHANNELS = 3
"""A step with this many channels over their limits at once is a bump test's gas on the detector (test bottles mix
O2-deficient air with LEL, H2S and CO over their alarms), not the zone's air."""


def bump_gas(over: np.ndarray) -> np.ndarray:
    """Steps (rows of `hazard_fractions`' `over`) that read a bump test's gas rather than the air."""
    return over.sum(axis=1) >= BUMP_GAS_CHANNELS


def hazard_fractions(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fractions, over): float64 (n, 5) reported fraction of each channel's limit (`CHANNELS` order, NaN where
    unknown, not clipped) and bool (n, 5) a reported value is over that limit as the interlock means it."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[None, :]
    o2_low, o2_high = raw[:, R.O2_LOW], raw[:, R.O2_HIGH]
    lo_min, lo_max = raw[:, R.LIMIT_O2_MIN], raw[:, R.LIMIT_O2_MAX]
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = np.stack([
            (AMBIENT_O2 - o2_low) / (AMBIENT_O2 - lo_min),
            (o2_high - AMBIENT_O2) / (lo_max - AMBIENT_O2),
            raw[:, R.LEL] / raw[:, R.LIMIT_LEL],
            raw[:, R.H2S] / raw[:, R.LIMIT_H2S],
            raw[:, R.CO] / raw[:, R.LIMIT_CO],
        ], axis=1)
        over = np.stack([
            o2_low < lo_min,
            o2_high > lo_max,
            raw[:, R.LEL] >= raw[:, R.LIMIT_LEL],
            raw[:, R.H2S] >= raw[:, R.LIMIT_H2S],
            raw[:, R.CO] >= raw[:, R.LIMIT_CO],
        ], axis=1)
    fractions[~np.isfinite(fractions)] = np.nan
    # A band of one or two detector steps (O2 max 21.0 in confined spaces: 20.9 -> 21.0 is one 0.1 %vol step) makes
    # the fraction quantised noise (-1, 0, 1, 2): only its over-limit flag counts there.
    fractions[~(AMBIENT_O2 - lo_min >= MIN_O2_BAND), 0] = np.nan
    fractions[~(lo_max - AMBIENT_O2 >= MIN_O2_BAND), 1] = np.nan
    # Every fresh reading comes from a detector warming up: not evidence for the interlock (GAS_DETECTOR_NOT_READY).
    fresh, warming = raw[:, R.FRESH], raw[:, R.WARMING]
    not_evidence = (fresh > 0) & (warming >= fresh)
    fractions[not_evidence] = np.nan
    over[not_evidence] = False
    return fractions, over


def threshold_only_scores(raw: np.ndarray) -> np.ndarray:
    """float64 (n,): the largest reported fraction of a limit, clipped to [0, BELOW_LIMIT], and 1 where a reported
    value is over its limit."""
    fractions, over = hazard_fractions(raw)
    top = np.fmax.reduce(fractions, axis=1)  # NaN only where every channel is unknown, with no warning
    score = np.clip(np.nan_to_num(top, nan=0.0), 0.0, BELOW_LIMIT)
    score[over.any(axis=1)] = 1.0
    return score


def step_times_s(raw: np.ndarray) -> np.ndarray:
    """Seconds since the block's first step, from `dt_s` (a missing or non-positive dt counts as 1 s)."""
    dt = np.asarray(raw, dtype=np.float64)[:, R.DT_S].copy()
    dt[~(dt > 0)] = 1.0
    t = np.cumsum(dt)
    return t - t[0] if t.size else t


@njit(cache=True)
def _rate_of_rise(fractions, over, t, window_s, horizon_s, min_fraction, min_points):
    n, channels = fractions.shape
    out = np.zeros(n)
    for c in range(channels):
        j = 0
        count = 0
        sx = sy = sxx = sxy = 0.0
        for i in range(n):
            ti = t[i]
            y = fractions[i, c]
            if not np.isnan(y):
                x = t[i]
                count += 1
                sx += x
                sy += y
                sxx += x * x
                sxy += x * y
            while t[j] <= ti - window_s:
                y0 = fractions[j, c]
                if not np.isnan(y0):
                    x0 = t[j]
                    count -= 1
                    sx -= x0
                    sy -= y0
                    sxx -= x0 * x0
                    sxy -= x0 * y0
                j += 1
            if over[i, c]:
                out[i] = 1.0
                continue
            if count < min_points:
                continue
            mx = sx / count
            my = sy / count
            vxx = sxx / count - mx * mx
            if vxx <= 1e-9:
                continue
            slope = (sxy / count - mx * my) / vxx
            level = my + slope * (ti - mx)
            if level < min_fraction:
                continue
            if level >= 1.0:
                projected = 0.0
            elif slope > 0.0:
                projected = (1.0 - level) / slope
            else:
                continue
            score = 1.0 - projected / horizon_s
            if score > out[i]:
                out[i] = score
    return out


def rate_of_rise_scores(raw: np.ndarray, *, window_s: float = WINDOW_S, horizon_s: float = HORIZON_S,
                        min_fraction: float = MIN_FRACTION, min_points: int = MIN_POINTS) -> np.ndarray:
    """float64 (n,) in [0, 1]: how soon the fitted trend of the closest channel reaches its limit (module docstring)."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape[0] == 0:
        return np.zeros(0)
    fractions, over = hazard_fractions(raw)
    score = _rate_of_rise(np.ascontiguousarray(fractions), np.ascontiguousarray(over), step_times_s(raw),
                          float(window_s), float(horizon_s), float(min_fraction), int(min_points))
    return np.clip(score, 0.0, 1.0)


SCORERS = {RATE_OF_RISE: rate_of_rise_scores, THRESHOLD_ONLY: threshold_only_scores}
FIXED_RED: dict[str, float | None] = {RATE_OF_RISE: None, THRESHOLD_ONLY: THRESHOLD_ONLY_RED}
"""A baseline whose red threshold is not chosen: threshold-only is RED at the limit."""


def baseline_scores(raw: np.ndarray) -> dict[str, np.ndarray]:
    """Both baselines' scores of one zone's raw block."""
    return {name: scorer(raw) for name, scorer in SCORERS.items()}
