"""A zone-sharded site decides as one Site does: the router sends each record to the shards whose decisions read it,
each shard decides its own permits, and a fault is raised by the shard that speaks for its subject."""

from __future__ import annotations

import functools
import io
import pickle
from collections import Counter

import msgspec
import pytest
from bytewax.testing import TestingSink, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.workloads import QUICK, recording_bytes
from dataflows.interlock_flow import (
    RouterLogic,
    SiteLogic,
    SnapshotMismatch,
    build_flow,
    restore_for,
    restore_router,
)
from dataflows.recording import RecordingSource, read_recording
from dataflows.risk_model_file import load_risk_model
from interlock.faults import FaultBook
from interlock.shard_plan import ShardPlan
from interlock.shard_routing import ShardRouter
from interlock.site import COMMANDS_TOPIC, FAULTS_TOPIC, Site
from schemas.envelope import UnreadableRecord
from simulators.incidents.__main__ import INCIDENTS, OUTCOME_SUFFIX
from site_records import SECOND, T0, HotWorkSite, RecordWriter, anchorline, gas_v2, hot_work_permit, qubit

TWO = ShardPlan(2)
INCIDENT_NAMES = sorted(p.stem for p in INCIDENTS.glob("*.toml") if not p.name.endswith(OUTCOME_SUFFIX))


def zone_of_shard(plan: ShardPlan, shard: int, prefix: str = "Z") -> str:
    """A zone id that the plan gives to `shard`."""
    return next(f"{prefix}-{i}" for i in range(1000) if plan.of_zone(f"{prefix}-{i}") == shard)


def key_of_shard(plan: ShardPlan, shard: int, prefix: str) -> str:
    return next(f"{prefix}-{i}" for i in range(1000) if plan.of_key(f"{prefix}-{i}") == shard)


def zone_row(zone: str, x0: float) -> dict:
    return {"zone": zone, "name": zone, "polygon": [[x0, 0], [x0 + 20, 0], [x0 + 20, 10], [x0, 10]], "z": [0, 15],
            "risk": "II", "forbid": []}


class Routing:
    """A router on two shards and a record writer, with the shards each record went to."""

    def __init__(self, plan: ShardPlan = TWO) -> None:
        self.router = ShardRouter(plan)
        self.writer = RecordWriter()
        self.now = T0

    def send(self, topic: str, key: str | None, payload: object) -> set[int]:
        record = self.writer.record(topic, key, payload, self.now)
        return {routed.shard for routed in self.router.route([[record]]) if routed.records}


# ------------------------------------------------------------------ the router


def test_table_rows_go_to_every_shard():
    routing = Routing()
    assert routing.send("gis.zones", "Z-1", zone_row("Z-1", 0)) == {0, 1}
    assert routing.send("hr.qualifications", "W1", {"worker": "W1"}) == {0, 1}
    assert routing.send("cmdb.devices", "GAS-1", None) == {0, 1}


def test_a_detector_goes_to_its_zones_shard_and_to_the_shard_of_a_permit_elsewhere_that_lists_it():
    routing = Routing()
    here, there = zone_of_shard(TWO, 0), zone_of_shard(TWO, 1)
    routing.send("cmdb.devices", "GAS-1", {"device": "GAS-1", "family": "gas", "model": "GD-4", "firmware": "2.3.1",
                                          "zone": here})
    assert routing.send("gas.readings", "GAS-1", gas_v2("GAS-1", T0, 1)) == {0}
    routing.send("ptw.permits", "HW-9", hot_work_permit(permit="HW-9", zone=there, detectors=["GAS-1"]))
    assert routing.send("gas.readings", "GAS-1", gas_v2("GAS-1", T0, 2)) == {0, 1}


