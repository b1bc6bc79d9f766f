"""Live: `interlock run` on the dev broker holds the incident's enables on simulated PLCs, trips on evidence, survives
PLC outages and its own death (kill -9), and runs as a two-process cluster."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from live_harness import (
    InterlockProcess,
    Publisher,
    SimulatedPlcs,
    commands_on_kafka,
    faults_on_kafka,
    incident_lines,
    split_at,
    wait_for,
)
from dataflows.kafka_io import dev_broker

SPEED = 8.0
"""Records go out 8x faster than recorded: the partitions of a topic are read independently, so a lag of 1 s between
two partitions is 8 s of site time between, say, a PLC's state and a detector's reading; much faster and a loaded
machine sees stale evidence the site never had."""
ENABLED_BY_S = 40
"""Recorded seconds by which the incident's permits are enabled (they go active at about 20 s)."""
AFTER_RESET_S = 260
"""Recorded seconds by which the approver has reset HW-201 and it is enabled again (reset at about 240 s)."""


@pytest.fixture
def plcs():
    simulated = SimulatedPlcs()
    yield simulated
    simulated.close()


@pytest.fixture
def broker():
    with dev_broker() as bootstrap:
        yield bootstrap


def started(broker: str, tmp_path, name: str = "run", extra: list[str] | None = None) -> InterlockProcess:
    process = InterlockProcess(broker, tmp_path, name, extra)
    process.wait_ready()
    time.sleep(2.0)  # the source's consumers reach the end of every partition
    return process


def per_permit(commands: list[dict]) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Each permit's commands in decision order: kind and reason codes. Risk notifications (an ALERT whose reasons are
    all RISK_ codes) follow the shipped model's scores and are left out; tests/test_zone_risk.py specifies them."""
    decisions: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for c in commands:
        if c["kind"] == "ALERT" and all(r["code"].startswith("RISK_") for r in c["reasons"]):
            continue
        decisions.setdefault(c["permit"], []).append((c["kind"], tuple(r["code"] for r in c["reasons"])))
    return decisions


INCIDENT_DECISIONS = {
    "HW-201": [("ENABLE", ("ALL_PRECONDITIONS_MET",)), ("HARD_STOP", ("PAYLOAD_SCHEMA_MISMATCH",)),
               ("ALERT", ("TRIP_RESET_REQUIRED",)), ("ENABLE", ("RESET_ACCEPTED", "ALL_PRECONDITIONS_MET"))],
    "CS-202": [("ENABLE", ("ALL_PRECONDITIONS_MET",))],
    "HT-203": [("ENABLE", ("ALL_PRECONDITIONS_MET",))],
}
"""What the file replay of the firmware-change incident decides (tests/test_incident_replay.py)."""


def test_the_welders_enable_coil_falls_to_0_at_the_firmware_change_and_returns_after_the_reset(broker, plcs, tmp_path):
    interlock = started(broker, tmp_path)
    try:
        Publisher(broker, tmp_path, SPEED).publish(split_at(incident_lines(plcs.ports), AFTER_RESET_S)[0])
        wait_for(lambda: len(commands_on_kafka(broker)) >= 6, 20, "the incident's six commands")
        time.sleep(0.5)
        assert per_permit(commands_on_kafka(broker)) == INCIDENT_DECISIONS
        welder = [w.value for w in plcs.sim.writes("PLC-3") if w.item == "WELD-5"]
        assert [v for i, v in enumerate(welder) if i == 0 or v != welder[i - 1]][-3:] == [True, False, True]
        assert plcs.enable("PLC-3", "WELD-5") is True
    finally:
        interlock.stop()


def test_the_plc_drops_every_enable_within_1_2_s_of_the_interlock_dying(broker, plcs, tmp_path):
    interlock = started(broker, tmp_path)
    before, _ = split_at(incident_lines(plcs.ports), ENABLED_BY_S)
    Publisher(broker, tmp_path, SPEED).publish(before)
    wait_for(lambda: plcs.enable("PLC-3", "WELD-5"), 10, "WELD-5 enabled")
    interlock.kill()
    dropped_after = wait_for(lambda: not plcs.enable("PLC-3", "WELD-5"), 5, "the watchdog to drop WELD-5", every_s=0.01)
    assert dropped_after <= 1.2
    assert plcs.sim.trips("PLC-3")


@pytest.mark.parametrize("shards", ["1", "3"])
def test_after_kill_9_a_restart_keeps_its_commands_latches_what_was_enabled_and_enables_nothing_without_a_reset(
        broker, plcs, tmp_path, shards):
    recovery = ["--recovery-dir", str(tmp_path / "recovery"), "--init-recovery", "--snapshot-interval", "1",
                "--shards", shards]
    first = started(broker, tmp_path, "first", recovery)
    lines = incident_lines(plcs.ports)
    before, rest = split_at(lines, ENABLED_BY_S)
    publisher = Publisher(broker, tmp_path, SPEED)
    publisher.publish(before)
    wait_for(lambda: len(commands_on_kafka(broker)) >= 3, 10, "the three ENABLEs")
    time.sleep(2.5)  # a snapshot after the ENABLEs
    first.kill()
    wait_for(lambda: not plcs.enable("PLC-3", "WELD-5"), 5, "the watchdog to drop WELD-5")
    second = started(broker, tmp_path, "second", recovery)
    try:
        more, _ = split_at(rest, 30)
        publisher.publish(more)
        time.sleep(1.0)
        commands = commands_on_kafka(broker)
        kinds = Counter(c["kind"] for c in commands)
        stops = [c for c in commands if c["kind"] == "HARD_STOP"]
        assert kinds["ENABLE"] == 3, "no ENABLE after the restart"
        assert {c["permit"] for c in stops} == {"HW-201", "CS-202", "HT-203"}
        assert all(c["latched"] and c["reasons"][0]["code"] == "INTERLOCK_RESTARTED" for c in stops)
        assert not plcs.enable("PLC-3", "WELD-5")
        by_id: dict[str, dict] = {}
        for command in commands:
            assert by_id.setdefault(command["id"], command) == command, "a repeated command keeps its id and content"
        assert any(f["code"] == "INTERLOCK_RESTARTED" for f in faults_on_kafka(broker))
    finally:
        second.stop()


