"""Zone areas in millimetres: simple polygons with an optional height range, and point-in-area tests."""

from __future__ import annotations

import math
from array import array
from typing import Any

import msgspec

from schemas.payloads import ZoneRow


class Area(msgspec.Struct, frozen=True, gc=False):
    """A polygon (mm) with its bounding box; `z_min`/`z_max` None means any height."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    z_min: float | None = None
    z_max: float | None = None
    rectangle: bool = False
    box: Any = None
    """x_min, x_max, y_min, y_max, z_min, z_max (-inf/inf: any height) packed in one array: one cache line to read on a
    large site, where six float objects would be six."""

    def __post_init__(self) -> None:
        if self.box is None:
            z_min = -math.inf if self.z_min is None else self.z_min
            z_max = math.inf if self.z_max is None else self.z_max
            msgspec.structs.force_setattr(self, "box", array("d", (self.x_min, self.x_max, self.y_min, self.y_max, z_min, z_max)))

    def contains(self, x: float, y: float, z: float) -> bool:
        """Even-odd ray casting (a box test for axis-aligned rectangles); points on the boundary may fall either way."""
        box = self.box
        if not (box[0] <= x <= box[1] and box[2] <= y <= box[3] and box[4] <= z <= box[5]):
            return False
        if self.rectangle:
            return True
        xs, ys = self.xs, self.ys
        inside = False
        j = len(xs) - 1
        for i in range(len(xs)):
            yi, yj = ys[i], ys[j]
            if (yi > y) != (yj > y):
                x_cross = xs[i] + (y - yi) * (xs[j] - xs[i]) / (yj - yi)
                if x < x_cross:
                    inside = not inside
            j = i
        return inside


def area_from_metres(polygon: list[list[float]], z: list[float] | None = None) -> Area:
    """An Area from a GIS polygon and height range in metres."""
    xs = tuple(p[0] * 1000.0 for p in polygon)
    ys = tuple(p[1] * 1000.0 for p in polygon)
    z_min = z_max = None
    if z is not None:
        z_min, z_max = min(z) * 1000.0, max(z) * 1000.0
    x_min, x_max, y_min, y_max = min(xs), max(xs), min(ys), max(ys)
    corners = set(zip(xs, ys))
    rectangle = len(xs) == 4 and corners == {(x_min, y_min), (x_max, y_min), (x_max, y_max), (x_min, y_max)}
    return Area(xs, ys, x_min, x_max, y_min, y_max, z_min, z_max, rectangle)


class ZoneView(msgspec.Struct, gc=False):
    """A GIS zone row with its areas in millimetres."""

    row: ZoneRow
    area: Area
    entrance: Area | None


def zone_view(row: ZoneRow) -> ZoneView:
    entrance = area_from_metres(row.entrance.polygon) if row.entrance is not None else None
    return ZoneView(row, area_from_metres(row.polygon, row.z), entrance)
