"""Who is inside which watched zone, updated fix by fix through a grid of zone bounding boxes."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import msgspec

from interlock.findings import Findings
from interlock.geometry import Area
from schemas.readings import TagFix

_NOTHING: tuple[str, ...] = ()

CELL_MM = 25_000
"""Grid cell size: a fix is tested only against the zones whose bounding box touches its cell."""


def cells_of(area: Area) -> Iterable[tuple[int, int]]:
    """The grid cells an area's bounding box touches."""
    for cx in range(int(area.x_min // CELL_MM), int(area.x_max // CELL_MM) + 1):
        for cy in range(int(area.y_min // CELL_MM), int(area.y_max // CELL_MM) + 1):
            yield cx, cy


class TagPlace(msgspec.Struct, gc=False):
    """What occupancy knows of a tag: its last fix that counts as evidence, its grid cell, the watched zones it is
    inside. The site's per-device state extends it, so a fix reaches all of it in one lookup."""

    tag: str
    fix: TagFix | None = None
    stay: tuple[float, float, float, float, float, float] | None = None
    """An open box (x_min, x_max, y_min, y_max, z_min, z_max) around the last fix, inside the cell, in which no
    watched zone's answer can change: a fix inside it is placed without a zone test. None when there is none (near a
    polygon that is not a rectangle) or since a zone of the cell was watched or unwatched."""
    cx: int | None = None
    """Grid cell column (None until located) and row: small ints, cheap to compare on a large site."""
    cy: int = 0
    zones: list[str] = msgspec.field(default_factory=list)
    candidates: list[str] = msgspec.field(default_factory=list)
    """The watched zones whose bounding box touches the cell: the grid's own list, so watching a zone updates it."""


class ZoneOccupancy:
    """Occupants of the watched zones (those with active permits), in the order they entered, and which grid cell every
    located tag is in, so a zone that starts being watched is filled from the tags near it only."""

    def __init__(self) -> None:
        self.areas: dict[str, Area] = {}
        self.occupants: dict[str, dict[str, None]] = {}
        self.grid: dict[tuple[int, int], list[str]] = {}
        """Cell -> watched zones touching it; a cell's list is never replaced, tags in the cell hold it."""
        self.places: dict[str, TagPlace] = {}
        self.cell_tags: dict[tuple[int, int], dict[str, None]] = {}

    def watch(self, zone: str, area: Area) -> None:
        """Start watching `zone` (or watch its new area), filled from the last positions of the tags near it."""
        if self.areas.get(zone) is area:
            return
        if zone in self.areas:
            self.unwatch(zone)
        self.areas[zone] = area
        self.occupants[zone] = {}
        for cell in cells_of(area):
            self.grid.setdefault(cell, []).append(zone)
        self._forget_stays(area)
        for place in self.places_within(area):
            self._enter(place, zone)

    def unwatch(self, zone: str) -> None:
        area = self.areas.pop(zone, None)
        if area is None:
            return
        for tag in self.occupants.pop(zone, {}):
            self.places[tag].zones.remove(zone)
        for cell in cells_of(area):
            self.grid[cell].remove(zone)
        self._forget_stays(area)

    def _forget_stays(self, area: Area) -> None:
        """The tags in the cells of a zone watched or unwatched test their next fix in full."""
        places = self.places
        for cell in cells_of(area):
            for tag in self.cell_tags.get(cell, ()):
                places[tag].stay = None

    def places_within(self, area: Area) -> list[TagPlace]:
        """Tags whose last fix is inside `area`, looked up through the cells it covers."""
        inside = []
        places = self.places
        for cell in cells_of(area):
            for tag in self.cell_tags.get(cell, ()):
                place = places[tag]
                p = place.fix
                if area.contains(p.x, p.y, p.z):
                    inside.append(place)
        return inside

    def tags_within(self, area: Area) -> list[str]:
        return [place.tag for place in self.places_within(area)]

    def _enter(self, place: TagPlace, zone: str) -> None:
        self.occupants[zone][place.tag] = None
        place.zones.append(zone)

    def zones_of(self, tag: str) -> list[str]:
        place = self.places.get(tag)
        return place.zones if place is not None else []

    def move(self, place: TagPlace, fix: TagFix) -> Sequence[str]:
        """Place a tag at its new fix; returns the watched zones it entered or left."""
        x, y, z = fix.x, fix.y, fix.z
        place.fix = fix
        stay = place.stay
        if stay is not None and stay[0] < x < stay[1] and stay[2] < y < stay[3] and stay[4] < z < stay[5]:
            return _NOTHING
        cx, cy = x // CELL_MM, y // CELL_MM
        if cx != place.cx or cy != place.cy:
            tag = place.tag
            if place.cx is None:
                self.places[tag] = place
            else:
                del self.cell_tags[(place.cx, place.cy)][tag]
            cell = place.cx, place.cy = int(cx), int(cy)
            place.candidates = self.grid.setdefault(cell, [])
            self.cell_tags.setdefault(cell, {})[tag] = None
        areas = self.areas
        current = place.zones
        changed: list[str] | None = None
        if current:
            for zone in current:
                if not areas[zone].contains(x, y, z):
                    changed = [zone] if changed is None else changed + [zone]
            if changed:
                for zone in changed:
                    del self.occupants[zone][place.tag]
                    current.remove(zone)
        candidates = place.candidates
        if candidates:
            for zone in candidates:
                if (not current or zone not in current) and areas[zone].contains(x, y, z):
                    self._enter(place, zone)
                    changed = [zone] if changed is None else changed + [zone]
        place.stay = self._stay_box(place, x, y, z)
        return changed or _NOTHING

    def _stay_box(self, place: TagPlace, x: float, y: float, z: float) -> tuple[float, ...] | None:
        """The open box around (x, y, z) inside the place's cell where every watched zone of the cell answers as it does
        at the point: inside the rectangles the point is in, on the point's side of the others' bounding boxes."""
        x_min, y_min = place.cx * CELL_MM, place.cy * CELL_MM
        x_max, y_max = x_min + CELL_MM, y_min + CELL_MM
        z_min, z_max = -math.inf, math.inf
        areas = self.areas
        current = place.zones
        for zone in (*current, *place.candidates):
            area = areas[zone]
            b = area.box
            if zone in current:
                if not area.rectangle:
                    return None
                x_min, x_max = max(x_min, b[0]), min(x_max, b[1])
                y_min, y_max = max(y_min, b[2]), min(y_max, b[3])
                z_min, z_max = max(z_min, b[4]), min(z_max, b[5])
                continue
            # Outside: keep to the side of its bounding box with the most room (none: inside the box of a polygon).
            room, side = max((b[0] - x, 0), (x - b[1], 1), (b[2] - y, 2), (y - b[3], 3), (b[4] - z, 4), (z - b[5], 5))
            if room <= 0:
                return None
            if side == 0:
                x_max = min(x_max, b[0])
            elif side == 1:
                x_min = max(x_min, b[1])
            elif side == 2:
                y_max = min(y_max, b[2])
            elif side == 3:
                y_min = max(y_min, b[3])
            elif side == 4:
                z_max = min(z_max, b[4])
            else:
                z_min = max(z_min, b[5])
        return x_min, x_max, y_min, y_max, z_min, z_max

    def inside(self, zone: str) -> dict[str, None]:
        return self.occupants.get(zone, {})


def check_entrants(findings: Findings, zone: str, occupants: Iterable[str], tag_worker: dict[str, str],
                   authorised: set[str]) -> set[str]:
    """UNAUTHORISED_ENTRANT for anyone inside who is on none of the zone's active permits (or wears an unregistered tag);
    returns the authorised people inside."""
    intruders: list[str] = []
    inside: set[str] = set()
    for tag in occupants:
        worker = tag_worker.get(tag)
        if worker is None:
            intruders.append(f"unregistered tag {tag}")
        elif worker not in authorised:
            intruders.append(worker)
        else:
            inside.add(worker)
    if intruders:
        findings.stop("UNAUTHORISED_ENTRANT", f"{', '.join(intruders)} inside {zone}, not on its active permits")
    return inside
