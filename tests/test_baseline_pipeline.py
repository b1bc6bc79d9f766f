"""The gate's references are fair: the reference pipeline decides like the core on the healthy site and validates what it
reads; the machine limit decodes every line of the recording, strictly (2 copies, 1 minute)."""

from __future__ import annotations

import io
import json

import msgspec
import pytest

from bench.baseline_pipeline import run_baseline
from bench.decoding_suite import measure_references
from bench.large_site import INCIDENT
from bench.machine_limit import decode_lines
from bench.workloads import recording_lines
from dataflows.recording import read_recording
from interlock.site import COMMANDS_TOPIC, Site

COPIES, MINUTES = 2, 1.0
PERMITS_PER_COPY = 3
DETECTOR, PERMIT = "GAS-07-c00", "HW-201-c00"


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return recording_lines(COPIES, MINUTES)


def core_commands(lines: list[bytes]) -> list[dict]:
    """The commands of the interlock core for the same lines."""
    outputs = Site().process_batch(read_recording(io.BytesIO(b"\n".join(lines))))
    return [msgspec.json.decode(o.value) for o in outputs if o.topic == COMMANDS_TOPIC]


def decision(command: dict) -> tuple:
    """What a command decided and on which record, without ids and wording."""
    return command["kind"], command["permit"], command["trigger"]["topic"], command["trigger"]["offset"], command.get("latched")


def with_gas_payload(lines: list[bytes], after_ts: int, reshape) -> tuple[list[bytes], int]:
    """The lines with the first reading of DETECTOR after `after_ts` reshaped; returns them and that record's offset."""
    changed = list(lines)
    for index, line in enumerate(lines):
        envelope = json.loads(line)
        if envelope["topic"] == "gas.readings" and envelope["key"] == DETECTOR and envelope["ts"] > after_ts:
            envelope["payload"] = json.dumps(reshape(json.loads(envelope["payload"])), separators=(",", ":"))
            changed[index] = json.dumps(envelope).encode()
            return changed, envelope["offset"]
    raise AssertionError(f"no reading of {DETECTOR} after {after_ts}")


def as_firmware_3(reading: dict) -> dict:
    """The gd4/3 shape of a gd4/2 reading, as after an unannounced field upgrade."""
    o2, lel, h2s, co = reading["r"]
    return {"dev": reading["dev"], "fw": reading["fw"], "ts": reading["ts"], "seq": reading["seq"],
            "r": {"o2": o2, "lel": lel, "h2s": h2s, "co": co}, "st": "ok", "bump": reading["ts"] - 3_600_000}


def three_channels(reading: dict) -> dict:
    return {**reading, "r": reading["r"][:3]}


def added_field(reading: dict) -> dict:
    return {**reading, "bat": 80}


def channel_as_text(reading: dict) -> dict:
    return {**reading, "r": [str(reading["r"][0]), *reading["r"][1:]]}


def test_the_reference_pipeline_enables_every_permit_once_on_the_records_the_core_does(lines):
    baseline = run_baseline(lines)
    core = core_commands(lines)

    assert [c["kind"] for c in baseline] == ["ENABLE"] * COPIES * PERMITS_PER_COPY
    assert len({c["permit"] for c in baseline}) == COPIES * PERMITS_PER_COPY
    assert sorted(map(decision, baseline)) == sorted(map(decision, core))


@pytest.mark.parametrize("reshape", [as_firmware_3, three_channels, added_field, channel_as_text])
def test_a_gas_payload_of_the_wrong_shape_stops_the_permit_it_feeds(lines, reshape):
    enabled_at = max(c["ts"] for c in run_baseline(lines) if c["permit"] == PERMIT)
    changed, offset = with_gas_payload(lines, enabled_at + 5_000, reshape)

    stops = [c for c in run_baseline(changed) if c["kind"] == "HARD_STOP"]

    assert [(c["permit"], c["trigger"]["offset"], c["latched"]) for c in stops] == [(PERMIT, offset, True)]
    assert stops[0]["reasons"][0]["code"] == "PAYLOAD_SCHEMA_MISMATCH"
    core_stops = [c for c in core_commands(changed) if c["kind"] == "HARD_STOP"]
    assert [decision(c) for c in core_stops] == [decision(c) for c in stops]


def test_the_reference_pipeline_decides_the_firmware_change_incident_as_the_core_does():
    lines = INCIDENT.with_suffix(".jsonl").read_bytes().splitlines()

    baseline = run_baseline(lines)

    assert [c["kind"] for c in baseline] == ["ENABLE"] * 3 + ["HARD_STOP", "ALERT", "ENABLE"]
    assert list(map(decision, baseline)) == list(map(decision, core_commands(lines)))


def test_the_machine_limit_decodes_every_line_of_the_recording(lines):
    assert decode_lines(lines) == len(lines)


def test_the_machine_limit_decodes_strictly(lines):
    changed, _ = with_gas_payload(lines, 0, as_firmware_3)
    with pytest.raises(msgspec.ValidationError):
        decode_lines(changed)


def test_the_gate_gets_both_references_as_metrics(lines):
    metrics = measure_references(lines, rounds=1)

    assert {m.name for m in metrics} == {"limit_records_per_s", "baseline_records_per_s", "baseline_grid_records_per_s",
                                         "decision_from_lines_records_per_s"}
    assert all((m.unit, m.better) == ("records/s", "higher") for m in metrics)
    assert all(m.value > 0 for m in metrics)
