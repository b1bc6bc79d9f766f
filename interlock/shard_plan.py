"""Which shard of a zone-sharded cluster decides what, the same everywhere: a zone by a stable hash of its id, a permit
by the zone of its first record, a device's faults by its CMDB zone (a gas detector's) or else its own id.

The router and every shard's Site compute these from the same table rows, so they always agree on where a record
must go and which shard speaks for it.
"""

from __future__ import annotations

import zlib

import msgspec


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

    def device_home(self, device: str, zone: str | None) -> int:
        """The shard that raises the faults about a device's records: its zone's for a device placed in one."""
        return self.of_key(zone) if zone else self.of_key(device)

    def key(self, shard: int) -> str:
        """The dataflow key of a shard."""
        return f"zones-{shard}"


SINGLE = ShardPlan(1)
"""The embedded default: one shard decides everything."""
