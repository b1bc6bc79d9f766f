"""A site's recording replayed through the interlock, keeping each zone's raw risk inputs at every step.

The interlock builds the risk model's inputs from its own evidence (trusted readings only, fresh within the
reading age, PLC signals, people located by UWB). Replaying a recording with `CaptureSite` steps every zone
exactly as a live run would, and keeps the raw vectors instead of scoring them: with the site's labels file
(`training.risk_labels`) they become training and evaluation sequences, so a plant retrains on what its own
interlock saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataflows.recording import open_recording, read_recording
from interlock.config import DEFAULT_CONFIG, SiteConfig
from interlock.faults import Origin
from interlock.site import Site
from interlock.zone_risk import ZoneRisk

Capture = dict[str, tuple[np.ndarray, np.ndarray]]
"""Zone -> (step times int64[n], raw vectors float64[n, RAW_WIDTH])."""


class CaptureSite(Site):
    """A Site whose zone risk steps record their raw input vectors and score nothing (no model, no risk grades)."""

    def __init__(self, config: SiteConfig = DEFAULT_CONFIG) -> None:
        super().__init__(config)
        self.risk_on = True
        self.captured: dict[str, tuple[list[int], list[np.ndarray]]] = {}

    def _risk_step(self, risk: ZoneRisk, now: int, source: Origin) -> list[str]:
        raw = self._risk_inputs(risk, self._zone_plan(risk.zone), now)
        risk.last_step = now
        risk.steps += 1
        times, raws = self.captured.setdefault(risk.zone, ([], []))
        times.append(now)
        raws.append(raw.copy())
        return []

    def capture(self) -> Capture:
        return {zone: (np.asarray(times, dtype=np.int64), np.vstack(raws))
                for zone, (times, raws) in sorted(self.captured.items())}


def capture_recording(path: str | Path, config: SiteConfig = DEFAULT_CONFIG) -> Capture:
    """Replay one recording (a `kcat -J` file, .gz allowed) in time order and return its zones' raw inputs."""
    with open_recording(str(path)) as stream:
        records = read_recording(stream)
    site = CaptureSite(config)
    site.process_batch(records)
    return site.capture()
