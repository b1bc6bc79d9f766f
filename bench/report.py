"""The gate's Markdown report: the checks, every metric, and plots of throughput, latency, scaling and decoding."""

from __future__ import annotations

import datetime
from pathlib import Path

import msgspec

from bench.results import Metric, Series, SuiteResult


def _plot_series(folder: Path, name: str, series: list[Series]) -> str | None:
    """One PNG with the given curves; returns its file name."""
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for curve in series:
        xs = [x for x, _ in curve.points]
        ys = [y for _, y in curve.points]
        axis.plot(xs, ys, marker="o", label=curve.name)
        if curve.log_x:
            axis.set_xscale("log")
    axis.set_xlabel(series[0].x_label)
    axis.set_ylabel(series[0].y_label)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    file = f"{name}.png"
    figure.savefig(folder / file, dpi=110)
    plt.close(figure)
    return file


def _plot_bars(folder: Path, name: str, title: str, bars: list[tuple[str, float]], unit: str) -> str | None:
    if not bars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    labels = [label for label, _ in bars]
    values = [value for _, value in bars]
    axis.barh(labels, values, color=["#2a7" if i == 0 else "#89a" for i in range(len(bars))])
    for i, value in enumerate(values):
        axis.text(value, i, f" {value:,.0f}" if value >= 100 else f" {value:.2f}", va="center", fontsize=8)
    axis.set_xlabel(unit)
    axis.set_title(title, fontsize=10)
    axis.invert_yaxis()
    figure.tight_layout()
    file = f"{name}.png"
    figure.savefig(folder / file, dpi=110)
    plt.close(figure)
    return file


def _series_by_unit(results: list[SuiteResult]) -> dict[str, list[Series]]:
    groups: dict[str, list[Series]] = {}
    for result in results:
        for curve in result.series:
            groups.setdefault(f"{result.suite}-{curve.y_label}", []).append(curve)
    return groups


def write_report(folder: Path, results: list[SuiteResult], metrics: dict[str, Metric], checks: list, mode: str,
                 baseline: dict[str, float]) -> Path:
    """report.md, results.json and the plots in `folder`; returns the report's path."""
    from bench.gate import format_table

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_bytes(msgspec.json.format(msgspec.json.encode(results)) + b"\n")
    failed = [c for c in checks if not c.passed]
    lines = [
        f"# Release gate report ({mode})",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — "
        + ("**PASSED**" if not failed else f"**FAILED** ({len(failed)} of {len(checks)} checks)"),
        "",
        "## Checks",
        "",
        "```",
        format_table(checks),
        "```",
        "",
    ]
    rates = [(label, metrics[name].value) for label, name in (
        ("ours, from recording lines", "decision_from_lines_records_per_s"),
        ("baseline: json + pydantic, zones scanned", "baseline_records_per_s"),
        ("baseline with a zone grid (information)", "baseline_grid_records_per_s"),
        ("machine limit: msgspec decode only", "limit_records_per_s"),
    ) if name in metrics]
    plots = [("Throughput on the same lines, same run", _plot_bars(folder, "throughput", "records per second", rates, "records/s"))]
    ours = [(label, metrics[name].value) for label, name in (
        ("decision path, from Kafka records", "decision_records_per_s"),
        ("whole dataflow, from Kafka records", "dataflow_records_per_s"),
    ) if name in metrics]
    plots.append(("Our throughput per process", _plot_bars(folder, "ours", "records per second", ours, "records/s")))
    decode = sorted((m.name.removeprefix("decode_us."), m.value) for m in metrics.values() if m.name.startswith("decode_us."))
    plots.append(("Decoding cost per payload schema", _plot_bars(folder, "decoding", "microseconds per payload", decode, "us")))
    for group, series in _series_by_unit(results).items():
        plots.append((group.replace("-", ": ", 1), _plot_series(folder, group.replace("/", "_").replace(" ", "_"), series)))
    for title, file in plots:
        if file:
            lines += [f"## {title}", "", f"![{title}]({file})", ""]
    lines += ["## All metrics", "", "| metric | value | unit | last release |", "|---|---|---|---|"]
    for name in sorted(metrics):
        metric = metrics[name]
        before = baseline.get(name)
        lines.append(f"| `{name}` | {metric.value:,.4g} | {metric.unit} | {'' if before is None else f'{before:,.4g}'} |")
    notes = [f"- {result.suite}: {note}" for result in results for note in result.notes]
    if notes:
        lines += ["", "## Notes", ""] + notes
    report = folder / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
