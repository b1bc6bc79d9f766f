"""The replay sink: commands.jsonl, faults.jsonl and evidence.jsonl in an output folder, one JSON object per line."""

from __future__ import annotations

import os
from typing import BinaryIO

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from interlock.site import COMMANDS_TOPIC, EVIDENCE_TOPIC, FAULTS_TOPIC, Output

FILES = {COMMANDS_TOPIC: "commands.jsonl", FAULTS_TOPIC: "faults.jsonl", EVIDENCE_TOPIC: "evidence.jsonl"}


class ReplayFilesPartition(StatelessSinkPartition[tuple[str, list[Output]]]):
    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self._files: dict[str, BinaryIO] = {
            topic: open(os.path.join(folder, name), "wb") for topic, name in FILES.items()
        }

    def write_batch(self, items: list[tuple[str, list[Output]]]) -> None:
        files = self._files
        for _, outputs in items:
            for output in outputs:
                handle = files[output.topic]
                handle.write(output.value)
                handle.write(b"\n")

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


class ReplayFilesSink(DynamicSink[tuple[str, list[Output]]]):
    """Writes a replay's outputs to `folder` (single worker: the files are one ordered stream)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def build(self, step_id: str, worker_index: int, worker_count: int) -> ReplayFilesPartition:
        if worker_count != 1:
            raise ValueError(f"a replay writes one ordered set of files; run it with 1 worker, not {worker_count}")
        return ReplayFilesPartition(self.folder)
