"""The Kafka source, sink and dev broker of live runs, against librdkafka's in-memory mock cluster."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import threading

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from dataflows.kafka_io import (
    LIBRDKAFKA_LOG,
    MOCK_PARTITIONS,
    KafkaOutputSink,
    KafkaRecordPartition,
    KafkaRecordSource,
    add_dev_broker_command,
    dev_broker,
)
from interlock.site import COMMANDS_TOPIC, EVIDENCE_TOPIC, FAULTS_TOPIC, Output
from schemas.envelope import Record

GAS_READING = b'{"dev":"GAS-07","fw":"2.3.1","ts":1795358656120,"seq":4411,"r":[20.9,0.0,0.0,1.0],"alm":0}'


@pytest.fixture
def bootstrap():
    with dev_broker() as servers:
        yield servers


def produce(bootstrap: str, topic: str, key: str, value: bytes | None, timestamp: int = 0) -> tuple[int, int]:
    """Send one record and wait for it; returns (partition, offset)."""
    delivered = []
    producer = Producer({"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG})
    producer.produce(topic, value, key, timestamp=timestamp,
                     on_delivery=lambda error, message: delivered.append((error, message.partition(), message.offset())))
    producer.flush(5)
    error, partition, offset = delivered[0]
    assert error is None
    return partition, offset


def read_with_source(source: KafkaRecordSource, recovery: RecoveryConfig | None = None) -> list[Record]:
    captured: list[list[Record]] = []
    flow = Dataflow("read")
    op.output("out", op.input("in", flow, source), TestingSink(captured))
    run_main(flow, epoch_interval=datetime.timedelta(milliseconds=50), recovery_config=recovery)
    return [record for chunk in captured for record in chunk]


def test_a_record_produced_to_gas_readings_comes_out_of_the_source_as_the_same_record(bootstrap):
    partition, offset = produce(bootstrap, "gas.readings", "GAS-07", GAS_READING, timestamp=1795358656123)

    records = read_with_source(KafkaRecordSource(bootstrap, ("gas.readings",), streams_from="beginning", stop_at_end=True))

    assert records == [Record("gas.readings", partition, offset, 1795358656123, "GAS-07", GAS_READING)]


def test_a_tombstone_comes_out_of_the_source_with_payload_none(bootstrap):
    produce(bootstrap, "cmdb.devices", "GAS-07", None, timestamp=1795358656000)

    (record,) = read_with_source(KafkaRecordSource(bootstrap, ("cmdb.devices",), stop_at_end=True))

    assert (record.key, record.payload) == ("GAS-07", None)


def test_the_source_resumes_after_the_offsets_its_recovery_snapshot_holds(bootstrap, tmp_path):
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(tmp_path)
    for seq in (1, 2, 3):
        produce(bootstrap, "gas.readings", "GAS-07", b"%d" % seq)
    source = KafkaRecordSource(bootstrap, ("gas.readings",), streams_from="beginning", stop_at_end=True)
    first_run = read_with_source(source, recovery)
    for seq in (4, 5):
        produce(bootstrap, "gas.readings", "GAS-07", b"%d" % seq)

    second_run = read_with_source(source, recovery)

    assert [r.payload for r in first_run] == [b"1", b"2", b"3"]
    assert [r.payload for r in second_run] == [b"4", b"5"]
    assert second_run[0].offset == first_run[-1].offset + 1


def test_a_fresh_live_start_reads_tables_from_the_beginning_and_streams_from_their_end(bootstrap):
    produce(bootstrap, "ptw.permits", "HW-113", b'{"permit":"HW-113"}')
    produce(bootstrap, "gas.readings", "GAS-07", b"old")

    records = read_with_source(KafkaRecordSource(bootstrap, ("ptw.permits", "gas.readings"), stop_at_end=True))

    assert [(r.topic, r.payload) for r in records] == [("ptw.permits", b'{"permit":"HW-113"}')]


def test_a_topic_missing_at_start_is_read_once_it_appears():
    with dev_broker(topics=()) as servers:
        arrived = threading.Event()
        captured: list[list[Record]] = []
        source = KafkaRecordSource(servers, ("ptw.permits",), on_records=lambda topic, count: arrived.set(), stop=arrived)
        flow = Dataflow("late-topic")
        op.output("out", op.input("in", flow, source), TestingSink(captured))
        producer = threading.Timer(0.3, produce, (servers, "ptw.permits", "HW-113", b'{"permit":"HW-113"}'))
        producer.start()
        run_main(flow)
        producer.join()

    assert [r.payload for chunk in captured for r in chunk] == [b'{"permit":"HW-113"}']


def test_a_topic_with_more_partitions_than_this_run_reads_stops_the_source_with_a_restart_hint(bootstrap):
    source = KafkaRecordSource(bootstrap, ("gas.readings",))
    source.list_parts()
    partition = source.build_part("in", "gas.readings/0", None)
    stats = {"topics": {"gas.readings": {"partitions": {str(p): {} for p in range(MOCK_PARTITIONS + 2)} | {"-1": {}}}}}

    partition.watch_partition_count(json.dumps(stats))

    with pytest.raises(RuntimeError, match="now has 6 partitions but this run reads the 4 .* restart the dataflow"):
        partition.next_batch()
    partition.close()


def read_back(bootstrap: str, topics: tuple[str, ...], count: int) -> list[tuple[str, int, str | None, bytes]]:
    """(topic, partition, key, value) of `count` records from the beginning of `topics`, by a plain consumer."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test", "logger": LIBRDKAFKA_LOG})
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(MOCK_PARTITIONS)])
    found = []
    for _ in range(100):
        for message in consumer.consume(100, 0.05):
            key = message.key()
            found.append((message.topic(), message.partition(), key and key.decode(), message.value()))
        if len(found) >= count:
            break
    consumer.close()
    return found


