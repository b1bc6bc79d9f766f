"""Normalised readings: one internal form per kind of evidence, whatever the vendor or firmware.

Times are integer milliseconds since the epoch (UTC), lengths integer
millimetres, gas values in the sheet's units (O2 %vol, LEL %LEL, H2S and CO ppm)
with `None` for a channel in sensor fault.
"""

from __future__ import annotations

import msgspec


class GasSample(msgspec.Struct, frozen=True, gc=False):
    """One GD-4 reading; `status` is `ok` unless the detector says otherwise, `bump` is None where the firmware does not report it."""

    device: str
    firmware: str
    ts: int
    seq: int
    o2: float | None
    lel: float | None
    h2s: float | None
    co: float | None
    status: str
    bump: int | None
    alarm: int


class HarnessSample(msgspec.Struct, frozen=True, gc=False):
    """One SH-2 report: tied off while at least one hook is clipped."""

    device: str
    firmware: str
    ts: int
    seq: int
    height_mm: int
    tied: bool
    battery: int


class TagFix(msgspec.Struct, frozen=True, gc=False):
    """One UWB tag update; `located` is False when the gateway could not place the tag this cycle."""

    tag: str
    ts: int
    x: float
    y: float
    z: float
    quality: float
    located: bool


class PlcSnapshot(msgspec.Struct, frozen=True, gc=False):
    """Tag values published by one PLC edge gateway (`device` is the PLC id)."""

    device: str
    ts: int
    seq: int
    tags: dict[str, bool]
