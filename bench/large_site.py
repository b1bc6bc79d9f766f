"""Large, healthy recordings for throughput benchmarks: N renamed, side-by-side copies of the firmware-change site.

```sh
python -m bench.large_site --copies 42 --minutes 30 --out /tmp/large.jsonl   # about 1.03 M records
```

The site is read from `simulators/incidents/firmware_change.toml` with the simulator's own loader
and transformed as Structs; the generator then plays it like any scenario, so the recording is
deterministic (same arguments, same bytes). Each copy is the incident's site *without its incident*:

- every id gets the copy's suffix (`PR-1` -> `PR-1-c07`): zones, devices (detectors, harnesses,
  tags of both vendors, PLCs), workers (crew, guardians, approvers, supervisor), permits, PLC
  equipment (so also PLC signal names and enable coils), the Qubit gateway, named points and
  certificate numbers. Zone names get the suffix too, so the control-room view stays readable;
- every coordinate (zone and entrance polygons, points, literal positions) moves by
  `COPY_SPACING_M` in x per copy, so no two copies' zones overlap;
- each copy's PLCs listen on their own Modbus ports (the site's port block, shifted per copy);
- the timeline keeps the start-up (permits go `active` at 20.0/20.3/20.6 s, equipment switched
  on at 30-32 s) and the crew's ordinary moves and harness hook changes, and drops the incident:
  the field firmware change, the CMDB approval, the reset, and the welder's power cycling around
  the trip. Events after the end of a short run are dropped;
- permit windows cover the run: they open `WINDOW_MARGIN_MS` before the start (or earlier, as
  written) and close `WINDOW_MARGIN_MS` after the end (or later). Hot work may not exceed 8 h
  (GB 30871-2022), so runs are limited to `MAX_MINUTES`;
- the table rows (CMDB, GIS, HR, permits) keep their tables' start times and span, so every
  row is out before the devices report and the permits are approved before they go active.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from msgspec.structs import replace

from simulators.devices import Point
from simulators.payloads import DeviceRow, Entrance, OpcUaLink, Signatures, WorkerRow, ZoneRow
from simulators.recording import write_recording
from simulators.scenario import (
    Decommission,
    MoveWorker,
    Permit,
    Place,
    PlcSim,
    PublishDevice,
    Scenario,
    SendPermitAction,
    SetFirmware,
    SetGas,
    SetHarness,
    SetPermitState,
    SetPlcSignal,
    TimelineEvent,
    epoch_ms,
    generate,
    load_scenario,
)

INCIDENT = Path(__file__).resolve().parents[1] / "simulators" / "incidents" / "firmware_change.toml"
COPY_SPACING_M = 200.0  # the incident's site spans x 0..74 m, so copies 200 m apart never touch
WINDOW_MARGIN_MS = 30 * 60 * 1000
HOT_WORK_MAX_MS = 8 * 3600 * 1000
MAX_MINUTES = 420.0  # 09:00 + 7 h + 30 min margin = 16:30, 8 h after the hot-work window opens at 08:30
# The incident's own story; everything after the first of these is dropped except crew activity.
INCIDENT_EVENTS = (SetFirmware, PublishDevice, Decommission, SendPermitAction, SetGas)
CREW_EVENTS = (MoveWorker, SetHarness)


def copy_suffix(copy: int) -> str:
    """The suffix of one copy's ids: `-c00`, `-c07`, `-c123`."""
    return f"-c{copy:02d}"


