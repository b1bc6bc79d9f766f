"""Simulated field devices: the state a timeline changes, and the payload each device sends when it reports.

Every function that adds noise takes the device's own `random.Random`, so one device's draws
never shift another's and a scenario stays byte-deterministic.
"""

from __future__ import annotations

import datetime
import math
import random

from msgspec import Struct

from simulators.payloads import (
    AnchorlineFix,
    Coordinates,
    Gd4v2,
    Gd4v3,
    Gd4v3Readings,
    PlcState,
    QubitData,
    QubitFix,
    Sh2v1,
    Sh2v2,
)

Point = tuple[float, float, float]

SEQ_MODULUS = 65536
CHANNELS = ("o2", "lel", "h2s", "co")
# One noise step per channel: each reading is the level, one step up, or one step down.
NOISE_STEP = {"o2": 0.1, "lel": 0.1, "h2s": 0.1, "co": 1.0}
# The GD-4's own alarm set points, used for the `gd4/2` alarm mask.
O2_LOW, O2_HIGH, LEL_HIGH, H2S_HIGH, CO_HIGH = 19.5, 23.5, 10.0, 10.0, 35.0
ALARM_SENSOR_FAULT = 1 << 7
BATTERY_DRAIN_MS = 600_000
HOUR_MS = 3_600_000
POSITION_JITTER_M = 0.05
HEIGHT_JITTER_M = 0.02


def firmware_major(firmware: str) -> int:
    """The major version of a firmware string such as "2.3.1", which picks the payload schema."""
    return int(firmware.split(".", 1)[0])


def next_seq(seq: int) -> int:
    """The uint16 sequence number after `seq`, wrapping 65535 to 0."""
    return (seq + 1) % SEQ_MODULUS


# GD-4 four-gas detector


class Detector(Struct):
    """A GD-4 as it is in the field: running firmware, gas levels around it, status and last bump test."""

    dev: str
    firmware: str
    levels: dict[str, float]
    st: str
    bump: int
    seq: int
    fault: list[str]


def read_channels(detector: Detector, rng: random.Random) -> dict[str, float | None]:
    """One noisy reading per channel, rounded to 0.1; a faulted channel reads None."""
    readings: dict[str, float | None] = {}
    for channel in CHANNELS:
        step = NOISE_STEP[channel]
        value = detector.levels[channel] + rng.choice((-step, 0.0, 0.0, step))
        readings[channel] = None if channel in detector.fault else max(0.0, round(value, 1))
    return readings


def alarm_mask(readings: dict[str, float | None]) -> int:
    """The `gd4/2` alarm bits a detector would raise for these readings."""
    o2, lel, h2s, co = (readings[c] for c in CHANNELS)
    bits = [
        o2 is not None and o2 < O2_LOW,
        o2 is not None and o2 > O2_HIGH,
        lel is not None and lel >= LEL_HIGH,
        h2s is not None and h2s >= H2S_HIGH,
        co is not None and co >= CO_HIGH,
    ]
    mask = sum(1 << bit for bit, raised in enumerate(bits) if raised)
    if any(value is None for value in readings.values()):
        mask |= ALARM_SENSOR_FAULT
    return mask


def gd4_payload(
    detector: Detector,
    device_ts: int,
    rng: random.Random,
    readings: dict[str, float | None] | None = None,
    st: str | None = None,
) -> Gd4v2 | Gd4v3:
    """The reading a GD-4 sends now, in the shape of the firmware it is actually running.

    `readings` and `st` come from the detector's behaviour when it has one; otherwise the plain noisy levels and
    the detector's own status are sent.
    """
    readings = read_channels(detector, rng) if readings is None else readings
    major = firmware_major(detector.firmware)
    seq = detector.seq
    detector.seq = next_seq(seq)
    if major == 2:
        r = tuple(-1.0 if readings[c] is None else readings[c] for c in CHANNELS)
        return Gd4v2(detector.dev, detector.firmware, device_ts, seq, r, alarm_mask(readings))
    if major == 3:
        return Gd4v3(
            detector.dev,
            detector.firmware,
            device_ts,
            seq,
            Gd4v3Readings(**readings),
            detector.st if st is None else st,
            detector.bump,
        )
    raise ValueError(f"{detector.dev}: no GD-4 payload shape for firmware {detector.firmware}")


# SH-2 smart harness


