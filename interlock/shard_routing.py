"""Routing records to the decision shards of a zone-sharded site: each record goes to the shards whose decisions read it.

- Table rows (CMDB, GIS, HR, permits) go to every shard: they are small, and every shard keeps the whole tables.
- A position record goes to the home shard of each tag in it (which raises the faults about the tag and so sees all
  of its fixes), and to every shard one of its tags has entered: a shard starts receiving a tag's fixes with the
  first fix the Site will take (newer than the tag's last, located, good enough, on time) that falls in a 25 m cell
  touching one of its zones or their entrances, and keeps receiving them. So a shard knows every tag that is or has
  been near its zones, from the fix that brought it there, including when it leaves.
- A detector's, harness's or PLC's records go to its home shard (which raises the faults about them), to the shards
  of the permits that list it (for a PLC: that list equipment on it), and for a detector to the shards of its
  zone's permits (the zone's risk step reads it).
- A permit action goes to its permit's shard; anything else to the shard of its topic, and a device record or
  action without a key to every shard (the payload says whose it is).

Once a device or tag has been sent to a shard it keeps going there, so a shard never loses the end of a story it
has started (a fault it raised is cleared by it). Routing reads the record's topic and key (protocols §0: the
device or permit id) and decodes positions; the other payloads are decoded by the shards. Pure: the router's state
is its tables and where each device and tag goes, snapshotted with the dataflow.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import msgspec

from interlock.config import DEFAULT_CONFIG, SiteConfig
from interlock.geometry import Area, zone_view
from interlock.occupancy import CELL_MM, cells_of
from interlock.shard_plan import DeviceHomes, ShardPlan
from schemas import payloads as wire
from schemas.catalog import position_schema, schema_for_vendor
from schemas.decoding import PAYLOAD_DECODERS
from schemas.envelope import Record, UnreadableRecord

TABLE_TOPICS = frozenset({"cmdb.devices", "gis.zones", "hr.qualifications", "ptw.permits"})
DEVICE_TOPICS = frozenset({"gas.readings", "harness.status", "plc.state", "interlock.plc_link"})
"""Topics keyed by the device (or PLC) the record is about."""

_DEVICE_ROW = msgspec.json.Decoder(wire.DeviceRow)
_PERMIT_ROW = msgspec.json.Decoder(wire.PermitRow)
_ZONE_ROW = msgspec.json.Decoder(wire.ZoneRow)
_NONE: frozenset[int] = frozenset()


class RoutedChunk(msgspec.Struct, frozen=True):
    """What a shard receives from one routing round: its records in input order, then the record time its timers
    run to (the latest record time the router has seen), so a shard that received nothing still fires its timers
    when the site's clock passes them."""

    shard: int
    records: list
    until: int