class SiteCopy:
    """Renames and moves one copy of a site: every id gets the suffix, every x moves by `dx`."""

    def __init__(self, site: Scenario, copy: int) -> None:
        self.suffix = copy_suffix(copy)
        self.dx = copy * COPY_SPACING_M
        ids = [z.zone for z in site.zones] + [d.device for d in site.devices] + [w.worker for w in site.workers]
        ids += [p.permit for p in site.permits] + [site.rtls.qubit_gateway, *site.rtls.qubit_tags.values()]
        ids += [e for d in site.devices for e in d.equipment or ()]
        ids += [e for p in site.permits for e in (*p.equipment, *p.isolations, *p.ventilation)]
        # A strict map: an id the site does not define raises KeyError instead of leaking unrenamed.
        self.names = {name: name + self.suffix for name in ids}
        self.points = {name: name + self.suffix for name in site.points}
        ports = sorted({d.modbus.port for d in site.devices if d.modbus is not None})
        self.port_shift = copy * (ports[-1] - ports[0] + 1) if ports else 0

    def id(self, name: str) -> str:
        return self.names[name]

    def ids(self, names: list[str]) -> list[str]:
        return [self.names[n] for n in names]

    def signal(self, tag: str) -> str:
        """A PLC signal `<equipment>.<signal>` of the renamed equipment."""
        equipment, signal = tag.rsplit(".", 1)
        return f"{self.names[equipment]}.{signal}"

    def xy(self, polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x + self.dx, y) for x, y in polygon]

    def point(self, point: Point) -> Point:
        x, y, z = point
        return (x + self.dx, y, z)

    def place(self, place: Place) -> Place:
        return self.points[place] if isinstance(place, str) else self.point(place)

    def zone(self, row: ZoneRow) -> ZoneRow:
        entrance = None if row.entrance is None else Entrance(self.xy(row.entrance.polygon))
        return replace(row, zone=self.id(row.zone), name=row.name + self.suffix, polygon=self.xy(row.polygon),
                       entrance=entrance)

    def device(self, row: DeviceRow) -> DeviceRow:
        modbus = opcua = None
        if row.modbus is not None:
            coils = {self.id(e): coil for e, coil in row.modbus.enable_coils.items()}
            modbus = replace(row.modbus, port=row.modbus.port + self.port_shift, enable_coils=coils)
        if row.opcua is not None:
            nodes = {self.id(e): node + self.suffix for e, node in row.opcua.enable_nodes.items()}
            opcua = OpcUaLink(row.opcua.endpoint + self.suffix, nodes, row.opcua.watchdog_node + self.suffix)
        return replace(
            row,
            device=self.id(row.device),
            zone=None if row.zone is None else self.id(row.zone),
            worker=None if row.worker is None else self.id(row.worker),
            equipment=None if row.equipment is None else self.ids(row.equipment),
            modbus=modbus,
            opcua=opcua,
        )

    def worker(self, row: WorkerRow) -> WorkerRow:
        certs = [replace(cert, no=cert.no + self.suffix) for cert in row.certs]
        return replace(row, worker=self.id(row.worker), certs=certs)

    def permit(self, permit: Permit, valid_from: int, valid_to: int) -> Permit:
        signed = {role: getattr(permit.signatures, role) for role in Signatures.__struct_fields__}
        signatures = Signatures(**{role: None if who is None else self.id(who) for role, who in signed.items()})
        return replace(
            permit,
            permit=self.id(permit.permit),
            zone=self.id(permit.zone),
            valid_from=valid_from,
            valid_to=valid_to,
            workers=self.ids(permit.workers),
            guardian=self.id(permit.guardian),
            approver=self.id(permit.approver),
            signatures=signatures,
            equipment=self.ids(permit.equipment),
            isolations=self.ids(permit.isolations),
            ventilation=self.ids(permit.ventilation),
            detectors=self.ids(permit.detectors),
            harnesses=self.ids(permit.harnesses),
        )

    def qubit_tags(self, site: Scenario) -> dict[str, str]:
        """Every Qubit tag of the copy on the copy's own gateway (the site's gateways, renamed)."""
        rtls = site.rtls
        qubit = [d.device for d in site.devices if d.family == "uwb_tag" and d.vendor == "qubit"]
        return {self.id(t): self.id(rtls.qubit_tags.get(t, rtls.qubit_gateway)) for t in qubit}

    def plc_sim(self, sim: PlcSim) -> PlcSim:
        return replace(sim, tags={self.signal(tag): value for tag, value in sim.tags.items()})

    def event(self, event: TimelineEvent) -> TimelineEvent:
        match event:
            case SetPermitState() | SendPermitAction():
                changes = {"permit": self.id(event.permit)}
                if isinstance(event, SendPermitAction):
                    changes["by"] = self.id(event.by)
                return replace(event, **changes)
            case SetPlcSignal():
                return replace(event, plc=self.id(event.plc), tag=self.signal(event.tag))
            case MoveWorker():
                return replace(event, worker=self.id(event.worker), to=self.place(event.to))
            case SetFirmware() | SetHarness() | SetGas() | Decommission():
                return replace(event, device=self.id(event.device))
            case PublishDevice():
                return replace(event, row=self.device(event.row))
        raise TypeError(f"no renaming for {event!r}")


def healthy_timeline(timeline: list[TimelineEvent], duration: float) -> list[TimelineEvent]:
    """The start-up and the crew's activity, without the incident (and without anything after `duration`)."""
    incident = min((e.at for e in timeline if isinstance(e, INCIDENT_EVENTS)), default=float("inf"))
    return [
        e for e in timeline
        if not isinstance(e, INCIDENT_EVENTS) and (e.at < incident or isinstance(e, CREW_EVENTS)) and e.at <= duration
    ]


