"""Publishing recordings to Kafka as live traffic, with every time moved to now, against the in-memory mock cluster."""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import threading
import time
from pathlib import Path

import bytewax.operators as op
import msgspec
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from dataflows.interlock_flow import build_flow
from dataflows.kafka_io import KafkaRecordSource, dev_broker
from dataflows.recording import RecordingSource, read_recording
from interlock.site import COMMANDS_TOPIC
from schemas.envelope import TOPICS, Record
from simulators.live_replay import (
    TIME_FIELDS,
    TimeShift,
    add_simulate_command,
    publish_recording,
    rebase_payload,
    time_shift,
)

INCIDENT = Path(__file__).resolve().parent.parent / "simulators" / "incidents" / "firmware_change.jsonl"
FIVE_DAYS = TimeShift(5 * 86_400_000 + 3_000, 5)


def incident_records() -> list[Record]:
    with open(INCIDENT, "rb") as stream:
        return read_recording(stream)


def read_everything(bootstrap: str, count: int) -> list[Record]:
    """Every record of the input topics, by the live source, once `count` have arrived."""
    enough = threading.Event()
    seen = [0]

    def counted(topic: str, records: int) -> None:
        seen[0] += records
        if seen[0] >= count:
            enough.set()

    captured: list[list[Record]] = []
    source = KafkaRecordSource(bootstrap, streams_from="beginning", on_records=counted, stop=enough)
    flow = Dataflow("read-back")
    op.output("out", op.input("in", flow, source), TestingSink(captured))
    run_main(flow)
    return [record for chunk in captured for record in chunk]


def test_publishing_the_firmware_change_incident_at_speed_0_delivers_every_record():
    recorded = incident_records()
    parser = argparse.ArgumentParser(prog="interlock")
    add_simulate_command(parser.add_subparsers(dest="command", required=True))
    with dev_broker() as bootstrap:
        args = parser.parse_args(
            ["simulate", str(INCIDENT), "--bootstrap", bootstrap, "--speed", "0", "--no-rebase", "--quiet"]
        )
        assert args.run(args) == 0
        delivered = read_everything(bootstrap, len(recorded))

    def content(r: Record) -> tuple:
        payload = r.payload.encode() if isinstance(r.payload, str) else r.payload
        return r.topic, r.key, r.ts, payload

    assert len(delivered) == len(recorded) == 5765
    assert sorted(map(content, delivered), key=repr) == sorted(map(content, recorded), key=repr)


