"""Which shard of a zone-sharded cluster decides what, the same everywhere: a zone by a stable hash of its id, a permit
by the zone of its first record, a device's faults by its CMDB zone (a gas detector's), else by the first permit that
reads it (lists the detector or harness, or has the tag's wearer on its crew), else by its own id.

The router and every shard's Site compute these from the same table rows, so they always agree on where a record
must go and which shard speaks for it.
"""

from __future__ import annotations

import zlib
from typing import Callable, Iterable

import msgspec

from schemas import payloads as wire


class ShardPlan(msgspec.Struct, frozen=True):
    """`shards` decision shards, numbered 0 to shards - 1."""

    shards: int

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"a site has at least 1 decision shard, got {self.shards}: set --shards to 1 or more")

    def of_key(self, key: str) -> int:
        """The shard of an id by its stable hash (CRC-32, the same in every process and release)."""
        return zlib.crc32(key.encode()) % self.shards

    def of_zone(self, zone: str) -> int:
        return self.of_key(zone)

    def device_home(self, device: str, zone: str | None, homes: DeviceHomes | None = None) -> int:
        """The shard that raises the faults about a device's records: its zone's for a device placed in one, else its
        first reader's (`homes`), else by its id."""
        if zone:
            return self.of_key(zone)
        if homes is not None:
            shard = homes.first_reader.get(device)
            if shard is not None:
                return shard
        return self.of_key(device)


class DeviceHomes(msgspec.Struct):
    """The shard of the first permit that read each device, kept by the router and by every shard's Site from the same
    permit rows in the same order, so they agree on every device's home."""

    first_reader: dict[str, int] = {}

    def note_permit(self, row: wire.PermitRow, shard: int, worker_tags: Callable[[str], Iterable[str]]) -> bool:
        """Give the permit's shard to the devices it reads that have no first reader yet; True when one got it."""
        first = self.first_reader
        before = len(first)
        for device in (*row.detectors, *row.harnesses):
            first.setdefault(device, shard)
        for worker in (*row.workers, row.guardian):
            for tag in worker_tags(worker):
                first.setdefault(tag, shard)
        return len(first) != before


SINGLE = ShardPlan(1)
"""The embedded default: one shard decides everything."""
