"""bench.instructions: reading callgrind's count, and the child's run of a recording (natively: valgrind itself takes
minutes, so `python -m bench.instructions` is run by hand, not here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.instructions import child_run, collected

INCIDENT = Path(__file__).resolve().parents[1] / "simulators" / "incidents" / "firmware_change.jsonl"


def test_the_instruction_count_is_read_from_callgrinds_summary():
    stderr = b"==12910== Events    : Ir\n==12910== Collected : 4046739130\n==12910==\n==12910== I   refs:      4,046,739,130\n"
    assert collected(stderr) == 4046739130


def test_output_without_a_count_is_an_error_that_quotes_it():
    with pytest.raises(RuntimeError, match="valgrind: command not found"):
        collected(b"bash: valgrind: command not found\n")


@pytest.mark.parametrize("model_on", [True, False])
def test_the_child_runs_a_recording_through_the_decision_path(model_on):
    assert child_run(INCIDENT, model_on, timed=True) > 1000