def test_a_5_s_plc_outage_raises_a_critical_fault_trips_the_work_and_resyncs_the_enables(broker, plcs, tmp_path):
    interlock = started(broker, tmp_path)
    try:
        before, _ = split_at(incident_lines(plcs.ports), ENABLED_BY_S)
        Publisher(broker, tmp_path, SPEED).publish(before)
        wait_for(lambda: plcs.enable("PLC-3", "WELD-5"), 10, "WELD-5 enabled")
        plcs.call(plcs.sim.go_offline("PLC-3"))
        wait_for(lambda: any(f["code"] == "PLC_UNREACHABLE" and f["state"] == "raised" for f in faults_on_kafka(broker)),
                 5, "PLC_UNREACHABLE raised")
        time.sleep(5.0 - 1.0)
        plcs.call(plcs.sim.go_online("PLC-3"))
        wait_for(lambda: any(f["code"] == "PLC_UNREACHABLE" and f["state"] == "cleared" for f in faults_on_kafka(broker)),
                 10, "PLC_UNREACHABLE cleared")
        fault = next(f for f in faults_on_kafka(broker) if f["code"] == "PLC_UNREACHABLE")
        assert fault["grade"] == "CRITICAL" and fault["device"] == "PLC-3" and fault["permits"] == ["HW-201"]
        stop = next(c for c in commands_on_kafka(broker) if c["kind"] == "HARD_STOP")
        assert stop["permit"] == "HW-201" and stop["latched"] and stop["reasons"][0]["code"] == "PLC_UNREACHABLE"
        assert plcs.sim.trips("PLC-3")
        resynced = [w for w in plcs.sim.writes("PLC-3") if w.item == "WELD-5"][-1]
        assert resynced.value is False
        assert plcs.enable("PLC-4", "PUMP-4"), "work on the other PLCs goes on"
    finally:
        interlock.stop()


def test_a_two_process_cluster_decides_as_one_process_does_and_one_of_them_writes_the_plcs(broker, plcs, tmp_path):
    """Two processes, three decision shards: the welder's permit (PR-1, shard 1) is decided in the second process, the
    confined space's (TK-3, shard 0) in the first, and every command reaches the one PLC writer step, which holds the
    welder's coil as one process does."""
    from dataflows.worker_placement import shard_keys, worker_of_key
    from interlock.shard_plan import ShardPlan

    keys = shard_keys(3, 2)
    assert [worker_of_key(keys[ShardPlan(3).of_zone(zone)], 2) for zone in ("TK-3", "PR-1")] == [0, 1]
    ports = [_free_port(), _free_port()]
    addresses = ";".join(f"127.0.0.1:{port}" for port in ports)
    processes = [InterlockProcess(broker, tmp_path, f"p{i}",
                                  ["--process-id", str(i), "--addresses", addresses, "--shards", "3"])
                 for i in range(2)]
    try:
        for process in processes:
            process.wait_ready()
        time.sleep(3.0)
        Publisher(broker, tmp_path, SPEED).publish(split_at(incident_lines(plcs.ports), AFTER_RESET_S)[0])
        wait_for(lambda: len(commands_on_kafka(broker)) >= 6, 20, "the incident's six commands")
        time.sleep(0.5)
        assert per_permit(commands_on_kafka(broker)) == INCIDENT_DECISIONS
        welder = [w.value for w in plcs.sim.writes("PLC-3") if w.item == "WELD-5"]
        assert [v for i, v in enumerate(welder) if i == 0 or v != welder[i - 1]][-3:] == [True, False, True]
        assert all(b"3 decision shards" in (tmp_path / f"p{i}.log").read_bytes() for i in range(2))
    finally:
        for process in processes:
            process.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_recovery_the_live_run_does_not_snapshot_its_state_every_few_seconds():
    from dataflows.live import NO_RECOVERY_EPOCH, epoch_interval

    assert epoch_interval(10.0, recovering=False) == NO_RECOVERY_EPOCH
    assert epoch_interval(10.0, recovering=True).total_seconds() == 10.0
    with pytest.raises(ValueError, match="snapshot-interval"):
        epoch_interval(0, recovering=True)


def test_cluster_addresses_come_as_a_list_or_as_the_deploy_files_hosts_file(tmp_path):
    from dataflows.live import cluster_addresses

    hosts = tmp_path / "hosts.txt"
    hosts.write_text("# the cluster\n10.0.0.1:2101\n\n10.0.0.2:2101  # second\n")
    assert cluster_addresses(str(hosts)) == ["10.0.0.1:2101", "10.0.0.2:2101"]
    assert cluster_addresses("10.0.0.1:2101;10.0.0.2:2101") == ["10.0.0.1:2101", "10.0.0.2:2101"]
