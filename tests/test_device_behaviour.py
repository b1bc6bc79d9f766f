"""Device behaviour a scenario can ask for: detector noise, drift, warm-up, faults and bump tests; UWB noise, multipath
and dropouts; paths; harness height, habits and battery; PLC schedules, failures and work."""

from __future__ import annotations

import math
import random
import statistics

import msgspec
import pytest

from simulators.detector_behaviour import DetectorBehaviour, sensed_readings
from simulators.recording import Envelope, envelopes
from simulators.scenario import Scenario, generate
from simulators.tag_behaviour import TagBehaviour, observed_fix

START_MS = 1795136400000  # 2026-11-20T09:00:00+08:00

SITE = """
name = "behaviour"
seed = 7
start = 2026-11-20T09:00:00+08:00
duration = 120.0

[points]
a = [1.0, 1.0, 1.1]
b = [13.0, 6.0, 1.1]
c = [13.0, 12.0, 1.1]
ladder_foot = [5.0, 5.0, 1.1]
ladder_top = [5.0, 5.0, 5.1]

[positions]
W1 = "a"
W2 = "a"

[[zones]]
zone = "Z"
name = "zone"
polygon = [[0, 0], [20, 0], [20, 20], [0, 20]]
z = [0, 10]
risk = "II"
forbid = []

[[devices]]
device = "GAS-1"
family = "gas"
model = "GD-4"
firmware = "3.0.0"
zone = "Z"

[[devices]]
device = "GAS-2"
family = "gas"
model = "GD-4"
firmware = "2.3.1"
zone = "Z"

[[devices]]
device = "T-1"
family = "uwb_tag"
vendor = "anchorline"
worker = "W1"

[[devices]]
device = "0x01"
family = "uwb_tag"
vendor = "qubit"
worker = "W2"

[[devices]]
device = "HB-1"
family = "harness"
model = "SH-2"
firmware = "2.0.1"
worker = "W1"

[[devices]]
device = "PLC-1"
family = "plc"
equipment = ["WELD-1", "FAN-1", "V-1"]

[plc.PLC-1]
tags = { "WELD-1.power" = false, "FAN-1.running" = false, "V-1.isolated" = true }
"""


def scenario(extra: str = "", **changes) -> Scenario:
    """The small site above plus `extra` TOML (sections, keys of [plc.PLC-1] go in `extra` after it)."""
    loaded = msgspec.toml.decode((SITE + extra).encode(), type=Scenario)
    return msgspec.structs.replace(loaded, **changes) if changes else loaded


def play(extra: str = "", **changes) -> list[Envelope]:
    return envelopes(generate(scenario(extra, **changes)))


def payloads(recording: list[Envelope], topic: str, key: str) -> list[tuple[float, dict]]:
    """(seconds from start, decoded payload) of one key's records."""
    return [((e.ts - START_MS) / 1000, msgspec.json.decode(e.payload)) for e in recording
            if e.topic == topic and e.key == key]


def channel(payload: dict, name: str) -> float | None:
    r = payload["r"]
    if isinstance(r, dict):
        return r[name]
    value = r[("o2", "lel", "h2s", "co").index(name)]
    return None if value == -1 else value


def behaviour(**changes) -> DetectorBehaviour:
    fields = dict(noise=None, drift={}, warmup_ms=0, powered_at=0, powered=True, start=0, stuck={})
    fields.update(changes)
    return DetectorBehaviour(**fields)


AIR = """
[air.Z]
volume = 200.0
ach = 6.0
"""


# GD-4 detectors


