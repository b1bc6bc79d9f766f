"""Which permits each device, person, piece of equipment and zone feeds, kept up to date row by row.

A permit record changes the index by its own entries only, so applying a table row
costs the same with ten permits on site as with ten thousand.
"""

from __future__ import annotations

from schemas.payloads import PermitRow

TERMINAL_STATES = frozenset({"closed", "cancelled"})


def _add(index: dict[str, list[str]], key: str, pid: str) -> None:
    permits = index.setdefault(key, [])
    if pid not in permits:
        permits.append(pid)


def _remove(index: dict[str, list[str]], key: str, pid: str) -> None:
    permits = index.get(key)
    if permits is not None and pid in permits:
        permits.remove(pid)
        if not permits:
            del index[key]


class PermitIndex:
    """Permits (not closed or cancelled) by detector, harness, isolation/ventilation equipment, guardian, person and
    zone, and the active ones by zone."""

    def __init__(self) -> None:
        self.detector: dict[str, list[str]] = {}
        self.harness: dict[str, list[str]] = {}
        self.equipment: dict[str, list[str]] = {}
        self.guardian: dict[str, list[str]] = {}
        self.person: dict[str, list[str]] = {}
        self.zone: dict[str, list[str]] = {}
        self.active_in_zone: dict[str, list[str]] = {}

    def _entries(self, row: PermitRow) -> list[tuple[dict[str, list[str]], str]]:
        if row.state in TERMINAL_STATES:
            return []
        entries = [(self.detector, device) for device in row.detectors]
        entries += [(self.harness, device) for device in row.harnesses]
        entries += [(self.equipment, item) for item in row.isolations + row.ventilation]
        entries += [(self.guardian, row.guardian), (self.zone, row.zone)]
        entries += [(self.person, worker) for worker in row.workers + [row.guardian]]
        if row.state == "active":
            entries.append((self.active_in_zone, row.zone))
        return entries

    def replace(self, pid: str, old: PermitRow | None, new: PermitRow) -> None:
        """Move a permit's entries from its previous record to its new one."""
        if old is not None:
            for index, key in self._entries(old):
                _remove(index, key, pid)
        for index, key in self._entries(new):
            _add(index, key, pid)
