"""Which Bytewax worker runs a stateful step's key, so the decision shards can be named to land one per worker.

Bytewax 0.21 gives a key to worker `SipHash-1-3(key's UTF-8 bytes, 0xFF) % workers` (Rust's `DefaultHasher` with
zero keys hashing a `String`). Shard keys named by `zones-{i}` alone would often share a worker; `shard_keys`
picks, for shard i, the first of `zones-{i}`, `zones-{i}.1`, ... that lands on worker i % workers.
tests/test_worker_placement.py checks this against Bytewax itself, so an upgrade that changes it is caught.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1


def _rotl(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & _MASK


def siphash13(data: bytes) -> int:
    """SipHash-1-3 with zero keys (what Rust's `DefaultHasher::default()` computes)."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    length = len(data)
    whole = length - length % 8
    for at in range(0, whole, 8):
        word = int.from_bytes(data[at:at + 8], "little")
        v3 ^= word
        sip_round()
        v0 ^= word
    last = ((length & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    sip_round()
    sip_round()
    sip_round()
    return v0 ^ v1 ^ v2 ^ v3


def worker_of_key(key: str, workers: int) -> int:
    """The index of the worker that runs `key` of a stateful step in a cluster of `workers` workers."""
    return siphash13(key.encode() + b"\xff") % workers


def shard_keys(shards: int, workers: int) -> list[str]:
    """The dataflow key of each decision shard, shard i on worker i % workers."""
    keys = []
    for shard in range(shards):
        names = (f"zones-{shard}" if n == 0 else f"zones-{shard}.{n}" for n in range(10_000))
        keys.append(next(name for name in names if worker_of_key(name, workers) == shard % workers))
    return keys