def test_a_harness_goes_to_its_first_permits_shard_and_keeps_going_where_it_went_before():
    routing = Routing()
    there = zone_of_shard(TWO, 1)
    harness = key_of_shard(TWO, 0, "HB")
    assert routing.send("harness.status", harness, {}) == {0}  # no permit has read it: its home is by its id
    routing.send("ptw.permits", "HW-9", hot_work_permit(permit="HW-9", zone=there, harnesses=[harness]))
    assert routing.send("harness.status", harness, {}) == {0, 1}
    routing.send("ptw.permits", "HW-9", hot_work_permit(permit="HW-9", rev=2, zone=there, harnesses=[]))
    assert routing.send("harness.status", harness, {}) == {0, 1}


def test_a_harness_listed_before_its_first_record_goes_to_its_permits_shard_only():
    routing = Routing()
    harness = key_of_shard(TWO, 0, "HB")
    routing.send("ptw.permits", "HW-9", hot_work_permit(permit="HW-9", zone=zone_of_shard(TWO, 1), harnesses=[harness]))
    assert routing.send("harness.status", harness, {}) == {1}


def test_a_plc_goes_to_the_shards_of_the_permits_that_use_its_equipment():
    routing = Routing()
    plc = key_of_shard(TWO, 0, "PLC")
    routing.send("cmdb.devices", plc, {"device": plc, "family": "plc", "equipment": ["WELD-5", "FAN-2"]})
    routing.send("ptw.permits", "CS-9", hot_work_permit(permit="CS-9", zone=zone_of_shard(TWO, 1), equipment=[],
                                                        isolations=[], ventilation=["FAN-2"]))
    assert routing.send("plc.state", plc, {}) == {0, 1}


def test_a_permit_keeps_the_shard_of_its_first_zone():
    routing = Routing()
    first, second = zone_of_shard(TWO, 1), zone_of_shard(TWO, 0)
    routing.send("ptw.permits", "HW-9", hot_work_permit(permit="HW-9", zone=first))
    routing.send("ptw.permits", "HW-9", hot_work_permit(permit="HW-9", rev=2, zone=second))
    assert routing.send("ptw.actions", "HW-9", {"permit": "HW-9", "action": "reset", "by": "A1"}) == {1}


def test_a_tag_goes_to_a_zones_shard_from_its_first_fix_near_the_zone_and_keeps_going_there():
    routing = Routing()
    tag = key_of_shard(TWO, 0, "T")
    zone = zone_of_shard(TWO, 1)
    routing.send("gis.zones", zone, zone_row(zone, 100.0))
    assert routing.send("rtls.position", tag, anchorline(tag, routing.now, 5.0, 5.0)) == {0}
    routing.now += SECOND
    assert routing.send("rtls.position", tag, anchorline(tag, routing.now, 105.0, 5.0)) == {0, 1}
    routing.now += SECOND
    assert routing.send("rtls.position", tag, anchorline(tag, routing.now, 5.0, 5.0)) == {0, 1}


def test_a_fix_the_site_would_drop_does_not_bring_a_tag_to_a_shard():
    routing = Routing()
    tag = key_of_shard(TWO, 0, "T")
    zone = zone_of_shard(TWO, 1)
    routing.send("gis.zones", zone, zone_row(zone, 100.0))
    routing.send("rtls.position", tag, anchorline(tag, routing.now, 5.0, 5.0))
    assert routing.send("rtls.position", tag, anchorline(tag, routing.now - 500, 105.0, 5.0)) == {0}  # not newer
    assert routing.send("rtls.position", tag, anchorline(tag, routing.now + 1, 105.0, 5.0, q=0.1)) == {0}  # poor


def test_a_batch_of_tags_goes_to_each_tags_home():
    routing = Routing()
    tags = [key_of_shard(TWO, 0, "0x"), key_of_shard(TWO, 1, "0x")]
    assert routing.send("rtls.position", "QGW-1", qubit(routing.now, *[(t, 1.0, 1.0, 1.0) for t in tags])) == {0, 1}