class Harness(Struct):
    """An SH-2 as worn: running firmware, height above grade, hooks (0/1 each), battery at start and its drain (%/h)."""

    dev: str
    firmware: str
    h: float
    hooks: list[int]
    bat: int
    seq: int
    drain: float | None = None


def battery_at(harness: Harness, elapsed_ms: int) -> int:
    """Battery %, draining one point every ten minutes of site time, or `drain` points an hour when set."""
    if harness.drain is None:
        return max(0, harness.bat - elapsed_ms // BATTERY_DRAIN_MS)
    return max(0, harness.bat - math.floor(harness.drain * elapsed_ms / HOUR_MS))


def sh2_payload(harness: Harness, device_ts: int, elapsed_ms: int, rng: random.Random) -> Sh2v1 | Sh2v2:
    """The report an SH-2 sends now, in the shape of the firmware it is running; 1.x reports one hook."""
    h = max(0.0, round(harness.h + rng.choice((-0.1, 0.0, 0.0, 0.1)), 1))
    bat = battery_at(harness, elapsed_ms)
    major = firmware_major(harness.firmware)
    seq = harness.seq
    harness.seq = next_seq(seq)
    if major == 1:
        hook = "clipped" if any(harness.hooks) else "unclipped"
        return Sh2v1(harness.dev, harness.firmware, device_ts, seq, hook, h, bat)
    if major == 2:
        return Sh2v2(harness.dev, harness.firmware, device_ts, seq, list(harness.hooks), h, bat)
    raise ValueError(f"{harness.dev}: no SH-2 payload shape for firmware {harness.firmware}")


# Workers and their UWB tags


class Walk(Struct):
    """Where a worker is: standing at `target` once `arrive` (ms) has passed, walking there before."""

    origin: Point
    target: Point
    depart: int
    arrive: int


def standing(point: Point) -> Walk:
    """A worker standing still at `point`."""
    return Walk(point, point, 0, 0)


def position_at(walk: Walk, ms: int) -> Point:
    """The worker's position at `ms`, on the straight line from origin to target."""
    if ms >= walk.arrive:
        return walk.target
    share = (ms - walk.depart) / (walk.arrive - walk.depart)
    return tuple(a + (b - a) * share for a, b in zip(walk.origin, walk.target))


def walk_to(walk: Walk, target: Point, now: int, speed: float) -> Walk:
    """Start walking from where the worker is now to `target` at `speed` m/s."""
    origin = position_at(walk, now)
    duration = round(math.dist(origin, target) / speed * 1000)
    return Walk(origin, target, now, now + duration)


def jittered(point: Point, rng: random.Random) -> Point:
    """A UWB fix of `point`: a few centimetres of noise, less in height."""
    x, y, z = point
    return (
        x + rng.uniform(-POSITION_JITTER_M, POSITION_JITTER_M),
        y + rng.uniform(-POSITION_JITTER_M, POSITION_JITTER_M),
        z + rng.uniform(-HEIGHT_JITTER_M, HEIGHT_JITTER_M),
    )


def rfc3339_ms(ms: int) -> str:
    """`ms` since the epoch as RFC 3339 UTC with milliseconds, e.g. 2026-11-20T01:00:00.120Z."""
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def anchorline_fix(tag: str, point: Point, device_ts: int, rng: random.Random) -> AnchorlineFix:
    """An Anchorline update for a tag at `point`: centimetre positions, quality 0.80-0.99."""
    x, y, z = jittered(point, rng)
    q = round(rng.uniform(0.80, 0.99), 2)
    return AnchorlineFix(tag, rfc3339_ms(device_ts), (round(x, 2), round(y, 2), round(z, 2)), q)


def qubit_fix(tag: str, point: Point, device_ts: int, rng: random.Random) -> QubitFix:
    """A located Qubit element for a tag at `point`: millimetres, timestamp in seconds."""
    x, y, z = (round(v * 1000) for v in jittered(point, rng))
    return QubitFix(tag, device_ts / 1000, True, QubitData(Coordinates(x, y, z)))


# PLC edge gateways


class Plc(Struct):
    """A PLC edge gateway: every signal it reports, in a fixed order."""

    plc: str
    tags: dict[str, bool]
    seq: int


def plc_payload(plc: Plc, device_ts: int) -> PlcState:
    """The state report the gateway sends now."""
    seq = plc.seq
    plc.seq = next_seq(seq)
    return PlcState(plc.plc, device_ts, seq, dict(plc.tags))
