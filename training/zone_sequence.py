"""One zone's consecutive steps as the risk model sees them, with the labels that judge it.

Training sets from the simulators and recordings captured from a site both become lists of `ZoneSequence`, so the
trainer, the threshold choice and the evaluation read one shape whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ZoneSequence:
    """A zone's steps, one per second, in time order: raw inputs (interlock.risk_inputs layout) and labels."""

    scenario_id: str
    zone: str
    split: str
    """train, validation or test (a recording's split comes from its labels file)."""
    zone_kind: str
    work_type: str
    t_ms: np.ndarray
    """int64 (n,): step times, ms since the epoch."""
    raw: np.ndarray
    """float64 (n, RAW_WIDTH): what the interlock had at each step, NaN where unknown."""
    label: np.ndarray
    """bool (n,): a limit is crossed in (t, t + 720 s]: the model's target."""
    seconds_to_crossing: np.ndarray
    """float64 (n,): s to the next crossing, NaN when none ahead."""
    over_limit: np.ndarray
    """bool (n,): the air is past a limit at t (true air for simulated sets; the labels file's spells for recordings)."""
    hazard_active: np.ndarray
    """bool (n,): a hazard is developing or clearing at t (benign rows are False)."""

    def __len__(self) -> int:
        return int(self.t_ms.shape[0])

    @property
    def hours(self) -> float:
        return len(self) / 3600.0


@dataclass(frozen=True)
class Hazard:
    """A hazard put into (or found in) a zone: what, when, and whether and when it crossed a limit."""

    scenario_id: str
    zone: str
    hazard: str
    kind: str
    start_ms: int
    crossed: bool
    first_crossing_ms: int | None
    lead_s: float | None
    """s from the hazard's start to its first crossing: the most warning possible."""


@dataclass(frozen=True)
class Crossing:
    """A limit crossed by a zone's air."""

    scenario_id: str
    zone: str
    channel: str
    crossing_ms: int
    hazard: str | None
    hazard_kind: str | None