class ShardRouter:
    """The router's tables (device, zone and permit rows, each permit's shard) and where each device and tag goes."""

    def __init__(self, plan: ShardPlan, config: SiteConfig = DEFAULT_CONFIG) -> None:
        self.plan = plan
        self.config = config
        self.devices: dict[str, wire.DeviceRow] = {}
        self.worker_tags: dict[str, list[str]] = {}
        """Worker -> the tags the CMDB says they wear."""
        self.homes = DeviceHomes()
        self.zone_areas: dict[str, list[Area]] = {}
        """Zone -> its area and its entrance's, from the GIS."""
        self.permits: dict[str, wire.PermitRow] = {}
        self.permit_shard: dict[str, int] = {}
        self.sent: dict[str, frozenset[int]] = {}
        """Device -> every shard its records have gone to."""
        self.tag_last: dict[str, int] = {}
        """Tag -> time of the latest fix the Site takes."""
        self.tag_shards: dict[str, frozenset[int]] = {}
        """Tag -> the shards it has entered."""
        self.until = 0
        self.keys: list[str] = [str(shard) for shard in range(plan.shards)]
        """The name the dataflow gives each shard (its state is kept under it)."""
        self._needs: dict[str, set[int]] | None = None
        """Device -> the shards the tables say need it; rebuilt after a table row changed."""
        self._cells: dict[tuple[int, int], frozenset[int]] | None = None
        """25 m cell -> the shards of the zones (and entrances) it touches; rebuilt after a table row changed."""
        self._tags: dict[str, tuple[int, str | None]] = {}
        """Tag -> (its home, the position schema the Site takes from it or None for any); emptied by CMDB rows."""
        self._all = tuple(range(plan.shards))

    def route(self, chunks: Iterable[Sequence[Record | UnreadableRecord]]) -> list[RoutedChunk]:
        """One RoutedChunk per shard (empty ones too: they carry the clock) for the records of `chunks`, in order."""
        plan = self.plan
        everyone = self._all
        out: list[list] = [[] for _ in everyone]
        for chunk in chunks:
            for record in chunk:
                if record.ts > self.until:
                    self.until = record.ts
                if record.__class__ is UnreadableRecord:
                    shards = (plan.of_key("recording"),)
                else:
                    topic = record.topic
                    if topic == "rtls.position":
                        shards = self.position_shards(record)
                    elif topic in DEVICE_TOPICS:
                        shards = self.device_shards(record.key) if record.key is not None else everyone
                    elif topic in TABLE_TOPICS:
                        if topic != "hr.qualifications":
                            self._learn(record)
                        shards = everyone
                    elif topic == "ptw.actions":
                        shards = (self.permit_home(record.key),) if record.key is not None else everyone
                    else:
                        shards = (plan.of_key(topic),)
                for shard in shards:
                    out[shard].append(record)
        return [RoutedChunk(shard, records, self.until) for shard, records in enumerate(out)]

    def permit_home(self, permit: str) -> int:
        """The shard deciding a permit: its first record's zone's, or by its id before any record."""
        shard = self.permit_shard.get(permit)
        return shard if shard is not None else self.plan.of_key(permit)

    def device_home(self, device: str) -> int:
        row = self.devices.get(device)
        return self.plan.device_home(device, row.zone if row is not None else None, self.homes)

    def device_shards(self, device: str) -> frozenset[int]:
        """Every shard a device's record goes to: its home, the shards needing it now, and every shard it went to."""
        if self._needs is None:
            self._needs = self._index()
        sent = self.sent.get(device)
        needs = self._needs.get(device)
        if sent is not None and (needs is None or needs <= sent):
            return sent  # its home is in `sent` since its first record; _index puts a changed home in `needs`
        widened = frozenset((sent or _NONE) | {self.device_home(device)} | (needs or _NONE))
        self.sent[device] = widened
        return widened

    def position_shards(self, record: Record) -> frozenset[int] | set[int] | tuple[int, ...]:
        """The shards of a position record: the record key's (for a payload that is not one) and, for each of its
        tags, its home and the shards it has entered, this fix's included."""
        plan = self.plan
        payload = record.payload
        if payload is None:
            return (plan.of_key(record.key or "rtls.position"),)
        schema = position_schema(payload)
        fixes, diagnosis = PAYLOAD_DECODERS[schema](payload)
        if diagnosis is not None:
            return (plan.of_key(record.key or "rtls.position"),)
        if self._cells is None:
            self._cells = self._cover()
        cells = self._cells
        skew_max, quality_min = self.config.clock_skew_max_ms, self.config.fix_quality_min
        tag_last, tag_shards, tags = self.tag_last, self.tag_shards, self._tags
        record_ts = record.ts
        shards: set[int] | None = None
        for fix in fixes:
            tag = fix.tag
            known = tags.get(tag)
            if known is None:  # a new tag, or the CMDB or a permit has changed since: its home may be new
                known = tags[tag] = self._tag(tag)
                entered = tag_shards.get(tag, _NONE)
                if known[0] not in entered:
                    tag_shards[tag] = entered | {known[0]}
            entered = tag_shards[tag]
            if fix.located and fix.quality >= quality_min and abs(fix.ts - record_ts) <= skew_max:
                last = tag_last.get(tag)
                takes = known[1]
                if (last is None or fix.ts > last) and (takes is None or takes == schema):
                    tag_last[tag] = fix.ts
                    near = cells.get((fix.x // CELL_MM, fix.y // CELL_MM), _NONE)
                    if not near <= entered:
                        entered = tag_shards[tag] = entered | near
            if len(fixes) == 1:
                return entered
            if shards is None:
                shards = set(entered)
            else:
                shards |= entered
        return shards if shards is not None else (plan.of_key(record.key or "rtls.position"),)

    def _tag(self, tag: str) -> tuple[int, str | None]:
        """A tag's home and the schema of the fixes the Site takes from it: any for a device without a tag row, its
        vendor's for a registered tag (no schema for a vendor the catalog does not know: none is taken)."""
        row = self.devices.get(tag)
        if row is None or row.family != "uwb_tag":
            return self.device_home(tag), None
        return self.device_home(tag), schema_for_vendor(row.vendor) or "(no schema)"

    def _learn(self, record: Record) -> None:
        """Keep a CMDB, GIS or permit row as the Site does: the latest row wins, a stale permit revision is ignored, a
        tombstone removes a device or zone (a permit's row and shard are kept: routing only widens)."""
        topic = record.topic
        if record.payload is None:
            key = record.key
            if key is None:
                return
            if topic == "cmdb.devices" and (old := self.devices.pop(key, None)) is not None:
                self._wearer(old, None)
                self._needs = None
                self._tags.clear()
            elif topic == "gis.zones" and self.zone_areas.pop(key, None) is not None:
                self._cells = None
            return
        try:
            if topic == "cmdb.devices":
                row = _DEVICE_ROW.decode(record.payload)
                self._wearer(self.devices.get(row.device), row)
                self.devices[row.device] = row
                self._needs = None
                self._tags.clear()
            elif topic == "gis.zones":
                view = zone_view(_ZONE_ROW.decode(record.payload))
                self.zone_areas[view.row.zone] = [view.area] + ([view.entrance] if view.entrance is not None else [])
                self._cells = None
            else:
                row = _PERMIT_ROW.decode(record.payload)
                held = self.permits.get(row.permit)
                if held is not None and row.rev <= held.rev:
                    return
                self.permits[row.permit] = row
                shard = self.permit_shard.setdefault(row.permit, self.plan.of_zone(row.zone))
                if self.homes.note_permit(row, shard, lambda worker: self.worker_tags.get(worker, ())):
                    self._tags.clear()
                self._needs = self._cells = None
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
            return  # the Sites raise TABLE_ROW_INVALID for it

    def _wearer(self, old: wire.DeviceRow | None, new: wire.DeviceRow | None) -> None:
        """Keep `worker_tags` at the CMDB's tag rows, as the Site keeps its own."""
        if old is not None and old.family == "uwb_tag" and old.worker:
            tags = self.worker_tags.get(old.worker, [])
            if old.device in tags:
                tags.remove(old.device)
                if not tags:
                    del self.worker_tags[old.worker]
        if new is not None and new.family == "uwb_tag" and new.worker:
            self.worker_tags.setdefault(new.worker, []).append(new.device)

    def _index(self) -> dict[str, set[int]]:
        """Device -> its home and the shards of the permits that read it, from the tables as they are."""
        item_plcs: dict[str, list[str]] = {}
        zone_detectors: dict[str, list[str]] = {}
        for row in self.devices.values():
            if row.family == "plc":
                for item in row.equipment:
                    item_plcs.setdefault(item, []).append(row.device)
            elif row.family == "gas" and row.zone:
                zone_detectors.setdefault(row.zone, []).append(row.device)
        needs: dict[str, set[int]] = {device: {self.device_home(device)} for device in self.devices}
        for pid, row in self.permits.items():
            shard = self.permit_shard[pid]
            devices = [*row.detectors, *row.harnesses, *zone_detectors.get(row.zone, ())]
            for item in (*row.equipment, *row.isolations, *row.ventilation):
                devices += item_plcs.get(item, ())
            for device in devices:
                needs.setdefault(device, set()).add(shard)
        return needs

    def _cover(self) -> dict[tuple[int, int], frozenset[int]]:
        """25 m cell -> the shards keeping the occupancy of a zone or entrance it touches: the zone's, and those of
        the permits in the zone."""
        zone_shards: dict[str, set[int]] = {zone: {self.plan.of_zone(zone)} for zone in self.zone_areas}
        for pid, row in self.permits.items():
            if row.zone in zone_shards:
                zone_shards[row.zone].add(self.permit_shard[pid])
        cells: dict[tuple[int, int], set[int]] = {}
        for zone, areas in self.zone_areas.items():
            for area in areas:
                for cell in cells_of(area):
                    cells.setdefault(cell, set()).update(zone_shards[zone])
        return {cell: frozenset(shards) for cell, shards in cells.items()}
