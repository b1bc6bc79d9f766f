"""Replay throughput and decision latency through the real dataflow: from a record entering the dataflow to its outputs written.

    python -m bench.replay_latency RECORDING [--chunk N]

Each chunk carries the time the source handed it to Bytewax; the instrumented
interlock step passes that time along with the chunk's outputs, and the sink
measures when it has written them. Every record of a chunk is decided within
its chunk's latency; the report gives the distribution over chunks and over
the commands written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from bytewax.operators import StatefulBatchLogic
from bytewax.testing import run_main

from dataflows.interlock_flow import SiteLogic, build_flow
from dataflows.recording import CHUNK_RECORDS, RecordingSource, RecordingPartition, read_recording
from dataflows.replay_files import ReplayFilesSink, ReplayFilesPartition
from interlock.site import COMMANDS_TOPIC


class StampedChunk(list):
    """A chunk of records with the time (perf_counter_ns) it entered the dataflow."""

    entered = 0


class _StampedPartition(RecordingPartition):
    def next_batch(self):
        chunks = super().next_batch()
        stamped = []
        for chunk in chunks:
            item = StampedChunk(chunk)
            item.entered = time.perf_counter_ns()
            stamped.append(item)
        return stamped


class _StampedSource(RecordingSource):
    def build_part(self, step_id, for_part, resume_state):
        return _StampedPartition(self._chunks, resume_state or 0, None)


class _StampedLogic(SiteLogic):
    """Emits (entered, outputs) per chunk instead of one list per batch."""

    def on_batch(self, chunks):
        return [(chunk.entered, self.site.process_batch(chunk)) for chunk in chunks], StatefulBatchLogic.RETAIN


class _LatencyFiles(ReplayFilesPartition):
    def __init__(self, folder: str, chunks: list[int], commands: list[int]) -> None:
        super().__init__(folder)
        self.chunks, self.commands = chunks, commands

    def write_batch(self, items) -> None:
        super().write_batch([(key, outputs) for key, (_, outputs) in items])
        now = time.perf_counter_ns()
        for _, (entered, outputs) in items:
            self.chunks.append(now - entered)
            self.commands.extend(now - entered for o in outputs if o.topic == COMMANDS_TOPIC)


class _LatencySink(ReplayFilesSink):
    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        self.chunks: list[int] = []
        self.commands: list[int] = []

    def build(self, step_id, worker_index, worker_count):
        return _LatencyFiles(self.folder, self.chunks, self.commands)


def percentile(values: list[int], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] / 1e6


def _line(name: str, values: list[int]) -> str:
    return (f"{name:<16} p50 {percentile(values, 0.5):.2f} ms  p99 {percentile(values, 0.99):.2f} ms  "
            f"max {max(values) / 1e6:.2f} ms  (n={len(values):,})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recording")
    parser.add_argument("--chunk", type=int, default=CHUNK_RECORDS, help="records per dataflow item")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with open(args.recording, "rb") as handle:
        records = read_recording(handle)
    read = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as out:
        sink = _LatencySink(out)
        flow_started = time.perf_counter()
        run_main(build_flow(_StampedSource(records, chunk_records=args.chunk), sink, logic=_StampedLogic))
        flow = time.perf_counter() - flow_started
        with open(os.path.join(out, "commands.jsonl"), "rb") as handle:
            commands = sum(1 for _ in handle)
    total = read + flow
    print(f"recording        {args.recording}: {len(records):,} records, {commands:,} commands, chunks of {args.chunk}")
    print(f"read and order   {read:.2f} s")
    print(f"dataflow         {flow:.2f} s  ({len(records) / flow:,.0f} records/s)")
    print(f"end to end       {total:.2f} s  ({len(records) / total:,.0f} records/s)")
    print(_line("per chunk", sink.chunks) + "  record entering the dataflow to its chunk's outputs written")
    if sink.commands:
        print(_line("per command", sink.commands) + "  record entering the dataflow to its command written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