REBASED = {
    "rtls.position": (
        '{"tag":"T-00012","ts":"2026-11-20T23:59:58.120Z","pos":[12.31,4.02,1.10],"q":0.93}',
        '{"tag":"T-00012","ts":"2026-11-26T00:00:01.120Z","pos":[12.31,4.02,1.10],"q":0.93}',
    ),
    "rtls.position#qubit": (
        '[{"tagId":"0x6a3f","timestamp":1795358656.120,"success":true,"data":{"coordinates":{"x":12310,"y":4020,"z":1100}}},'
        '{"tagId":"0x6a40","timestamp":1795358656.5,"success":false}]',
        '[{"tagId":"0x6a3f","timestamp":1795790659.120,"success":true,"data":{"coordinates":{"x":12310,"y":4020,"z":1100}}},'
        '{"tagId":"0x6a40","timestamp":1795790659.5,"success":false}]',
    ),
    "gas.readings": (
        '{"dev":"GAS-07","fw":"2.3.1","ts":1795358656120,"seq":4411,"r":[20.9,0.0,0.0,1.0],"alm":0}',
        '{"dev":"GAS-07","fw":"2.3.1","ts":1795790659120,"seq":4411,"r":[20.9,0.0,0.0,1.0],"alm":0}',
    ),
    "gas.readings#gd4/3": (
        '{"dev":"GAS-07","fw":"3.0.0","ts":1795358656120,"seq":4411,"r":{"o2":20.9,"lel":0.0,"h2s":0.0,"co":1.0},"st":"ok","bump":1795300000000}',
        '{"dev":"GAS-07","fw":"3.0.0","ts":1795790659120,"seq":4411,"r":{"o2":20.9,"lel":0.0,"h2s":0.0,"co":1.0},"st":"ok","bump":1795732003000}',
    ),
    "harness.status": (
        '{"dev":"HB-33","fw":"2.0.1","ts":1795358656120,"seq":78,"hooks":[1,0],"h":12.5,"bat":87}',
        '{"dev":"HB-33","fw":"2.0.1","ts":1795790659120,"seq":78,"hooks":[1,0],"h":12.5,"bat":87}',
    ),
    "plc.state": (
        '{"plc":"PLC-3","ts":1795358656120,"seq":9001,"tags":{"FAN-2.running":true,"WELD-5.power":false}}',
        '{"plc":"PLC-3","ts":1795790659120,"seq":9001,"tags":{"FAN-2.running":true,"WELD-5.power":false}}',
    ),
    "hr.qualifications": (
        '{"worker":"W0012","name":"张三","medical_valid_until":"2026-12-31",'
        '"certs":[{"no":"T3","type":"welding","issued":"2021-05-01","expires":"2027-05-01","review_due":"2027-03-02","status":"valid"}]}',
        '{"worker":"W0012","name":"张三","medical_valid_until":"2027-01-05",'
        '"certs":[{"no":"T3","type":"welding","issued":"2021-05-06","expires":"2027-05-06","review_due":"2027-03-07","status":"valid"}]}',
    ),
    "ptw.permits": (
        '{"permit":"HW-113","rev":3,"state":"approved","valid_from":1795356000000,"valid_to":1795384800000,"workers":["W0012"]}',
        '{"permit":"HW-113","rev":3,"state":"approved","valid_from":1795788003000,"valid_to":1795816803000,"workers":["W0012"]}',
    ),
    "ptw.actions": (
        '{"permit":"HW-113","action":"reset","by":"W0200","ts":1795358700000}',
        '{"permit":"HW-113","action":"reset","by":"W0200","ts":1795790703000}',
    ),
    "cmdb.devices": (
        '{"device":"GAS-07","family":"gas","model":"GD-4","firmware":"2.3.1","zone":"TK-3"}',
        '{"device":"GAS-07","family":"gas","model":"GD-4","firmware":"2.3.1","zone":"TK-3"}',
    ),
}


@pytest.mark.parametrize("case", sorted(REBASED))
def test_rebasing_shifts_every_time_field_of_each_topic_by_the_delta_and_nothing_else(case):
    recorded, expected = REBASED[case]

    assert rebase_payload(case.split("#")[0], recorded, FIVE_DAYS) == expected


@pytest.mark.parametrize("payload", [
    '{"dev":"GAS-07","fw":"3.0.0","ts":17953586',  # cut off
    "GAS-07 3.0.0 20.9 0.0",  # not JSON
    b"\xff\xfe{}",  # not UTF-8
    None,  # tombstone
])
def test_rebasing_leaves_payloads_that_do_not_parse_untouched(payload):
    assert rebase_payload("gas.readings", payload, FIVE_DAYS) is payload


def test_rebasing_leaves_time_fields_of_the_wrong_kind_untouched():
    odd = '{"dev":"GAS-07","ts":"1795358656120","bump":null,"r":{"ts":5}}'

    assert rebase_payload("gas.readings", odd, FIVE_DAYS) == odd


def test_rebasing_keeps_every_incident_payload_as_recorded_apart_from_its_time_values():
    back = TimeShift(-FIVE_DAYS.ms, -FIVE_DAYS.days)
    decode = msgspec.json.decode

    def shape(value):
        if isinstance(value, dict):
            return [(key, shape(item)) for key, item in value.items()]
        if isinstance(value, list):
            return [shape(item) for item in value]
        return type(value).__name__

    for record in incident_records():
        rebased = rebase_payload(record.topic, record.payload, FIVE_DAYS)
        if record.payload is None:
            assert rebased is None
            continue
        assert rebase_payload(record.topic, rebased, back) == record.payload
        assert shape(decode(rebased)) == shape(decode(record.payload))
        if record.topic not in TIME_FIELDS:
            assert rebased is record.payload


