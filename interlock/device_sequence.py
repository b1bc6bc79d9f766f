"""Device sequence numbers (uint16, wrapping 65535 -> 0): drop duplicates and replays, count gaps, notice restarts."""

from __future__ import annotations

NEW = 0
DUPLICATE = 1
RESTART = 2

_MODULUS = 65536
_HALF = _MODULUS // 2


MAX_MESSAGES_PER_SECOND = 10
"""No field device reports faster; a jump in sequence numbers faster than this is a counter restart, not a loss."""


def check_sequence(last_seq: int | None, last_ts: int, seq: int, device_ts: int) -> tuple[int, int]:
    """(verdict, messages lost) of `seq` sent at `device_ts` after the last accepted `last_seq` sent at `last_ts`
    (None: nothing accepted yet). A number at most half the ring behind is a duplicate or replay,
    unless the device clock moved forward: then the device restarted its counter. A number ahead by more
    than the device could have sent in the time its clock moved is a restart too."""
    if last_seq is None:
        return NEW, 0
    ahead = (seq - last_seq) % _MODULUS
    elapsed_ms = device_ts - last_ts
    if ahead == 0 or ahead >= _HALF:
        if elapsed_ms > 0:
            return RESTART, 0
        return DUPLICATE, 0
    if ahead - 1 > MAX_MESSAGES_PER_SECOND * (1 + max(elapsed_ms, 0) // 1000):
        return RESTART, 0
    return NEW, ahead - 1
