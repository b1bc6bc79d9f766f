"""The risk model's feature step: one raw vector (interlock.risk_inputs layout) and a zone's feature state to features.

Training (`features_sequence` over a zone's steps) and serving (`interlock.risk_model.step`, once a second per zone)
run the same njit code, so the model sees in the stream exactly what it was trained on. Every feature is finite and
roughly in [-3, 3] whatever is unknown: NaN never reaches the model.

Gas channels are hazard fractions x of their limit (0 in clean air, 1 at the limit, clipped to [-1, 3]). An unknown
channel (NaN reading or unusable limit) holds its last known x, and its trends keep following that held value, so they
fade to 0 while nothing new is known; before the channel was ever known x is 0. `gas_missing` says no channel was
known this step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from interlock import risk_inputs as R

FEATURES_VERSION = 2
"""Changing a feature (its formula, order or scaling) changes the model's input: retrain, and bump this."""

CHANNELS: tuple[str, ...] = ("o2_deficiency", "o2_enrichment", "lel", "h2s", "co")
"""The gas channels, as hazard fractions: (20.9 - o2_low)/(20.9 - o2_min), (o2_high - 20.9)/(o2_max - 20.9),
lel/lel_max, h2s/h2s_max, co/co_max."""

FEATURE_NAMES: tuple[str, ...] = (
    *CHANNELS,                                          # x, clipped to [-1, 3], held while unknown
    *(f"{c}_vs_60s" for c in CHANNELS),                 # (x - ewma60) * 10, clipped to [-3, 3]
    *(f"{c}_60s_vs_300s" for c in CHANNELS),            # (ewma60 - ewma300) * 10, clipped to [-3, 3]
    *(f"{c}_300s" for c in CHANNELS),                   # ewma300
    *(f"{c}_60s_vs_1800s" for c in CHANNELS),           # (ewma60 - ewma1800) * 10, clipped to [-3, 3]
    "gas_missing",                                      # 1 when no channel is known this step
    "fresh_share",                                      # fresh / detectors
    "faulted_share",                                    # faulted_channels / (4 * max(fresh, 1))
    "warming_share",                                    # warming / max(detectors, 1)
    "fan_known",                                        # 1 when the fan signal is known
    "fan_running",                                      # 1 when a fan runs
    "equipment_on",                                     # 1 when some equipment is powered
    "occupancy",                                        # min(people, 4) / 4
    "entered",                                          # 1 once someone has entered the zone
    "since_first_entry",                                # min(s, 8 h) / 8 h
    "occupied_for",                                     # min(s, 2 h) / 2 h
)
"""The feature vector, in order (the model file lists them too, and a model trained on others is refused)."""

FEATURE_WIDTH = len(FEATURE_NAMES)
FEATURE = {name: i for i, name in enumerate(FEATURE_NAMES)}
"""Feature name -> column index."""

N_CHANNELS = len(CHANNELS)
TAU_FAST_S = 60.0
TAU_SLOW_S = 300.0
TAU_BASELINE_S = 1800.0
"""The zone's own background over the last half hour: a rise from it shows before the level is near a limit."""
TREND_GAIN = 10.0
X_MIN, X_MAX = -1.0, 3.0
TREND_LIMIT = 3.0
"""A trend is a difference of fractions times TREND_GAIN, clipped so a sudden jump stays in range (x says how far)."""
O2_AIR = 20.9
SINCE_FIRST_ENTRY_FULL_S = 28_800.0
OCCUPIED_FOR_FULL_S = 7_200.0
OCCUPANCY_FULL = 4.0

FEATURE_STATE_FIELDS: tuple[str, ...] = (
    *(f"{c}_known" for c in CHANNELS),      # 1 once the channel was known
    *(f"{c}_x" for c in CHANNELS),          # last known x
    *(f"{c}_ewma60" for c in CHANNELS),
    *(f"{c}_ewma300" for c in CHANNELS),
    *(f"{c}_ewma1800" for c in CHANNELS),
)
"""A zone's feature state, in order: all zeros before its first step."""

