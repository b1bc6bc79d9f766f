"""The served zone risk model: a one-layer LSTM over the risk features, giving the probability that a gas limit is
crossed within the horizon (12 min), stepped once a second per zone with numba and no PyTorch.

The model file is an `.npz` (read from bytes: the core does no I/O) holding PyTorch's own tensors, so the trainer
exports `nn.LSTM` (gates i, f, g, o) and `nn.Linear(H, 1)` as they are:

    weight_ih (4H, F)  weight_hh (4H, H)  bias_ih (4H,)  bias_hh (4H,)   nn.LSTM, one layer
    head_weight (1, H)  head_bias (1,)                                  nn.Linear(H, 1), then a sigmoid
    feature_mean (F,)  feature_scale (F,)                               the LSTM reads (features - mean) / scale
    meta                                                                0-d unicode array: JSON, see RiskMeta

A zone's whole state (feature state, h, c) is one float64 array, so a snapshot pickles it and a resumed run continues
bit for bit. The arithmetic is plain loops in a fixed order without fastmath: the same inputs give the same
probability on every run, alone (`step`) or with other zones (`step_batch`), and within 1e-5 of PyTorch.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any, Mapping

import msgspec
import numpy as np
from numba import njit

from interlock.risk_features import (
    FEATURE_NAMES,
    FEATURE_STATE_WIDTH,
    FEATURE_WIDTH,
    FEATURES_VERSION,
    features_step,
)
from interlock.risk_grade import RiskThresholds
from interlock.risk_inputs import RAW_VERSION, RAW_WIDTH

FORMAT = "interlock-risk-lstm/1"
HORIZON_S = 720
"""The horizon the interlock's alerts speak of (12 min); a model file states its own in meta.horizon_s."""

ARRAY_NAMES: tuple[str, ...] = (
    "weight_ih", "weight_hh", "bias_ih", "bias_hh", "head_weight", "head_bias", "feature_mean", "feature_scale")
"""The model file's arrays besides `meta`."""

_FIX = "write the file with interlock.risk_model.write_model_bytes (interlock risk-train)"


class RiskMeta(msgspec.Struct, frozen=True):
    """The model file's `meta` JSON: what the model reads and predicts, its grade thresholds, and how it was trained."""

    format: str
    raw_version: int
    features_version: int
    feature_names: tuple[str, ...]
    hidden: int
    horizon_s: int
    thresholds: RiskThresholds
    trained: dict[str, Any] = {}


class RiskModel(msgspec.Struct, frozen=True, eq=False):
    """A loaded model: the file's arrays (float64, C-contiguous), its parsed meta, and what the njit step reads:
    `weights` and `packed`. Make one with `RiskModel.from_bytes`."""

    meta: RiskMeta
    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    head_weight: np.ndarray
    head_bias: np.ndarray
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    weights: np.ndarray
    """[weight_ih.T, weight_hh.T]: transposed so the gate sums run along contiguous memory; float32 when every weight
    is a float32 value (a model trained in PyTorch's float32 is), so a step reloads half the bytes and computes the
    same float64 sums, else float64."""
    packed: np.ndarray
    """[hidden, bias_ih + bias_hh, mean, scale, head_weight, head_bias] (float64). Both read-only while stepping: a
    step keeps its features and gates in arrays of its own."""
    meta_json: str
    """The meta exactly as in the file (keys this code does not read included), for `to_bytes`."""

    @property
    def hidden(self) -> int:
        return self.meta.hidden

    @property
    def thresholds(self) -> RiskThresholds:
        return self.meta.thresholds

    @property
    def horizon_s(self) -> int:
        return self.meta.horizon_s

    def arrays(self) -> dict[str, np.ndarray]:
        """The file's arrays by name (ARRAY_NAMES)."""
        return {name: getattr(self, name) for name in ARRAY_NAMES}

    def to_bytes(self) -> bytes:
        """The model file again (the same arrays and meta)."""
        return write_model_bytes(self.arrays(), msgspec.json.decode(self.meta_json))

    @classmethod
    def from_bytes(cls, data: bytes) -> RiskModel:
        """Read and check a model file's bytes. Raises ValueError naming what is wrong and how to fix it."""
        files = _open_npz(data)
        present = set(files)
        missing = [name for name in (*ARRAY_NAMES, "meta") if name not in present]
        unknown = sorted(present - set(ARRAY_NAMES) - {"meta"})
        if missing or unknown:
            raise ValueError(f"the model file's arrays do not match {FORMAT}: missing {missing or 'none'}, unknown "
                             f"{unknown or 'none'}; {_FIX}")
        meta_json = _meta_text(files["meta"])
        meta = _check_meta(meta_json)
        arrays = _check_arrays({name: files[name] for name in ARRAY_NAMES}, meta.hidden)
        return cls(meta=meta, **arrays, weights=_weights(arrays), packed=_pack(arrays, meta.hidden), meta_json=meta_json)


