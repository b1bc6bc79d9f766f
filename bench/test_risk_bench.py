"""pytest-benchmarks of serving the zone risk model: one `step`, `step_batch` across zones, and PyTorch on the same
weights when torch is installed.

    .venv/bin/python -m pytest bench/test_risk_bench.py -q --benchmark-enable -p no:cacheprovider

The figures for the README come from `python -m bench.risk_serving`; these are for looking at one case interactively.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.risk_serving import ZONES, first_step_features, random_model, torch_model, zone_raws
from interlock.risk_model import RiskModel, new_zone_state, step, step_batch, zone_state_width


@pytest.fixture(scope="module")
def model() -> RiskModel:
    return random_model()


def test_step(benchmark, model):
    benchmark.group = "risk step, one zone"
    state, raw = new_zone_state(model), zone_raws(1)[0]
    assert 0.0 < benchmark(step, model, state, raw) < 1.0


@pytest.mark.parametrize("zones", ZONES)
def test_step_batch(benchmark, model, zones):
    benchmark.group = "risk step_batch"
    benchmark.extra_info["zones"] = zones
    states, raws, out = np.zeros((zones, zone_state_width(model))), zone_raws(zones), np.empty(zones)
    benchmark(step_batch, model, states, raws, out)
    assert ((out > 0.0) & (out < 1.0)).all()


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("zones", [1, 256])
def test_torch_lstm_cell(benchmark, model, zones, dtype_name):
    torch = pytest.importorskip("torch")
    benchmark.group = f"torch LSTMCell, {zones} zone(s)"
    dtype = getattr(torch, dtype_name)
    cell, head, mean, scale = torch_model(torch, model, dtype)
    x = torch.from_numpy(first_step_features(zone_raws(zones))).to(dtype)
    h = torch.zeros(zones, model.hidden, dtype=dtype)

    def run():
        with torch.inference_mode():
            h1, _ = cell((x - mean) / scale, (h, h))
            return torch.sigmoid(head(h1))

    assert benchmark(run).shape == (zones, 1)