def test_a_position_payload_that_does_not_parse_goes_to_its_keys_shard_only():
    routing = Routing()
    assert routing.send("rtls.position", "QGW-1", '{"tag": 12}') == {TWO.of_key("QGW-1")}


def test_an_unreadable_line_goes_to_one_shard_and_every_shard_gets_the_clock():
    router = ShardRouter(TWO)
    routed = router.route([[UnreadableRecord(7, T0 + 5, "not JSON")]])
    assert [len(r.records) for r in routed].count(1) == 1
    assert [r.until for r in routed] == [T0 + 5, T0 + 5]


def test_the_router_snapshot_restores_and_another_version_is_refused():
    routing = Routing()
    routing.send("ptw.permits", "HW-9", hot_work_permit(permit="HW-9", zone="Z-3"))
    restored = restore_router(RouterLogic(routing.router, "record").snapshot())
    assert restored.permit_shard == routing.router.permit_shard
    with pytest.raises(SnapshotMismatch, match="state version 1"):
        restore_router(pickle.dumps((1, routing.router)))


def test_a_snapshot_of_another_number_of_shards_is_refused():
    snapshot = SiteLogic(Site(shard=1, plan=TWO), "wall").snapshot()
    assert restore_for(snapshot, TWO).shard == 1
    with pytest.raises(SnapshotMismatch, match="written with 2 decision shard"):
        restore_for(snapshot, ShardPlan(3))
    with pytest.raises(SnapshotMismatch, match="--shards 2"):
        restore_for(RouterLogic(ShardRouter(TWO), "wall").snapshot(), ShardPlan(1), ShardRouter)


# ------------------------------------------------------------------ faults and decisions of one shard


def test_a_silenced_fault_is_kept_counted_and_cleared_without_being_sent():
    book = FaultBook(60_000)
    book.silenced = lambda subject: True
    book.raise_("PAYLOAD_SCHEMA_MISMATCH", "GAS-1", T0, None, "object where an array was expected")
    book.raise_("PAYLOAD_SCHEMA_MISMATCH", "GAS-1", T0 + 1, None, "object where an array was expected")
    book.silenced = None
    book.clear("PAYLOAD_SCHEMA_MISMATCH", "GAS-1", T0 + 2, None)
    assert book.flush() == []
    assert book.open == {}


def test_a_silenced_fault_a_stop_rests_on_is_raised_at_critical_and_cleared():
    book = FaultBook(60_000)
    book.silenced = lambda subject: True
    fault = book.raise_("HARNESS_DATA_STALE", "HB-1", T0, None, "no data for 30 s")
    book.silenced = None
    book.cite(fault, T0 + 1, True)
    book.clear("HARNESS_DATA_STALE", "HB-1", T0 + 2, None)
    assert [(r.grade, r.state) for r in book.flush()] == [("CRITICAL", "raised"), ("CRITICAL", "cleared")]


def _shard_site(shard: int) -> HotWorkSite:
    return HotWorkSite(Site(shard=shard, plan=TWO)).started()


def test_a_shard_does_not_decide_a_permit_of_another_shard():
    mine = TWO.of_zone("PR-1")
    assert [o for o in _shard_site(1 - mine).outputs if o.topic == COMMANDS_TOPIC] == []
    kinds = [msgspec.json.decode(o.value)["kind"] for o in _shard_site(mine).outputs if o.topic == COMMANDS_TOPIC]
    assert kinds == ["ENABLE"]


def test_a_shard_raises_faults_about_its_own_devices_only():
    home = TWO.device_home("GAS-07", "PR-1")
    for shard in (0, 1):
        script = _shard_site(shard)
        script.gas({"dev": "GAS-07", "fw": "2.3.1", "ts": script.now, "seq": 99, "r": {"o2": 20.9}, "alm": 0})
        raised = [msgspec.json.decode(o.value)["code"] for o in script.outputs if o.topic == FAULTS_TOPIC]
        assert ("PAYLOAD_SCHEMA_MISMATCH" in raised) == (shard == home)


