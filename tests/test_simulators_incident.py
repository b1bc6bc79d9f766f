"""The firmware-change incident is healthy everywhere except GAS-07's firmware: the interlock's rules, checked on the recording.

Each test replays the committed recording, keeps the latest table rows as they arrive,
and checks one rule from the interlock's side for every record after the permits go active.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from simulators.recording import Envelope, read_recording

RECORDING = Path(__file__).resolve().parents[1] / "simulators" / "incidents" / "firmware_change.jsonl"
START_MS = 1795136400000  # 2026-11-20T09:00:00+08:00
SITE_DATE = datetime.date(2026, 11, 20)
ACTIVE_FROM_MS = START_MS + 20_600  # the last of the three permits goes active
EIGHT_HOURS_MS = 8 * 3600 * 1000
DAY_MS = 24 * 3600 * 1000
CERT_FOR_WORK = {"hot_work": {"welding"}, "height": {"height"}, "confined_space": {"confined", "hazchem"}}
GAS_LIMITS = {"o2": (19.5, 23.5), "lel": (0.0, 10.0), "h2s": (0.0, 7.0), "co": (0.0, 26.0)}
CONFINED_O2 = (19.5, 21.0)
CHANNELS = ("o2", "lel", "h2s", "co")


class Site:
    """The tables as the interlock would hold them at one moment: the latest row per key."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict]] = defaultdict(dict)

    def apply(self, envelope: Envelope) -> None:
        if envelope.topic in ("cmdb.devices", "gis.zones", "hr.qualifications", "ptw.permits"):
            self.tables[envelope.topic][envelope.key] = msgspec.json.decode(envelope.payload)

    @property
    def permits(self) -> list[dict]:
        return list(self.tables["ptw.permits"].values())

    def worker_of_tag(self, tag: str) -> str:
        return self.tables["cmdb.devices"][tag]["worker"]


def replay() -> Iterator[tuple[Site, Envelope]]:
    """Every record with the tables as they stood when it arrived (one shared Site, so read it in order)."""
    site = Site()
    for envelope in read_recording(RECORDING):
        site.apply(envelope)
        yield site, envelope


def inside(point: tuple[float, float], polygon: list[list[float]]) -> bool:
    """Ray casting: is the point strictly inside the simple polygon?"""
    x, y = point
    result = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1]):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            result = not result
    return result


def in_zone(position: tuple[float, float, float], zone: dict) -> bool:
    low, high = zone["z"]
    return inside(position[:2], zone["polygon"]) and low <= position[2] <= high


def fixes(envelope: Envelope) -> list[tuple[str, tuple[float, float, float], float]]:
    """(tag, position in metres, quality) for every located tag in an rtls.position record."""
    payload = msgspec.json.decode(envelope.payload)
    if isinstance(payload, dict):
        return [(payload["tag"], tuple(payload["pos"]), payload["q"])]
    return [
        (f["tagId"], tuple(f["data"]["coordinates"][a] / 1000 for a in "xyz"), 1.0)
        for f in payload
        if f["success"]
    ]


def active_records() -> list[tuple[Site, Envelope]]:
    return [(site, e) for site, e in replay() if e.ts >= ACTIVE_FROM_MS]


@pytest.fixture(scope="module")
def final_site() -> Site:
    site = None
    for site, _ in replay():
        pass
    return site


def test_every_permit_goes_active_with_all_signatures_and_a_distinct_approver(final_site):
    assert len(final_site.permits) == 3
    for permit in final_site.permits:
        signatures = permit["signatures"]
        assert permit["state"] == "active" and permit["rev"] == 2
        assert set(signatures) == {"applicant", "guardian", "approver", "supervisor"}
        assert signatures["approver"] != signatures["applicant"]
        assert signatures["approver"] == permit["approver"] and signatures["guardian"] == permit["guardian"]
        assert permit["guardian"] not in permit["workers"]


def test_no_permit_is_for_work_its_zone_forbids(final_site):
    for permit in final_site.permits:
        assert permit["type"] not in final_site.tables["gis.zones"][permit["zone"]]["forbid"]


def test_permits_are_valid_for_the_whole_recording_and_hot_work_for_at_most_8_hours(final_site):
    last = read_recording(RECORDING)[-1].ts
    for permit in final_site.permits:
        assert permit["valid_from"] <= START_MS and last <= permit["valid_to"]
        assert permit["valid_to"] - permit["valid_from"] <= EIGHT_HOURS_MS


def test_every_permit_worker_holds_a_valid_cert_of_the_right_type_well_before_expiry(final_site):
    far = SITE_DATE + datetime.timedelta(days=90)
    for permit in final_site.permits:
        for worker in permit["workers"]:
            row = final_site.tables["hr.qualifications"][worker]
            assert datetime.date.fromisoformat(row["medical_valid_until"]) > SITE_DATE
            good = [
                c
                for c in row["certs"]
                if c["type"] in CERT_FOR_WORK[permit["type"]]
                and c["status"] == "valid"
                and datetime.date.fromisoformat(c["expires"]) > far
                and datetime.date.fromisoformat(c["review_due"]) > far
            ]
            assert good, (permit["permit"], worker)


