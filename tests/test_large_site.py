"""bench.large_site: renamed, moved, healthy copies of the firmware-change site (small: 2 copies, 1 minute)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from bench.large_site import INCIDENT, MAX_MINUTES, copy_suffix, large_site_scenario, write_large_recording
from dataflows.recording import read_recording
from interlock.site import COMMANDS_TOPIC, FAULTS_TOPIC, Site
from simulators.scenario import Scenario, epoch_ms, load_scenario

COPIES, MINUTES = 2, 1.0
SUFFIXES = [copy_suffix(c) for c in range(COPIES)]
SUFFIXED = re.compile(r"-c(\d{2,})$")


@pytest.fixture(scope="module")
def incident() -> Scenario:
    return load_scenario(INCIDENT)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return large_site_scenario(COPIES, MINUTES)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("large_site") / "large.jsonl"
    lines = write_large_recording(path, COPIES, MINUTES)
    assert lines == len(path.read_bytes().splitlines()) > 0
    return path


@pytest.fixture(scope="module")
def replayed(recording) -> tuple[list[dict], list[dict]]:
    """The interlock's commands and faults for the recording, from the decision core itself."""
    with open(recording, "rb") as stream:
        outputs = Site().process_batch(read_recording(stream))
    commands = [msgspec.json.decode(o.value) for o in outputs if o.topic == COMMANDS_TOPIC]
    faults = [msgspec.json.decode(o.value) for o in outputs if o.topic == FAULTS_TOPIC]
    return commands, faults


def site_ids(scenario: Scenario) -> list[str]:
    """Every id a scenario defines, once per definition: zones, devices, workers, permits, PLC equipment,
    the Qubit gateways, named points and certificate numbers."""
    ids = [z.zone for z in scenario.zones] + [d.device for d in scenario.devices]
    ids += [w.worker for w in scenario.workers] + [p.permit for p in scenario.permits]
    ids += [e for d in scenario.devices for e in d.equipment or ()]
    ids += sorted({scenario.rtls.qubit_gateway, *scenario.rtls.qubit_tags.values()})
    ids += list(scenario.points) + [c.no for w in scenario.workers for c in w.certs]
    return ids


def strings(value: object):
    """Every string in a decoded JSON value, dict keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def copy_of(text: str) -> str | None:
    """The copy suffix an id (or a PLC signal `<equipment>.<signal>`) carries, if any."""
    match = SUFFIXED.search(text.split(".", 1)[0])
    return match.group(0) if match else None


def test_every_id_is_renamed_once_per_copy_and_no_copy_shares_one(incident, scenario):
    ids = site_ids(scenario)
    assert len(ids) == len(set(ids)), "an id is defined twice"
    assert sorted(ids) == sorted(i + s for i in site_ids(incident) for s in SUFFIXES)
    per_copy = [{i for i in ids if i.endswith(s)} for s in SUFFIXES]
    assert per_copy[0].isdisjoint(per_copy[1]) and len(per_copy[0]) == len(per_copy[1])


def test_no_record_names_an_unrenamed_id_or_mixes_copies(incident, recording):
    original = set(site_ids(incident))
    original |= {tag for sim in incident.plc.values() for tag in sim.tags}
    keys = Counter()
    for line in recording.read_bytes().splitlines():
        envelope = msgspec.json.decode(line)
        payload = msgspec.json.decode(envelope["payload"])
        found = list(strings(payload)) + [envelope["key"]]
        assert not original.intersection(found), f"unrenamed id in {envelope}"
        copies = {copy_of(s) for s in found} - {None}
        assert len(copies) == 1, f"record of copies {copies}: {envelope}"
        keys[copies.pop()] += 1
    assert set(keys) == set(SUFFIXES)
    assert keys[SUFFIXES[0]] == pytest.approx(keys[SUFFIXES[1]], rel=0.05)


def bounds(polygon: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    return min(xs), min(ys), max(xs), max(ys)


def overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def test_no_zone_or_entrance_of_one_copy_overlaps_another_copys(scenario):
    areas: dict[str, list[tuple[float, float, float, float]]] = {s: [] for s in SUFFIXES}
    for zone in scenario.zones:
        polygons = [zone.polygon] + ([zone.entrance.polygon] if zone.entrance else [])
        areas[copy_of(zone.zone)] += [bounds(p) for p in polygons]
    for a in areas[SUFFIXES[0]]:
        for b in areas[SUFFIXES[1]]:
            assert not overlap(a, b), f"{a} overlaps {b}"


def test_every_point_and_polygon_is_the_incidents_moved_by_the_copy_spacing(incident, scenario):
    zones = {z.zone: z for z in scenario.zones}
    for zone in incident.zones:
        for copy, suffix in enumerate(SUFFIXES):
            moved = zones[zone.zone + suffix]
            assert moved.polygon == [(x + 200.0 * copy, y) for x, y in zone.polygon]
    for name, (x, y, z) in incident.points.items():
        assert scenario.points[name + SUFFIXES[1]] == (x + 200.0, y, z)


def test_the_incident_is_gone_and_the_start_up_kept(scenario, recording):
    kinds = Counter(type(e).__name__ for e in scenario.timeline)
    assert kinds == {"SetPermitState": 3 * COPIES, "SetPlcSignal": 3 * COPIES}  # the moves come after 1 minute
    topics = Counter(msgspec.json.decode(line)["topic"] for line in recording.read_bytes().splitlines())
    assert "ptw.actions" not in topics
    assert topics["cmdb.devices"] == len(scenario.devices)
    assert topics["ptw.permits"] == 2 * len(scenario.permits)  # approved, then active


def test_permit_windows_cover_the_run_and_hot_work_stays_within_8_hours(scenario):
    start = epoch_ms(scenario.start)
    end = start + round(scenario.duration * 1000)
    for permit in scenario.permits:
        assert epoch_ms(permit.valid_from) < start and epoch_ms(permit.valid_to) > end
    longest = large_site_scenario(1, MAX_MINUTES)
    for permit in longest.permits:
        assert epoch_ms(permit.valid_to) > epoch_ms(longest.start) + MAX_MINUTES * 60_000
        if permit.type == "hot_work":
            assert epoch_ms(permit.valid_to) - epoch_ms(permit.valid_from) <= 8 * 3_600_000
    with pytest.raises(ValueError, match="8 h"):
        large_site_scenario(1, MAX_MINUTES + 1)


def test_the_recording_is_deterministic(recording, tmp_path):
    again = tmp_path / "again.jsonl"
    write_large_recording(again, COPIES, MINUTES)
    assert again.read_bytes() == recording.read_bytes()


def test_the_interlock_enables_every_permit_exactly_once_and_never_stops(scenario, replayed):
    commands, faults = replayed
    enables = Counter(c["permit"] for c in commands if c["kind"] == "ENABLE")
    assert enables == {p.permit: 1 for p in scenario.permits}
    assert len(enables) == 3 * COPIES
    assert not [c for c in commands if c["kind"] == "HARD_STOP"]
    assert not [f for f in faults if f["grade"] == "CRITICAL"]
