"""Instructions per record of the decision path, counted by valgrind's callgrind: a figure that does not move with
the machine's slow spells, for telling a small change of cost from noise (not in the gate: it takes minutes).

    python -m bench.instructions            # the quick workload, with and without the risk model
    python -m bench.instructions --full     # the full one (slow: about 50 times its native time)

Each figure is two runs of a child process under callgrind over the same recording: both read it and first run it
through a throwaway Site (so every compiled function is loaded and called), then one of them runs it through a
fresh Site; the difference in instructions over the records is the figure. A run before them, not counted, leaves
numba's cache compiled for valgrind's CPU, so neither of the two compiles. Needs
valgrind (`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.workloads import FULL, QUICK, recording_bytes, site_records

COLLECTED = re.compile(rb"Collected : (\d+)")
CHILD_ENV = {"PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
"""One string-hash seed, so dictionaries collide alike in every run, and no BLAS threads, whose idle spinning
callgrind would count."""
NO_ASLR = ("setarch", "-R") if shutil.which("setarch") else ()
"""Addresses the same in every run (where setarch is there), so objects hashed by identity collide alike."""


def collected(stderr: bytes) -> int:
    """The instruction count callgrind reports on stderr ("==pid== Collected : N")."""
    found = COLLECTED.search(stderr)
    if found is None:
        raise RuntimeError(f"callgrind reported no instruction count; its output ends: {stderr[-400:]!r}")
    return int(found.group(1))


def child_run(recording: Path, model_on: bool, timed: bool) -> int:
    """The child's work: read the recording, run it through a throwaway Site, then (timed) through a fresh one."""
    from dataflows.recording import read_recording
    from dataflows.risk_model_file import load_risk_model
    from interlock.site import Site

    records = list(read_recording(io.BytesIO(recording.read_bytes())))
    model = load_risk_model() if model_on else None
    Site(risk_model=model).process_batch(records)
    if timed:
        Site(risk_model=model).process_batch(records)
    return len(records)


def instructions(recording: Path, records: int, model_on: bool, valgrind: str) -> float:
    """Instructions per record of `Site.process_batch` over the recording."""
    counts = []
    with tempfile.TemporaryDirectory() as scratch:
        for timed in (False, True, False):  # the first run leaves numba's cache as the two counted ones find it
            command = [*NO_ASLR, valgrind, "--tool=callgrind", f"--callgrind-out-file={scratch}/callgrind.out",
                       sys.executable, "-m", "bench.instructions", "--child", str(recording),
                       "on" if model_on else "off", "timed" if timed else "untimed"]
            done = subprocess.run(command, capture_output=True, check=False, env={**os.environ, **CHILD_ENV})
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-400:]!r}")
            counts.append(collected(done.stderr))
    return (counts[1] - counts[2]) / records


def measure(quick: bool = True) -> dict[str, float]:
    """Instructions per record with the shipped risk model ("on") and without it ("off")."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed: apt-get install valgrind")
    size = QUICK if quick else FULL
    data, records = recording_bytes(*size), len(site_records(*size))
    with tempfile.TemporaryDirectory() as scratch:
        recording = Path(scratch) / "workload.jsonl"
        recording.write_bytes(data)
        return {way: instructions(recording, records, way == "on", valgrind) for way in ("on", "off")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the full workload (about a million records; slow)")
    parser.add_argument("--child", nargs=3, metavar=("RECORDING", "on|off", "timed|untimed"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        path, model, timed = args.child
        child_run(Path(path), model == "on", timed == "timed")
        return 0
    figures = measure(quick=not args.full)
    print(f"instructions per record, {'full' if args.full else 'quick'} workload (callgrind):")
    for way, label in (("on", "with the risk model"), ("off", "without it")):
        print(f"  {label:<22} {figures[way] / 1000:.1f}k")
    print(f"  {'the model':<22} {(figures['on'] - figures['off']) / 1000:.1f}k")
    return 0


if __name__ == "__main__":
    sys.exit(main())
