"""Train the zone risk model: a one-layer LSTM over the risk features, exported as the interlock's model file.

```sh
interlock risk-train --data runs/training_data --data runs/risk_train_2028 --out runs/risk_model_v1.npz
python -m training.risk_train --data DIR [--data DIR ...] [--recordings DIR --labels FILE] --out MODEL.npz \
    [--hidden 32] [--epochs 12] [--seed 2027]
```

Needs PyTorch (`pip install -e '.[train]'`, torch==2.13.0); the interlock itself serves the file with numba alone.

1. **Data.** Each `--data` set's `train` part trains and its `validation` part validates (never `test`: it is held
   out for `interlock risk-eval`). Recordings (`--recordings DIR --labels FILE`, training.risk_labels) join by the
   split their labels file gives them.
2. **Features** come from `interlock.risk_features.features_sequence`, the very code the stream steps; the file's
   `feature_mean` and `feature_scale` are the training features' mean and standard deviation (scale at least 1e-3),
   and the LSTM reads (features - mean) / scale.
3. **Training** is stateful truncated back-propagation through time: every zone sequence (up to 6 h at 1 Hz) is
   one sequence from a fresh state, as the stream runs it; `batch` sequences of similar length run side by side,
   time is cut into `window`-step chunks and (h, c) carries over from chunk to chunk, detached; padding is masked.
   The loss is binary cross-entropy on `label` (a crossing within 12 min; with `over_limit_positive`, also every
   step the air is past a limit, so the score stays high until the air is back) with positives weighted
   `pos_weight` and those at least `EARLY_S` before their crossing (the steps a warning 10 minutes ahead rests on)
   `early_weight` times more; the steps of a developing hazard 12 to 22 minutes before its crossing (label 0, but a
   score rising there is early rather than false) weigh `run_up_weight` (default 1, as any negative); Adam with
   gradient clipping, deterministic (seeded,
   `torch.use_deterministic_algorithms`, `threads` threads). `benign_keep` < 1 trains each epoch on that share of
   the benign-only zones (no hazard, no crossing), drawn anew. `lr_decay="cosine"` lowers the learning rate along a
   half cosine to `LR_FLOOR` of it by the last update; `weight_average` > 0 keeps an exponential moving average of
   the weights over the updates (Polyak averaging), and each epoch is judged and kept by the averaged weights, which
   smooths the epoch-to-epoch swings of a constant-rate Adam. Features are computed sequence by sequence (twice for
   the standardisation, once more for training) and held in float32 only: the shipped model's 13,600 zone-hours
   (training and validation) peak at 18 GB.
4. **Best epoch**: the one with the highest validation average precision over the steps not over a limit
   (`training.risk_metrics.pr_curve`; the evaluation compares with the baselines on the same figure), ties to the
   lower validation loss (`select="loss"`: the lowest loss).
5. **Thresholds**: the best epoch is exported, read back with `RiskModel.from_bytes`, and its probabilities on the
   validation sequences come from `interlock.risk_model.sequence_probabilities` (the served numba path, so the
   thresholds fit what is served); `training.risk_metrics.choose_thresholds` (its `threshold_search`, which also
   reports what each candidate gave) picks blue, yellow and red on them with the validation hazards and crossings.
6. **The file**: `interlock.risk_model.write_model_bytes(arrays, meta)`; `meta.trained` records the data (each
   set's seed and the sha256 of its manifest.json), the settings, the validation figures, torch's version and the
   training time.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import msgspec
import numpy as np

from interlock.risk_features import FEATURE_WIDTH, features_sequence
from training.risk_labels import HORIZON_S
from training.zone_sequence import Crossing, Hazard, ZoneSequence

TORCH_VERSION = "2.13.0"
INSTALL_HINT = f"pip install -e '.[train]' (torch=={TORCH_VERSION})"
PROG = "interlock risk-train"
HIDDEN = 32
EPOCHS = 12
SEED = 2027
BATCH = 32
WINDOW = 600
LEARNING_RATE = 3e-3
POS_WEIGHT = 4.0
CLIP_NORM = 1.0
EARLY_WEIGHT = 1.0
EARLY_S = 480.0
"""Positive steps at least this long before their crossing are the ones a warning 10 minutes ahead rests on;
`early_weight` multiplies their loss weight."""
RUN_UP_S = 600.0
"""The run-up to a crossing: steps of a developing hazard up to this long before the label's horizon (12 to 22
minutes before the crossing). Their label is 0, but a score rising there is early, not false; `run_up_weight` is
their loss weight."""
MIN_SCALE = 1e-3
AIR_YELLOW = 0.5
AIR_YELLOW_STEPS = 180
"""The air rule a trained model's grades carry (interlock.risk_grade): YELLOW when the zone's air has stayed at half a
gas limit or more for 3 minutes. Chosen on validation data (docs/risk_model.md): it warns the slow creeps towards a
limit that the model scores late, and adds about one false warning per 100 zone-hours."""
PLACEHOLDER_THRESHOLDS = {"blue": 0.25, "yellow": 0.5, "red": 0.75}
"""Only while the thresholds are being chosen: a model file cannot be read without thresholds."""


def require_torch():
    """PyTorch, or an ImportError saying how to install it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"training the risk model needs PyTorch: {INSTALL_HINT}") from error
    return torch


