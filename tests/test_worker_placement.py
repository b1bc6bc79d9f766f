"""The decision shards' keys land one per Bytewax worker: the placement computed here is the one Bytewax makes."""

from __future__ import annotations

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, cluster_main

from dataflows.worker_placement import shard_keys, worker_of_key

KEYS = [f"zones-{i}" for i in range(12)] + ["router", "plcs", "zones-1.2"]


class _WhereSink(DynamicSink):
    """Notes the worker each key's item was written on (a dynamic sink writes where the item is)."""

    def __init__(self, seen: dict[str, int]) -> None:
        self.seen = seen

    def build(self, step_id, worker_index, worker_count):
        seen = self.seen

        class _Part(StatelessSinkPartition):
            def write_batch(self, items):
                for key, _ in items:
                    seen[key] = worker_index

        return _Part()


class _Echo(op.StatefulBatchLogic):
    def on_batch(self, items):
        return items, op.StatefulBatchLogic.DISCARD

    def snapshot(self):
        return None


def _bytewax_placement(workers: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    flow = Dataflow("placement")
    keyed = op.map("key", op.input("keys", flow, TestingSource(KEYS)), lambda key: (key, key))
    op.output("where", op.stateful_batch("step", keyed, lambda resume: _Echo()), _WhereSink(seen))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return seen


@pytest.mark.parametrize("workers", [2, 3])
def test_the_computed_worker_of_a_key_is_bytewaxs(workers):
    assert _bytewax_placement(workers) == {key: worker_of_key(key, workers) for key in KEYS}


def test_shard_i_lands_on_worker_i_modulo_the_workers():
    assert [worker_of_key(key, 2) for key in shard_keys(5, 2)] == [0, 1, 0, 1, 0]
    assert shard_keys(3, 1) == ["zones-0", "zones-1", "zones-2"]
