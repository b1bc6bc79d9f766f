"""Which risk model a run uses: the one shipped with the package, a model file, or none."""

from __future__ import annotations

import functools
from importlib import resources

from interlock.risk_grade import GradeState, grade_step
from interlock.risk_inputs import empty_raw
from interlock.risk_model import RiskModel, new_zone_state, step

SHIPPED = "shipped"
OFF = "off"
SHIPPED_FILE = "risk_lstm.npz"
"""The trained model in the `interlock` package (interlock/risk_lstm.npz), made by `interlock risk-train`."""


def shipped_model_bytes() -> bytes:
    return resources.files("interlock").joinpath(SHIPPED_FILE).read_bytes()


def load_risk_model(choice: str | None = SHIPPED) -> RiskModel | None:
    """`shipped` (default): the packaged model; `off`: no risk grading; anything else: a model file's path.

    Raises ValueError naming the file and what is wrong with it."""
    if choice is None or choice == OFF:
        return None
    if choice == SHIPPED:
        return _shipped_model()
    try:
        with open(choice, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ValueError(f"risk model {choice}: {error.strerror or error}; give a file made by interlock risk-train, "
                         f"'{SHIPPED}' or '{OFF}'") from error
    return _model_from(data, choice)


@functools.cache
def _shipped_model() -> RiskModel:
    """The packaged model, read once per process: steps only read a model, so every Site may share it."""
    return _model_from(shipped_model_bytes(), f"interlock/{SHIPPED_FILE}")


def _model_from(data: bytes, name: str) -> RiskModel:
    try:
        model = RiskModel.from_bytes(data)
    except ValueError as error:
        raise ValueError(f"risk model {name}: {error}") from error
    compile_steps(model)
    return model


def compile_steps(model: RiskModel) -> None:
    """One step and one grading on a throwaway zone, so numba compiles (or loads its cache) now and not while the
    first reading of a live run waits for its decision."""
    grade_step(GradeState(), step(model, new_zone_state(model), empty_raw()), model.thresholds)


def add_risk_model_argument(parser) -> None:
    parser.add_argument(
        "--risk-model", default=SHIPPED, metavar="MODEL.npz|shipped|off",
        help="zone risk model (docs/risk_model.md): the packaged one (default), a file from interlock risk-train, or off",
    )