def test_detector_noise_has_the_configured_sigma():
    rng = random.Random("sigma")
    noisy = behaviour(noise={"o2": 0.0, "lel": 0.5, "h2s": 0.2, "co": 0.0})
    levels = {"o2": 20.9, "lel": 20.0, "h2s": 5.0, "co": 3.0}
    readings = [sensed_readings(levels, [], noisy, 1000, rng) for _ in range(20_000)]
    assert statistics.pstdev(r["lel"] for r in readings) == pytest.approx(0.5, rel=0.03)
    assert statistics.pstdev(r["h2s"] for r in readings) == pytest.approx(0.2, rel=0.05)
    assert statistics.fmean(r["lel"] for r in readings) == pytest.approx(20.0, abs=0.02)
    assert {r["o2"] for r in readings} == {20.9} and {r["co"] for r in readings} == {3.0}


def test_the_same_seed_gives_the_same_readings_and_another_seed_other_ones():
    extra = """
[gas.GAS-1]
noise = { o2 = 0.1, lel = 0.3, h2s = 0.2, co = 0.5 }
lel = 5.0
"""
    first = payloads(play(extra), "gas.readings", "GAS-1")
    again = payloads(play(extra), "gas.readings", "GAS-1")
    other = payloads(play(extra, seed=8), "gas.readings", "GAS-1")
    assert first == again
    assert [p["r"] for _, p in first] != [p["r"] for _, p in other]


def test_drift_moves_a_reading_by_its_rate_per_hour():
    drifting = behaviour(noise={}, drift={"o2": -0.6, "co": 2.0})
    levels = {"o2": 20.9, "lel": 0.0, "h2s": 0.0, "co": 0.0}
    hour = sensed_readings(levels, [], drifting, 3_600_000, random.Random(1))
    assert hour["o2"] == pytest.approx(20.3) and hour["co"] == pytest.approx(2.0)


def test_readings_stay_within_the_channels_full_scale():
    levels = {"o2": 20.9, "lel": 250.0, "h2s": 900.0, "co": 5000.0}
    readings = sensed_readings(levels, [], behaviour(noise={}), 0, random.Random(1))
    assert (readings["lel"], readings["h2s"], readings["co"]) == (100.0, 500.0, 2000.0)


def test_a_warming_gd4_3_detector_is_not_ok_until_warmed_up():
    readings = payloads(play("[gas.GAS-1]\nwarmup = 30.0\non = 0.0\n"), "gas.readings", "GAS-1")
    for _, payload in readings:
        warming = payload["ts"] - START_MS < 30_000
        assert payload["st"] == ("warmup" if warming else "ok"), payload
    assert any(p["st"] == "warmup" for _, p in readings) and readings[-1][1]["st"] == "ok"


def test_gd4_2_warm_up_readings_settle_to_the_air():
    readings = payloads(play("[gas.GAS-2]\nwarmup = 30.0\non = 0.0\n"), "gas.readings", "GAS-2")
    first, settled = readings[0][1], [p for t, p in readings if t > 31]
    assert channel(first, "o2") < 10.0 and first["alm"] & 1  # still settling: the detector's own low-O2 alarm
    assert all(abs(channel(p, "o2") - 20.9) <= 0.15 and p["alm"] == 0 for p in settled)


def test_a_detector_switched_on_after_the_start_is_silent_before():
    readings = payloads(play("[gas.GAS-1]\nwarmup = 10.0\non = 50.0\n"), "gas.readings", "GAS-1")
    assert readings[0][0] >= 50.0
    assert readings[0][1]["st"] == "warmup"


def test_a_power_cycle_silences_the_detector_and_restarts_its_seq():
    extra = """
[[timeline]]
at = 30.0
kind = "power"
device = "GAS-2"
on = false

[[timeline]]
at = 40.0
kind = "power"
device = "GAS-2"
on = true
"""
    readings = payloads(play(extra), "gas.readings", "GAS-2")
    assert not [t for t, _ in readings if 30.0 < t < 40.0]
    after = [p["seq"] for t, p in readings if t >= 40.0]
    assert after[:3] == [0, 1, 2]