FEATURE_STATE_WIDTH = len(FEATURE_STATE_FIELDS)

_GAS_MISSING = FEATURE["gas_missing"]
_KNOWN, _X, _E60, _E300, _E1800 = 0, N_CHANNELS, 2 * N_CHANNELS, 3 * N_CHANNELS, 4 * N_CHANNELS


def new_feature_state() -> np.ndarray:
    """A zone's feature state before its first step (float64, FEATURE_STATE_WIDTH)."""
    return np.zeros(FEATURE_STATE_WIDTH, dtype=np.float64)


@njit(cache=True)
def _clip(value, low, high):
    return low if value < low else high if value > high else value


@njit(cache=True)
def _fraction(value, limit):
    """value / limit, clipped to [X_MIN, X_MAX]; NaN when either is unknown, the limit is not positive or the ratio is
    undefined (infinite over infinite)."""
    if not limit > 0.0:  # NaN too
        return math.nan
    ratio = value / limit
    if math.isnan(ratio):
        return math.nan
    return _clip(ratio, X_MIN, X_MAX)


@njit(cache=True)
def _share(count, of):
    """count / of clipped to [0, 1]; 0 when either is unknown, `of` is not positive or the ratio is undefined."""
    if not of > 0.0:
        return 0.0
    ratio = count / of
    if math.isnan(ratio):
        return 0.0
    return _clip(ratio, 0.0, 1.0)


@njit(cache=True)
def _scaled(value, full):
    """min(value, full) / full, 0 when unknown or negative."""
    if math.isnan(value):
        return 0.0
    return _clip(value / full, 0.0, 1.0)


