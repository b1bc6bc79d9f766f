"""The risk model's features and its served LSTM: features by hand, unknowns, one zone or many, the model file's
checks, snapshots, and agreement with PyTorch (live when torch is installed, else against a stored fixture).

Regenerate the fixture (needs torch): .venv/bin/python tests/test_risk_model.py
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import msgspec
import numpy as np
import pytest
from numba import njit

from interlock import risk_inputs as R
from interlock.risk_features import (
    FEATURES_VERSION,
    FEATURE,
    FEATURE_NAMES,
    FEATURE_STATE_WIDTH,
    FEATURE_WIDTH,
    features_sequence,
    features_step,
    new_feature_state,
)
from interlock import risk_model
from interlock.risk_grade import RiskThresholds
from risk_probe import random_model_arrays
from interlock.risk_model import (
    ARRAY_NAMES,
    RiskModel,
    hidden_state,
    new_zone_state,
    sequence_probabilities,
    step,
    step_batch,
    write_model_bytes,
    zone_state_width,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "risk_lstm_parity.npz"
PARITY_HIDDEN = 32
PARITY_TOLERANCE = 1e-5
THRESHOLDS = {"blue": 0.2, "yellow": 0.5, "red": 0.8, "red_confirm_steps": 5, "release_ratio": 0.8, "release_steps": 60}
LIMITS = {"limit_o2_min": 19.5, "limit_o2_max": 23.5, "limit_lel": 10.0, "limit_h2s": 7.0, "limit_co": 26.0}


def raw_vector(**fields: float) -> np.ndarray:
    """A raw vector with the default limits and the given fields, everything else unknown."""
    raw = R.empty_raw()
    for name, value in {"dt_s": 1.0, **LIMITS, **fields}.items():
        raw[R.RAW[name]] = value
    return raw


def features_of(*raws: np.ndarray) -> list[dict[str, float]]:
    """The features of consecutive steps of one zone, by name."""
    state, out, result = new_feature_state(), np.empty(FEATURE_WIDTH), []
    for raw in raws:
        features_step(raw, state, out)
        result.append(dict(zip(FEATURE_NAMES, out.tolist())))
    return result


def random_model(seed: int = 1, hidden: int = 8) -> RiskModel:
    return RiskModel.from_bytes(write_model_bytes(random_model_arrays(seed, hidden), {"thresholds": THRESHOLDS}))


def random_raw_sequence(rng: np.random.Generator, steps: int) -> np.ndarray:
    """A zone's steps with drifting gases, gaps in the readings, uneven dt and people coming and going."""
    raw = R.empty_raw(steps)
    raw[:, R.DT_S] = np.where(rng.random(steps) < 0.05, rng.choice([0.0, 2.0, 7.0, 45.0, np.nan], steps), 1.0)
    o2 = 20.9 - np.cumsum(rng.normal(0.004, 0.03, steps))
    raw[:, R.O2_LOW] = o2 - rng.uniform(0, 0.2, steps)
    raw[:, R.O2_HIGH] = o2 + rng.uniform(0, 0.2, steps)
    for column, drift, spread in ((R.LEL, 0.05, 0.3), (R.H2S, 0.02, 0.1), (R.CO, 0.1, 0.8)):
        raw[:, column] = np.clip(np.cumsum(rng.normal(drift, spread, steps)), 0.0, None)
    for name, value in LIMITS.items():
        raw[:, R.RAW[name]] = value
    raw[:, R.DETECTORS] = 2.0
    raw[:, R.FRESH] = rng.choice([0.0, 1.0, 2.0, 2.0, 2.0], steps)
    gone = raw[:, R.FRESH] == 0
    raw[gone, R.O2_LOW:R.CO + 1] = np.nan
    raw[rng.random(steps) < 0.1, R.CO] = np.nan
    raw[:, R.FAULTED_CHANNELS] = np.where(gone, 0.0, rng.choice([0.0, 0.0, 1.0], steps))
    raw[:, R.WARMING] = np.where(gone, 0.0, rng.choice([0.0, 0.0, 0.0, 1.0], steps))
    raw[:, R.FAN] = rng.choice([0.0, 1.0, 1.0, np.nan], steps)
    raw[:, R.EQUIPMENT] = rng.choice([0.0, 1.0, np.nan], steps)
    people = rng.choice([0.0, 1.0, 2.0, 6.0, np.nan], steps)
    raw[:, R.OCCUPANCY] = people
    entered = np.cumsum(np.nan_to_num(people) > 0) > 0
    raw[:, R.SINCE_FIRST_ENTRY_S] = np.where(entered, np.arange(steps) * 40.0, np.nan)
    raw[:, R.OCCUPIED_FOR_S] = np.where(people > 0, np.arange(steps) * 10.0, np.nan)
    return raw


