"""The firmware-change incident through the real dataflow: what a control-room engineer must see, byte-identical on every run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from dataflows.cli import main

ROOT = Path(__file__).resolve().parents[1]
INCIDENT = ROOT / "simulators" / "incidents" / "firmware_change.jsonl"
FIRST_V3_PAYLOAD = {"topic": "gas.readings", "partition": 0, "offset": 361}


def _lines(path: Path) -> list[dict]:
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("incident")
    assert main(["replay", str(INCIDENT), "--out", str(out), "--quiet"]) == 0
    return out


def hot_work_commands(out: Path) -> list[dict]:
    return [c for c in _lines(out / "commands.jsonl") if c["permit"] == "HW-201"]


def test_the_welder_is_enabled_before_the_upgrade(replayed):
    first = hot_work_commands(replayed)[0]
    assert first["kind"] == "ENABLE" and first["targets"] == ["WELD-5"]


def test_the_first_3_0_0_payload_raises_one_critical_fault_that_names_device_firmware_schema_and_path(replayed):
    raised = [f for f in _lines(replayed / "faults.jsonl") if f["source"] == FIRST_V3_PAYLOAD]
    assert len(raised) == 1
    fault = raised[0]
    assert fault["grade"] == "CRITICAL" and fault["code"] == "PAYLOAD_SCHEMA_MISMATCH" and fault["state"] == "raised"
    assert fault["device"] == "GAS-07"
    assert fault["firmware_reported"] == "3.0.0" and fault["firmware_approved"] == "2.3.1"
    assert fault["schema_expected"] == "gd4/2" and fault["schema_matches"] == ["gd4/3"]
    assert fault["path"] == "$.r" and fault["expected"] == "array" and fault["got"].startswith("object")
    assert fault["permits"] == ["HW-201"]


def test_the_welder_is_stopped_by_that_same_record_and_the_stop_rests_on_that_fault(replayed):
    fault = next(f for f in _lines(replayed / "faults.jsonl") if f["source"] == FIRST_V3_PAYLOAD)
    stop = hot_work_commands(replayed)[1]
    assert stop["kind"] == "HARD_STOP" and stop["targets"] == ["WELD-5"] and stop["latched"] is True
    assert stop["trigger"] == FIRST_V3_PAYLOAD
    assert [r["fault"] for r in stop["reasons"]] == [fault["id"]]


def test_the_mismatch_is_raised_once_and_counted_until_the_cmdb_approval(replayed):
    mismatch = [f for f in _lines(replayed / "faults.jsonl") if f["code"] == "PAYLOAD_SCHEMA_MISMATCH"]
    assert [f["state"] for f in mismatch] == ["raised", "cleared"]
    assert mismatch[1]["count"] > 50


def test_after_approval_and_re_test_only_the_approvers_reset_restarts_the_welder(replayed):
    commands = hot_work_commands(replayed)
    assert [c["kind"] for c in commands] == ["ENABLE", "HARD_STOP", "ALERT", "ENABLE"]
    alert, restart = commands[2], commands[3]
    assert alert["reasons"][0]["code"] == "TRIP_RESET_REQUIRED" and "gas test" in alert["reasons"][0]["detail"]
    assert restart["trigger"]["topic"] == "ptw.actions"
    assert [r["code"] for r in restart["reasons"]] == ["RESET_ACCEPTED", "ALL_PRECONDITIONS_MET"]


def test_the_other_permits_run_undisturbed(replayed):
    others = [c for c in _lines(replayed / "commands.jsonl") if c["permit"] != "HW-201"]
    assert sorted(c["permit"] for c in others if c["kind"] == "ENABLE") == ["CS-202", "HT-203"]
    assert [c for c in others if c["kind"] == "HARD_STOP"] == []
    # The risk model may notify a team leader (BLUE) or a guardian; nothing else reaches the other permits.
    assert all(c["kind"] == "ENABLE" or any(r["code"].startswith("RISK_") for r in c["reasons"]) for c in others)


def test_the_evidence_chain_of_the_replay_verifies(replayed, capsys):
    assert main(["verify-evidence", str(replayed / "evidence.jsonl")]) == 0


def test_an_edited_evidence_record_is_named_by_verify_evidence(replayed, tmp_path, capsys):
    lines = (replayed / "evidence.jsonl").read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"\"ts\":1", b"\"ts\":2", 1)
    assert lines[2] != (replayed / "evidence.jsonl").read_bytes().splitlines(keepends=True)[2]
    tampered = tmp_path / "evidence.jsonl"
    tampered.write_bytes(b"".join(lines))
    assert main(["verify-evidence", str(tampered)]) == 1
    assert "line 3" in capsys.readouterr().out


def test_replays_are_byte_identical_across_runs_and_hash_seeds(replayed, tmp_path):
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run(
        [sys.executable, "-m", "dataflows.cli", "replay", str(INCIDENT), "--out", str(tmp_path), "--quiet"],
        check=True, env=env, cwd=ROOT, capture_output=True,
    )
    for name in ("commands.jsonl", "faults.jsonl", "evidence.jsonl"):
        assert (tmp_path / name).read_bytes() == (replayed / name).read_bytes()


def test_replay_reads_the_recording_from_standard_input(replayed, tmp_path):
    with open(INCIDENT, "rb") as recording:
        subprocess.run(
            [sys.executable, "-m", "dataflows.cli", "replay", "-", "--out", str(tmp_path), "--quiet"],
            check=True, stdin=recording, cwd=ROOT, capture_output=True,
        )
    assert (tmp_path / "commands.jsonl").read_bytes() == (replayed / "commands.jsonl").read_bytes()


def test_the_timeline_shows_stop_approval_and_reset_in_order(tmp_path, capsys):
    assert main(["replay", str(INCIDENT), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    markers = ["ENABLE    HW-201", "CRITICAL  HW-201", "HARD_STOP HW-201", "CMDB approves firmware 3.0.0 for GAS-07",
               "TRIP_RESET_REQUIRED", "reset of HW-201 sent by W0201", "RESET_ACCEPTED"]
    positions = [printed.index(marker) for marker in markers]
    assert positions == sorted(positions)


def test_a_recording_that_cannot_be_read_exits_non_zero(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out")]) == 2
    assert "cannot read recording" in capsys.readouterr().err


def test_certify_passes_3_0_0_samples_as_3_0_0_and_fails_them_as_2_3_1(tmp_path, capsys):
    samples = tmp_path / "gd4-3.0.0.jsonl"
    samples.write_bytes(b"".join(
        line + b"\n" for line in INCIDENT.read_bytes().splitlines() if b'"gas.readings"' in line and b"3.0.0" in line
    ))
    assert main(["certify", str(samples), "--model", "GD-4", "--firmware", "3.0.0"]) == 0
    assert main(["certify", str(samples), "--model", "GD-4", "--firmware", "2.3.1"]) == 1
    assert "the payload matches gd4/3" in capsys.readouterr().out


def test_a_capture_that_lists_topic_after_topic_replays_like_the_time_ordered_one(replayed, tmp_path):
    lines = INCIDENT.read_bytes().splitlines()
    by_topic: dict[bytes, list[bytes]] = {}
    for line in lines:
        by_topic.setdefault(line.split(b'"topic":"', 1)[1].split(b'"', 1)[0], []).append(line)
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(line for topic in sorted(by_topic, reverse=True) for line in by_topic[topic]) + b"\n")
    out = tmp_path / "out"
    assert main(["replay", str(capture), "--out", str(out), "--quiet"]) == 0
    for name in ("commands.jsonl", "faults.jsonl", "evidence.jsonl"):
        assert (out / name).read_bytes() == (replayed / name).read_bytes()