@njit(cache=True)
def features_step(raw, fstate, out):
    """One zone step: the features of `raw` (RAW_WIDTH) into `out` (FEATURE_WIDTH), the zone's `fstate` updated."""
    if raw.shape[0] != R.RAW_WIDTH or fstate.shape[0] != FEATURE_STATE_WIDTH or out.shape[0] != FEATURE_WIDTH:
        raise ValueError("features_step: raw, fstate or out has the wrong length (RAW_WIDTH, FEATURE_STATE_WIDTH, "
                         "FEATURE_WIDTH); make the state with new_feature_state()")
    dt = raw[R.DT_S]
    if not dt > 0.0:  # NaN too
        dt = 1.0
    alpha_fast = 1.0 - math.exp(-dt / TAU_FAST_S)
    alpha_slow = 1.0 - math.exp(-dt / TAU_SLOW_S)
    alpha_baseline = 1.0 - math.exp(-dt / TAU_BASELINE_S)

    o2_low, o2_high, o2_min, o2_max = raw[R.O2_LOW], raw[R.O2_HIGH], raw[R.LIMIT_O2_MIN], raw[R.LIMIT_O2_MAX]
    known_now = 0
    for c in range(N_CHANNELS):
        if c == 0:
            x = _fraction(O2_AIR - o2_low, O2_AIR - o2_min)
        elif c == 1:
            x = _fraction(o2_high - O2_AIR, o2_max - O2_AIR)
        elif c == 2:
            x = _fraction(raw[R.LEL], raw[R.LIMIT_LEL])
        elif c == 3:
            x = _fraction(raw[R.H2S], raw[R.LIMIT_H2S])
        else:
            x = _fraction(raw[R.CO], raw[R.LIMIT_CO])
        if not math.isnan(x):
            known_now += 1
            if fstate[_KNOWN + c] == 0.0:  # the first known value starts both averages
                fstate[_KNOWN + c] = 1.0
                fstate[_E60 + c] = x
                fstate[_E300 + c] = x
                fstate[_E1800 + c] = x
            fstate[_X + c] = x
        x = fstate[_X + c]  # the value of this step, or the last known one (0 before any)
        if fstate[_KNOWN + c] != 0.0:
            fstate[_E60 + c] += alpha_fast * (x - fstate[_E60 + c])
            fstate[_E300 + c] += alpha_slow * (x - fstate[_E300 + c])
            fstate[_E1800 + c] += alpha_baseline * (x - fstate[_E1800 + c])
        e60 = fstate[_E60 + c]
        e300 = fstate[_E300 + c]
        out[c] = x
        out[N_CHANNELS + c] = _clip((x - e60) * TREND_GAIN, -TREND_LIMIT, TREND_LIMIT)
        out[2 * N_CHANNELS + c] = _clip((e60 - e300) * TREND_GAIN, -TREND_LIMIT, TREND_LIMIT)
        out[3 * N_CHANNELS + c] = e300
        out[4 * N_CHANNELS + c] = _clip((e60 - fstate[_E1800 + c]) * TREND_GAIN, -TREND_LIMIT, TREND_LIMIT)

    i = _GAS_MISSING
    out[i] = 1.0 if known_now == 0 else 0.0
    detectors, fresh = raw[R.DETECTORS], raw[R.FRESH]
    out[i + 1] = _share(fresh, detectors)
    fresh_floor = 1.0 if math.isnan(fresh) or fresh < 1.0 else fresh
    out[i + 2] = _share(raw[R.FAULTED_CHANNELS], 4.0 * fresh_floor)
    detectors_floor = detectors if detectors > 1.0 else 1.0  # NaN -> 1, but then warming is 0 below
    out[i + 3] = 0.0 if math.isnan(detectors) else _share(raw[R.WARMING], detectors_floor)
    fan = raw[R.FAN]
    out[i + 4] = 0.0 if math.isnan(fan) else 1.0
    out[i + 5] = 1.0 if fan == 1.0 else 0.0
    out[i + 6] = 1.0 if raw[R.EQUIPMENT] == 1.0 else 0.0
    out[i + 7] = _scaled(raw[R.OCCUPANCY], OCCUPANCY_FULL)
    since_first = raw[R.SINCE_FIRST_ENTRY_S]
    out[i + 8] = 0.0 if math.isnan(since_first) else 1.0
    out[i + 9] = _scaled(since_first, SINCE_FIRST_ENTRY_FULL_S)
    out[i + 10] = _scaled(raw[R.OCCUPIED_FOR_S], OCCUPIED_FOR_FULL_S)


@njit(cache=True)
def _features_block(raws, fstate, out):
    for t in range(raws.shape[0]):
        features_step(raws[t], fstate, out[t])


def features_sequence(raw_block: np.ndarray) -> np.ndarray:
    """Features (n, FEATURE_WIDTH) of a zone's consecutive steps (n, RAW_WIDTH), from a fresh state: what the stream
    computes step by step, by the same code."""
    raws = np.ascontiguousarray(raw_block, dtype=np.float64)
    if raws.ndim != 2 or raws.shape[1] != R.RAW_WIDTH:
        raise ValueError(f"features_sequence: raw_block has shape {raws.shape}, expected (n, {R.RAW_WIDTH}) "
                         f"(interlock.risk_inputs.RAW_FIELDS)")
    out = np.empty((raws.shape[0], FEATURE_WIDTH), dtype=np.float64)
    _features_block(raws, new_feature_state(), out)
    return out


@njit(cache=True)
def worst_fraction(fstate):
    """The zone's worst gas channel as a fraction of its limit after its last step (each channel's last known value,
    0 before any): what the grades' air rule reads (interlock.risk_grade). `fstate` may be a whole zone state, whose
    feature state comes first."""
    worst = fstate[_X]
    for c in range(1, N_CHANNELS):
        if fstate[_X + c] > worst:
            worst = fstate[_X + c]
    return worst


def worst_fractions(features: np.ndarray) -> np.ndarray:
    """`worst_fraction` at each step of a zone's features (n, FEATURE_WIDTH): their first columns are the same held
    values."""
    return np.asarray(features, dtype=np.float64)[:, :N_CHANNELS].max(axis=1)
