"""Generate a recording from any scenario file: `python -m simulators SCENARIO.toml OUT.jsonl`."""

from __future__ import annotations

import argparse
from pathlib import Path

from simulators.recording import write_recording
from simulators.scenario import generate, load_scenario


def main() -> None:
    """Play the scenario and write its recording."""
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("scenario", type=Path, help="scenario TOML file")
    parser.add_argument("recording", type=Path, help="recording to write (kcat -C -J lines)")
    args = parser.parse_args()
    write_recording(args.recording, generate(load_scenario(args.scenario)))


if __name__ == "__main__":
    main()
