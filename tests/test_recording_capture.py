"""Specification: a site's recording replayed for training keeps each zone's raw risk inputs exactly as served."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataflows.recording import open_recording, read_recording
from interlock import risk_inputs as R
from interlock.risk_model import sequence_probabilities
from interlock.site import Site
from test_zone_risk import PROBE
from training.recording_capture import capture_recording
from training.risk_labels import parse_labels, sequences_from_capture

LEAK = Path(__file__).resolve().parents[1] / "simulators" / "incidents" / "slow_leak_hot_work.jsonl"


def test_a_capture_holds_one_step_a_second_per_zone_with_a_detector():
    capture = capture_recording(LEAK)
    assert list(capture) == ["PH-2"]
    t, raw = capture["PH-2"]
    assert raw.shape == (len(t), R.RAW_WIDTH)
    assert 950 <= np.median(np.diff(t)) <= 1050


def test_a_capture_sees_the_leak_rise_past_the_limit():
    _, raw = capture_recording(LEAK)["PH-2"]
    assert raw[0, R.LEL] < 2 and np.nanmax(raw[:, R.LEL]) >= raw[0, R.LIMIT_LEL]


def test_the_stream_scores_what_the_capture_holds():
    with open_recording(str(LEAK)) as stream:
        records = read_recording(stream)
    site = Site(risk_model=PROBE)
    site.process_batch(records)
    _, raw = capture_recording(LEAK)["PH-2"]
    assert site.zone_risk["PH-2"].score == sequence_probabilities(PROBE, raw)[-1]


def test_a_capture_and_a_labels_file_make_labelled_sequences():
    capture = capture_recording(LEAK)
    t, raw = capture["PH-2"]
    crossing = int(t[np.argmax(raw[:, R.LEL] >= 10.0)])
    labels = parse_labels(f'''
format = "interlock-risk-labels/1"
[[recording]]
name = "slow_leak_hot_work"
split = "test"
[[crossing]]
zone = "PH-2"
channel = "lel"
at = {crossing}
''')
    [sequence] = sequences_from_capture(capture, labels, "slow_leak_hot_work")
    assert sequence.split == "test" and sequence.label[0] == (crossing - t[0] <= 720_000)
    assert not sequence.label[-1] and sequence.seconds_to_crossing[0] == (crossing - t[0]) / 1000