def test_a_stuck_channel_repeats_its_value_while_the_air_changes():
    extra = AIR + """
[gas.GAS-1]
noise = { lel = 0.2 }

[[timeline]]
at = 10.0
kind = "gas"
device = "GAS-1"
stuck = ["lel"]

[[timeline]]
at = 20.0
kind = "release"
zone = "Z"
gas = "methane"
kg = 1.0
"""
    readings = payloads(play(extra), "gas.readings", "GAS-1")
    stuck = {p["r"]["lel"] for t, p in readings if t > 11}
    assert len(stuck) == 1 and stuck.pop() < 2.0
    twin = payloads(play(extra), "gas.readings", "GAS-2")
    assert max(channel(p, "lel") for _, p in twin) > 10.0  # the air did change: another detector sees the release


def test_a_faulted_channel_reads_minus_one_in_gd4_2_and_null_in_gd4_3():
    extra = """
[gas.GAS-1]
noise = { h2s = 0.1 }

[[timeline]]
at = 60.0
kind = "gas"
device = "GAS-1"
fault = ["h2s"]

[[timeline]]
at = 60.0
kind = "gas"
device = "GAS-2"
fault = ["h2s"]
"""
    recording = play(extra)
    for _, payload in payloads(recording, "gas.readings", "GAS-1"):
        assert (payload["r"]["h2s"] is None) == (payload["ts"] >= START_MS + 60_000 - 40)
    for t, payload in payloads(recording, "gas.readings", "GAS-2"):
        if t > 60.02:
            assert payload["r"][2] == -1 and payload["alm"] & 0x80


def test_a_bump_test_shows_the_test_gas_then_moves_the_bump_time():
    extra = """
[[timeline]]
at = 10.0
kind = "bump"
device = "GAS-1"
duration = 15.0
"""
    readings = payloads(play(extra), "gas.readings", "GAS-1")
    before = readings[0][1]["bump"]
    during = [p for _, p in readings if START_MS + 10_000 <= p["ts"] < START_MS + 25_000]
    after = [p for _, p in readings if p["ts"] >= START_MS + 25_100]
    assert before == START_MS - 3 * 3_600_000
    assert during and all(p["r"]["lel"] >= 49.0 and p["r"]["co"] >= 99.0 and p["bump"] == before for p in during)
    assert after and all(p["r"]["lel"] <= 0.1 and p["bump"] == START_MS + 25_000 for p in after)


def test_a_detector_in_a_zone_with_air_reads_that_air():
    extra = AIR + """
[[timeline]]
at = 30.0
kind = "leak"
zone = "Z"
gas = "methane"
m3_h = 30.0
"""
    readings = payloads(play(extra), "gas.readings", "GAS-1")
    assert all(p["r"]["lel"] <= 0.1 for t, p in readings if t < 30)
    lel = [p["r"]["lel"] for t, p in readings if t > 40]
    assert lel[-1] > lel[0] + 3.0 and lel[0] > 0.5


# UWB tags


def test_fix_noise_has_the_configured_sigma():
    rng = random.Random("fixes")
    noisy = TagBehaviour(sigma=0.2, sigma_z=0.05, multipath=0.0, multipath_m=3.0, dropout=0.0, dropout_fixes=1)
    fixes = [observed_fix((10.0, 20.0, 1.1), noisy, rng).point for _ in range(20_000)]
    assert statistics.pstdev(f[0] for f in fixes) == pytest.approx(0.2, rel=0.03)
    assert statistics.pstdev(f[1] for f in fixes) == pytest.approx(0.2, rel=0.03)
    assert statistics.pstdev(f[2] for f in fixes) == pytest.approx(0.05, rel=0.03)


