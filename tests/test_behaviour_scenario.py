"""The example scenario with every simulated behaviour: deterministic, decodable by the interlock's own decoders, and
replayed to the decision its story implies; plus the checks that refuse a broken behaviour scenario, and the command."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
import pytest

from dataflows.cli import main as interlock
from interlock.config import DEFAULT_CONFIG
from schemas.catalog import PLC_SCHEMA, schema_for_firmware, schema_for_vendor
from schemas.decoding import decode_payload
from simulators.recording import Envelope, encode_recording, read_recording
from simulators.scenario import (
    FailSignal,
    Leak,
    Purge,
    Release,
    Scenario,
    ScenarioError,
    SetGas,
    WalkPath,
    Waypoint,
    generate,
    load_scenario,
)
from simulators.scenario_command import add_simulate_scenario_command

EXAMPLE = Path(__file__).resolve().parents[1] / "simulators" / "examples" / "leak_near_hot_work.toml"
START_MS = 1795222800000  # 2026-11-21T09:00:00+08:00


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(EXAMPLE)


@pytest.fixture(scope="module")
def recording_path(tmp_path_factory, scenario) -> Path:
    path = tmp_path_factory.mktemp("example") / "leak_near_hot_work.jsonl"
    path.write_bytes(encode_recording(generate(scenario)))
    return path


@pytest.fixture(scope="module")
def recording(recording_path) -> list[Envelope]:
    return read_recording(recording_path)


@pytest.fixture(scope="module")
def replayed(recording_path, tmp_path_factory) -> Path:
    """The replay on the limits alone (risk model off): what the thresholds decide."""
    out = tmp_path_factory.mktemp("replay")
    assert interlock(["replay", str(recording_path), "--out", str(out), "--quiet", "--risk-model", "off"]) == 0
    return out


@pytest.fixture(scope="module")
def replayed_with_risk(recording_path, tmp_path_factory) -> Path:
    """The replay with the shipped risk model (the default)."""
    out = tmp_path_factory.mktemp("replay_risk")
    assert interlock(["replay", str(recording_path), "--out", str(out), "--quiet"]) == 0
    return out


def lines(path: Path) -> list[dict]:
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


def schema_of(envelope: Envelope, scenario: Scenario) -> str:
    """The schema the interlock's catalog gives the payload: by the firmware it reports, the tag's vendor, or PLC."""
    rows = {row.device: row for row in scenario.devices}
    payload = msgspec.json.decode(envelope.payload)
    match envelope.topic:
        case "gas.readings" | "harness.status":
            return schema_for_firmware(rows[envelope.key].model, payload["fw"])
        case "rtls.position":
            return schema_for_vendor("qubit" if isinstance(payload, list) else rows[envelope.key].vendor)
        case "plc.state":
            return PLC_SCHEMA
    raise AssertionError(envelope.topic)


TELEMETRY = ("gas.readings", "harness.status", "rtls.position", "plc.state")


def test_every_behaviour_generates_the_same_bytes_twice(scenario):
    first = encode_recording(generate(scenario))
    assert first == encode_recording(generate(load_scenario(EXAMPLE)))
    assert len(first.splitlines()) > 8000


def test_every_record_decodes_with_the_interlocks_own_decoders(recording, scenario):
    telemetry = [e for e in recording if e.topic in TELEMETRY]
    assert {e.topic for e in telemetry} == set(TELEMETRY)
    for envelope in telemetry:
        reading, problem = decode_payload(schema_of(envelope, scenario), envelope.payload)
        assert problem is None, (envelope, problem)


def test_sensor_faults_appear_only_where_the_scenario_asks(recording, scenario):
    for envelope in recording:
        if envelope.topic != "gas.readings":
            continue
        reading, _ = decode_payload(schema_of(envelope, scenario), envelope.payload)
        faulted = [c for c in ("o2", "lel", "h2s", "co") if getattr(reading, c) is None]
        asked = envelope.key == "GAS-41" and envelope.ts >= START_MS + 300_000
        assert faulted == (["h2s"] if asked else []), envelope
        assert reading.status == "ok"


def test_fix_errors_appear_only_on_the_tags_that_ask_for_them(recording, scenario):
    low_quality, unlocated = set(), set()
    for envelope in (e for e in recording if e.topic == "rtls.position"):
        fixes, _ = decode_payload(schema_of(envelope, scenario), envelope.payload)
        low_quality |= {f.tag for f in fixes if f.located and f.quality < 0.8}
        unlocated |= {f.tag for f in fixes if not f.located}
    assert low_quality == {"T-00041"}
    assert unlocated == {"0x6a42"}


def test_the_flat_harness_falls_silent_and_the_power_cycle_is_seen(recording):
    harness = [e.ts for e in recording if e.topic == "harness.status" and e.key == "HB-32"]
    assert START_MS + 530_000 < harness[-1] < START_MS + 541_000
    gas = [(e.ts, msgspec.json.decode(e.payload)["seq"]) for e in recording
           if e.topic == "gas.readings" and e.key == "GAS-41"]
    assert not [ts for ts, _ in gas if START_MS + 450_100 < ts < START_MS + 470_000]
    assert next(seq for ts, seq in gas if ts >= START_MS + 470_000) == 0


def test_replay_stops_the_welder_once_lel_reaches_the_limit(replayed, recording):
    commands = [c for c in lines(replayed / "commands.jsonl") if c["permit"] == "HW-301"]
    assert commands[0]["kind"] == "ENABLE" and commands[0]["targets"] == ["WELD-5"]
    stop = commands[1]
    assert stop["kind"] == "HARD_STOP" and stop["targets"] == ["WELD-5"]
    assert [r["code"] for r in stop["reasons"]] == ["GAS_LIMIT_EXCEEDED"]
    limit = DEFAULT_CONFIG.gas_limits.lel_max
    readings = [e for e in recording if e.topic == "gas.readings" and e.key == "GAS-21"]
    first_over = next(e for e in readings if msgspec.json.decode(e.payload)["r"]["lel"] >= limit)
    assert stop["trigger"] == {"topic": "gas.readings", "partition": 0, "offset": first_over.offset}
    assert 400_000 < first_over.ts - START_MS < 520_000  # the leak from 150 s, the fan tripped at 240 s


def test_the_shipped_risk_model_warns_the_guardian_of_the_leak_before_the_lel_limit(replayed_with_risk, replayed):
    commands = [c for c in lines(replayed_with_risk / "commands.jsonl") if c["permit"] == "HW-301"]
    warnings = [c for c in commands if c["kind"] == "ALERT" and c.get("risk", {}).get("grade") in ("YELLOW", "RED")]
    limit_stop = next(c for c in lines(replayed / "commands.jsonl") if c["permit"] == "HW-301" and c["kind"] == "HARD_STOP")
    assert warnings and warnings[0]["risk"]["ack_required"]
    assert warnings[0]["ts"] < limit_stop["ts"]
    assert [r["code"] for r in limit_stop["reasons"]] == ["GAS_LIMIT_EXCEEDED"]


def test_replay_enables_the_ventilated_tank_then_stops_it_on_h2s_from_the_sludge(replayed, recording):
    commands = [c for c in lines(replayed / "commands.jsonl") if c["permit"] == "CS-302"]
    assert [c["kind"] for c in commands[:2]] == ["ENABLE", "HARD_STOP"]
    assert commands[0]["ts"] == START_MS + 300_000  # active once the purged tank is ventilated
    stop = commands[1]
    assert [r["code"] for r in stop["reasons"]] == ["GAS_LIMIT_EXCEEDED"] and "H2S" in stop["reasons"][0]["detail"]
    trigger = next(e for e in recording if e.topic == "gas.readings" and e.offset == stop["trigger"]["offset"])
    assert trigger.key in ("GAS-11", "GAS-12") and trigger.ts > START_MS + 360_000


# Refusing a broken scenario


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (Leak(at=10.0, zone="ST-2", gas="methane", kg_h=1.0), r"zone ST-2 has no \[air.ST-2\] section"),
        (Leak(at=10.0, zone="PH-1", gas="metane", kg_h=1.0), "unknown gas 'metane'"),
        (Leak(at=10.0, zone="PH-1", gas="hexane", l_min=1.0), "hexane is a liquid"),
        (Leak(at=10.0, zone="PH-1", gas="methane"), "exactly one rate"),
        (Leak(at=10.0, zone="PH-1", gas="methane", kg_h=1.0, while_on="PUMP-9.running"), "no PLC reports"),
        (Leak(at=10.0, zone="PH-1", gas="methane", kg_h=1.0, until=5.0), "until 5.0 s is before"),
        (Purge(at=10.0, zone="TK-3", gas="methane", m3_h=100.0), "purge gas 'methane' is not inert"),
        (Release(at=10.0, zone="PH-1", gas="methane"), "exactly one of kg or m3"),
        (SetGas(at=10.0, device="GAS-21", lel=5.0), "GAS-21 reads the air of zone PH-1"),
        (FailSignal(at=10.0, plc="PLC-3", tag="FAN-9.running"), "reports no signal FAN-9.running"),
        (WalkPath(at=10.0, worker="W0012", waypoints=[Waypoint("nowhere")]), "no point named 'nowhere'"),
    ],
)
def test_a_broken_behaviour_event_is_refused_naming_the_value(scenario, event, message):
    broken = msgspec.structs.replace(scenario, timeline=[*scenario.timeline, event])
    with pytest.raises(ScenarioError, match=message):
        generate(broken)


def test_a_detector_in_a_zone_with_air_cannot_also_be_given_levels(scenario):
    gas = dict(scenario.gas)
    gas["GAS-21"] = msgspec.structs.replace(gas["GAS-21"], lel=3.0)
    with pytest.raises(ScenarioError, match=r"\[gas.GAS-21\] sets lel but the detector reads the air of zone PH-1"):
        generate(msgspec.structs.replace(scenario, gas=gas))


def test_a_fan_no_plc_runs_is_refused(scenario):
    air = dict(scenario.air)
    air["PH-1"] = msgspec.structs.replace(air["PH-1"], fan="FAN-9")
    with pytest.raises(ScenarioError, match=r"\[air.PH-1\] fan: no PLC reports 'FAN-9.running'"):
        generate(msgspec.structs.replace(scenario, air=air))


def test_an_unknown_key_in_a_behaviour_section_is_rejected(tmp_path):
    typo = tmp_path / "typo.toml"
    typo.write_text(EXAMPLE.read_text(encoding="utf-8").replace("ach_off = 0.5", "ach_of = 0.5"), encoding="utf-8")
    with pytest.raises(msgspec.ValidationError, match="ach_of"):
        load_scenario(typo)


# The command


def command(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="interlock")
    add_simulate_scenario_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_simulate_scenario_writes_the_recording(tmp_path, recording_path):
    out = tmp_path / "out.jsonl"
    args = command(["simulate-scenario", str(EXAMPLE), "--out", str(out)])
    assert args.run(args) == 0
    assert out.read_bytes() == recording_path.read_bytes()


def test_simulate_scenario_names_the_problem_of_a_broken_file(tmp_path, capsys):
    broken = tmp_path / "broken.toml"
    text = EXAMPLE.read_text(encoding="utf-8").replace('gas = "methane"', 'gas = "metane"')
    broken.write_text(text, encoding="utf-8")
    args = command(["simulate-scenario", str(broken), "--out", str(tmp_path / "out.jsonl")])
    assert args.run(args) == 2
    assert "unknown gas 'metane'" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


# The documentation


def test_every_behaviour_key_and_event_kind_is_documented_in_the_simulators_readme():
    from simulators import scenario as format_

    text = (EXAMPLE.parents[1] / "README.md").read_text(encoding="utf-8")
    sections = (format_.AirSim, format_.OutsideAir, format_.TagSim, format_.Waypoint, format_.ChannelSigma)
    keys = [f for s in sections for f in s.__struct_fields__]
    keys += [f for f in format_.GasSim.__struct_fields__ if f not in ("o2", "lel", "h2s", "co")]
    keys += list(format_.HarnessSim.__struct_fields__) + list(format_.PlcSim.__struct_fields__)
    for kind in (format_.Leak, format_.Purge, format_.Exhaust, format_.Release, format_.DisturbSludge,
                 format_.SetVentilation, format_.FailSignal, format_.PowerDetector, format_.BumpTest,
                 format_.WalkPath):
        assert f"| `{kind.__struct_config__.tag}` |" in text, kind
        keys += [f for f in kind.__struct_fields__ if f != "at"]
    missing = sorted({k for k in keys if f"`{k}`" not in text and f"{k} =" not in text})
    assert not missing


def test_the_behaviour_examples_in_the_simulators_readme_load():
    text = (EXAMPLE.parents[1] / "README.md").read_text(encoding="utf-8")
    behaviour = text.split("## Behaviour: physics and devices", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in behaviour.split("```toml")[1:]]
    assert len(blocks) >= 6
    for block in blocks:
        msgspec.toml.decode(("seed = 1\nstart = 0\nduration = 1.0\n" + block).encode(), type=Scenario)
