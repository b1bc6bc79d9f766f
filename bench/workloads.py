"""The inputs every suite measures on: a healthy site of several copies of the incident site, as recording lines and as records.

Built in memory from the scenario (deterministic), cached per size, so every suite of
one gate run measures the same records.
"""

from __future__ import annotations

import functools
import io

from bench.large_site import large_site_scenario
from dataflows.recording import read_recording
from schemas.envelope import Record, UnreadableRecord
from simulators.recording import encode_recording
from simulators.scenario import generate

QUICK = (12, 2.0)
"""copies, minutes of the quick gate (48 zones, about 20,000 records)."""

FULL = (42, 30.0)
"""copies, minutes of the full gate (about 1,030,000 records)."""


@functools.lru_cache(maxsize=4)
def recording_bytes(copies: int, minutes: float) -> bytes:
    """The recording of `copies` healthy site copies over `minutes`, as kcat -J lines."""
    return encode_recording(generate(large_site_scenario(copies, minutes)))


@functools.lru_cache(maxsize=4)
def site_records(copies: int, minutes: float) -> tuple[Record | UnreadableRecord, ...]:
    """The same recording read and ordered as a replay reads it."""
    return tuple(read_recording(io.BytesIO(recording_bytes(copies, minutes))))


def recording_lines(copies: int, minutes: float) -> list[bytes]:
    return recording_bytes(copies, minutes).splitlines()
