"""Kafka for live runs: the input topics as a Bytewax source of record chunks, the outputs as a Bytewax sink, and a
dev broker (librdkafka's in-memory mock cluster) that stands in for the site's Kafka.

Source. Every Kafka partition of the input topics is a Bytewax partition
(`"gas.readings/2"`) with its own consumer, so partitions spread over the
workers of a cluster and recovery snapshots the next offset of each one: a
restart resumes exactly after the last record handed to the dataflow. Offsets
live only in Bytewax's recovery store; no consumer group commits anything. On
a fresh start (no snapshot) the compacted tables (§5-§8) are read from the
beginning, because their history is the current state; the streams start at
their end by default, because replaying days of old telemetry would send
commands for situations long gone (`streams_from="beginning"` reads them
too, as the dev tools and tests do). Each `next_batch` hands over at most one
chunk of up to `batch_records` records; it never blocks.

Order. Within a partition records arrive in offset order; across partitions
they arrive as they are fetched, not by timestamp. A source that keeps up
interleaves them within a few milliseconds; a backlog (start-up before the
consumers fetch, a restart, lag) comes partition by partition, up to a chunk
at a time, so the record clock can run ahead of records still queued on other
partitions. `on_caught_up` tells when every partition has reached its end.

Sink. One idempotent producer per worker; every batch is flushed before the
next is taken, so no command waits in a buffer, and a failed delivery stops
the dataflow (the PLC watchdogs then drop every enable). Outputs without a key
(the evidence chain) all go to partition 0 so the topic keeps the chain's order.

Topics. The mock cluster creates a topic (4 partitions) on the first produce
or on a metadata request that names it; it cannot create topics through the
admin API. The source therefore never waits for a topic: one missing at start
is read as `missing_topic_partitions` partitions that begin delivering once
the topic appears, and a topic that later has more partitions than this run
reads stops the dataflow with a message to restart it (a partition nobody
reads would be evidence unseen).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from interlock.site import COMMANDS_TOPIC, EVIDENCE_TOPIC, FAULTS_TOPIC, Output
from schemas.envelope import TOPICS, Record

Chunk = list[Record]
KafkaSettings = Mapping[str, Any]
"""librdkafka properties (https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md), e.g. TLS/SASL."""

OUTPUT_TOPICS = (COMMANDS_TOPIC, FAULTS_TOPIC, EVIDENCE_TOPIC)
"""The topics the interlock writes (protocols §10)."""

TABLE_TOPICS = frozenset({"cmdb.devices", "gis.zones", "hr.qualifications", "ptw.permits"})
"""The compacted tables of protocols §0: the latest row per key is the state, so a fresh start reads them whole."""

BATCH_RECORDS = 1000
"""Records per chunk at most: the figure the Bytewax maintainers measured Kafka ingest with."""

FETCH_WAIT_MS = 10
"""How long a broker holds a fetch on a quiet partition; librdkafka's 500 ms default would delay every decision."""

IDLE_POLL_MS = 5
"""How soon an idle partition asks its consumer again; many partitions polled every millisecond would burn a core."""

MOCK_PARTITIONS = 4
"""Partitions of a topic the mock cluster creates by itself (librdkafka's fixed default)."""

STREAMS_FROM = ("end", "beginning")

LIBRDKAFKA_LOG = logging.getLogger("dataflows.kafka_io.librdkafka")
"""Where the Kafka clients' own log lines go (librdkafka writes to stderr otherwise)."""

LOG = logging.getLogger(__name__)

_PARTITION_STATS_MS = 10_000
_WAITING_FOR_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION})


# ---------------------------------------------------------------------- settings


def settings_from_pairs(pairs: Iterable[str] | None) -> dict[str, str]:
    """`KEY=VALUE` strings (kcat's `-X`) as librdkafka settings."""
    settings: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"-X {pair!r}: expected KEY=VALUE, e.g. -X security.protocol=SASL_SSL")
        settings[key.strip()] = value
    return settings


