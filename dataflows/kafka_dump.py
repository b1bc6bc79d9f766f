"""Read what a live interlock sent to Kafka (commands, faults, evidence) into the same files a replay writes.

```sh
python -m dataflows.kafka_dump --bootstrap SERVERS --out DIR
```
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec
from confluent_kafka import Consumer, KafkaError, TopicPartition

from interlock.site import COMMANDS_TOPIC, EVIDENCE_TOPIC, FAULTS_TOPIC

FILES = {COMMANDS_TOPIC: "commands.jsonl", FAULTS_TOPIC: "faults.jsonl", EVIDENCE_TOPIC: "evidence.jsonl"}


def read_topic(bootstrap: str, topic: str, settings: dict[str, str] | None = None, timeout_s: float = 10.0) -> list[bytes]:
    """Every message value of `topic` from its beginning to its current end, partition by partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "interlock-dump", "enable.auto.commit": False,
                         "log_level": 3, **(settings or {})})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        values: list[bytes] = []
        for partition in sorted(metadata.topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            offset = low
            while offset < high:
                message = consumer.poll(timeout_s)
                if message is None:
                    raise TimeoutError(f"{topic}/{partition}: no message at offset {offset} within {timeout_s} s")
                if message.error() is not None and message.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"{topic}/{partition}: {message.error()}")
                if message.error() is None:
                    values.append(message.value())
                    offset = message.offset() + 1
        return values
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--out", required=True, help="folder for commands.jsonl, faults.jsonl and evidence.jsonl")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for topic, name in FILES.items():
        values = read_topic(args.bootstrap, topic)
        if topic == COMMANDS_TOPIC:
            values.sort(key=lambda value: msgspec.json.decode(value)["ts"])
            for value in values:
                command = msgspec.json.decode(value)
                codes = ", ".join(reason["code"] for reason in command["reasons"])
                print(f"  {command['kind']:<9} {command['permit']:<7} {' '.join(command['targets']):<10} {codes}")
        (out / name).write_bytes(b"".join(value + b"\n" for value in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
