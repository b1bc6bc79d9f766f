"""Generate a recording from any scenario file: `python -m simulators SCENARIO.toml OUT.jsonl`.

The same as `interlock simulate-scenario SCENARIO --out OUT` (simulators/scenario_command.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulators.scenario_command import simulate_scenario


def main() -> int:
    """Play the scenario and write its recording; 2 when the scenario cannot be read or played."""
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("scenario", type=Path, help="scenario TOML file")
    parser.add_argument("recording", type=Path, help="recording to write (kcat -C -J lines)")
    args = parser.parse_args()
    return simulate_scenario(argparse.Namespace(scenario=args.scenario, out=args.recording))


if __name__ == "__main__":
    sys.exit(main())
