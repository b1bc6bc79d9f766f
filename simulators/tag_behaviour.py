"""How a UWB fix goes wrong: Gaussian position noise, multipath outliers and dropouts, for a tag whose scenario
asks for them (`[rtls.fixes]` or `[uwb.<tag>]`); other tags keep the plain few-centimetre jitter.

Every fix draws the same numbers from the tag's own `random.Random` whatever happens to it, so a dropout or an
outlier never shifts the noise of later fixes.
"""

from __future__ import annotations

import math
import random

from msgspec import Struct

from simulators.devices import Point, rfc3339_ms
from simulators.payloads import AnchorlineFix, Coordinates, QubitData, QubitFix

GOOD_QUALITY = (0.80, 0.99)  # Anchorline `q` of a clean fix, as the plain generator draws it
OUTLIER_QUALITY = (0.30, 0.70)  # a multipath fix: some below the 0.5 evidence threshold, some above it


class TagBehaviour(Struct):
    """A tag's fix errors: noise σ (m) across and in height, chance per fix of a multipath outlier and its typical
    jump (m), chance per fix that a dropout starts and how many fixes it takes; `lost_left` counts down a dropout."""

    sigma: float
    sigma_z: float
    multipath: float
    multipath_m: float
    dropout: float
    dropout_fixes: int
    lost_left: int = 0


class Fix(Struct):
    """Where the gateway places the tag this cycle, and whether it is a multipath outlier or was not located."""

    point: Point
    outlier: bool
    lost: bool
    quality_draw: float


def fix_lost(behaviour: TagBehaviour, draw: float) -> bool:
    """Whether this cycle's fix is lost: inside a dropout that started earlier, or one starts now."""
    if behaviour.lost_left > 0:
        behaviour.lost_left -= 1
        return True
    if draw < behaviour.dropout:
        behaviour.lost_left = behaviour.dropout_fixes - 1
        return True
    return False


def observed_fix(point: Point, behaviour: TagBehaviour, rng: random.Random) -> Fix:
    """One fix of a tag at `point`: Gaussian noise, now and then a jump of about `multipath_m` in a random
    horizontal direction (a reflected path is longer than the direct one), or no fix at all."""
    dx, dy, dz = rng.gauss(0.0, behaviour.sigma), rng.gauss(0.0, behaviour.sigma), rng.gauss(0.0, behaviour.sigma_z)
    outlier = rng.random() < behaviour.multipath
    angle = rng.uniform(0.0, 2.0 * math.pi)
    jump = behaviour.multipath_m * rng.uniform(0.5, 1.5)
    lost = fix_lost(behaviour, rng.random())
    quality_draw = rng.random()
    if outlier:
        dx, dy = dx + jump * math.cos(angle), dy + jump * math.sin(angle)
    x, y, z = point
    return Fix((x + dx, y + dy, z + dz), outlier, lost, quality_draw)


def fix_quality(fix: Fix) -> float:
    """The Anchorline `q` of a fix: 0.80-0.99 when clean, 0.30-0.70 for a multipath outlier."""
    low, high = OUTLIER_QUALITY if fix.outlier else GOOD_QUALITY
    return round(low + (high - low) * fix.quality_draw, 2)


def anchorline_observed(tag: str, fix: Fix, device_ts: int) -> AnchorlineFix | None:
    """The Anchorline update for a fix; a lost fix sends nothing (the `anchorline/4` sheet has no 'not located')."""
    if fix.lost:
        return None
    x, y, z = fix.point
    return AnchorlineFix(tag, rfc3339_ms(device_ts), (round(x, 2), round(y, 2), round(z, 2)), fix_quality(fix))


def qubit_observed(tag: str, fix: Fix, device_ts: int) -> QubitFix:
    """The Qubit element for a fix: millimetres, or `success: false` without data when the tag was not located."""
    if fix.lost:
        return QubitFix(tag, device_ts / 1000, False)
    x, y, z = (round(v * 1000) for v in fix.point)
    return QubitFix(tag, device_ts / 1000, True, QubitData(Coordinates(x, y, z)))
