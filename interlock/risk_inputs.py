"""What the risk model reads from a zone at each step: one float64 vector per zone per second, NaN where unknown.

The interlock fills it from its own state (the zone's detectors' fresh readings, PLC signals, people located in the
zone); the trainer fills it from training sets or from recordings replayed through the interlock. Both then hand it
to the same feature step (`interlock.risk_features`), so training and serving cannot drift apart.
"""

from __future__ import annotations

import numpy as np

RAW_FIELDS: tuple[str, ...] = (
    "dt_s",                 # seconds since the zone's previous step (1 on its first)
    "o2_low",               # lowest fresh O2 %vol over the zone's detectors
    "o2_high",              # highest fresh O2 %vol
    "lel",                  # highest fresh LEL %
    "h2s",                  # highest fresh H2S ppm
    "co",                   # highest fresh CO ppm
    "limit_o2_min",         # the zone's gas limits for its work type on this day (interlock.gas_test.limits_for)
    "limit_o2_max",
    "limit_lel",
    "limit_h2s",
    "limit_co",
    "detectors",            # detectors of the zone (CMDB rows)
    "fresh",                # of them, with a reading in the last gas_reading_max_age_ms
    "faulted_channels",     # channels of fresh readings that are faulted (null / -1 on the wire)
    "warming",              # fresh readings whose status is warmup
    "fan",                  # 1 a zone fan running, 0 stopped, NaN no fan known or no fresh PLC report
    "equipment",            # 1 some zone equipment powered, 0 none, NaN unknown
    "occupancy",            # people located inside the zone
    "since_first_entry_s",  # s since someone first entered the zone; NaN before
    "occupied_for_s",       # s since the zone last went from empty to occupied; NaN while empty
)
"""The raw input vector, in order. Changing it changes the model's input: retrain, and bump RAW_VERSION."""

RAW_VERSION = 1
RAW_WIDTH = len(RAW_FIELDS)
RAW = {name: i for i, name in enumerate(RAW_FIELDS)}
"""Field name -> column index."""

DT_S, O2_LOW, O2_HIGH, LEL, H2S, CO = (RAW[n] for n in ("dt_s", "o2_low", "o2_high", "lel", "h2s", "co"))
LIMIT_O2_MIN, LIMIT_O2_MAX, LIMIT_LEL, LIMIT_H2S, LIMIT_CO = (
    RAW[n] for n in ("limit_o2_min", "limit_o2_max", "limit_lel", "limit_h2s", "limit_co"))
DETECTORS, FRESH, FAULTED_CHANNELS, WARMING = (RAW[n] for n in ("detectors", "fresh", "faulted_channels", "warming"))
FAN, EQUIPMENT, OCCUPANCY, SINCE_FIRST_ENTRY_S, OCCUPIED_FOR_S = (
    RAW[n] for n in ("fan", "equipment", "occupancy", "since_first_entry_s", "occupied_for_s"))


def empty_raw(rows: int = 0) -> np.ndarray:
    """A raw block of `rows` zone steps (or one vector when rows is 0), every field unknown."""
    shape = (rows, RAW_WIDTH) if rows else (RAW_WIDTH,)
    return np.full(shape, np.nan, dtype=np.float64)