def test_the_sink_writes_outputs_that_a_consumer_reads_back_with_key_and_value(bootstrap):
    outputs = [
        Output(FAULTS_TOPIC, "F-1", b'{"id":"F-1","grade":"CRITICAL"}'),
        Output(EVIDENCE_TOPIC, None, b'{"seq":0}'),
        Output(COMMANDS_TOPIC, "HW-113", b'{"kind":"HARD_STOP","permit":"HW-113"}'),
        Output(EVIDENCE_TOPIC, None, b'{"seq":1}'),
    ]
    handed_over: list[Output] = []
    flow = Dataflow("write")
    op.output("send", op.input("in", flow, TestingSource([("site", outputs)])),
              KafkaOutputSink(bootstrap, on_output=handed_over.append))

    run_main(flow)

    found = read_back(bootstrap, (COMMANDS_TOPIC, FAULTS_TOPIC, EVIDENCE_TOPIC), len(outputs))
    assert sorted((topic, key, value) for topic, _, key, value in found) == sorted(
        (o.topic, o.key, o.value) for o in outputs
    )
    assert [(p, v) for topic, p, _, v in found if topic == EVIDENCE_TOPIC] == [(0, b'{"seq":0}'), (0, b'{"seq":1}')]
    assert handed_over == outputs


def test_the_dev_broker_command_prints_a_bootstrap_that_clients_use_and_stops_on_sigterm():
    script = (
        "import argparse, sys\n"
        "from dataflows.kafka_io import add_dev_broker_command\n"
        "p = argparse.ArgumentParser(); c = p.add_subparsers(dest='command', required=True)\n"
        "add_dev_broker_command(c)\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.run(a))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    broker = subprocess.Popen([sys.executable, "-c", script, "dev-broker", "--brokers", "2"], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        servers = broker.stdout.readline().strip()
        assert servers.count("127.0.0.1:") == 2
        client = Consumer({"bootstrap.servers": servers, "group.id": "test", "logger": LIBRDKAFKA_LOG})
        topics = client.list_topics(timeout=5).topics
        client.close()
        assert {"gas.readings", "ptw.permits", COMMANDS_TOPIC} <= set(topics)
        assert len(topics["gas.readings"].partitions) == MOCK_PARTITIONS
    finally:
        broker.send_signal(signal.SIGTERM)
        _, note = broker.communicate(timeout=10)
    assert broker.returncode == 0
    assert "in-memory" in note and "lost" in note


def test_the_dev_broker_command_registers_on_the_interlock_subcommands():
    parser = argparse.ArgumentParser(prog="interlock")
    add_dev_broker_command(parser.add_subparsers(dest="command", required=True))

    args = parser.parse_args(["dev-broker", "--brokers", "1", "--no-topics"])

    assert (args.brokers, args.create_topics, args.run.__name__) == (1, False, "run_dev_broker")


def test_a_partition_snapshot_before_any_record_of_a_live_stream_is_its_end_offset(bootstrap):
    produce(bootstrap, "plc.state", "PLC-3", b"before the start")
    partition, _ = produce(bootstrap, "plc.state", "PLC-3", b"also before the start")
    source = KafkaRecordSource(bootstrap, ("plc.state",))
    source.list_parts()

    part: KafkaRecordPartition = source.build_part("in", f"plc.state/{partition}", None)

    assert part.snapshot() == 2
    part.close()