# ------------------------------------------------------------------ features


def test_the_first_known_values_are_hazard_fractions_of_the_limits_with_flat_trends():
    (f,) = features_of(raw_vector(o2_low=20.4, o2_high=21.55, lel=2.5, h2s=1.4, co=13.0))
    assert f["o2_deficiency"] == pytest.approx(0.5 / 1.4)
    assert f["o2_enrichment"] == pytest.approx(0.65 / 2.6)
    assert (f["lel"], f["h2s"], f["co"]) == pytest.approx((0.25, 0.2, 0.5))
    assert f["lel_vs_60s"] == f["lel_60s_vs_300s"] == f["lel_60s_vs_1800s"] == 0.0
    assert f["lel_300s"] == pytest.approx(0.25)
    assert f["gas_missing"] == 0.0


def test_trends_follow_exponential_means_of_60_and_300_s_over_the_steps_dt():
    _, second = features_of(raw_vector(lel=2.5), raw_vector(dt_s=2.0, lel=5.0))
    a60, a300 = 1 - math.exp(-2 / 60), 1 - math.exp(-2 / 300)
    ewma60, ewma300 = 0.25 + a60 * 0.25, 0.25 + a300 * 0.25
    assert second["lel"] == 0.5
    assert second["lel_vs_60s"] == pytest.approx((0.5 - ewma60) * 10)
    assert second["lel_60s_vs_300s"] == pytest.approx((ewma60 - ewma300) * 10)
    assert second["lel_300s"] == pytest.approx(ewma300)


def test_the_rise_from_the_half_hour_background_follows_the_60_and_1800_s_means():
    _, second = features_of(raw_vector(lel=2.5), raw_vector(dt_s=2.0, lel=5.0))
    a60, a1800 = 1 - math.exp(-2 / 60), 1 - math.exp(-2 / 1800)
    ewma60, ewma1800 = 0.25 + a60 * 0.25, 0.25 + a1800 * 0.25
    assert second["lel_60s_vs_1800s"] == pytest.approx((ewma60 - ewma1800) * 10)


def test_a_trend_is_clipped_to_three_so_a_jump_stays_in_range():
    _, jump = features_of(raw_vector(lel=0.0), raw_vector(lel=30.0))
    assert jump["lel"] == 3.0
    assert jump["lel_vs_60s"] == 3.0


def test_hazard_fractions_are_clipped_to_minus_one_and_three():
    (f,) = features_of(raw_vector(o2_low=23.0, o2_high=18.0, lel=100.0, co=-80.0))
    assert (f["o2_deficiency"], f["o2_enrichment"], f["lel"], f["co"]) == (-1.0, -1.0, 3.0, -1.0)


def test_an_unknown_channel_holds_its_last_value_and_its_trends_follow_it():
    _, _, third = features_of(raw_vector(lel=2.0), raw_vector(lel=4.0), raw_vector(co=5.0))
    a60, a300 = 1 - math.exp(-1 / 60), 1 - math.exp(-1 / 300)
    ewma60, ewma300 = 0.2 + a60 * 0.2, 0.2 + a300 * 0.2
    ewma60, ewma300 = ewma60 + a60 * (0.4 - ewma60), ewma300 + a300 * (0.4 - ewma300)
    assert third["lel"] == 0.4
    assert third["lel_vs_60s"] == pytest.approx((0.4 - ewma60) * 10)
    assert third["lel_300s"] == pytest.approx(ewma300)
    assert third["gas_missing"] == 0.0


def test_gas_missing_is_set_when_no_channel_is_known_and_values_are_held():
    _, missing = features_of(raw_vector(lel=2.0, co=6.5), raw_vector(fresh=0.0))
    assert missing["gas_missing"] == 1.0
    assert (missing["lel"], missing["co"]) == (0.2, 0.25)