def bootstrap_of(client: Producer | Consumer, timeout_s: float = 5.0) -> str:
    """The broker addresses a client sees, as a bootstrap string (`host:port,...`), in broker id order."""
    brokers = client.list_topics(timeout=timeout_s).brokers
    return ",".join(f"{brokers[b].host}:{brokers[b].port}" for b in sorted(brokers))


# ---------------------------------------------------------------------- dev broker


@contextmanager
def dev_broker(brokers: int = 3, topics: Iterable[str] = TOPICS + OUTPUT_TOPICS) -> Iterator[str]:
    """An in-memory Kafka cluster on loopback ports for the duration of the block; yields its bootstrap string.

    The cluster lives inside a producer handle of this process and is lost when the block ends. `topics` are created
    up front (4 partitions each) by asking for their metadata, which the mock answers by creating them.
    """
    if brokers < 1:
        raise ValueError(f"brokers={brokers}: a cluster needs at least 1 broker")
    host = Producer({
        "bootstrap.servers": "mock:9092",  # replaced by the mock cluster's own listeners
        "test.mock.num.brokers": brokers,
        "log_level": 3,  # the mock announces itself at notice level on every start
        "client.id": "interlock-dev-broker",
    })
    try:
        bootstrap = bootstrap_of(host)
        for topic in topics:
            create_topic_on_mock(host, topic)
        yield bootstrap
    finally:
        del host  # destroying the handle shuts the cluster down


def create_topic_on_mock(client: Producer, topic: str, timeout_s: float = 5.0) -> int:
    """Make the mock cluster create `topic` by asking for its metadata; returns its partition count."""
    deadline = time.monotonic() + timeout_s
    while True:
        metadata = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is not None and metadata.error is None and metadata.partitions:
            return len(metadata.partitions)
        if time.monotonic() > deadline:
            problem = metadata.error if metadata is not None else "no metadata"
            raise RuntimeError(f"the dev broker did not create topic {topic!r} within {timeout_s} s: {problem}")
        time.sleep(0.05)


def add_dev_broker_command(commands: argparse._SubParsersAction) -> None:
    """Register `interlock dev-broker [--brokers N] [--no-topics]` on the `interlock` subcommands."""
    p = commands.add_parser(
        "dev-broker", help="run an in-memory Kafka (librdkafka mock cluster) for development; prints its bootstrap",
    )
    p.add_argument("--brokers", type=int, default=3, help="number of mock brokers (default 3)")
    p.add_argument(
        "--no-topics", dest="create_topics", action="store_false",
        help="do not create the protocol topics up front (they then appear on first produce)",
    )
    p.set_defaults(run=run_dev_broker)


