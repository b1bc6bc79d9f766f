"""How a GD-4 behaves beyond reading the air: Gaussian noise, slow drift, warm-up after power-on, stuck channels
and bump tests. Used only for a detector whose scenario section asks for one of these; others read as before.

All randomness comes from the detector's own `random.Random`, one draw per channel per reading whatever the
channel's state, so a fault or a bump test never shifts the noise of later readings.
"""

from __future__ import annotations

import math
import random

from msgspec import Struct

from simulators.devices import CHANNELS, HOUR_MS, NOISE_STEP

# What a detector reads while a bump test holds the four-gas test bottle to it (a typical bottle:
# 18 % O2, 50 % LEL methane, 25 ppm H2S, 100 ppm CO).
BUMP_GAS = {"o2": 18.0, "lel": 50.0, "h2s": 25.0, "co": 100.0}
# Full scale of each GD-4 channel: an over-range reading shows full scale, never a value the sheet forbids.
FULL_SCALE = {"o2": 30.0, "lel": 100.0, "h2s": 500.0, "co": 2000.0}
# Warm-up readings settle exponentially with this share of the warm-up time as time constant, so that they are
# within e^-6 (0.25 %) of the truth when the warm-up ends.
WARMUP_TIME_CONSTANTS = 6.0


class DetectorBehaviour(Struct):
    """What a detector adds to the air it reads: noise σ per channel (None: the plain ±1 step noise), drift per hour
    from `start` (ms), warm-up time (ms) after `powered_at`, whether it is powered, channels stuck at a value
    (None until first read), and until when (ms) a bump test's gas is on it."""

    noise: dict[str, float] | None
    drift: dict[str, float]
    warmup_ms: int
    powered_at: int
    powered: bool
    start: int
    stuck: dict[str, float | None]
    bump_gas_until: int = 0


def warming(behaviour: DetectorBehaviour, now: int) -> bool:
    """Whether the detector is still warming up at `now`."""
    return behaviour.warmup_ms > 0 and now - behaviour.powered_at < behaviour.warmup_ms


def settled_share(behaviour: DetectorBehaviour, now: int) -> float:
    """How far warm-up readings have settled from zero towards the truth: 1 − e^(−t/τ), τ = warmup / 6; 1 when
    warm."""
    if not warming(behaviour, now):
        return 1.0
    tau = behaviour.warmup_ms / WARMUP_TIME_CONSTANTS
    return -math.expm1(-max(0, now - behaviour.powered_at) / tau)


def channel_noise(behaviour: DetectorBehaviour, channel: str, rng: random.Random) -> float:
    """One draw of a channel's noise: Gaussian with the configured σ, or the plain one-step noise."""
    if behaviour.noise is None:
        step = NOISE_STEP[channel]
        return rng.choice((-step, 0.0, 0.0, step))
    return rng.gauss(0.0, behaviour.noise.get(channel, 0.0))


def sensed_readings(levels: dict[str, float], fault: list[str], behaviour: DetectorBehaviour, now: int,
                    rng: random.Random) -> dict[str, float | None]:
    """One reading per channel: the gas (or the bump gas), settled by warm-up, drifted, noisy, rounded to 0.1 within
    0..full scale; a stuck channel repeats the value it stuck at, a faulted one reads None."""
    gas = BUMP_GAS if now < behaviour.bump_gas_until else levels
    settled = settled_share(behaviour, now)
    hours = (now - behaviour.start) / HOUR_MS
    readings: dict[str, float | None] = {}
    for channel in CHANNELS:
        value = gas[channel] * settled + behaviour.drift.get(channel, 0.0) * hours
        value += channel_noise(behaviour, channel, rng)
        value = min(FULL_SCALE[channel], max(0.0, round(value, 1)))
        if channel in behaviour.stuck:
            held = behaviour.stuck[channel]
            value = value if held is None else held
            behaviour.stuck[channel] = value
        readings[channel] = None if channel in fault else value
    return readings


def status(st: str, behaviour: DetectorBehaviour, now: int) -> str:
    """The `gd4/3` status: "warmup" while warming up, otherwise the detector's own."""
    return "warmup" if warming(behaviour, now) else st


def stick(behaviour: DetectorBehaviour, channels: list[str]) -> None:
    """These channels stick at their next reading; channels no longer listed come free."""
    behaviour.stuck = {c: behaviour.stuck.get(c) for c in channels}


def power(behaviour: DetectorBehaviour, on: bool, now: int) -> None:
    """Switch the detector off (it stops reporting) or on (it warms up again from now)."""
    if on and not behaviour.powered:
        behaviour.powered_at = now
    behaviour.powered = on
