"""Recordings (`kcat -C -J` captures) as a Bytewax source: read, put in record-time order, and fed in chunks.

A capture of several topics interleaves partitions in whatever order the
consumer fetched them, so a replay orders records by their Kafka timestamp
(the site broker's clock, protocols §0), keeping the file order among equal
timestamps. A line that is not an envelope is kept as an `UnreadableRecord` at
the time of the record before it, so its fault appears where it happened.
"""

from __future__ import annotations

import sys
from typing import BinaryIO, Callable, Iterable

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from schemas.envelope import Record, UnreadableRecord, read_envelope

CHUNK_RECORDS = 1024
"""Records per dataflow item: large enough to amortise Bytewax's per-item cost, small enough for steady progress."""

Chunk = list[Record | UnreadableRecord]


def read_recording(stream: BinaryIO) -> list[Record | UnreadableRecord]:
    """Every line of a recording as a record, ordered by record time (stable); blank lines are skipped."""
    records: list[Record | UnreadableRecord] = []
    previous_ts = 0
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        record = read_envelope(line, number, previous_ts)
        previous_ts = record.ts
        records.append(record)
    records.sort(key=_record_time)
    return records


def _record_time(record: Record | UnreadableRecord) -> int:
    return record.ts


def open_recording(path: str) -> BinaryIO:
    """The recording at `path`, or standard input for `-`."""
    return sys.stdin.buffer if path == "-" else open(path, "rb")


def chunked(records: list[Record | UnreadableRecord], size: int = CHUNK_RECORDS) -> list[Chunk]:
    return [records[start:start + size] for start in range(0, len(records), size)]


class RecordingPartition(StatefulSourcePartition[Chunk, int]):
    def __init__(self, chunks: list[Chunk], position: int, progress: Callable[[int], None] | None) -> None:
        self._chunks = chunks
        self._position = position
        self._progress = progress

    def next_batch(self) -> Iterable[Chunk]:
        if self._position >= len(self._chunks):
            raise StopIteration()
        chunk = self._chunks[self._position]
        self._position += 1
        if self._progress is not None:
            self._progress(len(chunk))
        return [chunk]

    def snapshot(self) -> int:
        return self._position


class RecordingSource(FixedPartitionedSource[Chunk, int]):
    """Feeds an ordered recording into a dataflow as chunks of records, one partition, resumable by chunk index."""

    def __init__(self, records: list[Record | UnreadableRecord], progress: Callable[[int], None] | None = None,
                 chunk_records: int = CHUNK_RECORDS) -> None:
        self._chunks = chunked(records, chunk_records)
        self._progress = progress

    def list_parts(self) -> list[str]:
        return ["recording"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> RecordingPartition:
        return RecordingPartition(self._chunks, resume_state or 0, self._progress)