def run_dev_broker(args: argparse.Namespace) -> int:
    """Start the mock cluster, print its bootstrap on one line of standard output, and serve until SIGINT/SIGTERM."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    topics = TOPICS + OUTPUT_TOPICS if args.create_topics else ()
    try:
        with dev_broker(args.brokers, topics) as bootstrap:
            print(bootstrap, flush=True)
            created = f"topics {', '.join(topics)} created with {MOCK_PARTITIONS} partitions each" if topics else (
                "no topics created; each appears with 4 partitions on its first produce")
            print(
                f"interlock dev-broker: {args.brokers} in-memory mock broker(s) standing in for the site's Kafka; "
                f"{created}. Everything is lost when this process exits (Ctrl-C or SIGTERM).",
                file=sys.stderr, flush=True,
            )
            while not stop.wait(0.5):
                pass
    except (KafkaException, RuntimeError, ValueError) as error:
        print(f"interlock dev-broker: cannot start the mock cluster: {error}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


# ---------------------------------------------------------------------- source


def _partition_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def _split_partition_key(key: str) -> tuple[str, int]:
    topic, _, index = key.rpartition("/")
    return topic, int(index)


class KafkaRecordPartition(StatefulSourcePartition[Chunk, "int | None"]):
    """One Kafka partition read by its own consumer; its snapshot is the next offset to read (None: the beginning)."""

    def __init__(
        self,
        settings: dict[str, Any],
        topic: str,
        partition: int,
        resume_state: int | None,
        fresh_from_end: bool,
        batch_records: int,
        on_records: Callable[[str, int], None] | None,
        on_caught_up: Callable[[str, int], None] | None,
        stop_at_end: bool,
        stop: threading.Event | None,
        listed_partitions: int | None,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._batch_records = batch_records
        self._on_records = on_records
        self._on_caught_up = on_caught_up
        self._caught_up = False
        self._stop_at_end = stop_at_end
        self._stop = stop
        self._listed_partitions = listed_partitions
        self._bootstrap = settings.get("bootstrap.servers")
        self._at_end = False
        self._grown_to: int | None = None
        self._awake: datetime.datetime | None = None
        self._idle = datetime.timedelta(milliseconds=IDLE_POLL_MS)
        if listed_partitions is not None:
            settings = {"statistics.interval.ms": _PARTITION_STATS_MS, **settings, "stats_cb": self.watch_partition_count}
        self._consumer = Consumer(settings)
        if resume_state is None and fresh_from_end:
            resume_state = self._end_offset()
        self._next = resume_state
        self._consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING if resume_state is None else resume_state)])

    def _end_offset(self) -> int | None:
        """The partition's current end as a concrete offset, so a snapshot taken before the first record resumes there;
        None (the beginning) for a topic that does not exist yet, since everything it will hold is new."""
        try:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, self._partition), timeout=5.0, cached=False,
            )
        except KafkaException:
            return None
        return high

    def watch_partition_count(self, stats_json: str) -> None:
        """librdkafka statistics callback: note when the topic has more partitions than this run reads."""
        topic = json.loads(stats_json).get("topics", {}).get(self._topic)
        if topic is None:
            return
        count = sum(1 for p in topic.get("partitions", {}) if p != "-1")
        if count > self._listed_partitions:
            self._grown_to = count

    def next_batch(self) -> list[Chunk]:
        if self._at_end or (self._stop is not None and self._stop.is_set()):
            raise StopIteration()
        if self._grown_to is not None:
            raise RuntimeError(
                f"Kafka topic {self._topic!r} now has {self._grown_to} partitions but this run reads the "
                f"{self._listed_partitions} it had at start; restart the dataflow (it resumes from its recovery "
                f"snapshots) so that every partition is read"
            )
        messages = self._consumer.consume(self._batch_records, 0)
        if not messages:
            self._awake = datetime.datetime.now(datetime.timezone.utc) + self._idle
            return []
        self._awake = None
        topic, partition = self._topic, self._partition
        chunk: Chunk = []
        append = chunk.append
        for message in messages:
            if message.error() is not None:
                self._on_error(message)
                continue
            kind, ts = message.timestamp()
            key = message.key()
            append(Record(
                topic, partition, message.offset(),
                ts if kind else time.time_ns() // 1_000_000,  # no broker time (old message format): arrival here
                None if key is None else key.decode("utf-8", "replace"),
                message.value(),
            ))
        if not chunk:
            self._awake = datetime.datetime.now(datetime.timezone.utc) + self._idle
            return []
        self._next = chunk[-1].offset + 1
        if self._on_records is not None:
            self._on_records(topic, len(chunk))
        return [chunk]

    def _on_error(self, message: Message) -> None:
        error = message.error()
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            self._at_end = self._stop_at_end
            if not self._caught_up:
                self._caught_up = True
                if self._on_caught_up is not None:
                    self._on_caught_up(self._topic, self._partition)
        elif code not in _WAITING_FOR_TOPIC:
            raise RuntimeError(
                f"cannot read Kafka topic {self._topic!r} partition {self._partition} from {self._bootstrap}: "
                f"{error.str()}; check that the topic exists and that the consumer settings (security.protocol, "
                f"sasl.*, ssl.*) grant read access"
            )

    def next_awake(self) -> datetime.datetime | None:
        return self._awake

    def snapshot(self) -> int | None:
        return self._next

    def close(self) -> None:
        self._consumer.close()


class KafkaRecordSource(FixedPartitionedSource[Chunk, "int | None"]):
    """The interlock's input topics as chunks of `schemas.envelope.Record`, one Bytewax partition per Kafka partition.

    `settings` pass through to every consumer (TLS, SASL, or any librdkafka property, overriding the defaults here).
    `on_records(topic, count)` is called for every chunk handed over, e.g. to count records per topic;
    `on_caught_up(topic, partition)` the first time a partition has handed over everything it held, e.g. to know when
    the tables are loaded or that every consumer is fetching. `stop_at_end` ends each partition when it reaches its end
    (tests, draining a topic); `stop`, once set, ends them all.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str] = TOPICS,
        *,
        settings: KafkaSettings | None = None,
        batch_records: int = BATCH_RECORDS,
        streams_from: str = "end",
        on_records: Callable[[str, int], None] | None = None,
        on_caught_up: Callable[[str, int], None] | None = None,
        stop_at_end: bool = False,
        stop: threading.Event | None = None,
        missing_topic_partitions: int = MOCK_PARTITIONS,
        metadata_timeout_s: float = 30.0,
    ) -> None:
        if isinstance(topics, str):
            raise TypeError(f"topics={topics!r}: give a sequence of topic names, e.g. ({topics!r},)")
        if streams_from not in STREAMS_FROM:
            raise ValueError(f"streams_from={streams_from!r}: use 'end' (live) or 'beginning' (read the retained history)")
        if batch_records < 1:
            raise ValueError(f"batch_records={batch_records}: a chunk holds at least 1 record")
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.settings = dict(settings or {})
        self.batch_records = batch_records
        self.streams_from = streams_from
        self.on_records = on_records
        self.on_caught_up = on_caught_up
        self.stop_at_end = stop_at_end
        self.stop = stop
        self.missing_topic_partitions = missing_topic_partitions
        self.metadata_timeout_s = metadata_timeout_s
        self._listed: dict[str, int] = {}

    def consumer_settings(self, client_id: str) -> dict[str, Any]:
        """The settings every consumer of this source starts from, then `settings` on top."""
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": "interlock",  # required by librdkafka; nothing is committed: offsets live in Bytewax recovery
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # an offset gone by retention resumes at the oldest record still there
            "fetch.wait.max.ms": FETCH_WAIT_MS,
            "queued.max.messages.kbytes": 8192,  # prefetch per partition; librdkafka's 64 MB times every partition is a lot
            "enable.partition.eof": True,  # tells when a partition is caught up
            "client.id": client_id,
            "logger": LIBRDKAFKA_LOG,
            **self.settings,
        }

    def list_parts(self) -> list[str]:
        """Every partition of every input topic; a topic that does not exist yet counts `missing_topic_partitions`."""
        lister = Consumer(self.consumer_settings("interlock-partition-lister"))
        try:
            deadline = time.monotonic() + self.metadata_timeout_s
            while True:
                try:
                    metadata = lister.list_topics(timeout=min(5.0, self.metadata_timeout_s))
                    break
                except KafkaException as error:
                    if time.monotonic() >= deadline:
                        raise RuntimeError(
                            f"cannot list the topics of Kafka at {self.bootstrap} within {self.metadata_timeout_s} s: "
                            f"{error}; check the bootstrap address and the security settings"
                        ) from error
        finally:
            lister.close()
        parts: list[str] = []
        for topic in self.topics:
            found = metadata.topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                indexes = sorted(found.partitions)
            else:
                indexes = list(range(self.missing_topic_partitions))
                LOG.warning(
                    "Kafka topic %r does not exist yet at %s; reading it as %d partitions once it appears",
                    topic, self.bootstrap, self.missing_topic_partitions,
                )
            self._listed[topic] = len(indexes)
            parts.extend(_partition_key(topic, index) for index in indexes)
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> KafkaRecordPartition:
        topic, partition = _split_partition_key(for_part)
        if topic not in self.topics:
            raise ValueError(f"partition {for_part!r} is not of the topics this source reads ({', '.join(self.topics)})")
        return KafkaRecordPartition(
            self.consumer_settings(f"interlock-{for_part}"), topic, partition, resume_state,
            fresh_from_end=topic not in TABLE_TOPICS and self.streams_from == "end",
            batch_records=self.batch_records, on_records=self.on_records, on_caught_up=self.on_caught_up,
            stop_at_end=self.stop_at_end, stop=self.stop,
            # partition 0 of each topic watches the topic's partition count
            listed_partitions=self._listed.get(topic, self.missing_topic_partitions) if partition == 0 else None,
        )