def test_a_channel_with_an_unusable_limit_counts_as_unknown():
    (f,) = features_of(raw_vector(lel=2.0, limit_lel=float("nan"), h2s=1.0, limit_h2s=0.0))
    assert (f["lel"], f["h2s"], f["gas_missing"]) == (0.0, 0.0, 1.0)


def test_a_channel_never_known_reads_zero_everywhere():
    (f,) = features_of(R.empty_raw())
    gas = FEATURE_NAMES[:FEATURE["gas_missing"]]  # x, the three trends and ewma300 of the five channels
    assert len(gas) == 25 and all(f[name] == 0.0 for name in gas)
    assert f["gas_missing"] == 1.0


@pytest.mark.parametrize("dt", [float("nan"), 0.0, -3.0])
def test_a_dt_unknown_or_not_positive_counts_as_one_second(dt):
    _, one = features_of(raw_vector(lel=2.0), raw_vector(dt_s=1.0, lel=4.0))
    _, odd = features_of(raw_vector(lel=2.0), raw_vector(dt_s=dt, lel=4.0))
    assert odd == one


def test_detector_health_is_shares_of_detectors_and_channels():
    (f,) = features_of(raw_vector(detectors=4.0, fresh=2.0, faulted_channels=3.0, warming=1.0))
    assert (f["fresh_share"], f["faulted_share"], f["warming_share"]) == (0.5, 3 / 8, 0.25)


def test_detector_health_is_zero_when_detectors_are_unknown_or_none():
    unknown, none = features_of(raw_vector(fresh=1.0, warming=1.0), raw_vector(detectors=0.0, fresh=0.0))
    assert (unknown["fresh_share"], unknown["warming_share"]) == (0.0, 0.0)
    assert (none["fresh_share"], none["faulted_share"], none["warming_share"]) == (0.0, 0.0, 0.0)


def test_fan_equipment_and_people_features():
    running, unknown = features_of(
        raw_vector(fan=1.0, equipment=1.0, occupancy=6.0, since_first_entry_s=3600.0, occupied_for_s=600.0),
        raw_vector(fan=0.0, occupancy=1.0))
    assert (running["fan_known"], running["fan_running"], running["equipment_on"]) == (1.0, 1.0, 1.0)
    assert (running["occupancy"], running["entered"]) == (1.0, 1.0)
    assert running["since_first_entry"] == 0.125 and running["occupied_for"] == pytest.approx(1 / 12)
    assert (unknown["fan_known"], unknown["fan_running"], unknown["equipment_on"]) == (1.0, 0.0, 0.0)
    assert (unknown["occupancy"], unknown["entered"], unknown["since_first_entry"], unknown["occupied_for"]) == (
        0.25, 0.0, 0.0, 0.0)
    (nothing,) = features_of(R.empty_raw())
    assert (nothing["fan_known"], nothing["fan_running"]) == (0.0, 0.0)


def test_features_stay_finite_and_within_three_whatever_the_raw_holds():
    rng = np.random.default_rng(3)
    raws = random_raw_sequence(rng, 400)
    raws[rng.random(raws.shape) < 0.2] = np.nan
    raws[rng.random(raws.shape) < 0.02] = np.inf
    raws[rng.random(raws.shape) < 0.02] = -np.inf
    features = features_sequence(raws)
    assert np.isfinite(features).all()
    assert np.abs(features).max() <= 3.0


def test_features_sequence_is_features_step_from_a_fresh_state():
    raws = random_raw_sequence(np.random.default_rng(4), 200)
    state, out = new_feature_state(), np.empty(FEATURE_WIDTH)
    stepped = []
    for raw in raws:
        features_step(raw, state, out)
        stepped.append(out.copy())
    np.testing.assert_array_equal(features_sequence(raws), np.array(stepped))


def test_feature_names_are_the_feature_vector():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == FEATURE_WIDTH == 36
    assert FEATURE["gas_missing"] == 25 and FEATURE_NAMES[-1] == "occupied_for"
    assert new_feature_state().shape == (FEATURE_STATE_WIDTH,)


# ------------------------------------------------------------------ the served model


def test_weights_that_are_float32_values_are_served_in_float32_with_the_same_scores():
    arrays = {name: value.astype(np.float32).astype(np.float64) for name, value in random_model_arrays(4).items()}
    model = RiskModel.from_bytes(write_model_bytes(arrays, {"thresholds": THRESHOLDS}))
    wide = msgspec.structs.replace(model, weights=model.weights.astype(np.float64))
    raws = random_raw_sequence(np.random.default_rng(11), 300)
    assert model.weights.dtype == np.float32
    np.testing.assert_array_equal(sequence_probabilities(model, raws), sequence_probabilities(wide, raws))