def test_guardians_stay_located_in_their_zone_or_its_entrance():
    seen = set()
    for site, envelope in active_records():
        if envelope.topic != "rtls.position":
            continue
        for tag, position, q in fixes(envelope):
            worker = site.worker_of_tag(tag)
            for permit in site.permits:
                if permit["guardian"] == worker:
                    zone = site.tables["gis.zones"][permit["zone"]]
                    area = zone["entrance"]["polygon"] if permit["type"] == "confined_space" else zone["polygon"]
                    assert q >= 0.5 and inside(position[:2], area), (worker, envelope.ts)
                    seen.add(worker)
    assert seen == {"W0101", "W0102", "W0103"}


def test_nobody_is_in_a_permit_zone_without_being_on_its_permit():
    for site, envelope in active_records():
        if envelope.topic != "rtls.position":
            continue
        for tag, position, _ in fixes(envelope):
            worker = site.worker_of_tag(tag)
            for zone in site.tables["gis.zones"].values():
                permits = [p for p in site.permits if p["zone"] == zone["zone"] and p["state"] == "active"]
                if permits and in_zone(position, zone):
                    crew = {w for p in permits for w in p["workers"] + [p["guardian"]]}
                    assert worker in crew, (worker, zone["zone"], envelope.ts)


def test_permit_workers_stay_inside_their_permit_zone():
    for site, envelope in active_records():
        if envelope.topic != "rtls.position":
            continue
        for tag, position, _ in fixes(envelope):
            worker = site.worker_of_tag(tag)
            for permit in site.permits:
                if worker in permit["workers"]:
                    assert in_zone(position, site.tables["gis.zones"][permit["zone"]]), (worker, envelope.ts)


def test_isolations_and_ventilation_are_reported_true_at_least_every_5_s(final_site):
    isolated = {f"{item}.isolated" for p in final_site.permits for item in p["isolations"]}
    required = isolated | {f"{item}.running" for p in final_site.permits for item in p["ventilation"]}
    first_seen: dict[str, int] = {}
    last_seen: dict[str, int] = {}
    for _, envelope in replay():
        if envelope.topic != "plc.state":
            continue
        for tag, value in msgspec.json.decode(envelope.payload)["tags"].items():
            if tag in required:
                assert value is True, (tag, envelope.ts)
                if tag in last_seen and envelope.ts >= ACTIVE_FROM_MS:
                    assert envelope.ts - last_seen[tag] <= 5000, tag
                first_seen.setdefault(tag, envelope.ts)
                last_seen[tag] = envelope.ts
    assert set(first_seen) == required and max(first_seen.values()) < ACTIVE_FROM_MS


def test_gas_readings_are_within_limits_with_no_alarm_or_bad_status():
    confined = set()
    for site, envelope in replay():
        if envelope.topic == "ptw.permits":
            confined = {d for p in site.permits if p["type"] == "confined_space" for d in p["detectors"]}
        if envelope.topic != "gas.readings":
            continue
        reading = msgspec.json.decode(envelope.payload)
        r = reading["r"]
        values = dict(zip(CHANNELS, r)) if isinstance(r, list) else r
        for channel, (low, high) in GAS_LIMITS.items():
            if channel == "o2" and reading["dev"] in confined:
                low, high = CONFINED_O2
            assert low <= values[channel] < high or (channel == "o2" and values[channel] == high), reading
        if isinstance(r, list):
            assert reading["alm"] == 0
        else:
            assert reading["st"] == "ok" and 0 <= reading["ts"] - reading["bump"] <= DAY_MS


def test_every_detector_on_a_permit_reports_every_second(final_site):
    detectors = {d for p in final_site.permits for d in p["detectors"]}
    times = defaultdict(list)
    for _, envelope in replay():
        if envelope.topic == "gas.readings":
            times[envelope.key].append(envelope.ts)
    for detector in detectors:
        gaps = [b - a for a, b in zip(times[detector], times[detector][1:])]
        assert times[detector][0] - START_MS < 1000 and max(gaps) <= 1020, detector


def test_harnesses_at_height_are_always_tied_off(final_site):
    listed = {h for p in final_site.permits for h in p["harnesses"]}
    reports = 0
    for _, envelope in replay():
        if envelope.topic == "harness.status" and envelope.key in listed:
            status = msgspec.json.decode(envelope.payload)
            assert status["h"] >= 2.0
            assert status.get("hook") == "clipped" or 1 in status.get("hooks", [])
            reports += 1
    assert reports >= 2 * 419


def test_only_gas_07_runs_unapproved_firmware_and_only_until_the_cmdb_approves_it():
    unapproved = []
    for site, envelope in replay():
        if envelope.topic in ("gas.readings", "harness.status"):
            reported = msgspec.json.decode(envelope.payload)
            approved = site.tables["cmdb.devices"].get(envelope.key, {}).get("firmware")
            if approved is not None and reported["fw"] != approved:
                unapproved.append((envelope.key, envelope.ts))
    assert {device for device, _ in unapproved} == {"GAS-07"}
    times = [ts for _, ts in unapproved]
    assert START_MS + 120_000 <= min(times) and max(times) < START_MS + 200_000
    assert len(times) == 80  # one reading a second from 120 s to 200 s
