"""The `interlock simulate-scenario SCENARIO --out RECORDING` command: play a scenario file into a recording.

Registered by the `interlock` command through `add_simulate_scenario_command`; the same as
`python -m simulators SCENARIO RECORDING`, with errors that name the file and the fix instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec

from simulators.recording import write_recording
from simulators.scenario import ScenarioError, generate, load_scenario

PREFIX = "interlock simulate-scenario:"


def add_simulate_scenario_command(commands: argparse._SubParsersAction) -> None:
    """Add `simulate-scenario` to the `interlock` command's subparsers; it runs `simulate_scenario`."""
    p = commands.add_parser(
        "simulate-scenario",
        help="generate a kcat -J recording from a scenario TOML file (simulators/README.md)",
        description="Play a scenario (site, devices, gas physics, timeline) into a deterministic recording.",
    )
    p.add_argument("scenario", help="scenario TOML file")
    p.add_argument("--out", required=True, help="recording to write (kcat -C -J lines), replaced if it exists")
    p.set_defaults(run=simulate_scenario)


def simulate_scenario(args: argparse.Namespace) -> int:
    """Generate the recording; print how many records and how fast; 2 when the scenario cannot be read or played."""
    path = Path(args.scenario)
    try:
        scenario = load_scenario(path)
    except OSError as error:
        print(f"{PREFIX} cannot read scenario {path}: {error}", file=sys.stderr)
        return 2
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        print(f"{PREFIX} {path} is not a valid scenario: {error} (see simulators/README.md, 'Scenario format')",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        records = generate(scenario)
    except ScenarioError as error:
        print(f"{PREFIX} {path} cannot be played: {error}", file=sys.stderr)
        return 2
    try:
        write_recording(Path(args.out), records)
    except OSError as error:
        print(f"{PREFIX} cannot write recording {args.out}: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(f"{scenario.name or path.stem}: {len(records)} records, {scenario.duration:g} s of site time, "
          f"generated in {elapsed:.2f} s -> {args.out}", file=sys.stderr)
    return 0
