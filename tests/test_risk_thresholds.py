"""Specification: `interlock risk-thresholds` (training/risk_thresholds.py) chooses a model file's grade thresholds
again on validation data under the caps given, keeping the weights, and records what it replaced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from interlock.risk_model import RiskModel, write_model_bytes
from risk_probe import random_model_arrays
from training.risk_dataset import load_crossings, load_hazards, load_set
from training.risk_eval import model_scores
from training.risk_metrics import threshold_search
from training.risk_thresholds import main

ROOT = Path(__file__).resolve().parents[1]
BEFORE = {"blue": 0.2, "yellow": 0.5, "red": 0.8, "air_yellow": 0.4, "air_yellow_steps": 90}


@pytest.fixture(scope="module")
def validation_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("validation_set") / "set"
    subprocess.run([sys.executable, "-m", "simulators.training_data", "--zone-hours", "4", "--split", "0/100/0",
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True, text=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.npz"
    path.write_bytes(write_model_bytes(random_model_arrays(7, hidden=4), {"thresholds": BEFORE}))
    return path


@pytest.fixture(scope="module")
def rechosen(validation_set, model_file, tmp_path_factory) -> tuple[int, RiskModel]:
    out = tmp_path_factory.mktemp("rechosen") / "model.npz"
    code = main(["--model", str(model_file), "--data", str(validation_set), "--max-false-warnings", "40",
                 "--out", str(out)])
    return code, RiskModel.from_bytes(out.read_bytes())


def test_rechosen_thresholds_are_those_the_search_gives_under_the_caps_on_the_validation_part(
        rechosen, model_file, validation_set):
    code, model = rechosen
    sequences = load_set(validation_set, ("validation",))
    scores = model_scores(RiskModel.from_bytes(model_file.read_bytes()), sequences)
    expected = threshold_search(scores, sequences, load_hazards(validation_set, ("validation",)),
                                load_crossings(validation_set, ("validation",)), max_false_warnings_per_100h=40.0,
                                air_yellow=0.4, air_yellow_steps=90).thresholds
    assert code == 0 and model.thresholds == expected


def test_rechoosing_thresholds_keeps_the_weights(rechosen, model_file):
    _, model = rechosen
    before = RiskModel.from_bytes(model_file.read_bytes())
    for name, value in before.arrays().items():
        assert np.array_equal(model.arrays()[name], value), name


def test_the_model_file_records_the_thresholds_it_replaced_and_the_caps_it_chose_under(rechosen, validation_set):
    _, model = rechosen
    hours = sum(s.hours for s in load_set(validation_set, ("validation",)))
    record = msgspec.json.decode(model.meta_json)["trained"]["thresholds_rechosen"][-1]
    assert {k: record["thresholds_before"][k] for k in BEFORE} == BEFORE
    assert record["threshold_options"]["max_false_warnings_per_100h"] == 40.0
    assert record["data"][0]["seed"] is not None and record["validation_zone_hours"] == pytest.approx(hours)


def test_the_model_files_air_rule_is_kept_unless_another_is_given(rechosen):
    _, model = rechosen
    assert (model.thresholds.air_yellow, model.thresholds.air_yellow_steps) == (0.4, 90)


def test_risk_thresholds_exits_2_without_validation_sequences(model_file, tmp_path):
    assert main(["--model", str(model_file), "--data", str(tmp_path), "--out", str(tmp_path / "m.npz")]) == 2
