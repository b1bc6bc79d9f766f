"""Zone areas in millimetres: simple polygons with an optional height range, and point-in-area tests."""

from __future__ import annotations

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

    def contains(self, x: float, y: float, z: float) -> bool:
        """Even-odd ray casting (a box test for axis-aligned rectangles); points on the boundary may fall either way."""
        if not (self.x_min <= x <= self.x_max and self.y_min <= y <= self.y_max):
            return False
        if self.z_min is not None and not (self.z_min <= z <= self.z_max):
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
