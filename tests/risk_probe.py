"""A probe risk model for specification tests: its score follows the zone's LEL reading, so each grade is reached on
purpose, and `run_lel` gives healthy seconds at a chosen LEL."""

from __future__ import annotations

import numpy as np

from interlock.risk_features import FEATURE, FEATURE_WIDTH
from interlock.risk_model import RiskModel, write_model_bytes
from interlock.site import Site
from site_records import SECOND, HotWorkSite, gas_v2

PROBE_THRESHOLDS = {"blue": 0.2, "yellow": 0.5, "red": 0.8, "red_confirm_steps": 3, "release_ratio": 0.8,
                    "release_steps": 5}


def probe_model() -> RiskModel:
    """One LSTM unit that remembers nothing (forget gate shut) and reads the LEL fraction: score ~0.07 at 1 %LEL,
    ~0.28 at 2 %LEL (BLUE), ~0.57 at 3 %LEL (YELLOW), ~0.9 at 6 %LEL (RED), all under the 10 %LEL limit."""
    weight_ih = np.zeros((4, FEATURE_WIDTH))
    weight_ih[2, FEATURE["lel"]] = 2.0
    bias = np.array([20.0, -20.0, 0.0, 20.0])
    arrays = {
        "weight_ih": weight_ih, "weight_hh": np.zeros((4, 1)), "bias_ih": bias, "bias_hh": np.zeros(4),
        "head_weight": np.array([[10.0]]), "head_bias": np.array([-4.6]),
        "feature_mean": np.zeros(FEATURE_WIDTH), "feature_scale": np.ones(FEATURE_WIDTH),
    }
    return RiskModel.from_bytes(write_model_bytes(arrays, {"thresholds": PROBE_THRESHOLDS}))


PROBE = probe_model()


def blind_model(air_yellow: float = 0.5, air_yellow_steps: int = 3) -> RiskModel:
    """A model whose score stays at ~0.01 whatever the air, with the grades' air rule: YELLOW only by the air."""
    arrays = {
        "weight_ih": np.zeros((4, FEATURE_WIDTH)), "weight_hh": np.zeros((4, 1)),
        "bias_ih": np.array([20.0, -20.0, 0.0, 20.0]), "bias_hh": np.zeros(4),
        "head_weight": np.array([[10.0]]), "head_bias": np.array([-4.6]),
        "feature_mean": np.zeros(FEATURE_WIDTH), "feature_scale": np.ones(FEATURE_WIDTH),
    }
    thresholds = {**PROBE_THRESHOLDS, "air_yellow": air_yellow, "air_yellow_steps": air_yellow_steps}
    return RiskModel.from_bytes(write_model_bytes(arrays, {"thresholds": thresholds}))


def random_model_arrays(seed: int, hidden: int = 8) -> dict[str, np.ndarray]:
    """A model file's arrays with random weights of the served shape (hidden units, this code's features)."""
    rng = np.random.default_rng(seed)
    f, g = FEATURE_WIDTH, 4 * hidden
    return {
        "weight_ih": rng.normal(0, 0.3, (g, f)), "weight_hh": rng.normal(0, 0.3, (g, hidden)),
        "bias_ih": rng.normal(0, 0.1, g), "bias_hh": rng.normal(0, 0.1, g),
        "head_weight": rng.normal(0, 0.5, (1, hidden)), "head_bias": rng.normal(0, 0.1, 1),
        "feature_mean": rng.normal(0, 0.1, f), "feature_scale": rng.uniform(0.5, 2.0, f),
    }


def started(model: RiskModel | None = PROBE) -> HotWorkSite:
    """The healthy hot-work site, its permit enabled, with zone risk graded by `model`."""
    return HotWorkSite(Site(risk_model=model)).started()


def run_lel(site: HotWorkSite, lel: float, seconds: int) -> None:
    """Healthy seconds whose gas reading shows `lel` %LEL; each second ends with its risk tick."""
    for _ in range(seconds):
        site.gas(gas_v2("GAS-07", site.now - 20, site.next_seq("GAS-07"), r=(20.9, lel, 0.0, 1.0)))
        site.healthy_second(skip=("gas",))
        site.now += SECOND
        site.advance()