def test_weights_that_are_not_float32_values_stay_in_float64():
    assert random_model().weights.dtype == np.float64


def test_the_gate_activations_are_within_1e_13_of_libm_from_minus_60_to_60():
    xs = np.linspace(-60.0, 60.0, 480_001)
    sigmoid, tanh = _activations(xs)
    assert np.abs(sigmoid - 1.0 / (1.0 + np.exp(-xs))).max() < 1e-13
    assert np.abs(tanh - np.tanh(xs)).max() < 1e-13
    assert sigmoid.min() >= 0.0 and sigmoid.max() <= 1.0 and tanh.min() >= -1.0 and tanh.max() <= 1.0


@njit
def _activations(xs):
    sigmoid, tanh = np.empty_like(xs), np.empty_like(xs)
    for i in range(xs.shape[0]):
        sigmoid[i] = risk_model._sigmoid(xs[i])
        tanh[i] = risk_model._tanh(xs[i])
    return sigmoid, tanh


def test_step_batch_gives_each_zone_exactly_what_step_gives():
    model = random_model()
    rng = np.random.default_rng(5)
    zones = 7
    raws = np.stack([random_raw_sequence(rng, 50) for _ in range(zones)], axis=1)
    alone = [new_zone_state(model) for _ in range(zones)]
    together = np.zeros((zones, zone_state_width(model)))
    out = np.empty(zones)
    for t in range(raws.shape[0]):
        expected = [step(model, alone[z], raws[t, z]) for z in range(zones)]
        step_batch(model, together, raws[t], out)
        assert out.tolist() == expected
    np.testing.assert_array_equal(together, np.array(alone))


def test_sequence_probabilities_is_step_repeated_from_a_fresh_state():
    model = random_model()
    raws = random_raw_sequence(np.random.default_rng(6), 300)
    state = new_zone_state(model)
    assert sequence_probabilities(model, raws).tolist() == [step(model, state, raw) for raw in raws]


def test_a_zone_state_pickled_mid_sequence_resumes_identically():
    model = random_model()
    raws = random_raw_sequence(np.random.default_rng(7), 120)
    state = new_zone_state(model)
    for raw in raws[:60]:
        step(model, state, raw)
    resumed = pickle.loads(pickle.dumps(state))
    assert [step(model, resumed, raw) for raw in raws[60:]] == sequence_probabilities(model, raws)[60:].tolist()


def test_a_zone_state_that_does_not_fit_the_model_is_refused():
    with pytest.raises(ValueError, match="new_zone_state"):
        step(random_model(hidden=8), np.zeros(FEATURE_STATE_WIDTH + 2 * 16), raw_vector())


def test_the_model_pickles_with_the_site_and_steps_the_same():
    model = random_model()
    raws = random_raw_sequence(np.random.default_rng(8), 50)
    copy = pickle.loads(pickle.dumps(model))
    assert sequence_probabilities(copy, raws).tolist() == sequence_probabilities(model, raws).tolist()


def test_a_model_round_trips_through_its_bytes():
    model = random_model()
    again = RiskModel.from_bytes(model.to_bytes())
    raws = random_raw_sequence(np.random.default_rng(9), 50)
    assert again.meta == model.meta
    assert sequence_probabilities(again, raws).tolist() == sequence_probabilities(model, raws).tolist()


def test_the_meta_gives_the_hidden_size_and_the_grade_thresholds():
    model = random_model(hidden=8)
    assert model.hidden == 8 and model.horizon_s == 720
    assert model.thresholds == RiskThresholds(**THRESHOLDS)
    assert model.meta.feature_names == FEATURE_NAMES


# ------------------------------------------------------------------ the model file's checks


