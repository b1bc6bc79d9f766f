"""Regenerate the committed incident recordings: `python -m simulators.incidents [name ...]`.

With no names every scenario `*.toml` in this folder is played (not the `*.outcome.toml` files, which state what
each incident's replay must show); each writes the `.jsonl` beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from simulators.recording import write_recording
from simulators.scenario import generate, load_scenario

INCIDENTS = Path(__file__).resolve().parent
OUTCOME_SUFFIX = ".outcome.toml"
"""`<name>.outcome.toml` beside a scenario states what its replay must show (simulators/incidents/outcome.py)."""


def incident_scenarios(names: list[str]) -> list[Path]:
    """The scenario files named (with or without `.toml`), or all of them (not their outcome files)."""
    if not names:
        return sorted(p for p in INCIDENTS.glob("*.toml") if not p.name.endswith(OUTCOME_SUFFIX))
    paths = [INCIDENTS / f"{name.removesuffix('.toml')}.toml" for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"no such incident: {', '.join(missing)}")
    return paths


def regenerate(scenario_path: Path) -> Path:
    """Play one incident scenario and write its recording beside it."""
    recording = scenario_path.with_suffix(".jsonl")
    write_recording(recording, generate(load_scenario(scenario_path)))
    return recording


def main(argv: list[str]) -> None:
    """Regenerate the named incidents, or every one."""
    for path in incident_scenarios(argv):
        print(regenerate(path))


if __name__ == "__main__":
    main(sys.argv[1:])
