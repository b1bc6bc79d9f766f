"""Device sequence numbers (uint16, wrapping 65535 -> 0): drop duplicates and replays, count gaps, notice restarts."""

from __future__ import annotations

import msgspec

NEW = 0
DUPLICATE = 1
RESTART = 2

_MODULUS = 65536
_HALF = _MODULUS // 2


class SequenceState(msgspec.Struct, gc=False):
    """The last accepted sequence number and the device time it came with."""

    seq: int
    device_ts: int


def check_sequence(state: SequenceState | None, seq: int, device_ts: int) -> tuple[int, int]:
    """(verdict, messages lost). A number at most half the ring behind is a duplicate or replay,
    unless the device clock moved forward: then the device restarted its counter."""
    if state is None:
        return NEW, 0
    ahead = (seq - state.seq) % _MODULUS
    if ahead == 0 or ahead >= _HALF:
        if device_ts > state.device_ts:
            return RESTART, 0
        return DUPLICATE, 0
    return NEW, ahead - 1