# ------------------------------------------------------------------------------------------------------- features

def _features_each(sequences: Sequence[ZoneSequence]) -> Iterator[np.ndarray]:
    """Each sequence's features in turn, computed as they are asked for (one sequence's in memory at a time)."""
    return (features_sequence(s.raw) for s in sequences)


def feature_standardisation(sequences: Sequence[ZoneSequence]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) over every training step: the features' mean and standard deviation, scale at least 1e-3. Each
    sequence's features are computed once per pass and dropped, so a large training set never holds them in float64."""
    n = sum(len(s) for s in sequences)
    if n == 0:
        raise ValueError("no training steps: give at least one zone sequence with steps")
    total = np.zeros(FEATURE_WIDTH, dtype=np.float64)
    for s in sequences:
        total += features_sequence(s.raw).sum(axis=0)
    mean = total / n
    square = np.zeros(FEATURE_WIDTH, dtype=np.float64)
    for s in sequences:
        d = features_sequence(s.raw) - mean
        square += np.einsum("ij,ij->j", d, d)
    scale = np.sqrt(square / n)
    return mean, np.maximum(scale, MIN_SCALE)


def _standardised(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((features - mean) / scale).astype(np.float32)


@dataclass
class _Prepared:
    x: list[np.ndarray]
    """float32 (n, F), standardised."""
    y: list[np.ndarray]
    """float32 (n,): the label."""
    w: list[np.ndarray]
    """float32 (n,): the loss weight of each step."""
    benign: np.ndarray
    """bool per sequence: no hazard and no crossing (may be sub-sampled)."""


def _prepare(sequences: Sequence[ZoneSequence], features: Iterable[np.ndarray], mean, scale, pos_weight: float,
             over_limit_weight: float, early_weight: float = 1.0, over_limit_positive: bool = False,
             run_up_weight: float = 1.0) -> _Prepared:
    xs, ys, ws, benign = [], [], [], []
    for s, f in zip(sequences, features):
        y = np.asarray(s.label, dtype=bool)
        if over_limit_positive:
            y = y | np.asarray(s.over_limit, dtype=bool)
        w = np.where(y, pos_weight, 1.0)
        if early_weight != 1.0:
            early = y & (np.nan_to_num(s.seconds_to_crossing, nan=0.0) >= EARLY_S)
            w = np.where(early, w * early_weight, w)
        if run_up_weight != 1.0:
            ahead = np.nan_to_num(s.seconds_to_crossing, nan=np.inf)
            run_up = ~y & np.asarray(s.hazard_active, dtype=bool) & (ahead > HORIZON_S) & (ahead <= HORIZON_S + RUN_UP_S)
            w = np.where(run_up, run_up_weight, w)
        if over_limit_weight != 1.0:
            w = np.where(np.asarray(s.over_limit, dtype=bool), w * over_limit_weight, w)
        xs.append(_standardised(f, mean, scale))
        ys.append(y.astype(np.float32))
        ws.append(w.astype(np.float32))
        benign.append(not y.any() and not np.asarray(s.hazard_active, dtype=bool).any())
    return _Prepared(xs, ys, ws, np.array(benign, dtype=bool))


def _batches(lengths: np.ndarray, chosen: np.ndarray, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Groups of `batch` sequence indices of similar length (random within a length), in random order."""
    chosen = rng.permutation(chosen)
    chosen = chosen[np.argsort(-lengths[chosen], kind="stable")]
    groups = [chosen[i:i + batch] for i in range(0, chosen.size, batch)]
    return [groups[i] for i in rng.permutation(len(groups))]


def _padded(arrays: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(arrays), length, *arrays[0].shape[1:]), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0]] = a
    return out


# ---------------------------------------------------------------------------------------------------------- model

LR_DECAYS = ("none", "cosine")
LR_FLOOR = 0.05
"""A cosine decay ends at this share of the learning rate."""


def _cosine_rate(rate: float, progress: float) -> float:
    """The learning rate `progress` (0 to 1) of the way through training, from `rate` down to LR_FLOOR x rate."""
    return rate * (LR_FLOOR + (1.0 - LR_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0))))


class _WeightAverage:
    """An exponential moving average of the network's weights over the updates (Polyak averaging): the averaged
    network is what each epoch is judged and kept by, which evens out the update-to-update noise of the raw weights."""

    def __init__(self, net, decay: float):
        self.decay = decay
        self.weights = [p.detach().clone() for p in net.parameters()]

    def update(self, net) -> None:
        for a, p in zip(self.weights, net.parameters()):
            a.mul_(self.decay).add_(p.detach(), alpha=1.0 - self.decay)

    def swap(self, net) -> None:
        """Exchange the network's weights with the averaged ones (twice restores them)."""
        for a, p in zip(self.weights, net.parameters()):
            raw = p.detach().clone()
            p.data.copy_(a)
            a.copy_(raw)


def _network(torch, hidden: int):
    class RiskNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(FEATURE_WIDTH, hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, 1)

        def forward(self, x, state=None):
            out, state = self.lstm(x, state)
            return self.head(out).squeeze(-1), state

    return RiskNet()


def _initialise(torch, net, hidden: int, base_rate: float) -> None:
    with torch.no_grad():
        for name in ("bias_ih_l0", "bias_hh_l0"):  # forget gate bias 1 in all (0.5 + 0.5): remember by default
            getattr(net.lstm, name)[hidden:2 * hidden].fill_(0.5)
        rate = min(max(base_rate, 1e-4), 0.5)
        net.head.bias.fill_(math.log(rate / (1.0 - rate)))


def export_arrays(net, mean: np.ndarray, scale: np.ndarray) -> dict[str, np.ndarray]:
    """The model file's arrays (interlock.risk_model.ARRAY_NAMES) from the trained network, float64."""
    state = {k: v.detach().cpu().double().numpy().copy() for k, v in net.state_dict().items()}
    return {
        "weight_ih": state["lstm.weight_ih_l0"], "weight_hh": state["lstm.weight_hh_l0"],
        "bias_ih": state["lstm.bias_ih_l0"], "bias_hh": state["lstm.bias_hh_l0"],
        "head_weight": state["head.weight"], "head_bias": state["head.bias"],
        "feature_mean": np.asarray(mean, dtype=np.float64), "feature_scale": np.asarray(scale, dtype=np.float64),
    }


def _predict(torch, net, data: _Prepared, batch: int = 64, window: int = 4096) -> list[np.ndarray]:
    """Each sequence's probabilities from a fresh state (PyTorch, float32)."""
    lengths = np.array([x.shape[0] for x in data.x])
    order = np.argsort(-lengths, kind="stable")
    out: list[np.ndarray | None] = [None] * len(data.x)
    net.eval()
    with torch.no_grad():
        for i in range(0, order.size, batch):
            group = order[i:i + batch]
            length = int(lengths[group].max())
            x = torch.from_numpy(_padded([data.x[j] for j in group], length))
            state, parts = None, []
            for a in range(0, length, window):
                logits, state = net(x[:, a:a + window], state)
                parts.append(torch.sigmoid(logits))
            p = torch.cat(parts, dim=1).double().numpy()
            for k, j in enumerate(group):
                out[j] = p[k, :lengths[j]].copy()
    net.train()
    return out  # type: ignore[return-value]


def _log_loss(probabilities: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> float:
    p = np.clip(np.concatenate(probabilities), 1e-7, 1 - 1e-7)
    y = np.concatenate(labels) > 0.5
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def _average_precision(probabilities: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                       sequences: Sequence[ZoneSequence]) -> float:
    """Average precision over the steps not over a limit (the evaluation's comparison figure): how well the score
    warns of a crossing still to come, whatever it does while the air is past a limit."""
    from training.risk_metrics import pr_curve

    keep = ~np.concatenate([np.asarray(s.over_limit, dtype=bool) for s in sequences])
    return pr_curve(np.concatenate(probabilities)[keep], np.concatenate(labels)[keep] > 0.5)[3]


# ---------------------------------------------------------------------------------------------- fallback truth

def crossings_from_sequences(sequences: Sequence[ZoneSequence]) -> list[Crossing]:
    """The crossings the sequences' labels imply (t + seconds_to_crossing), channel unknown: for sequences given
    without their set's crossings."""
    out = []
    for s in sequences:
        s_to = np.asarray(s.seconds_to_crossing, dtype=np.float64)
        ok = np.isfinite(s_to)
        times = np.unique(np.asarray(s.t_ms, dtype=np.int64)[ok] + np.round(s_to[ok] * 1000).astype(np.int64))
        out.extend(Crossing(s.scenario_id, s.zone, "", int(t), None, None) for t in times.tolist())
    return out


def hazards_from_sequences(sequences: Sequence[ZoneSequence], crossings: Sequence[Crossing]) -> list[Hazard]:
    """One hazard per spell of `hazard_active` (kind unknown), crossed when a crossing falls in the spell."""
    by_zone: dict[tuple[str, str], list[int]] = {}
    for c in crossings:
        by_zone.setdefault((c.scenario_id, c.zone), []).append(c.crossing_ms)
    out = []
    for s in sequences:
        active = np.asarray(s.hazard_active, dtype=bool)
        if not active.any():
            continue
        t = np.asarray(s.t_ms, dtype=np.int64)
        edges = np.flatnonzero(np.diff(np.r_[0, active.astype(np.int8), 0]))
        times = sorted(by_zone.get((s.scenario_id, s.zone), []))
        for n, (a, b) in enumerate(zip(edges[::2], edges[1::2]), 1):
            start, end = int(t[a]), int(t[b - 1])
            inside = [c for c in times if start < c <= end + 1000]
            first = inside[0] if inside else None
            out.append(Hazard(s.scenario_id, s.zone, f"{s.zone}/A{n}", "unknown", start, first is not None, first,
                              None if first is None else (first - start) / 1000.0))
    return out


# ---------------------------------------------------------------------------------------------------------- train

def train(
    sequences_train: Sequence[ZoneSequence],
    sequences_validation: Sequence[ZoneSequence],
    *,
    hidden: int = HIDDEN,
    epochs: int = EPOCHS,
    seed: int = SEED,
    batch: int = BATCH,
    window: int = WINDOW,
    learning_rate: float = LEARNING_RATE,
    pos_weight: float = POS_WEIGHT,
    over_limit_weight: float = 1.0,
    early_weight: float = EARLY_WEIGHT,
    run_up_weight: float = 1.0,
    over_limit_positive: bool = False,
    benign_keep: float = 1.0,
    lr_decay: str = "none",
    weight_average: float = 0.0,
    select: str = "ap",
    threads: int = 2,
    hazards_validation: Sequence[Hazard] | None = None,
    crossings_validation: Sequence[Crossing] | None = None,
    threshold_options: dict[str, Any] | None = None,
    trained_extra: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train on `sequences_train`, pick the epoch and the grade thresholds on `sequences_validation`; returns the
    model file's (arrays, meta) for `interlock.risk_model.write_model_bytes` (module docstring). The validation
    hazards and crossings judge the thresholds (`training.risk_metrics`); without them they are read off the
    sequences' labels (`crossings_from_sequences`, `hazards_from_sequences`)."""
    torch = require_torch()
    from interlock.risk_model import RiskModel, sequence_probabilities, write_model_bytes
    from training.risk_metrics import threshold_search

    log = log or (lambda text: print(text, file=sys.stderr))
    if not sequences_train:
        raise ValueError("no training sequences")
    if not sequences_validation:
        raise ValueError("no validation sequences: the best epoch and the thresholds are chosen on them")
    if select not in ("ap", "loss"):
        raise ValueError(f"select must be 'ap' or 'loss', got {select!r}")
    if hidden < 1 or epochs < 1 or batch < 1 or window < 1 or not 0.0 < benign_keep <= 1.0:
        raise ValueError("hidden, epochs, batch and window must be at least 1 and benign_keep in (0, 1]")
    if not run_up_weight >= 0.0:
        raise ValueError(f"run_up_weight must be 0 or more, got {run_up_weight}")
    if lr_decay not in LR_DECAYS:
        raise ValueError(f"lr_decay must be one of {', '.join(LR_DECAYS)}, got {lr_decay!r}")
    if not 0.0 <= weight_average < 1.0:
        raise ValueError(f"weight_average must be in [0, 1), got {weight_average}")
    started = time.monotonic()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        mean, scale = feature_standardisation(sequences_train)
        train_data = _prepare(sequences_train, _features_each(sequences_train), mean, scale, pos_weight,
                              over_limit_weight, early_weight, over_limit_positive, run_up_weight)
        valid_data = _prepare(sequences_validation, _features_each(sequences_validation), mean, scale, 1.0, 1.0,
                              over_limit_positive=over_limit_positive)
        lengths = np.array([x.shape[0] for x in train_data.x])
        rows = int(lengths.sum())
        positives = float(sum(y.sum() for y in train_data.y))
        log(f"{len(sequences_train)} training zones ({rows / 3600:.1f} zone-hours, {positives / max(rows, 1):.2%} "
            f"positive, {int(train_data.benign.sum())} benign-only), {len(sequences_validation)} validation zones "
            f"({sum(len(s) for s in sequences_validation) / 3600:.1f} zone-hours); features in "
            f"{time.monotonic() - started:.1f} s")

        net = _network(torch, hidden)
        _initialise(torch, net, hidden, positives / max(rows, 1))
        optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
        rng = np.random.default_rng(seed)
        history: list[dict[str, Any]] = []
        best: tuple[tuple[float, float], int, dict] | None = None
        everyone = np.arange(len(train_data.x))
        averaged = _WeightAverage(net, weight_average) if weight_average > 0.0 else None
        for epoch in range(1, epochs + 1):
            t0 = time.monotonic()
            if benign_keep < 1.0:
                keep = ~train_data.benign | (rng.random(everyone.size) < benign_keep)
                chosen = everyone[keep]
            else:
                chosen = everyone
            total_loss, total_weight, updates = 0.0, 0.0, 0
            groups = _batches(lengths, chosen, batch, rng)
            for k, group in enumerate(groups):
                if lr_decay == "cosine":
                    for options in optimiser.param_groups:
                        options["lr"] = _cosine_rate(learning_rate, (epoch - 1 + k / len(groups)) / epochs)
                length = int(lengths[group].max())
                x = torch.from_numpy(_padded([train_data.x[j] for j in group], length))
                y = torch.from_numpy(_padded([train_data.y[j] for j in group], length))
                w = torch.from_numpy(_padded([train_data.w[j] for j in group], length))
                state = None
                for a in range(0, length, window):
                    wc = w[:, a:a + window]
                    weight = float(wc.sum())
                    logits, state = net(x[:, a:a + window], state)
                    state = tuple(s.detach() for s in state)
                    if weight <= 0.0:
                        continue
                    loss_sum = (torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, y[:, a:a + window], reduction="none") * wc).sum()
                    steps = float((wc > 0).sum())
                    optimiser.zero_grad(set_to_none=True)
                    (loss_sum / steps).backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP_NORM)
                    optimiser.step()
                    if averaged is not None:
                        averaged.update(net)
                    total_loss += float(loss_sum.detach())
                    total_weight += weight
                    updates += 1
            train_seconds = time.monotonic() - t0
            if averaged is not None:
                averaged.swap(net)  # judge and keep the averaged weights
            probabilities = _predict(torch, net, valid_data)
            v_loss = _log_loss(probabilities, valid_data.y)
            v_ap = _average_precision(probabilities, valid_data.y, sequences_validation)
            record = {"epoch": epoch, "train_loss": round(total_loss / max(total_weight, 1e-12), 6),
                      "validation_loss": round(v_loss, 6), "validation_ap": round(v_ap, 6), "updates": updates,
                      "zones": int(chosen.size), "seconds": round(time.monotonic() - t0, 1)}
            history.append(record)
            if select == "ap":  # the highest AP, ties (or no positives: NaN) to the lowest loss
                key = (0.0 if math.isnan(v_ap) else -v_ap, v_loss)
            else:
                key = (v_loss, 0.0)
            if best is None or key < best[0]:
                best = (key, epoch, {k: v.detach().clone() for k, v in net.state_dict().items()})
            if averaged is not None:
                averaged.swap(net)  # training goes on from the raw weights
            log(f"epoch {epoch}/{epochs}: train loss {record['train_loss']:.4f}, validation loss {v_loss:.4f}, "
                f"AP {v_ap:.4f} ({updates} updates, {train_seconds:.0f} s training, {record['seconds']:.0f} s in all)"
                f"{'  *best' if best[1] == epoch else ''}")

        assert best is not None
        net.load_state_dict(best[2])
        arrays = export_arrays(net, mean, scale)
        best_record = history[best[1] - 1]
        meta: dict[str, Any] = {"hidden": hidden, "thresholds": dict(PLACEHOLDER_THRESHOLDS)}
        model = RiskModel.from_bytes(write_model_bytes(arrays, meta))

        t0 = time.monotonic()
        served = [np.nan_to_num(sequence_probabilities(model, s.raw), nan=0.0) for s in sequences_validation]
        served_ap = _average_precision(served, valid_data.y, sequences_validation)
        crossings = list(crossings_validation) if crossings_validation is not None else crossings_from_sequences(
            sequences_validation)
        hazards = list(hazards_validation) if hazards_validation is not None else hazards_from_sequences(
            sequences_validation, crossings)
        search = threshold_search(served, sequences_validation, hazards, crossings, **(threshold_options or {}))
        thresholds = search.thresholds
        log(f"served (numba) validation AP {served_ap:.4f}; thresholds blue {thresholds.blue:g}, yellow "
            f"{thresholds.yellow:g}, red {thresholds.red:g}: false RED {search.false_red_per_100h:.2f} and false "
            f"warnings {search.false_warnings_per_100h:.2f} and BLUE notices with no hazard active "
            f"{search.blue_notices_benign_per_100h:.2f} per 100 zone-hours, recall >= 10 min "
            f"{search.recall_10min:.3f} on validation ({time.monotonic() - t0:.0f} s)")

        meta["thresholds"] = msgspec.structs.asdict(thresholds)
        meta["trained"] = {
            **(trained_extra or {}),
            "hidden": hidden, "epochs": epochs, "best_epoch": best[1], "select": select, "seed": seed,
            "batch": batch, "window": window, "learning_rate": learning_rate, "pos_weight": pos_weight,
            "over_limit_weight": over_limit_weight, "early_weight": early_weight, "run_up_weight": run_up_weight,
            "over_limit_positive": over_limit_positive, "benign_keep": benign_keep, "lr_decay": lr_decay,
            "weight_average": weight_average,
            "threads": threads, "threshold_options": dict(threshold_options or {}),
            "train_zones": len(sequences_train), "train_zone_hours": round(rows / 3600.0, 3),
            "train_positive_share": round(positives / max(rows, 1), 6),
            "validation_zones": len(sequences_validation),
            "validation_zone_hours": round(sum(len(s) for s in sequences_validation) / 3600.0, 3),
            "validation_loss": best_record["validation_loss"], "validation_ap": best_record["validation_ap"],
            "validation_ap_served": round(served_ap, 6),
            "thresholds_on_validation": {
                **validation_figures(search), "hazards": len(hazards), "crossings": len(crossings)},
            "history": history,
            "torch": str(torch.__version__), "numpy": np.__version__, "python": platform.python_version(),
            "training_seconds": round(time.monotonic() - started, 1),
        }
        return arrays, meta
    finally:
        torch.set_num_threads(threads_before)


# ------------------------------------------------------------------------------------------------------------ CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train the zone risk LSTM on simulated training sets (their train parts; validation parts pick "
                    "the epoch and the grade thresholds) and recordings, and write the model file "
                    "(docs/risk_model.md; needs " + INSTALL_HINT + ").")
    p.add_argument("--data", action="append", default=[], metavar="DIR",
                   help="a training set from `interlock training-data` (repeatable)")
    p.add_argument("--recordings", metavar="DIR", help="recordings (*.jsonl) of a site, with --labels")
    p.add_argument("--labels", metavar="FILE", help="the site's labels file (TOML, training.risk_labels)")
    p.add_argument("--out", required=True, metavar="MODEL.npz", help="the model file to write")
    p.add_argument("--hidden", type=int, default=HIDDEN, help=f"LSTM hidden size (default {HIDDEN})")
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs (default {EPOCHS}); the best is kept")
    p.add_argument("--seed", type=int, default=SEED, help=f"seed (default {SEED})")
    p.add_argument("--batch", type=int, default=BATCH, help=f"zone sequences side by side (default {BATCH})")
    p.add_argument("--window", type=int, default=WINDOW, help=f"steps per back-propagation chunk (default {WINDOW})")
    p.add_argument("--lr", type=float, default=LEARNING_RATE, help=f"Adam learning rate (default {LEARNING_RATE:g})")
    p.add_argument("--pos-weight", type=float, default=POS_WEIGHT,
                   help=f"loss weight of a positive step (default {POS_WEIGHT:g})")
    p.add_argument("--early-weight", type=float, default=EARLY_WEIGHT,
                   help=f"extra loss weight of a positive step at least {EARLY_S:g} s before its crossing (default "
                        f"{EARLY_WEIGHT:g})")
    p.add_argument("--run-up-weight", type=float, default=1.0,
                   help=f"loss weight of the steps of a developing hazard {HORIZON_S:g}-{HORIZON_S + RUN_UP_S:g} s before "
                        f"its crossing, labelled 0 (default 1; 0: a score rising there is not penalised)")
    p.add_argument("--over-limit-positive", action="store_true",
                   help="train towards 1 also while the air is past a limit (the score stays high until it is back)")
    add_threshold_arguments(p, f"{AIR_YELLOW:g}", f"{AIR_YELLOW_STEPS}")
    p.set_defaults(air_yellow=AIR_YELLOW, air_yellow_steps=AIR_YELLOW_STEPS)
    p.add_argument("--benign-keep", type=float, default=1.0,
                   help="share of benign-only zones trained on per epoch (default 1: all)")
    p.add_argument("--lr-decay", choices=LR_DECAYS, default="none",
                   help=f"learning rate schedule: none, or cosine from --lr down to {LR_FLOOR:g} x --lr (default none)")
    p.add_argument("--weight-average", type=float, default=0.0, metavar="DECAY",
                   help="judge and keep an exponential moving average of the weights with this decay per update "
                        "(0.998: about 500 updates; default 0: the raw weights)")
    p.add_argument("--select", choices=("ap", "loss"), default="ap", help="best epoch by validation AP or loss")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    return p


def validation_figures(search) -> dict[str, Any]:
    """What a model file records of what its thresholds gave on validation (a `ThresholdSearch`)."""
    return {
        "false_red_per_100h": round(search.false_red_per_100h, 4),
        "false_warnings_per_100h": round(search.false_warnings_per_100h, 4),
        "recall_10min": round(search.recall_10min, 4),
        "benign_warning_share": round(search.benign_warning_share, 6),
        "red_feasible": search.red_feasible, "yellow_feasible": search.yellow_feasible}


def add_threshold_arguments(p: argparse.ArgumentParser, air_yellow_default: str, air_yellow_steps_default: str) -> None:
    """The caps the grade thresholds are chosen under on validation (a site's alarm budget) and the air rule."""
    p.add_argument("--max-false-warnings", type=float, default=None, metavar="PER_100H",
                   help="false YELLOW-or-higher warnings per 100 zone-hours the yellow threshold may give on validation "
                        "(default: training.risk_metrics.MAX_FALSE_WARNINGS_PER_100H)")
    p.add_argument("--max-benign-share", type=float, default=None, metavar="SHARE",
                   help="share of benign steps the yellow threshold may grade YELLOW or higher on validation "
                        "(default: training.risk_metrics.MAX_BENIGN_WARNING_SHARE)")
    p.add_argument("--max-benign-blue", type=float, default=None, metavar="PER_100H",
                   help="BLUE notices with no hazard active per 100 zone-hours the blue threshold may give on "
                        "validation (default: training.risk_metrics.MAX_BENIGN_BLUE_PER_100H)")
    p.add_argument("--air-yellow", type=float, default=None, metavar="FRACTION",
                   help=f"YELLOW also when the zone's air stays at or over this fraction of a gas limit for "
                        f"--air-yellow-steps steps (default {air_yellow_default}; 0: no air rule)")
    p.add_argument("--air-yellow-steps", type=int, default=None, metavar="N",
                   help=f"steps (seconds) the air must stay there (default {air_yellow_steps_default})")


def recordings_split(sequences: Sequence[ZoneSequence], hazards: Iterable[Hazard], crossings: Iterable[Crossing],
                     split: str) -> tuple[list[ZoneSequence], list[Hazard], list[Crossing]]:
    """The zone sequences of labelled recordings in `split`, with the hazards and crossings of those zones."""
    chosen = [s for s in sequences if s.split == split]
    keep = {(s.scenario_id, s.zone) for s in chosen}
    return (chosen, [h for h in hazards if (h.scenario_id, h.zone) in keep],
            [c for c in crossings if (c.scenario_id, c.zone) in keep])


def recordings_record(recordings: str | Path, labels: str | Path, sequences: Sequence[ZoneSequence]) -> dict[str, Any]:
    """What a model file records of the recordings it was trained or thresholded on."""
    import hashlib

    return {"path": str(recordings), "labels": str(labels),
            "labels_sha256": hashlib.sha256(Path(labels).read_bytes()).hexdigest(),
            "recordings": sorted({s.scenario_id for s in sequences})}


def capture_recording(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A recording replayed through the interlock: zone -> (t_ms, raw). The replay is `training.risk_capture`'s."""
    try:
        from training.risk_capture import capture_recording as capture  # type: ignore[import-not-found]
    except ImportError as error:
        raise ValueError(f"cannot replay {path}: training.risk_capture.capture_recording (the replay that captures "
                         f"a recording's raw vectors) is not available: {error}") from error
    return capture(path)


def load_recordings(directory: str | Path, labels_path: str | Path):
    """Zone sequences, hazards and crossings of every recording (*.jsonl) of `directory`, labelled by the file."""
    from training.risk_labels import capture_crossings, capture_hazards, read_labels, sequences_from_capture

    labels = read_labels(labels_path)
    files = sorted(Path(directory).glob("*.jsonl"))
    if not files:
        raise ValueError(f"{directory} holds no recording (*.jsonl)")
    sequences, hazards, crossings = [], [], []
    for path in files:
        name = path.stem
        labels.split_of(name)
        capture = capture_recording(path)
        sequences += sequences_from_capture(capture, labels, name)
        hazards += capture_hazards(capture, labels, name)
        crossings += capture_crossings(capture, labels, name)
    return sequences, hazards, crossings, labels


def data_arguments_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the --data / --recordings / --labels given, or None."""
    if not args.data and not args.recordings:
        return "give --data DIR (and/or --recordings DIR --labels FILE)"
    if bool(args.recordings) != bool(args.labels):
        return "--recordings and --labels go together"
    return None


def threshold_options(args: argparse.Namespace) -> dict[str, float]:
    """The threshold search's caps given on the command line (the others keep training.risk_metrics' defaults) and
    the air rule the model file will carry."""
    options = {"max_false_warnings_per_100h": args.max_false_warnings, "max_benign_warning_share": args.max_benign_share,
               "max_benign_blue_per_100h": args.max_benign_blue}
    return {**{name: value for name, value in options.items() if value is not None},
            "air_yellow": args.air_yellow, "air_yellow_steps": args.air_yellow_steps}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (problem := data_arguments_problem(args)) is not None:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 2
    try:
        require_torch()
    except ImportError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    from interlock.risk_model import write_model_bytes
    from training.risk_dataset import load_crossings, load_hazards, load_set, set_summary

    started = time.monotonic()
    try:
        train_seqs: list[ZoneSequence] = []
        valid_seqs: list[ZoneSequence] = []
        hazards: list[Hazard] = []
        crossings: list[Crossing] = []
        data = []
        for directory in args.data:
            t0 = time.monotonic()
            train_seqs += load_set(directory, ("train",))
            valid_seqs += load_set(directory, ("validation",))
            hazards += load_hazards(directory, ("validation",))
            crossings += load_crossings(directory, ("validation",))
            data.append(set_summary(directory))
            print(f"{PROG}: read {directory} (train, validation) in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        recordings = None
        if args.recordings:
            seqs, rec_hazards, rec_crossings, labels = load_recordings(args.recordings, args.labels)
            train_seqs += [s for s in seqs if s.split == "train"]
            rec_valid, rec_hazards, rec_crossings = recordings_split(seqs, rec_hazards, rec_crossings, "validation")
            valid_seqs += rec_valid
            hazards += rec_hazards
            crossings += rec_crossings
            recordings = recordings_record(args.recordings, args.labels, seqs)
        arrays, meta = train(
            train_seqs, valid_seqs, hidden=args.hidden, epochs=args.epochs, seed=args.seed, batch=args.batch,
            window=args.window, learning_rate=args.lr, pos_weight=args.pos_weight, early_weight=args.early_weight,
            run_up_weight=args.run_up_weight, over_limit_positive=args.over_limit_positive,
            benign_keep=args.benign_keep, lr_decay=args.lr_decay, weight_average=args.weight_average,
            threshold_options=threshold_options(args),
            select=args.select, threads=args.threads, hazards_validation=hazards, crossings_validation=crossings,
            trained_extra={"data": data, **({"recordings": recordings} if recordings else {})})
        meta["trained"]["total_seconds"] = round(time.monotonic() - started, 1)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(write_model_bytes(arrays, meta))
    except (OSError, ValueError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    t = meta["thresholds"]
    print(f"wrote {out}: hidden {args.hidden}, best epoch {meta['trained']['best_epoch']}/{args.epochs}, validation "
          f"loss {meta['trained']['validation_loss']:.4f}, AP {meta['trained']['validation_ap']:.4f} (served "
          f"{meta['trained']['validation_ap_served']:.4f}); thresholds blue {t['blue']:g}, yellow {t['yellow']:g}, "
          f"red {t['red']:g}; {meta['trained']['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
