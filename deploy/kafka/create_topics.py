#!/usr/bin/env python3
"""Create the interlock's Kafka topics from topics.toml: makes the missing ones, reports the ones that differ.

Idempotent: topics that exist are never changed or deleted, only compared, since altering retention
or partitions of a safety topic should be a deliberate act. Exit status: 0 when every topic exists
as defined, 1 when a topic differs (or could not be created), 2 on a usage or connection error.

    python deploy/kafka/create_topics.py --dry-run
    python deploy/kafka/create_topics.py --bootstrap kafka-1:9092,kafka-2:9092 --config client.properties

`--config` is a librdkafka properties file (`key=value` lines, `#` comments) passed to the
AdminClient as it is: TLS (`security.protocol=SSL`, `ssl.ca.location`, ...) and SASL settings go there.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

TOPICS_FILE = Path(__file__).resolve().with_name("topics.toml")


class TopicPlan:
    """One topic as topics.toml defines it: partitions, replication factor and topic configs."""

    def __init__(self, name: str, kind: str, partitions: int, replication_factor: int, config: dict[str, str]) -> None:
        self.name = name
        self.kind = kind
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.config = config

    def describe(self) -> str:
        settings = " ".join(f"{key}={value}" for key, value in sorted(self.config.items()))
        return f"{self.name} ({self.kind}): partitions={self.partitions} replication={self.replication_factor} {settings}"


def load_plan(path: Path = TOPICS_FILE) -> list[TopicPlan]:
    """Read topics.toml; every topic's config is the defaults' config overlaid with its own."""
    with open(path, "rb") as handle:
        document = tomllib.load(handle)
    defaults = document.get("defaults", {})
    default_config = {key: str(value) for key, value in defaults.get("config", {}).items()}
    plan = []
    for name, topic in document["topics"].items():
        partitions = int(topic["partitions"])
        replication = int(topic.get("replication_factor", defaults.get("replication_factor", 3)))
        if partitions < 1 or replication < 1:
            raise ValueError(f"{path}: topic {name} needs at least 1 partition and 1 replica")
        config = dict(default_config)
        config.update({key: str(value) for key, value in topic.get("config", {}).items()})
        plan.append(TopicPlan(name, str(topic.get("kind", "stream")), partitions, replication, config))
    return plan


def read_client_config(path: str | None) -> dict[str, str]:
    """A librdkafka properties file as a dict: `key=value` per line; blank lines and `#` comments skipped."""
    if path is None:
        return {}
    settings = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"{path}:{number}: expected key=value, got {line!r}")
            settings[key.strip()] = value.strip()
    return settings


def differences(plan: TopicPlan, partitions: int, replication_factor: int, config: dict[str, str]) -> list[str]:
    """What an existing topic (its partitions, replication and current configs) has that the plan does not."""
    found = []
    if partitions != plan.partitions:
        found.append(f"partitions {partitions}, planned {plan.partitions}")
    if replication_factor != plan.replication_factor:
        found.append(f"replication factor {replication_factor}, planned {plan.replication_factor}")
    for key, wanted in sorted(plan.config.items()):
        actual = config.get(key)
        if actual != wanted:
            found.append(f"{key}={actual if actual is not None else '(unset)'}, planned {wanted}")
    return found


def print_plan(plan: list[TopicPlan]) -> None:
    print(f"plan: {len(plan)} topics (dry run, no broker contacted)")
    for topic in plan:
        print(f"  {topic.describe()}")


def apply_plan(plan: list[TopicPlan], admin: Any, timeout_s: float) -> int:
    """Create the missing topics and compare the existing ones; returns the exit status."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

    metadata = admin.list_topics(timeout=timeout_s)
    status = 0
    missing = [topic for topic in plan if topic.name not in metadata.topics]
    if missing:
        futures = admin.create_topics(
            [NewTopic(t.name, num_partitions=t.partitions, replication_factor=t.replication_factor, config=t.config)
             for t in missing],
            request_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result()
                print(f"created {name}")
            except KafkaException as error:
                print(f"FAILED to create {name}: {error.args[0]}")
                status = 1
    existing = [topic for topic in plan if topic.name in metadata.topics]
    if existing:
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t.name) for t in existing],
                                         request_timeout=timeout_s)
        described = {resource.name: future for resource, future in futures.items()}
        for topic in existing:
            partitions = metadata.topics[topic.name].partitions
            replication = min((len(p.replicas) for p in partitions.values()), default=0)
            try:
                entries = described[topic.name].result()
            except KafkaException as error:
                print(f"FAILED to read the configs of {topic.name}: {error.args[0]}")
                status = 1
                continue
            config = {key: entry.value for key, entry in entries.items()}
            found = differences(topic, len(partitions), replication, config)
            if found:
                status = 1
                print(f"DIFFERS {topic.name}: " + "; ".join(found))
            else:
                print(f"ok {topic.name}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="bootstrap servers, host:port[,host:port...]")
    parser.add_argument("--config", help="librdkafka properties file for TLS/SASL and other client settings")
    parser.add_argument("--topics", default=str(TOPICS_FILE), help="topic definitions (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; contact no broker")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broker (default 30)")
    args = parser.parse_args(argv)
    try:
        plan = load_plan(Path(args.topics))
        client_config = read_client_config(args.config)
    except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as error:
        print(f"create_topics: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print_plan(plan)
        return 0
    if not args.bootstrap and "bootstrap.servers" not in client_config:
        parser.error("--bootstrap (or bootstrap.servers in --config) is needed unless --dry-run")
    if args.bootstrap:
        client_config["bootstrap.servers"] = args.bootstrap
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        return apply_plan(plan, AdminClient(client_config), args.timeout)
    except KafkaException as error:
        print(f"create_topics: cannot talk to Kafka at {client_config['bootstrap.servers']}: {error.args[0]}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