def write_model_bytes(arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> bytes:
    """A model file's bytes from PyTorch's arrays (ARRAY_NAMES, as numpy) and the meta (format, raw_version,
    features_version, feature_names and horizon_s default to this code's; hidden to weight_hh's width; thresholds
    and trained are the trainer's). The result is read back with `RiskModel.from_bytes`, so an invalid model is
    never written: ValueError says why."""
    extra = sorted(set(arrays) - set(ARRAY_NAMES))
    if extra:
        raise ValueError(f"write_model_bytes: unknown arrays {extra}; a model file holds {list(ARRAY_NAMES)}")
    values = {name: np.asarray(value, dtype=np.float64) for name, value in arrays.items()}
    full = {
        "format": FORMAT,
        "raw_version": RAW_VERSION,
        "features_version": FEATURES_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "horizon_s": HORIZON_S,
        **({"hidden": int(values["weight_hh"].shape[-1])} if "weight_hh" in values else {}),
        "trained": {},
        **meta,
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **values, meta=np.array(msgspec.json.encode(full).decode()))
    data = buffer.getvalue()
    RiskModel.from_bytes(data)
    return data


def zone_state_width(model: RiskModel) -> int:
    """Length of a zone's state array: feature state, then h and c."""
    return FEATURE_STATE_WIDTH + 2 * model.hidden


def new_zone_state(model: RiskModel) -> np.ndarray:
    """A zone's state before its first step: one float64 array (pickles with the Site's snapshot)."""
    return np.zeros(zone_state_width(model), dtype=np.float64)


def hidden_state(model: RiskModel, zone_state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Views of the LSTM's h and c in a zone's state."""
    h = FEATURE_STATE_WIDTH
    return zone_state[h:h + model.hidden], zone_state[h + model.hidden:h + 2 * model.hidden]


def step(model: RiskModel, zone_state: np.ndarray, raw: np.ndarray) -> float:
    """One step of one zone: the probability of a limit crossed within the horizon; `zone_state` is updated in place."""
    return njit_step(model.weights, model.packed, zone_state, raw)


def step_batch(model: RiskModel, zone_states: np.ndarray, raws: np.ndarray, out: np.ndarray) -> np.ndarray:
    """One step of n zones at once: zone_states (n, zone_state_width) updated in place, raws (n, RAW_WIDTH), the
    probabilities into out (n,) (returned). Each zone's result is bit for bit what `step` gives it."""
    _step_batch(model.weights, model.packed, zone_states, raws, out)
    return out


def sequence_probabilities(model: RiskModel, raw_block: np.ndarray) -> np.ndarray:
    """Probabilities (n,) of a zone's consecutive steps (n, RAW_WIDTH) from a fresh state, as the stream gives them."""
    raws = np.ascontiguousarray(raw_block, dtype=np.float64)
    if raws.ndim != 2 or raws.shape[1] != RAW_WIDTH:
        raise ValueError(f"sequence_probabilities: raw_block has shape {raws.shape}, expected (n, {RAW_WIDTH}) "
                         f"(interlock.risk_inputs.RAW_FIELDS)")
    out = np.empty(raws.shape[0], dtype=np.float64)
    _sequence(model.weights, model.packed, new_zone_state(model), raws, out)
    return out


# ------------------------------------------------------------------ numba


def _offsets(hidden: int) -> tuple[int, ...]:
    """Start of each part of `packed` (see RiskModel.packed) and its total length; the njit code repeats this."""
    f, g = FEATURE_WIDTH, 4 * hidden
    bias = 1
    mean = bias + g
    scale = mean + f
    head = scale + f
    head_bias = head + hidden
    return bias, mean, scale, head, head_bias, head_bias + 1


def _pack(arrays: dict[str, np.ndarray], hidden: int) -> np.ndarray:
    bias, mean, scale, head, head_bias, end = _offsets(hidden)
    packed = np.zeros(end, dtype=np.float64)
    packed[0] = hidden
    packed[bias:mean] = arrays["bias_ih"] + arrays["bias_hh"]
    packed[mean:scale] = arrays["feature_mean"]
    packed[scale:head] = arrays["feature_scale"]
    packed[head:head_bias] = arrays["head_weight"][0]
    packed[head_bias] = arrays["head_bias"][0]
    return packed


def _weights(arrays: dict[str, np.ndarray]) -> np.ndarray:
    weights = np.concatenate([arrays["weight_ih"].T.ravel(), arrays["weight_hh"].T.ravel()])
    single = weights.astype(np.float32)
    return single if np.array_equal(single.astype(np.float64), weights) else weights


@njit(cache=True, inline="always", error_model="numpy")
def _exp(x):
    """e**x for the gates, without a call into libm so the activation loops vectorise: x clipped to [-40, 40]
    (where the sigmoid and tanh below are already within 1e-17 of 0 or 1), then (Taylor series of e**(x/128)) ** 128.
    Relative error about 1e-14; plain IEEE operations in a fixed order, so every machine gives the same bits."""
    x = -40.0 if x < -40.0 else x
    x = 40.0 if x > 40.0 else x
    y = x * (1.0 / 128.0)
    p = 1.0 / 479001600.0
    p = p * y + 1.0 / 39916800.0
    p = p * y + 1.0 / 3628800.0
    p = p * y + 1.0 / 362880.0
    p = p * y + 1.0 / 40320.0
    p = p * y + 1.0 / 5040.0
    p = p * y + 1.0 / 720.0
    p = p * y + 1.0 / 120.0
    p = p * y + 1.0 / 24.0
    p = p * y + 1.0 / 6.0
    p = p * y + 0.5
    p = p * y + 1.0
    p = p * y + 1.0
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(cache=True, inline="always", error_model="numpy")
def _sigmoid(x):
    return 1.0 / (1.0 + _exp(-x))


@njit(cache=True, inline="always", error_model="numpy")
def _tanh(x):
    return 1.0 - 2.0 / (_exp(2.0 * x) + 1.0)


@njit(cache=True, error_model="numpy")
def _zone_step(weights, packed, state, raw):
    """Features, standardisation, the LSTM cell and the head for one zone; h and c updated in `state`. (error_model
    numpy: a division needs no zero check, so the activation loops vectorise; no divisor here can be 0.)"""
    hidden = int(packed[0])
    f, g = FEATURE_WIDTH, 4 * hidden
    bias = 1
    mean = bias + g
    scale = mean + f
    head = scale + f
    head_bias = head + hidden
    w_hh = f * g
    if (packed.shape[0] != head_bias + 1 or weights.shape[0] != w_hh + hidden * g
            or state.shape[0] != FEATURE_STATE_WIDTH + 2 * hidden):
        raise ValueError("risk step: the zone state does not fit the model; make it with new_zone_state(model)")
    feats = np.empty(f)
    gates = np.empty(g)  # not a part of `packed`: with no aliasing possible the compiler vectorises the sums below
    features_step(raw, state[:FEATURE_STATE_WIDTH], feats)
    for k in range(f):
        feats[k] = (feats[k] - packed[mean + k]) / packed[scale + k]
    for r in range(g):
        gates[r] = packed[bias + r]
    for k in range(f):  # gates += W_ih x, one input at a time: contiguous, and the same order in every call
        xk = feats[k]
        row = weights[k * g:(k + 1) * g]
        for r in range(g):
            gates[r] += row[r] * xk
    h_at = FEATURE_STATE_WIDTH
    c_at = h_at + hidden
    for k in range(hidden):  # gates += W_hh h
        hk = state[h_at + k]
        row = weights[w_hh + k * g:w_hh + (k + 1) * g]
        for r in range(g):
            gates[r] += row[r] * hk
    for r in range(2 * hidden):  # i, f; then g; then o: one activation per loop, each loop vectorised
        gates[r] = _sigmoid(gates[r])
    for r in range(2 * hidden, 3 * hidden):
        gates[r] = _tanh(gates[r])
    for r in range(3 * hidden, g):
        gates[r] = _sigmoid(gates[r])
    c = state[c_at:c_at + hidden]
    h = state[h_at:h_at + hidden]
    for j in range(hidden):
        c[j] = gates[hidden + j] * c[j] + gates[j] * gates[2 * hidden + j]
    for j in range(hidden):
        h[j] = gates[3 * hidden + j] * _tanh(c[j])
    logit = 0.0
    for j in range(hidden):
        logit += packed[head + j] * h[j]
    return _sigmoid(logit + packed[head_bias])


@njit(cache=True)
def njit_step(weights, packed, state, raw):
    """`step` without its Python call: (model.weights, model.packed, zone_state, raw) -> probability. The stream calls
    it once a second for every zone."""
    return _zone_step(weights, packed, state, raw)


@njit(cache=True)
def _step_batch(weights, packed, states, raws, out):
    n = states.shape[0]
    if raws.shape[0] != n or out.shape[0] != n:
        raise ValueError("step_batch: zone_states, raws and out must have one row per zone")
    for z in range(n):
        out[z] = _zone_step(weights, packed, states[z], raws[z])


@njit(cache=True)
def _sequence(weights, packed, state, raws, out):
    for t in range(raws.shape[0]):
        out[t] = _zone_step(weights, packed, state, raws[t])


# ------------------------------------------------------------------ reading the file


def _open_npz(data: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as files:
            return {name: files[name] for name in files.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError, TypeError) as error:
        raise ValueError(f"not a risk model file ({FORMAT}, an .npz without pickles): {error}; {_FIX}") from error


def _meta_text(meta: np.ndarray) -> str:
    if meta.ndim != 0 or meta.dtype.kind != "U":
        raise ValueError(f"meta is a {meta.dtype} array of shape {meta.shape}, expected a 0-d unicode array holding "
                         f"JSON (np.array(json_text)); {_FIX}")
    return str(meta[()])


def _check_meta(text: str) -> RiskMeta:
    try:
        meta = msgspec.json.decode(text, type=RiskMeta)
    except msgspec.DecodeError as error:
        raise ValueError(f"meta: {error}; {_FIX}") from error
    if meta.format != FORMAT:
        raise ValueError(f"meta.format is {meta.format!r}, this code reads {FORMAT!r}: export the model with this "
                         f"code's write_model_bytes")
    if meta.raw_version != RAW_VERSION:
        raise ValueError(f"meta.raw_version is {meta.raw_version}, this code's raw inputs are version {RAW_VERSION} "
                         f"(interlock.risk_inputs.RAW_VERSION): retrain the model on this code's raw inputs")
    if meta.features_version != FEATURES_VERSION:
        raise ValueError(f"meta.features_version is {meta.features_version}, this code's features are version "
                         f"{FEATURES_VERSION} (interlock.risk_features.FEATURES_VERSION): retrain the model on this "
                         f"code's features")
    if meta.feature_names != FEATURE_NAMES:
        at = next((i for i, (a, b) in enumerate(zip(meta.feature_names, FEATURE_NAMES)) if a != b),
                  min(len(meta.feature_names), len(FEATURE_NAMES)))
        theirs = meta.feature_names[at] if at < len(meta.feature_names) else "(none)"
        ours = FEATURE_NAMES[at] if at < FEATURE_WIDTH else "(none)"
        raise ValueError(f"meta.feature_names differ from interlock.risk_features.FEATURE_NAMES at {at}: the model "
                         f"has {theirs!r}, this code computes {ours!r}: retrain the model on this code's features")
    if meta.hidden < 1 or meta.horizon_s < 1:
        raise ValueError(f"meta.hidden {meta.hidden} and meta.horizon_s {meta.horizon_s} must be at least 1; {_FIX}")
    return meta


def _check_arrays(files: dict[str, np.ndarray], hidden: int) -> dict[str, np.ndarray]:
    f, g = FEATURE_WIDTH, 4 * hidden
    expected = {
        "weight_ih": ((g, f), "(4 * hidden, features)"),
        "weight_hh": ((g, hidden), "(4 * hidden, hidden)"),
        "bias_ih": ((g,), "(4 * hidden,)"),
        "bias_hh": ((g,), "(4 * hidden,)"),
        "head_weight": ((1, hidden), "(1, hidden)"),
        "head_bias": ((1,), "(1,)"),
        "feature_mean": ((f,), "(features,)"),
        "feature_scale": ((f,), "(features,)"),
    }
    arrays = {}
    for name, (shape, meaning) in expected.items():
        value = files[name]
        if value.dtype.kind != "f":
            raise ValueError(f"{name} has dtype {value.dtype}, expected floating point; {_FIX}")
        if value.shape != shape:
            raise ValueError(f"{name} has shape {value.shape}, expected {shape} = {meaning} for meta.hidden {hidden} "
                             f"and {f} features (FEATURE_NAMES): export the trained nn.LSTM / nn.Linear unchanged "
                             f"and set meta.hidden to the LSTM's hidden size")
        if not np.isfinite(value).all():
            raise ValueError(f"{name} holds NaN or infinite values: the training diverged; retrain")
        arrays[name] = np.ascontiguousarray(value, dtype=np.float64)
    if not (arrays["feature_scale"] > 0).all():
        bad = [FEATURE_NAMES[i] for i in np.flatnonzero(arrays["feature_scale"] <= 0)]
        raise ValueError(f"feature_scale must be positive, it is not for {bad}: use 1 for a feature constant in "
                         f"training")
    return arrays
