"""The Kafka record as the interlock sees it, and the `kcat -C -J` envelope recordings are made of (protocols §0)."""

from __future__ import annotations

import msgspec

TOPICS = (
    "rtls.position",
    "gas.readings",
    "harness.status",
    "plc.state",
    "cmdb.devices",
    "gis.zones",
    "hr.qualifications",
    "ptw.permits",
    "ptw.actions",
)
"""The input topics the interlock reads."""


class Record(msgspec.Struct, frozen=True, gc=False):
    """One input record: where it came from, the broker's timestamp (ms), key and raw payload (`None`: tombstone)."""

    topic: str
    partition: int
    offset: int
    ts: int
    key: str | None
    payload: str | bytes | None


class UnreadableRecord(msgspec.Struct, frozen=True, gc=False):
    """A recording line that is not a kcat envelope; it keeps its line number so the fault can point at it."""

    line: int
    ts: int
    problem: str


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """One kcat -J line: the payload is the producer's bytes as a string, None for a tombstone; other fields ignored."""

    topic: str
    partition: int
    offset: int
    ts: int
    key: str | None = None
    payload: str | None = None


class _EmbeddedEnvelope(msgspec.Struct, frozen=True, gc=False):
    """An envelope whose payload was written as JSON rather than as a string (hand-made recordings)."""

    topic: str
    partition: int
    offset: int
    ts: int
    payload: msgspec.Raw
    key: str | None = None


_ENVELOPE = msgspec.json.Decoder(Envelope)
_EMBEDDED = msgspec.json.Decoder(_EmbeddedEnvelope)


def read_envelope(line: bytes | str, number: int, previous_ts: int) -> Record | UnreadableRecord:
    """Decode one recording line; a bad line becomes an `UnreadableRecord` stamped with the previous record's time.

    kcat writes the payload as a string; a payload written as a JSON object or array is taken as those bytes.
    """
    try:
        e = _ENVELOPE.decode(line)
    except msgspec.ValidationError as error:
        try:
            embedded = _EMBEDDED.decode(line)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return UnreadableRecord(number, previous_ts, str(error))
        raw = bytes(embedded.payload)
        return Record(embedded.topic, embedded.partition, embedded.offset, embedded.ts, embedded.key, raw)
    except msgspec.DecodeError as error:
        return UnreadableRecord(number, previous_ts, str(error))
    return Record(e.topic, e.partition, e.offset, e.ts, e.key, e.payload)