def model_file(arrays: dict | None = None, drop: tuple[str, ...] = (), **meta) -> bytes:
    """A model file's bytes written directly (write_model_bytes refuses what these tests need): `meta` fields
    replaced, `drop` ones left out."""
    arrays = random_model_arrays(1) if arrays is None else arrays
    full = {"format": "interlock-risk-lstm/1", "raw_version": R.RAW_VERSION, "features_version": FEATURES_VERSION,
            "feature_names": list(FEATURE_NAMES), "hidden": 8, "horizon_s": 720, "thresholds": THRESHOLDS,
            "trained": {}, **meta}
    full = {name: value for name, value in full.items() if name not in drop}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, meta=np.array(msgspec.json.encode(full).decode()))
    return buffer.getvalue()


def test_a_well_formed_file_is_read():
    assert RiskModel.from_bytes(model_file()).hidden == 8


def test_an_array_of_the_wrong_shape_is_named_with_the_shape_expected():
    arrays = random_model_arrays(1)
    arrays["weight_ih"] = arrays["weight_ih"][:, :FEATURE_WIDTH - 1]
    with pytest.raises(ValueError, match=rf"weight_ih has shape \(32, {FEATURE_WIDTH - 1}\), expected \(32, {FEATURE_WIDTH}\)"):
        RiskModel.from_bytes(model_file(arrays))


def test_a_hidden_size_that_does_not_match_the_weights_is_refused():
    with pytest.raises(ValueError, match=rf"weight_ih has shape \(32, {FEATURE_WIDTH}\), expected \(64, {FEATURE_WIDTH}\).*meta.hidden"):
        RiskModel.from_bytes(model_file(hidden=16))


def test_a_model_for_other_raw_inputs_is_refused_with_retrain():
    with pytest.raises(ValueError, match=r"meta.raw_version is 2, this code's raw inputs are version 1.*retrain"):
        RiskModel.from_bytes(model_file(raw_version=2))


def test_a_model_for_other_features_is_refused_with_retrain():
    with pytest.raises(ValueError, match=r"meta.features_version is 0.*retrain"):
        RiskModel.from_bytes(model_file(features_version=0))
    names = list(FEATURE_NAMES)
    names[3] = "h2s_peak"
    with pytest.raises(ValueError, match=r"feature_names differ .* at 3: the model has 'h2s_peak', this code "
                                         r"computes 'h2s'"):
        RiskModel.from_bytes(model_file(feature_names=names))


def test_a_file_of_another_format_is_refused():
    with pytest.raises(ValueError, match=r"meta.format is 'interlock-risk-gru/1', this code reads "
                                         r"'interlock-risk-lstm/1'"):
        RiskModel.from_bytes(model_file(format="interlock-risk-gru/1"))


def test_bytes_that_are_no_npz_are_refused():
    with pytest.raises(ValueError, match=r"not a risk model file .*write_model_bytes"):
        RiskModel.from_bytes(b"not a model")


def test_missing_and_unknown_arrays_are_listed():
    arrays = random_model_arrays(1)
    arrays["calibration"] = arrays.pop("head_bias")
    with pytest.raises(ValueError, match=r"missing \['head_bias'\], unknown \['calibration'\]"):
        RiskModel.from_bytes(model_file(arrays))


def test_meta_that_lacks_a_field_names_it():
    with pytest.raises(ValueError, match=r"meta: .*missing required field `thresholds`"):
        RiskModel.from_bytes(model_file(drop=("thresholds",)))


def test_thresholds_out_of_order_are_refused():
    with pytest.raises(ValueError, match=r"blue <= yellow <= red.*meta.thresholds"):
        RiskModel.from_bytes(model_file(thresholds={**THRESHOLDS, "blue": 0.9}))


def test_weights_that_are_not_finite_or_scales_not_positive_are_refused():
    arrays = random_model_arrays(1)
    arrays["weight_hh"][0, 0] = np.nan
    with pytest.raises(ValueError, match="weight_hh holds NaN"):
        RiskModel.from_bytes(model_file(arrays))
    arrays = random_model_arrays(1)
    arrays["feature_scale"][FEATURE["fan_known"]] = 0.0
    with pytest.raises(ValueError, match=r"feature_scale must be positive.*\['fan_known'\]"):
        RiskModel.from_bytes(model_file(arrays))


def test_write_model_bytes_fills_the_codes_versions_and_refuses_an_invalid_model():
    arrays = random_model_arrays(1, hidden=4)
    model = RiskModel.from_bytes(write_model_bytes(arrays, {"thresholds": THRESHOLDS, "trained": {"epochs": 3}}))
    assert (model.hidden, model.meta.raw_version, model.meta.trained) == (4, R.RAW_VERSION, {"epochs": 3})
    with pytest.raises(ValueError, match="missing required field `thresholds`"):
        write_model_bytes(arrays, {})