def permit_window(permit: Permit, start: int, end: int) -> tuple[int, int]:
    """The permit's window stretched to cover start..end with a margin; hot work stays within 8 h."""
    valid_from = min(epoch_ms(permit.valid_from), start - WINDOW_MARGIN_MS)
    valid_to = max(epoch_ms(permit.valid_to), end + WINDOW_MARGIN_MS)
    if permit.type == "hot_work" and valid_to - valid_from > HOT_WORK_MAX_MS:
        raise ValueError(f"{permit.permit}: a hot-work window cannot cover this run within 8 h; keep minutes <= {MAX_MINUTES:g}")
    return valid_from, valid_to


def large_site_scenario(copies: int, minutes: float, site_path: Path = INCIDENT) -> Scenario:
    """`copies` healthy copies of the firmware-change site, side by side, running for `minutes`."""
    if copies < 1:
        raise ValueError("copies must be at least 1")
    if not 0 < minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be in (0, {MAX_MINUTES:g}]: hot-work permits are valid for at most 8 h")
    site = load_scenario(site_path)
    duration = minutes * 60.0
    start = epoch_ms(site.start)
    end = start + round(duration * 1000)
    timeline = healthy_timeline(site.timeline, duration)
    windows = [permit_window(p, start, end) for p in site.permits]
    parts = [SiteCopy(site, copy) for copy in range(copies)]
    # Each table keeps its start and its span, so with N copies its rows go out N times as fast.
    tables = replace(site.tables, spacing=site.tables.spacing / copies)
    return replace(
        site,
        name=f"large_site_{copies}x{minutes:g}min",
        description=f"{copies} healthy copies of the {site.name} site side by side, {minutes:g} min, "
        f"no incident; generated by bench.large_site",
        duration=duration,
        tables=tables,
        rtls=replace(site.rtls, qubit_gateway=parts[0].id(site.rtls.qubit_gateway),
                     qubit_tags={tag: gateway for c in parts for tag, gateway in c.qubit_tags(site).items()}),
        points={c.points[name]: c.point(p) for c in parts for name, p in site.points.items()},
        positions={c.id(w): c.place(place) for c in parts for w, place in site.positions.items()},
        zones=[c.zone(z) for c in parts for z in site.zones],
        devices=[c.device(d) for c in parts for d in site.devices],
        workers=[c.worker(w) for c in parts for w in site.workers],
        permits=[c.permit(p, *w) for c in parts for p, w in zip(site.permits, windows)],
        gas={c.id(d): sim for c in parts for d, sim in site.gas.items()},
        harness={c.id(d): sim for c in parts for d, sim in site.harness.items()},
        plc={c.id(p): c.plc_sim(sim) for c in parts for p, sim in site.plc.items()},
        timeline=sorted((c.event(e) for c in parts for e in timeline), key=lambda e: e.at),
    )


def write_large_recording(path: Path, copies: int, minutes: float) -> int:
    """Generate the large site's recording into `path`; returns the number of lines written."""
    records = generate(large_site_scenario(copies, minutes))
    write_recording(Path(path), records)
    return len(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large_site", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--copies", type=int, required=True, help="copies of the firmware-change site")
    parser.add_argument("--minutes", type=float, required=True, help=f"minutes of site time (at most {MAX_MINUTES:g})")
    parser.add_argument("--out", type=Path, required=True, help="recording to write (kcat -C -J lines)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        scenario = large_site_scenario(args.copies, args.minutes)
    except ValueError as error:
        parser.error(str(error))
    records = generate(scenario)
    generated = time.perf_counter()
    write_recording(args.out, records)
    written = time.perf_counter()
    site_hours = args.copies * args.minutes / 60
    gen_s, total_s = generated - started, written - started
    print(
        f"generated {len(records):,} records ({args.copies} copies x {args.minutes:g} min = {site_hours:g} site-hours) "
        f"in {gen_s:.2f} s: {site_hours / gen_s:.2f} site-hours/s, {len(records) / gen_s:,.0f} records/s; "
        f"written with {args.out.stat().st_size / 1e6:.1f} MB to {args.out} in {written - generated:.2f} s "
        f"(total {total_s:.2f} s: {site_hours / total_s:.2f} site-hours/s, {len(records) / total_s:,.0f} records/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