def test_multipath_outliers_have_lower_quality():
    extra = """
[uwb.T-1]
sigma = 0.05
multipath = 0.2
multipath_m = 4.0
"""
    fixes = [p for _, p in payloads(play(extra, duration=300.0), "rtls.position", "T-1")]
    outliers = [f for f in fixes if math.dist(f["pos"][:2], (1.0, 1.0)) > 1.0]
    clean = [f for f in fixes if math.dist(f["pos"][:2], (1.0, 1.0)) <= 1.0]
    assert 0.1 < len(outliers) / len(fixes) < 0.3
    assert all(0.30 <= f["q"] <= 0.70 for f in outliers)
    assert all(0.80 <= f["q"] <= 0.99 for f in clean)
    assert any(f["q"] < 0.5 for f in outliers) and any(f["q"] >= 0.5 for f in outliers)


def test_dropouts_send_nothing_from_anchorline_and_unlocated_elements_from_qubit():
    extra = """
[rtls.fixes]
sigma = 0.1
dropout = 0.1
dropout_s = 3.0
"""
    recording = play(extra, duration=600.0)
    anchorline = payloads(recording, "rtls.position", "T-1")
    assert 300 < len(anchorline) < 560
    gaps = [b - a for (a, _), (b, _) in zip(anchorline, anchorline[1:]) if b - a > 1.5]
    assert gaps and all(3.5 < gap < 4.5 for gap in gaps if gap < 5)  # a dropout takes three fixes
    elements = [e for _, batch in payloads(recording, "rtls.position", "QGW-01") for e in batch]
    lost = [e for e in elements if not e["success"]]
    assert len(elements) >= 599 and lost and all("data" not in e for e in lost)


def test_a_worker_walks_a_path_at_the_configured_speed():
    extra = """
[[timeline]]
at = 10.0
kind = "path"
worker = "W1"
speed = 1.3
waypoints = [{ to = "b" }]
"""
    fixes = payloads(play(extra), "rtls.position", "T-1")
    distance = math.dist((1.0, 1.0), (13.0, 6.0))  # 13 m
    arrive = 10.0 + distance / 1.3
    walking = [(t, p["pos"]) for t, p in fixes if 11.0 < t < arrive - 1.0]
    (t0, p0), (t1, p1) = walking[0], walking[-1]
    assert math.dist(p0[:2], p1[:2]) / (t1 - t0) == pytest.approx(1.3, rel=0.03)
    assert all(math.dist(p["pos"][:2], (13.0, 6.0)) < 0.1 for t, p in fixes if t > arrive + 0.05)


def test_a_worker_dwells_at_each_waypoint_before_walking_on():
    extra = """
[[timeline]]
at = 10.0
kind = "path"
worker = "W1"
waypoints = [{ to = "b", dwell = 30.0 }, { to = "c", speed = 0.6 }]
"""
    fixes = payloads(play(extra), "rtls.position", "T-1")
    at_b = 10.0 + 13.0 / 1.2
    assert all(math.dist(p["pos"][:2], (13.0, 6.0)) < 0.1 for t, p in fixes if at_b + 0.1 < t < at_b + 29.9)
    assert all(math.dist(p["pos"][:2], (13.0, 12.0)) < 0.1 for t, p in fixes if t > at_b + 30.0 + 6.0 / 0.6 + 0.1)


# PLC signals


def plc_values(recording: list[Envelope], signal: str) -> list[tuple[float, bool]]:
    return [(t, p["tags"][signal]) for t, p in payloads(recording, "plc.state", "PLC-1")]


def changes(values: list[tuple[float, bool]]) -> list[tuple[float, bool]]:
    return [(t, v) for (t, v), (_, before) in zip(values[1:], values) if v != before]


def test_a_welder_is_powered_while_its_worker_works():
    extra = """worked_by = { "WELD-1.power" = "W1" }

[[timeline]]
at = 10.0
kind = "path"
worker = "W1"
waypoints = [{ to = "b", dwell = 40.0, work = true }, { to = "c" }]
"""
    arrive = 10.0 + 13.0 / 1.2
    expected = [(round(arrive, 3), True), (round(arrive + 40, 3), False)]
    assert changes(plc_values(play(extra), "WELD-1.power")) == expected


