"""The incident library: every incident's committed recording is what its scenario generates, and its replay through
the real Bytewax dataflow shows exactly the outcome stated beside it (simulators/incidents/<name>.outcome.toml).

Each incident is replayed once (`dataflows.interlock_flow.build_flow` with `dataflows.recording.RecordingSource` and a
collecting sink) and shared by the tests that look at it. A few incidents also have a check of their own where the
timing is exact (timers) or where the recording itself must carry what the incident is about.
"""

from __future__ import annotations

import datetime
import functools
from pathlib import Path

import msgspec
import pytest
from bytewax.testing import TestingSink, run_main

from dataflows.interlock_flow import build_flow
from dataflows.recording import RecordingSource, read_recording
from interlock.config import DEFAULT_CONFIG
from interlock.evidence import verify_lines
from interlock.geometry import area_from_metres
from interlock.site import COMMANDS_TOPIC, EVIDENCE_TOPIC, FAULTS_TOPIC
from simulators.incidents.__main__ import INCIDENTS, OUTCOME_SUFFIX, incident_scenarios
from simulators.incidents.outcome import (
    Outcome,
    command_problems,
    fault_problems,
    forbidden_problems,
    load_outcome,
    outcome_problems,
    unlisted_commands,
    unlisted_faults,
)
from simulators.recording import encode_recording
from simulators.scenario import (
    INPUT_TOPICS,
    DelayRecords,
    DuplicateRecords,
    Scenario,
    ScenarioError,
    ShiftClock,
    epoch_ms,
    generate,
    load_scenario,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "incidents.md"
README = ROOT / "simulators" / "README.md"
THE_TWELVE = [
    "firmware_change",
    "harness_firmware_change",
    "ventilation_failure",
    "slow_leak_hot_work",
    "guardian_walks_away",
    "unauthorised_entrant",
    "harness_unclipped",
    "certificate_expires_at_midnight",
    "detector_silent",
    "gateway_clock_jump",
    "duplicate_reordered_delivery",
    "isolation_lost",
]
INCIDENT_NAMES = sorted(p.stem for p in INCIDENTS.glob("*.toml") if not p.name.endswith(OUTCOME_SUFFIX))
LONGEST_S = 420.0
"""No incident is longer than the original firmware change (7 minutes): the library stays fast."""


class Replay(msgspec.Struct):
    """One incident replayed: its scenario, start (ms), input records, and what the interlock sent."""

    scenario: Scenario
    start_ms: int
    records: list
    commands: list[dict]
    faults: list[dict]
    evidence: list[bytes]


@functools.cache
def replay(name: str) -> Replay:
    """Replay the committed recording through the dataflow, once per test session."""
    scenario = load_scenario(INCIDENTS / f"{name}.toml")
    with open(INCIDENTS / f"{name}.jsonl", "rb") as stream:
        records = read_recording(stream)
    captured: list = []
    run_main(build_flow(RecordingSource(records), TestingSink(captured), DEFAULT_CONFIG))
    outputs = [output for _, batch in captured for output in batch]
    decode = msgspec.json.decode
    return Replay(
        scenario, epoch_ms(scenario.start), records,
        [decode(o.value) for o in outputs if o.topic == COMMANDS_TOPIC],
        [decode(o.value) for o in outputs if o.topic == FAULTS_TOPIC],
        [o.value for o in outputs if o.topic == EVIDENCE_TOPIC],
    )


@functools.cache
def outcome(name: str) -> Outcome:
    return load_outcome(INCIDENTS / f"{name}{OUTCOME_SUFFIX}")


@functools.cache
def envelopes(name: str) -> list[dict]:
    """The committed recording's envelopes, in file order, with their payloads decoded."""
    lines = (INCIDENTS / f"{name}.jsonl").read_bytes().splitlines()
    result = []
    for line in lines:
        envelope = msgspec.json.decode(line)
        envelope["value"] = None if envelope["payload"] is None else msgspec.json.decode(envelope["payload"])
        result.append(envelope)
    return result


def problems_text(problems: list[str]) -> str:
    return "\n".join(problems)


incidents = pytest.mark.parametrize("name", INCIDENT_NAMES)


# The library as a whole


def test_the_library_holds_the_twelve_incidents():
    assert set(THE_TWELVE) <= set(INCIDENT_NAMES)
    assert len(INCIDENT_NAMES) >= 12


def test_the_regenerate_command_plays_every_incident_scenario_and_no_outcome_file():
    played = incident_scenarios([])
    assert [p.stem for p in played] == INCIDENT_NAMES
    assert not [p for p in played if p.name.endswith(OUTCOME_SUFFIX)]


@incidents
def test_every_incident_has_its_recording_and_its_outcome(name):
    assert (INCIDENTS / f"{name}.jsonl").is_file()
    assert (INCIDENTS / f"{name}{OUTCOME_SUFFIX}").is_file()


@incidents
def test_the_committed_recording_is_what_the_scenario_generates(name):
    generated = encode_recording(generate(load_scenario(INCIDENTS / f"{name}.toml")))
    assert generated == (INCIDENTS / f"{name}.jsonl").read_bytes()


@incidents
def test_the_incident_lasts_a_few_minutes_of_site_time(name):
    assert load_scenario(INCIDENTS / f"{name}.toml").duration <= LONGEST_S


# What each replay shows


@incidents
def test_the_replay_sends_the_expected_commands(name):
    run = replay(name)
    found = command_problems(outcome(name), run.commands, run.start_ms)
    assert not found, problems_text(found)


@incidents
def test_the_replay_raises_the_expected_faults(name):
    run = replay(name)
    found = fault_problems(outcome(name), run.faults, run.start_ms)
    assert not found, problems_text(found)


@incidents
def test_nothing_the_outcome_forbids_happens(name):
    run = replay(name)
    found = forbidden_problems(outcome(name), run.commands, run.faults, run.start_ms)
    assert not found, problems_text(found)


@incidents
def test_no_command_is_sent_beyond_the_listed_ones(name):
    run = replay(name)
    found = unlisted_commands(outcome(name), run.commands, run.start_ms)
    assert not found, problems_text(found)


@incidents
def test_no_fault_is_raised_beyond_the_listed_ones(name):
    run = replay(name)
    found = unlisted_faults(outcome(name), run.faults, run.start_ms)
    assert not found, problems_text(found)


@incidents
def test_the_evidence_chain_of_the_replay_verifies(name):
    run = replay(name)
    assert len(run.evidence) == len(run.commands) + len(run.faults)
    assert verify_lines(run.evidence) is None


# The outcomes themselves


@incidents
def test_the_outcome_requires_some_command_and_forbids_something(name):
    stated = outcome(name)
    assert stated.summary.strip()
    assert [e for e in stated.commands if e.occurrences != 0 and e.at_least > 0]
    assert stated.never_command or stated.never_fault


@incidents
def test_the_outcome_names_only_permits_devices_topics_and_times_of_its_scenario(name):
    scenario = load_scenario(INCIDENTS / f"{name}.toml")
    stated = outcome(name)
    permits = {p.permit for p in scenario.permits}
    subjects = permits | {d.device for d in scenario.devices} | set(INPUT_TOPICS)
    people = {w.worker for w in scenario.workers}
    equipment = {item for p in scenario.permits for item in p.equipment}
    patterns = [*stated.commands, *stated.faults, *stated.never_command, *stated.never_fault]
    for pattern in patterns:
        assert getattr(pattern, "permit", None) in (None, *permits), pattern
        assert getattr(pattern, "subject", None) in (None, *subjects), pattern
        assert getattr(pattern, "device", None) in (None, *subjects), pattern
        assert set(getattr(pattern, "permits", None) or ()) <= permits, pattern
        assert set(getattr(pattern, "targets", None) or ()) <= people | equipment, pattern
        assert pattern.trigger in (None, "timer", *INPUT_TOPICS), pattern
        for bound in (pattern.after, pattern.before):
            assert bound is None or 0 <= bound <= scenario.duration, pattern
        assert pattern.after is None or pattern.before is None or pattern.after <= pattern.before, pattern


def test_the_check_finds_a_replay_that_differs_from_its_outcome():
    run = replay("isolation_lost")
    without_the_stop = [c for c in run.commands if c["kind"] != "HARD_STOP"]
    missing = outcome_problems(outcome("isolation_lost"), without_the_stop, run.faults, run.start_ms)
    assert any("HARD_STOP" in problem and "found 0" in problem for problem in missing)
    extra = dict(run.commands[0], ts=run.start_ms + 50_000, kind="HARD_STOP")
    unexpected = outcome_problems(outcome("isolation_lost"), run.commands + [extra], run.faults, run.start_ms)
    assert any(problem.startswith("forbidden command") for problem in unexpected)
    assert any(problem.startswith("unexpected command") for problem in unexpected)


@incidents
def test_every_incident_is_documented_with_its_replay_command(name):
    text = DOCS.read_text(encoding="utf-8")
    assert f"interlock replay simulators/incidents/{name}.jsonl" in text


# Exact timings and what the recordings carry, incident by incident


def test_the_untrusted_harness_counts_as_untied_from_its_last_trusted_report():
    run = replay("harness_firmware_change")
    reports = [e for e in envelopes("harness_firmware_change")
               if e["topic"] == "harness.status" and e["key"] == "HB-31"]
    last_trusted = max(e["ts"] for e in reports if "hook" in e["value"])
    first_untrusted = min(e["ts"] for e in reports if "hooks" in e["value"])
    assert last_trusted < first_untrusted
    alert = next(c for c in run.commands if c["kind"] == "ALERT")
    stop = next(c for c in run.commands if c["kind"] == "HARD_STOP")
    assert alert["ts"] == last_trusted + 10_000 and stop["ts"] == last_trusted + 30_000


def test_the_oxygen_falls_below_the_limit_only_after_the_fan_trips():
    readings = [e for e in envelopes("ventilation_failure") if e["topic"] == "gas.readings"]
    start = replay("ventilation_failure").start_ms
    low = [e["ts"] for e in readings if e["value"]["r"]["o2"] < 19.5]
    assert low and min(low) - start > 90_000 + 60_000


def test_the_leak_shows_on_the_detector_minutes_before_the_stop():
    run = replay("slow_leak_hot_work")
    readings = [e for e in envelopes("slow_leak_hot_work") if e["topic"] == "gas.readings"]
    first_trace = min(e["ts"] for e in readings if e["value"]["r"]["lel"] >= 1.0)
    stop = next(c for c in run.commands if c["kind"] == "HARD_STOP")
    assert stop["ts"] - first_trace >= 150_000


def test_the_guardian_stop_comes_30_001_ms_after_his_last_fix_at_the_entrance():
    run = replay("guardian_walks_away")
    entrance = area_from_metres([[70, 8], [74, 8], [74, 12], [70, 12]])
    stop = next(c for c in run.commands if c["kind"] == "HARD_STOP")
    fixes = [e for e in envelopes("guardian_walks_away") if e["topic"] == "rtls.position" and e["key"] == "T-00102"]
    at_entrance = [e["ts"] for e in fixes
                   if e["ts"] < stop["ts"] and entrance.contains(*(v * 1000 for v in e["value"]["pos"]))]
    assert stop["ts"] == max(at_entrance) + 30_001


def test_the_entrant_is_stopped_by_the_message_with_his_first_fix_inside_the_zone():
    run = replay("unauthorised_entrant")
    zone = area_from_metres([[0, 0], [30, 0], [30, 10], [0, 10]], [0, 15])
    inside = [e for e in envelopes("unauthorised_entrant") if e["topic"] == "rtls.position" and e["key"] == "QGW-01"
              and any(f["tagId"] == "0x6a41" and f["success"]
                      and zone.contains(*(f["data"]["coordinates"][a] for a in "xyz")) for f in e["value"])]
    stop = next(c for c in run.commands if c["kind"] == "HARD_STOP")
    assert stop["trigger"] == {"topic": "rtls.position", "partition": 0, "offset": inside[0]["offset"]}


def test_the_untied_alert_and_stop_fall_10_and_30_s_after_the_unclipped_report():
    run = replay("harness_unclipped")
    unclipped = next(e["ts"] for e in envelopes("harness_unclipped")
                     if e["topic"] == "harness.status" and e["value"]["hooks"] == [0, 0])
    alert = next(c for c in run.commands if c["kind"] == "ALERT")
    stop = next(c for c in run.commands if c["kind"] == "HARD_STOP")
    assert (alert["ts"] - unclipped, stop["ts"] - unclipped) == (10_000, 30_000)
    assert alert["trigger"] is None and stop["trigger"] is None


def test_the_certificate_stop_comes_at_site_midnight_from_the_timer():
    run = replay("certificate_expires_at_midnight")
    midnight = datetime.datetime(2026, 12, 15, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
    stop = next(c for c in run.commands if c["kind"] == "HARD_STOP")
    assert stop["ts"] == int(midnight.timestamp() * 1000) and stop["trigger"] is None
    assert not [r for r in run.records if r.ts == stop["ts"]]


def test_the_silent_detector_stop_comes_10_001_ms_after_its_last_reading():
    run = replay("detector_silent")
    stop = next(c for c in run.commands if c["kind"] == "HARD_STOP")
    readings = [e["ts"] for e in envelopes("detector_silent") if e["topic"] == "gas.readings" and e["ts"] < stop["ts"]]
    assert stop["ts"] == max(readings) + 10_001 and stop["trigger"] is None


def test_the_clock_jump_moves_only_the_gateways_detectors_by_8_h():
    start = replay("gateway_clock_jump").start_ms
    for e in envelopes("gateway_clock_jump"):
        if e["topic"] not in ("gas.readings", "plc.state", "harness.status") or not isinstance(e["value"], dict):
            continue
        skew = e["value"]["ts"] - e["ts"]
        jumped = e["key"] in ("GAS-07", "GAS-41") and 90_000 <= e["ts"] - start < 150_000
        assert (28_800_000 - 40 <= skew <= 28_800_000) if jumped else (-40 <= skew <= 0), e


def test_the_late_plc_state_says_not_isolated_and_arrives_after_the_enable():
    run = replay("duplicate_reordered_delivery")
    enable = next(c for c in run.commands if c["kind"] == "ENABLE")
    states = [e for e in envelopes("duplicate_reordered_delivery") if e["topic"] == "plc.state"]
    late = [(i, e) for i, e in enumerate(states) if e["ts"] > enable["ts"] and not e["value"]["tags"]["V-101.isolated"]]
    assert len(late) == 1
    index, stale = late[0]
    held = states[index - 1]
    assert held["value"]["seq"] > stale["value"]["seq"] and held["value"]["tags"]["V-101.isolated"]


def test_the_duplicated_readings_are_byte_identical_copies_arriving_250_ms_after_the_originals():
    readings = [e for e in envelopes("duplicate_reordered_delivery") if e["topic"] == "gas.readings"]
    arrivals: dict[str, list[int]] = {}
    for e in readings:
        arrivals.setdefault(e["payload"], []).append(e["ts"])
    twice = [times for times in arrivals.values() if len(times) > 1]
    assert len(twice) == 30 and all(len(times) == 2 and times[1] - times[0] == 250 for times in twice)


# The generator features the library needs


@pytest.mark.parametrize("event, message", [
    (ShiftClock(at=10.0, devices=["GAS-99"], offset=60.0), "GAS-99 keeps no clock of its own"),
    (ShiftClock(at=10.0, devices=["0x6a41"], offset=60.0), "0x6a41 keeps no clock of its own"),
    (DuplicateRecords(at=10.0, key="0x6a41"), "no records are sent with key '0x6a41'"),
    (DelayRecords(at=10.0, key="GAS-07", topic="gas.reading", by=1.0), "unknown topic 'gas.reading'"),
    (DelayRecords(at=10.0, key="GAS-07", until=5.0, by=1.0), "until 5.0 s is before at 10.0 s"),
])
def test_a_broken_clock_or_delivery_event_is_refused_naming_the_value(event, message):
    scenario = load_scenario(INCIDENTS / "unauthorised_entrant.toml")
    broken = msgspec.structs.replace(scenario, timeline=[*scenario.timeline, event])
    with pytest.raises(ScenarioError, match=message):
        generate(broken)


def test_a_qubit_gateway_clock_shifts_every_tag_it_reports():
    scenario = load_scenario(INCIDENTS / "unauthorised_entrant.toml")
    shifted = msgspec.structs.replace(
        scenario, timeline=[*scenario.timeline, ShiftClock(at=100.0, devices=["QGW-01"], offset=-30.0, until=110.0)])
    start = epoch_ms(scenario.start)
    for record in generate(shifted):
        if record.key == "QGW-01":
            lag = record.ts - round(msgspec.json.decode(record.payload)[0]["timestamp"] * 1000)
            assert (30_000 <= lag <= 30_040) if 100_000 <= record.ts - start < 110_000 else (0 <= lag <= 40)


def test_the_clock_and_delivery_events_are_documented_in_the_simulators_readme():
    text = README.read_text(encoding="utf-8")
    for kind in (ShiftClock, DuplicateRecords, DelayRecords):
        assert f"| `{kind.__struct_config__.tag}` |" in text, kind
        for field_name in kind.__struct_fields__:
            assert f"`{field_name}`" in text, field_name
    assert "## Incident outcomes" in text


def test_the_delivery_and_outcome_examples_in_the_simulators_readme_load():
    text = README.read_text(encoding="utf-8")
    delivery = text.split("**Clocks and delivery.**", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    scenario = msgspec.toml.decode(("seed = 1\nstart = 0\nduration = 20.0\n" + delivery).encode(), type=Scenario)
    assert isinstance(scenario.timeline[0], DelayRecords)
    example = text.split("## Incident outcomes", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    stated = msgspec.toml.decode(example.encode(), type=Outcome)
    assert stated.commands[0].occurrences == 1 and stated.never_fault[0].grade == "CRITICAL"
