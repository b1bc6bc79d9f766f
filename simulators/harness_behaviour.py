"""How an SH-2's wearer behaves: height that follows the wearer up ladders and along platforms, and clipping habits
(unclipping to move, reclipping some seconds after stopping). Used only for a harness whose scenario section asks.

The draws come from the harness's own `random.Random`, one per move and one per stop.
"""

from __future__ import annotations

import random

from msgspec import Struct


class HarnessHabits(Struct):
    """The wearer's clipping habits: chance of taking every hook off to move, mean delay (s) after stopping before
    clipping back on; `moves` counts moves, so that a reclip planned for an earlier stop is dropped."""

    unclip: float
    reclip_s: float
    moves: int = 0


def hooks_while_moving(hooks: list[int], habits: HarnessHabits, rng: random.Random) -> list[int]:
    """The hooks as the wearer sets off: all off with chance `unclip`; otherwise a twin lanyard moves one hook at a
    time (the first stays on, 100 % tie-off) and a single lanyard stays on its sliding anchor."""
    if rng.random() < habits.unclip:
        return [0] * len(hooks)
    if len(hooks) > 1:
        return [1] + [0] * (len(hooks) - 1)
    return list(hooks)


def reclip_delay_ms(habits: HarnessHabits, rng: random.Random) -> int:
    """How long after stopping the wearer clips every hook back on: exponential with mean `reclip_s`, so most
    reclip quickly and a few forget for a long while."""
    if habits.reclip_s <= 0:
        return 0
    return round(rng.expovariate(1.0 / habits.reclip_s) * 1000)


def height_of_wearer(z: float, tag_height: float) -> float:
    """The harness's height above grade from the wearer's tag height z: the floor under the tag, never below grade."""
    return max(0.0, z - tag_height)
