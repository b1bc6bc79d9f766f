"""Who is inside which watched zone, updated fix by fix through a grid of zone bounding boxes."""

from __future__ import annotations

from typing import Iterable

from interlock.findings import Findings
from interlock.geometry import Area

CELL_MM = 25_000
"""Grid cell size: a fix is tested only against the zones whose bounding box touches its cell."""


def _cells(area: Area) -> Iterable[tuple[int, int]]:
    for cx in range(int(area.x_min // CELL_MM), int(area.x_max // CELL_MM) + 1):
        for cy in range(int(area.y_min // CELL_MM), int(area.y_max // CELL_MM) + 1):
            yield cx, cy


class ZoneOccupancy:
    """Occupants of the watched zones (those with active permits), in the order they entered."""

    def __init__(self) -> None:
        self.areas: dict[str, Area] = {}
        self.occupants: dict[str, dict[str, None]] = {}
        self.tag_zones: dict[str, list[str]] = {}
        self.grid: dict[tuple[int, int], list[str]] = {}

    def watch(self, zones: dict[str, Area], positions: dict) -> None:
        """Watch exactly `zones`; newly watched zones are filled from the tags' last positions."""
        for zone in [z for z in self.areas if z not in zones or zones[z] is not self.areas[z]]:
            self._forget(zone)
        for zone, area in zones.items():
            if zone not in self.areas:
                self.areas[zone] = area
                self.occupants[zone] = {}
                for tag, p in positions.items():
                    if area.contains(p.x, p.y, p.z):
                        self._enter(tag, zone)
        self.grid = {}
        for zone, area in self.areas.items():
            for cell in _cells(area):
                self.grid.setdefault(cell, []).append(zone)

    def _forget(self, zone: str) -> None:
        for tag in self.occupants.pop(zone, {}):
            self.tag_zones[tag].remove(zone)
        del self.areas[zone]

    def _enter(self, tag: str, zone: str) -> None:
        self.occupants[zone][tag] = None
        self.tag_zones.setdefault(tag, []).append(zone)

    def move(self, tag: str, x: int, y: int, z: int) -> list[str]:
        """Place a tag; returns the watched zones it entered or left."""
        areas = self.areas
        current = self.tag_zones.get(tag, ())
        entered = [zone for zone in self.grid.get((x // CELL_MM, y // CELL_MM), ())
                   if zone not in current and areas[zone].contains(x, y, z)]
        left = [zone for zone in current if not areas[zone].contains(x, y, z)] if current else []
        for zone in left:
            del self.occupants[zone][tag]
            current.remove(zone)
        for zone in entered:
            self._enter(tag, zone)
        return entered + left

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
