"""What the site holds about one device id, reached in one lookup per record.

A reading needs its device's CMDB row, the schema of the approved firmware, the
last accepted sequence number, its evidence track, and the permits it feeds; a
UWB fix needs the tag's vendor, wearer, last fix and place. Held in separate
tables keyed by device id, each record paid one cache miss per table on a large
site; held together, it pays one.
"""

from __future__ import annotations

from typing import Any

from interlock.occupancy import TagPlace
from schemas.payloads import DeviceRow


class DeviceState(TagPlace, gc=False):
    """One device id: its CMDB row (None when it has none, e.g. an unregistered tag that was located), the schema of
    its approved firmware, the last accepted sequence number and its device time, the harness track or PLC view its
    readings keep, and for a tag the schema of its vendor and its wearer (the fix and place come from `TagPlace`).

    `feeds` caches the (permit runtime, gas track) pairs a detector's samples update; it is None until first needed and
    whenever a permit row changes the detectors it lists."""

    vendor_schema: str | None = None
    guarding: list[str] | tuple[()] = ()
    """For a tag: the permits its wearer guards (the permit index's own list), so a fix finds them without a lookup.
    These two come first, next to the fix and its stay box: every fix reads them, and on a site of thousands of tags
    each cache line of the state a fix reads is a miss."""
    row: DeviceRow | None = None
    family: str | None = None
    firmware: str | None = None
    """The row's family and approved firmware, interned: devices of one firmware share the string, so checking a
    reading against it does not touch the row."""
    schema: str | None = None
    seq: int | None = None
    device_ts: int = 0
    track: Any = None
    worker: str | None = None
    feeds: list | None = None
    served: list[str] | None = None
    """For a harness or a PLC: the permits its readings re-decide (cached like `feeds`; None until needed and whenever a
    permit row or a PLC row may have changed them)."""
    is_tag: bool = False
    """Registered in the CMDB as a UWB tag."""
    gas_sample: Any = None
    """For a detector, when the risk model is on: its latest trusted reading, and `gas_at` when it arrived."""
    gas_at: int = 0
