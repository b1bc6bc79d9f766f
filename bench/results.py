"""What a benchmark suite reports to the release gate: named metrics and the series its plots are drawn from."""

from __future__ import annotations

from typing import Literal

import msgspec


class Metric(msgspec.Struct, frozen=True):
    """One measured figure; `better` says which way is good, so the gate knows what a regression is."""

    name: str
    value: float
    unit: str
    better: Literal["higher", "lower"]


class Series(msgspec.Struct, frozen=True):
    """Points of one curve (x, y) for the report's plots."""

    name: str
    x_label: str
    y_label: str
    points: list[tuple[float, float]]
    log_x: bool = False


class SuiteResult(msgspec.Struct, frozen=True):
    """Everything one suite measured in one run."""

    suite: str
    metrics: list[Metric]
    series: list[Series] = []
    notes: list[str] = []

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"suite {self.suite} has no metric {name!r}; it has {[m.name for m in self.metrics]}")
