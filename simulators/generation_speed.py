"""How fast the generator simulates a site: `python -m simulators.generation_speed [--zones 10] [--hours 1]`.

Builds a synthetic site of N zones, each with every kind of behaviour switched on (its air with a fan, a leak, a
fan failure, sludge and welding fumes; two detectors with noise and drift, one of each firmware generation; four
workers walking paths with noisy, sometimes lost or reflected fixes from both vendors; a harness following its
wearer with clipping habits; a PLC with a fan schedule, a welder powered while its worker works and an
isolation), generates it, encodes the recording, and prints simulated zone-hours per wall-clock second.
"""

from __future__ import annotations

import argparse
import time

from simulators.payloads import DeviceRow, ZoneRow
from simulators.recording import encode_recording
from simulators.scenario import (
    AirSim,
    ChannelDrift,
    ChannelSigma,
    DisturbSludge,
    Exhaust,
    FailSignal,
    GasSim,
    HarnessSim,
    Leak,
    PlcSim,
    Rtls,
    Scenario,
    TagSim,
    Tables,
    TimelineEvent,
    WalkPath,
    Waypoint,
    generate,
)

ZONE_PITCH_M = 40.0
START_MS = 1795136400000  # 2026-11-20T09:00:00+08:00


def zone_rows(k: int) -> tuple[ZoneRow, list[DeviceRow]]:
    """Zone k and its devices: two GD-4s (2.x and 3.x), one SH-2, two tags of each vendor, one PLC."""
    x = k * ZONE_PITCH_M
    zone = ZoneRow(f"Z-{k}", f"区域{k}", [(x, 0.0), (x + 30, 0.0), (x + 30, 20.0), (x, 20.0)], (0.0, 12.0), "II", [])
    devices = [
        DeviceRow(f"GAS-{k}A", "gas", model="GD-4", firmware="2.3.1", zone=zone.zone),
        DeviceRow(f"GAS-{k}B", "gas", model="GD-4", firmware="3.0.0", zone=zone.zone),
        DeviceRow(f"HB-{k}", "harness", model="SH-2", firmware="2.0.1", worker=f"W{k}-1"),
        DeviceRow(f"T-{k}-1", "uwb_tag", vendor="anchorline", worker=f"W{k}-1"),
        DeviceRow(f"T-{k}-2", "uwb_tag", vendor="anchorline", worker=f"W{k}-2"),
        DeviceRow(f"0x{k:02x}03", "uwb_tag", vendor="qubit", worker=f"W{k}-3"),
        DeviceRow(f"0x{k:02x}04", "uwb_tag", vendor="qubit", worker=f"W{k}-4"),
        DeviceRow(f"PLC-{k}", "plc", equipment=[f"FAN-{k}", f"WELD-{k}", f"V-{k}"]),
    ]
    return zone, devices


def zone_points(k: int) -> dict[str, tuple[float, float, float]]:
    """Four places in zone k, one of them on a 4 m platform."""
    x = k * ZONE_PITCH_M
    return {
        f"z{k}-a": (x + 5.0, 5.0, 1.1),
        f"z{k}-b": (x + 15.0, 8.0, 1.1),
        f"z{k}-c": (x + 25.0, 14.0, 1.1),
        f"z{k}-deck": (x + 25.0, 14.0, 5.1),
    }


def zone_timeline(k: int, duration: float) -> list[TimelineEvent]:
    """Zone k's events: paths round its places for the whole run, a leak, a fan failure, sludge and welding fumes."""
    places = [f"z{k}-a", f"z{k}-b", f"z{k}-c", f"z{k}-deck", f"z{k}-c", f"z{k}-b"]
    laps = int(duration // (len(places) * 60)) + 1
    events: list[TimelineEvent] = []
    for w in range(1, 5):
        stops = [Waypoint(places[(i + w) % len(places)], dwell=45.0, work=(w == 2)) for i in range(laps * len(places))]
        events.append(WalkPath(at=5.0 * w, worker=f"W{k}-{w}", waypoints=stops))
    events += [
        Exhaust(at=10.0, zone=f"Z-{k}", l_min=0.2, while_on=f"WELD-{k}.power"),
        Leak(at=min(600.0, duration / 4), zone=f"Z-{k}", gas="methane", kg_h=1.0),
        FailSignal(at=min(1800.0, duration / 2), plc=f"PLC-{k}", tag=f"FAN-{k}.running", until=min(2400.0, duration)),
        DisturbSludge(at=min(900.0, duration / 3), zone=f"Z-{k}", h2s_g=5.0),
    ]
    return events


def speed_site(zones: int, hours: float, seed: int = 1) -> Scenario:
    """A site of `zones` zones with every behaviour switched on, running for `hours`."""
    duration = hours * 3600.0
    rows = [zone_rows(k) for k in range(zones)]
    points = {name: p for k in range(zones) for name, p in zone_points(k).items()}
    noise = ChannelSigma(o2=0.05, lel=0.2, h2s=0.1, co=0.3)
    timeline = sorted((e for k in range(zones) for e in zone_timeline(k, duration)), key=lambda e: e.at)
    return Scenario(
        seed=seed,
        start=START_MS,
        duration=duration,
        name=f"speed_{zones}_zones",
        tables=Tables(),
        rtls=Rtls(qubit_batch=4, fixes=TagSim(sigma=0.15, multipath=0.01, dropout=0.01)),
        points=points,
        positions={f"W{k}-{w}": f"z{k}-a" for k in range(zones) for w in range(1, 5)},
        zones=[zone for zone, _ in rows],
        devices=[d for _, devices in rows for d in devices],
        gas={f"GAS-{k}{g}": GasSim(noise=noise, drift=ChannelDrift(o2=-0.02)) for k in range(zones) for g in "AB"},
        harness={f"HB-{k}": HarnessSim(follow=True, unclip=0.2, reclip=5.0, drain=4.0) for k in range(zones)},
        plc={
            f"PLC-{k}": PlcSim(
                tags={f"FAN-{k}.running": False, f"WELD-{k}.power": False, f"V-{k}.isolated": True},
                schedule={f"FAN-{k}.running": [(0.0, duration)]},
                worked_by={f"WELD-{k}.power": f"W{k}-2"},
            )
            for k in range(zones)
        },
        air={f"Z-{k}": AirSim(volume=2400.0, ach=6.0, ach_off=0.5, fan=f"FAN-{k}") for k in range(zones)},
        timeline=timeline,
    )


def measure(zones: int, hours: float) -> tuple[int, float]:
    """Records generated and wall-clock seconds to generate and encode them."""
    scenario = speed_site(zones, hours)
    started = time.perf_counter()
    recording = encode_recording(generate(scenario))
    elapsed = time.perf_counter() - started
    return recording.count(b"\n"), elapsed


def main() -> None:
    """Print the generation speed of a synthetic site."""
    parser = argparse.ArgumentParser(prog="python -m simulators.generation_speed", description=__doc__)
    parser.add_argument("--zones", type=int, default=10)
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args()
    records, elapsed = measure(args.zones, args.hours)
    zone_hours = args.zones * args.hours
    print(f"{args.zones} zones x {args.hours:g} h: {records} records in {elapsed:.2f} s wall clock = "
          f"{zone_hours / elapsed:.1f} zone-hours/s ({records / elapsed:,.0f} records/s)")


if __name__ == "__main__":
    main()
