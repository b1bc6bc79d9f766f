"""The tamper-evident evidence chain: every command and fault, in order, each entry hashing the one before it.

An entry is `{"seq":n,"type":"command"|"fault","record":{...},"prev":"<hex>","hash":"<hex>"}`;
`hash` is the SHA-256 of the entry without `hash`, encoded as compact JSON with
keys sorted at every level, so any edit, deletion, insertion or reordering
breaks the chain at the first record touched.
"""

from __future__ import annotations

import hashlib

import msgspec

GENESIS = "0" * 64


def canonical(value: object) -> bytes:
    """Compact JSON with keys sorted at every level: the bytes that are hashed."""
    return msgspec.json.encode(value, order="sorted")


def entry_hash(seq: int, kind: str, record: msgspec.Raw | object, prev: str) -> str:
    body = canonical({"prev": prev, "record": record, "seq": seq, "type": kind})
    return hashlib.sha256(body).hexdigest()


class EvidenceEntry(msgspec.Struct, frozen=True):
    """One line of `interlock.evidence`."""

    seq: int
    type: str
    record: msgspec.Raw
    prev: str
    hash: str


class EvidenceChain:
    """Appends commands and faults to the chain; its state is the last sequence number and hash."""

    def __init__(self, seq: int = 0, prev: str = GENESIS) -> None:
        self.seq = seq
        self.prev = prev

    def append(self, kind: str, record: msgspec.Struct) -> bytes:
        """The evidence line for `record` (a command or a fault), chained to the previous one."""
        self.seq += 1
        body = msgspec.Raw(canonical(record))
        digest = entry_hash(self.seq, kind, body, self.prev)
        line = msgspec.json.encode(EvidenceEntry(self.seq, kind, body, self.prev, digest))
        self.prev = digest
        return line


class BrokenLink(msgspec.Struct, frozen=True):
    """Where and why a chain does not verify."""

    line: int
    seq: int | None
    problem: str


_ANY = msgspec.json.Decoder()


class ChainCheck(msgspec.Struct, frozen=True):
    """What a verified chain held: its entries, the repeats skipped, and the restarts it branched at."""

    entries: int
    repeats: int
    restarts: int


def verify_lines(lines: list[bytes]) -> BrokenLink | None:
    """Check a whole chain from the genesis; returns the first broken entry, or None when every link holds."""
    checked = check_chain(lines)
    return checked if isinstance(checked, BrokenLink) else None


def check_chain(lines: list[bytes]) -> BrokenLink | ChainCheck:
    """Check a chain from the genesis as a live interlock writes it across restarts.

    Each entry's hash must match its content, and its `prev` the hash of the entry before it. After a restart from a
    snapshot, the interlock re-sends the entries decided after the snapshot (the same entries: skipped as repeats)
    and may then continue from an earlier entry than the last one sent (a restart branch: an entry whose `prev` is the
    hash of an earlier entry with the sequence number before it). Anything else (an edited, inserted or missing entry)
    breaks the chain.
    """
    hash_at: dict[int, str] = {0: GENESIS}
    last_seq = 0
    repeats = restarts = entries = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = _ANY.decode(line)
        except msgspec.DecodeError as error:
            return BrokenLink(number, None, f"not JSON: {error}")
        if not isinstance(entry, dict) or not {"seq", "type", "record", "prev", "hash"} <= entry.keys():
            return BrokenLink(number, None, "not an evidence entry: needs seq, type, record, prev and hash")
        seq = entry["seq"]
        if not isinstance(seq, int) or seq < 1:
            return BrokenLink(number, None, f"sequence number {seq!r} is not a positive integer")
        digest = entry_hash(seq, entry["type"], entry["record"], entry["prev"])
        if digest != entry["hash"]:
            return BrokenLink(number, seq, f"hash does not match the entry's content (recomputed {digest[:16]}...)")
        if seq <= last_seq and hash_at.get(seq) == digest:
            repeats += 1
            continue
        if seq > last_seq + 1:
            return BrokenLink(number, seq, f"sequence number {seq} where {last_seq + 1} was expected (a record missing or inserted)")
        if entry["prev"] != hash_at.get(seq - 1):
            return BrokenLink(number, seq, "prev does not match the hash of the entry before it")
        if seq <= last_seq:
            restarts += 1
            for later in range(seq, last_seq + 1):
                hash_at.pop(later, None)
        hash_at[seq] = digest
        last_seq = seq
        entries += 1
    return ChainCheck(entries, repeats, restarts)