# ------------------------------------------------------------------ agreement with PyTorch


def parity_case(seed: int = 20261125, sequences: int = 3, steps: int = 90) -> dict[str, np.ndarray]:
    """A random nn.LSTM(F, 32) + nn.Linear(32, 1) exported as a model file's arrays, random raw sequences, and what
    PyTorch (float64) gives on them: probabilities and h at every step, c at the end."""
    import torch

    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(FEATURE_WIDTH, PARITY_HIDDEN, batch_first=True).double()
    head = torch.nn.Linear(PARITY_HIDDEN, 1).double()
    with torch.no_grad():  # wider than PyTorch's default init, so gates saturate and probabilities spread over (0, 1)
        for parameter in lstm.parameters():
            parameter.uniform_(-0.6, 0.6)
        head.weight.uniform_(-1.5, 1.5)
    rng = np.random.default_rng(seed)
    raws = np.stack([random_raw_sequence(rng, steps) for _ in range(sequences)])
    features = np.stack([features_sequence(raw) for raw in raws])
    mean = features.reshape(-1, FEATURE_WIDTH).mean(axis=0)
    std = features.reshape(-1, FEATURE_WIDTH).std(axis=0)
    scale = np.where(std > 1e-6, std, 1.0)
    with torch.no_grad():
        hidden, (_, c_last) = lstm((torch.from_numpy(features) - torch.from_numpy(mean)) / torch.from_numpy(scale))
        probability = torch.sigmoid(head(hidden))[..., 0]
    arrays = {
        "weight_ih": lstm.weight_ih_l0, "weight_hh": lstm.weight_hh_l0, "bias_ih": lstm.bias_ih_l0,
        "bias_hh": lstm.bias_hh_l0, "head_weight": head.weight, "head_bias": head.bias,
    }
    case = {name: value.detach().numpy().copy() for name, value in arrays.items()}
    case |= {"feature_mean": mean, "feature_scale": scale, "raw": raws, "probability": probability.numpy(),
             "h_last": hidden[:, -1].numpy(), "c_last": c_last[0].numpy()}
    case["_h"] = hidden.numpy()
    return case


def model_of(case) -> RiskModel:
    arrays = {name: case[name] for name in ARRAY_NAMES}
    return RiskModel.from_bytes(write_model_bytes(arrays, {"thresholds": THRESHOLDS, "trained": {"parity": True}}))


def served(model: RiskModel, raws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`step` over each sequence: probabilities (s, n), h at every step (s, n, H), c at the end (s, H)."""
    probabilities, hs, c_last = [], [], []
    for sequence in raws:
        state = new_zone_state(model)
        h, c = hidden_state(model, state)
        p, hidden = [], []
        for raw in sequence:
            p.append(step(model, state, raw))
            hidden.append(h.copy())
        probabilities.append(p)
        hs.append(hidden)
        c_last.append(c.copy())
    return np.array(probabilities), np.array(hs), np.array(c_last)


def write_parity_fixture(path: Path = FIXTURE) -> None:
    """The stored PyTorch outputs for CI without torch (run this module as a script)."""
    case = parity_case()
    del case["_h"]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **case)


def test_step_matches_the_stored_pytorch_outputs():
    case = dict(np.load(FIXTURE, allow_pickle=False))
    probabilities, hs, c_last = served(model_of(case), case["raw"])
    assert np.abs(probabilities - case["probability"]).max() < PARITY_TOLERANCE
    assert np.abs(hs[:, -1] - case["h_last"]).max() < PARITY_TOLERANCE
    assert np.abs(c_last - case["c_last"]).max() < PARITY_TOLERANCE


def test_step_matches_pytorch_on_a_fresh_random_lstm():
    pytest.importorskip("torch")
    case = parity_case(seed=11, sequences=4, steps=120)
    probabilities, hs, c_last = served(model_of(case), case["raw"])
    assert np.abs(probabilities - case["probability"]).max() < PARITY_TOLERANCE
    assert np.abs(hs - case["_h"]).max() < PARITY_TOLERANCE
    assert np.abs(c_last - case["c_last"]).max() < PARITY_TOLERANCE


if __name__ == "__main__":
    write_parity_fixture()
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes)")
