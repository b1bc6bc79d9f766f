"""Writing and reading recordings: one `kcat -C -J` envelope per line, in arrival order (protocols §0).

Every topic is written as a single partition 0 whose offsets count up from 0, so a recording
replays exactly as a capture of a fresh single-partition cluster would.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec
from msgspec import Struct

PARTITION = 0


class Record(Struct, frozen=True):
    """A Kafka record before it has an offset: topic, key, arrival time (ms, UTC) and payload text (None: tombstone)."""

    topic: str
    key: str | None
    ts: int
    payload: str | None


class Envelope(Struct):
    """A record as `kcat -C -J` prints it; field order matches kcat's."""

    topic: str
    partition: int
    offset: int
    tstype: str
    ts: int
    broker: int
    key: str | None
    payload: str | None


def envelopes(records: Iterable[Record]) -> list[Envelope]:
    """Put records in arrival order (stable, so equal times keep their order) and number each topic from 0."""
    next_offset: dict[str, int] = {}
    result = []
    for record in sorted(records, key=lambda r: r.ts):
        offset = next_offset.get(record.topic, 0)
        next_offset[record.topic] = offset + 1
        result.append(
            Envelope(
                topic=record.topic,
                partition=PARTITION,
                offset=offset,
                tstype="create",
                ts=record.ts,
                broker=-1,
                key=record.key,
                payload=record.payload,
            )
        )
    return result


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


def encode_recording(records: Iterable[Record]) -> bytes:
    """The recording's bytes: one compact JSON envelope per line, each line ending in a newline."""
    return b"".join(_encoder.encode(envelope) + b"\n" for envelope in envelopes(records))


def write_recording(path: Path, records: Iterable[Record]) -> None:
    """Write the recording to `path`, replacing what was there."""
    Path(path).write_bytes(encode_recording(records))


def read_recording(path: Path) -> list[Envelope]:
    """Read the envelopes of a recording, one per non-empty line."""
    lines = Path(path).read_bytes().splitlines()
    return [_decoder.decode(line) for line in lines if line.strip()]