def test_dates_move_by_the_days_the_shift_moves_the_site_calendar():
    half_past_eleven_site_time = int(datetime.datetime(2026, 11, 20, 15, 30, tzinfo=datetime.timezone.utc).timestamp() * 1000)

    assert time_shift(half_past_eleven_site_time, half_past_eleven_site_time + 3_600_400) == TimeShift(3_600_000, 1)
    assert time_shift(half_past_eleven_site_time, half_past_eleven_site_time + 1_800_000, 0) == TimeShift(1_800_000, 0)


def test_records_go_out_at_their_recorded_spacing_divided_by_the_speed(tmp_path):
    recording = tmp_path / "three.jsonl"
    recording.write_text("".join(
        json.dumps({"topic": "ptw.actions", "partition": 0, "offset": n, "ts": 1795358700000 + 1000 * n,
                    "key": "HW-113", "payload": '{"permit":"HW-113","action":"ack","by":"W0100","ts":1}'}) + "\n"
        for n in range(3)
    ))
    with dev_broker() as bootstrap:
        started = time.monotonic()
        count = publish_recording(str(recording), bootstrap, speed=5)
        elapsed = time.monotonic() - started

    assert count == 3
    assert 0.38 <= elapsed < 1.5


def commands_per_permit(values) -> dict[str, list[str]]:
    kinds = collections.defaultdict(list)
    for value in values:
        command = json.loads(value)
        kinds[command["permit"]].append(command["kind"])
    return dict(kinds)


def test_a_live_run_over_the_rebased_incident_sends_the_commands_of_the_file_replay(tmp_path):
    # Up to the approver's reset and the ENABLE after it (about 240 s), at 8x: the partitions of a topic are read
    # independently, and at much higher speeds a second of lag between two of them is minutes of site time.
    lines = INCIDENT.read_bytes().splitlines(keepends=True)
    first = msgspec.json.decode(lines[0])["ts"]
    piece = tmp_path / "incident.jsonl"
    piece.write_bytes(b"".join(line for line in lines if msgspec.json.decode(line)["ts"] < first + 260_000))
    with open(piece, "rb") as stream:
        recorded = read_recording(stream)
    replayed: list = []
    run_main(build_flow(RecordingSource(recorded), TestingSink(replayed)))
    with dev_broker() as bootstrap:
        fetching, every_record = threading.Event(), threading.Event()
        caught_up, seen = set(), [0]

        def on_caught_up(topic: str, partition: int) -> None:
            caught_up.add((topic, partition))
            if len(caught_up) == 4 * len(TOPICS):
                fetching.set()

        def on_records(topic: str, count: int) -> None:
            seen[0] += count
            if seen[0] >= len(recorded):
                every_record.set()

        def publish() -> None:
            fetching.wait(10)  # records sent before the consumers fetch would arrive as a backlog, topic by topic
            publish_recording(str(piece), bootstrap, speed=8, rebase=True)

        publisher = threading.Thread(target=publish)
        publisher.start()
        live: list = []
        source = KafkaRecordSource(bootstrap, streams_from="beginning", on_records=on_records,
                                   on_caught_up=on_caught_up, stop=every_record)
        run_main(build_flow(source, TestingSink(live)))
        publisher.join()

    def commands(captured):
        return commands_per_permit(o.value for _, outputs in captured for o in outputs if o.topic == COMMANDS_TOPIC)

    assert seen[0] == len(recorded)
    assert commands(live) == commands(replayed) == {
        "HW-201": ["ENABLE", "HARD_STOP", "ALERT", "ENABLE"], "CS-202": ["ENABLE"], "HT-203": ["ENABLE"],
    }
