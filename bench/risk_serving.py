"""Serving cost of the zone risk model, per zone step: `step` alone, `step_batch` across zones, and PyTorch on the same
weights in the same run (for comparison: the stream serves with numba, and CI may lack torch).

    step_us                      one `interlock.risk_model.step` call: features, LSTM cell, head (one dispatch)
    step_batch_us@<n>            `step_batch` of n zones, per zone step
    features_us                  `features_step` alone, per call
    torch_<dtype>_us@<n>         torch LSTMCell + head + sigmoid on standardised features (the feature step not
                                 included), n zones in one call, per zone step; 1 thread

Each figure is the median of several timed loops of about 4,000 zone steps, so a busy machine disturbs few of them.
The model is the shipped one (or a random one of --hidden units); the inputs are a realistic mix of known and unknown
values. The cost does not depend on the weights.

    python -m bench.risk_serving [--hidden N] [--full]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import numpy as np

from bench.results import Metric, SuiteResult
from interlock import risk_inputs as R
from interlock.risk_features import FEATURE_WIDTH, features_sequence, features_step, new_feature_state
from interlock.risk_model import (
    RiskModel,
    new_zone_state,
    step,
    step_batch,
    write_model_bytes,
    zone_state_width,
)

SUITE = "risk_serving"
ZONES = (1, 16, 256, 4096)
HIDDEN = 32
STEPS_PER_LOOP = 4096
LOOPS_QUICK = 9
LOOPS_FULL = 31
TORCH_DTYPES = ("float32", "float64")
THRESHOLDS = {"blue": 0.2, "yellow": 0.5, "red": 0.8}


def random_model(hidden: int = HIDDEN, seed: int = 0) -> RiskModel:
    """A model of the served shape with random weights (PyTorch's init range)."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(hidden)
    f, g = FEATURE_WIDTH, 4 * hidden
    arrays = {
        "weight_ih": rng.uniform(-bound, bound, (g, f)), "weight_hh": rng.uniform(-bound, bound, (g, hidden)),
        "bias_ih": rng.uniform(-bound, bound, g), "bias_hh": rng.uniform(-bound, bound, g),
        "head_weight": rng.uniform(-bound, bound, (1, hidden)), "head_bias": rng.uniform(-bound, bound, 1),
        "feature_mean": np.zeros(f), "feature_scale": np.ones(f),
    }
    return RiskModel.from_bytes(write_model_bytes(arrays, {"thresholds": THRESHOLDS}))


def zone_raws(zones: int, seed: int = 1) -> np.ndarray:
    """One raw vector per zone (zones, RAW_WIDTH): air near clean with some gas, a tenth of the channels unknown."""
    rng = np.random.default_rng(seed)
    raw = R.empty_raw(zones)
    raw[:, R.DT_S] = 1.0
    raw[:, R.O2_LOW] = rng.uniform(20.3, 20.9, zones)
    raw[:, R.O2_HIGH] = raw[:, R.O2_LOW] + rng.uniform(0.0, 0.2, zones)
    raw[:, R.LEL] = rng.uniform(0.0, 4.0, zones)
    raw[:, R.H2S] = rng.uniform(0.0, 2.0, zones)
    raw[:, R.CO] = rng.uniform(0.0, 10.0, zones)
    gas = raw[:, R.O2_LOW:R.CO + 1]
    gas[rng.random(gas.shape) < 0.1] = np.nan
    raw[:, R.LIMIT_O2_MIN:R.LIMIT_CO + 1] = (19.5, 23.5, 10.0, 7.0, 26.0)
    raw[:, R.DETECTORS] = 2.0
    raw[:, R.FRESH] = 2.0
    raw[:, R.FAULTED_CHANNELS] = 0.0
    raw[:, R.WARMING] = 0.0
    raw[:, R.FAN] = rng.choice([0.0, 1.0, np.nan], zones)
    raw[:, R.EQUIPMENT] = rng.choice([0.0, 1.0], zones)
    raw[:, R.OCCUPANCY] = rng.integers(0, 4, zones)
    raw[:, R.SINCE_FIRST_ENTRY_S] = rng.uniform(0, 20_000, zones)
    raw[:, R.OCCUPIED_FOR_S] = rng.uniform(0, 5_000, zones)
    return raw


def first_step_features(raws: np.ndarray) -> np.ndarray:
    """The features (zones, FEATURE_WIDTH) of each zone's first step, each from a fresh state."""
    return np.concatenate([features_sequence(raw[None]) for raw in raws])


def per_step_us(run: Callable[[], object], steps_per_call: int, loops: int) -> float:
    """Median over `loops` timed loops of µs per zone step; each loop makes about STEPS_PER_LOOP zone steps."""
    calls = max(1, STEPS_PER_LOOP // steps_per_call)
    run()
    figures = []
    for _ in range(loops):
        begin = time.perf_counter_ns()
        for _ in range(calls):
            run()
        figures.append((time.perf_counter_ns() - begin) / (calls * steps_per_call) / 1000)
    return statistics.median(figures)


def numba_metrics(model: RiskModel, loops: int) -> list[Metric]:
    raws = zone_raws(max(ZONES))
    state, raw = new_zone_state(model), raws[0]
    metrics = [Metric("step_us", per_step_us(lambda: step(model, state, raw), 1, loops), "us", "lower")]
    for zones in ZONES:
        states = np.zeros((zones, zone_state_width(model)))
        block, out = raws[:zones].copy(), np.empty(zones)
        metrics.append(Metric(f"step_batch_us@{zones}", per_step_us(
            lambda: step_batch(model, states, block, out), zones, loops), "us", "lower"))
    fstate, features = new_feature_state(), np.empty(FEATURE_WIDTH)
    metrics.append(Metric("features_us", per_step_us(lambda: features_step(raw, fstate, features), 1, loops),
                          "us", "lower"))
    return metrics


def torch_metrics(model: RiskModel, loops: int) -> tuple[list[Metric], list[str]]:
    """PyTorch on the same weights, 1 thread, inference mode; empty with a note when torch is not installed."""
    try:
        import torch
    except ImportError:
        return [], ["torch is not installed: no PyTorch figures"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    metrics: list[Metric] = []
    raws = zone_raws(max(ZONES))
    features = first_step_features(raws)
    try:
        for dtype_name in TORCH_DTYPES:
            dtype = getattr(torch, dtype_name)
            cell, head, mean, scale = torch_model(torch, model, dtype)
            for zones in ZONES:
                x = torch.from_numpy(features[:zones]).to(dtype)
                h = torch.zeros(zones, model.hidden, dtype=dtype)
                c = torch.zeros(zones, model.hidden, dtype=dtype)

                def run(x=x, h=h, c=c) -> object:
                    with torch.inference_mode():
                        h1, _ = cell((x - mean) / scale, (h, c))
                        return torch.sigmoid(head(h1))

                metrics.append(Metric(f"torch_{dtype_name}_us@{zones}", per_step_us(run, zones, loops), "us", "lower"))
        notes = [f"torch {torch.__version__}: LSTMCell + Linear + sigmoid, 1 thread (of {threads}), inference_mode; "
                 f"features computed beforehand (features_us is their cost)",
                 f"max |p(torch float64) - p(step)| on one step of {max(ZONES)} zones: "
                 f"{_torch_difference(torch, model, raws):.1e}"]
    finally:
        torch.set_num_threads(threads)
    return metrics, notes


def torch_model(torch, model: RiskModel, dtype):
    """(nn.LSTMCell, nn.Linear, mean, scale) of `dtype` holding the model's weights: what PyTorch serves it with."""
    cell = torch.nn.LSTMCell(FEATURE_WIDTH, model.hidden).to(dtype)
    head = torch.nn.Linear(model.hidden, 1).to(dtype)
    arrays = model.arrays()
    with torch.no_grad():
        for name, parameter in (("weight_ih", cell.weight_ih), ("weight_hh", cell.weight_hh),
                                ("bias_ih", cell.bias_ih), ("bias_hh", cell.bias_hh),
                                ("head_weight", head.weight), ("head_bias", head.bias)):
            parameter.copy_(torch.from_numpy(arrays[name]))
    mean = torch.from_numpy(arrays["feature_mean"]).to(dtype)
    scale = torch.from_numpy(arrays["feature_scale"]).to(dtype)
    return cell, head, mean, scale


def _torch_difference(torch, model: RiskModel, raws: np.ndarray) -> float:
    cell, head, mean, scale = torch_model(torch, model, torch.float64)
    with torch.inference_mode():
        x = (torch.from_numpy(first_step_features(raws)) - mean) / scale
        h, _ = cell(x)
        expected = torch.sigmoid(head(h))[:, 0].numpy()
    out = np.empty(raws.shape[0])
    step_batch(model, np.zeros((raws.shape[0], zone_state_width(model))), raws, out)
    return float(np.abs(out - expected).max())


def measure(quick: bool, hidden: int | None = None) -> SuiteResult:
    """Numba serving figures and, when torch is importable, PyTorch's on the same weights: the shipped model's, or a
    random model of `hidden` units."""
    if hidden is None:
        from dataflows.risk_model_file import load_risk_model

        model = load_risk_model()
        hidden = model.hidden
    else:
        model = random_model(hidden)
    loops = LOOPS_QUICK if quick else LOOPS_FULL
    metrics = numba_metrics(model, loops)
    torch_figures, notes = torch_metrics(model, loops)
    notes.insert(0, f"hidden {hidden}, {FEATURE_WIDTH} features; median of {loops} loops of about {STEPS_PER_LOOP} "
                    f"zone steps")
    return SuiteResult(SUITE, metrics + torch_figures, notes=notes)


def table(result: SuiteResult) -> str:
    """µs per zone step by implementation (rows) and zones stepped together (columns)."""
    figures = {metric.name: metric.value for metric in result.metrics}
    rows = [("numba step (one call per zone)", {1: figures["step_us"]}),
            ("numba step_batch", {n: figures[f"step_batch_us@{n}"] for n in ZONES}),
            ("numba features_step alone", {1: figures["features_us"]})]
    rows += [(f"torch LSTMCell {dtype}", {n: figures[f"torch_{dtype}_us@{n}"] for n in ZONES})
             for dtype in TORCH_DTYPES if f"torch_{dtype}_us@1" in figures]
    lines = ["µs per zone step".ljust(34) + "".join(f"{f'{n} zones':>12}" for n in ZONES)]
    for label, values in rows:
        lines.append(label.ljust(34) + "".join(f"{values[n]:>12.2f}" if n in values else f"{'':>12}" for n in ZONES))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.risk_serving", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hidden", type=int, default=None,
                        help="a random model of this LSTM hidden size (default: the shipped model)")
    parser.add_argument("--full", action="store_true", help=f"{LOOPS_FULL} loops per figure (default {LOOPS_QUICK})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = measure(quick=not args.full, hidden=args.hidden)
    print(table(result))
    for note in result.notes:
        print(f"note: {note}")
    print(f"suite took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