# ------------------------------------------------------------------ the dataflow: one shard against several


def _decisions(records: list, plan: ShardPlan, risk_model=None) -> tuple[dict, dict]:
    """Each permit's commands (time, kind, reason codes, latched) and each fault's (code, subject): the grades it was
    raised at and the state it ended in."""
    captured: list = []
    run_main(build_flow(RecordingSource(list(records)), TestingSink(captured), risk_model=risk_model, plan=plan))
    outputs = [output for _, batch in captured for output in batch]
    per_permit: dict[str, list] = {}
    faults: dict[tuple[str, str], tuple[set, str]] = {}
    for output in outputs:
        value = msgspec.json.decode(output.value)
        if output.topic == COMMANDS_TOPIC:
            per_permit.setdefault(value["permit"], []).append(
                (value["ts"], value["kind"], tuple(r["code"] for r in value["reasons"]), value.get("latched")))
        elif output.topic == FAULTS_TOPIC:
            grades, _ = faults.get((value["code"], value["subject"]), (set(), ""))
            faults[value["code"], value["subject"]] = (grades | {value["grade"]}, value["state"])
    return {permit: sorted(commands) for permit, commands in per_permit.items()}, faults


@functools.cache
def _incident_records(name: str) -> tuple:
    with open(INCIDENTS / f"{name}.jsonl", "rb") as stream:
        return tuple(read_recording(stream))


@functools.cache
def _one_shard(name: str) -> tuple[dict, dict]:
    return _decisions(list(_incident_records(name)), ShardPlan(1))


@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize("name", INCIDENT_NAMES)
def test_every_incident_is_decided_by_several_shards_as_by_one(name, shards):
    commands, faults = _decisions(list(_incident_records(name)), ShardPlan(shards))
    one_commands, one_faults = _one_shard(name)
    assert commands == one_commands
    assert faults == one_faults


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shards=st.integers(2, 9), name=st.sampled_from(INCIDENT_NAMES))
def test_any_number_of_shards_decides_an_incident_as_one_does(shards, name):
    assert _decisions(list(_incident_records(name)), ShardPlan(shards)) == _one_shard(name)


@functools.cache
def _large_site_one_shard() -> tuple[dict, dict]:
    return _decisions(list(read_recording(io.BytesIO(recording_bytes(*QUICK)))), ShardPlan(1), load_risk_model())


@pytest.mark.parametrize("shards", [2, 5])
def test_the_large_site_with_the_risk_model_is_decided_by_several_shards_as_by_one(shards):
    records = list(read_recording(io.BytesIO(recording_bytes(*QUICK))))
    one = _large_site_one_shard()
    assert sum(len(c) for c in one[0].values()) >= 36  # every permit of the 12 copies decided
    assert _decisions(records, ShardPlan(shards), load_risk_model()) == one


def test_the_shards_share_the_large_sites_records():
    """Positions and telemetry reach only the shards that read them: with two shards, each gets about two thirds."""
    records = list(read_recording(io.BytesIO(recording_bytes(*QUICK))))
    routed = ShardRouter(TWO).route([records])
    counts = Counter({r.shard: len(r.records) for r in routed})
    assert max(counts.values()) < 0.7 * len(records)


def test_the_router_and_every_shard_agree_on_each_devices_home():
    records = list(read_recording(io.BytesIO(recording_bytes(*QUICK))))
    plan = ShardPlan(3)
    router = ShardRouter(plan)
    routed = router.route([records])
    for shard in range(plan.shards):
        site = Site(shard=shard, plan=plan)
        site.process_batch(routed[shard].records)
        devices = set(router.devices) | set(router.homes.first_reader)
        assert {d: site.subject_shard(d) for d in devices} == {d: router.device_home(d) for d in devices}