def test_a_fan_follows_its_schedule_and_a_failure_holds_it_off():
    extra = """schedule = { "FAN-1.running" = [[10.0, 100.0]] }

[[timeline]]
at = 30.0
kind = "fail"
plc = "PLC-1"
tag = "FAN-1.running"
until = 50.0
"""
    assert changes(plc_values(play(extra), "FAN-1.running")) == [(10.0, True), (30.0, False), (50.0, True),
                                                                (100.0, False)]


def test_a_lost_isolation_is_reported_at_once():
    extra = """
[[timeline]]
at = 33.3
kind = "fail"
plc = "PLC-1"
tag = "V-1.isolated"
"""
    values = plc_values(play(extra), "V-1.isolated")
    assert changes(values) == [(33.3, False)]
    assert all(not v for t, v in values if t > 33.3)


def test_a_plc_event_cannot_restart_a_failed_fan_until_it_is_repaired():
    extra = """
[[timeline]]
at = 10.0
kind = "fail"
plc = "PLC-1"
tag = "FAN-1.running"
until = 60.0

[[timeline]]
at = 20.0
kind = "plc"
plc = "PLC-1"
tag = "FAN-1.running"
value = true
"""
    assert changes(plc_values(play(extra), "FAN-1.running")) == [(60.0, True)]


# SH-2 harnesses


def test_a_harness_follows_its_wearer_up_a_ladder():
    extra = """
[harness.HB-1]
follow = true

[[timeline]]
at = 10.0
kind = "path"
worker = "W1"
waypoints = [{ to = "ladder_foot" }, { to = "ladder_top", speed = 0.25 }]
"""
    reports = payloads(play(extra), "harness.status", "HB-1")
    foot = 10.0 + math.dist((1, 1), (5, 5)) / 1.2
    top = foot + 4.0 / 0.25
    assert all(p["h"] <= 0.1 for t, p in reports if t < foot)
    climbing = [(t, p["h"]) for t, p in reports if foot + 1 < t < top - 1]
    assert all(abs(h - (t - foot) * 0.25) <= 0.15 for t, h in climbing)
    assert all(abs(p["h"] - 4.0) <= 0.11 for t, p in reports if t > top + 0.1)


def test_a_wearer_who_always_unclips_to_move_has_no_hook_on_while_walking():
    extra = """
[harness.HB-1]
unclip = 1.0
reclip = 5.0

[[timeline]]
at = 10.0
kind = "path"
worker = "W1"
waypoints = [{ to = "b", dwell = 40.0 }]
"""
    reports = payloads(play(extra), "harness.status", "HB-1")
    arrive = 10.0 + 13.0 / 1.2
    assert [p["hooks"] for t, p in reports if t == 10.0] == [[0, 0]]  # reported at once
    assert all(p["hooks"] == [0, 0] for t, p in reports if 10.0 <= t < arrive)
    reclipped = next(t for t, p in reports if t > arrive and p["hooks"] == [1, 1])
    assert arrive <= reclipped < arrive + 60
    assert all(p["hooks"] == [1, 1] for t, p in reports if t >= reclipped)


def test_a_careful_wearer_moves_one_hook_at_a_time():
    extra = """
[harness.HB-1]
unclip = 0.0
reclip = 2.0

[[timeline]]
at = 10.0
kind = "path"
worker = "W1"
waypoints = [{ to = "b", dwell = 5.0 }, { to = "c", dwell = 5.0 }, { to = "a" }]
"""
    hooks = [p["hooks"] for _, p in payloads(play(extra), "harness.status", "HB-1")]
    assert [1, 0] in hooks and [0, 0] not in hooks


def test_a_drained_harness_falls_silent():
    reports = payloads(play("[harness.HB-1]\nbat = 1\ndrain = 60.0\n"), "harness.status", "HB-1")
    assert reports and reports[-1][0] < 60.0
    assert {p["bat"] for _, p in reports} == {1}