# ---------------------------------------------------------------------- sink


class KafkaOutputPartition(StatelessSinkPartition[tuple[str, list[Output]]]):
    """One worker's producer: sends each batch of outputs, then flushes; a failed delivery raises."""

    def __init__(
        self, settings: dict[str, Any], on_output: Callable[[Output], None] | None, flush_timeout_s: float,
    ) -> None:
        self._on_output = on_output
        self._flush_timeout_s = flush_timeout_s
        self._bootstrap = settings.get("bootstrap.servers")
        self._failures: list[str] = []
        self._producer = Producer({**settings, "on_delivery": self.record_failure})

    def record_failure(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka delivery report (configured for failures only)."""
        if error is not None:
            self._failures.append(f"{message.topic()} key {message.key()!r}: {error.str()}")

    def write_batch(self, items: list[tuple[str, list[Output]]]) -> None:
        produce = self._produce
        on_output = self._on_output
        for _, outputs in items:
            for output in outputs:
                if on_output is not None:
                    on_output(output)
                produce(output)
        self._flush()

    def _produce(self, output: Output) -> None:
        while True:
            try:
                if output.key is None:
                    self._producer.produce(output.topic, output.value, partition=0)
                else:
                    self._producer.produce(output.topic, output.value, output.key)
                return
            except BufferError:
                self._producer.poll(0.05)  # the local queue is full: let deliveries drain it

    def _flush(self) -> None:
        waiting = self._producer.flush(self._flush_timeout_s)
        if waiting or self._failures:
            failures, self._failures = self._failures, []
            first = f"; first failure: {failures[0]}" if failures else ""
            raise RuntimeError(
                f"{waiting + len(failures)} interlock outputs were not delivered to Kafka at {self._bootstrap} within "
                f"{self._flush_timeout_s} s{first}; check the brokers and the producer settings (the interlock stops, "
                f"so the PLC watchdogs drop every enable)"
            )

    def close(self) -> None:
        self._flush()


class KafkaOutputSink(DynamicSink[tuple[str, list[Output]]]):
    """Writes the dataflow's `(shard, [Output])` items to their topics; one idempotent producer per worker.

    `on_output(output)` is called for every output in order just before it is handed to the producer, so a PLC writer
    driven by it does not wait for the brokers. `settings` pass through to the producer over the defaults here.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        settings: KafkaSettings | None = None,
        on_output: Callable[[Output], None] | None = None,
        flush_timeout_s: float = 10.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.settings = dict(settings or {})
        self.on_output = on_output
        self.flush_timeout_s = flush_timeout_s

    def producer_settings(self, client_id: str) -> dict[str, Any]:
        """The settings each worker's producer starts from, then `settings` on top."""
        return {
            "bootstrap.servers": self.bootstrap,
            "enable.idempotence": True,  # acks=all, no duplicates or reordering on retries
            "linger.ms": 5,  # batches a burst of outputs; the flush after every batch sends at once anyway
            "delivery.report.only.error": True,
            "client.id": client_id,
            "logger": LIBRDKAFKA_LOG,
            **self.settings,
        }

    def build(self, step_id: str, worker_index: int, worker_count: int) -> KafkaOutputPartition:
        return KafkaOutputPartition(
            self.producer_settings(f"interlock-{step_id}-{worker_index}"), self.on_output, self.flush_timeout_s,
        )
