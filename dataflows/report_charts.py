"""SVG timeline charts for replay reports: panels stacked on one site-time axis, with labelled event markers across them.

The SVG is written as text (no plotting library at run time) and goes inline into the report's HTML, so a page shows
its charts with no script, no network and no files beside it. Hovering uses the SVG `<title>` element, which every
browser shows without script. Lines are drawn from per-bucket minima and maxima (`envelope_runs`), so a recording of
a million records draws at most a few points per pixel column.
"""

from __future__ import annotations

import datetime
import math
from html import escape
from itertools import count
from typing import Sequence

import msgspec

PLOT_LEFT = 200
"""Width of the label gutter on the left of every chart, in px."""
PLOT_WIDTH = 1120
CHART_WIDTH = PLOT_LEFT + PLOT_WIDTH + 24
LABEL_ROW_PX = 19
LABEL_FONT_PX = 12.5
SPAN_FONT_PX = 12.0
SMALL_FONT_PX = 10.0
MIN_BUCKET_MS = 1_000
"""Lines are drawn from at most one min/max pair per second, or per pixel column when a second is narrower."""
TICK_STEPS_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
TICKS_WANTED = 12

_svg_ids = count(1)


def clock_time(ts: int, utc_offset_minutes: int, millis: bool = False) -> str:
    """`09:02:00` (or `09:02:00.464`) in site time: what an engineer compares with the site's clocks."""
    moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ts + utc_offset_minutes * 60_000)
    text = moment.strftime("%H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}" if millis else text


class TimeAxis:
    """Maps record times (ms, UTC) onto the plot's x range; every chart of a report shares one, so markers line up."""

    def __init__(self, start_ms: int, end_ms: int, utc_offset_minutes: int) -> None:
        if end_ms <= start_ms:
            end_ms = start_ms + 1_000
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.utc_offset_minutes = utc_offset_minutes
        self.scale = PLOT_WIDTH / (end_ms - start_ms)

    def x(self, ts: int) -> float:
        return PLOT_LEFT + (min(max(ts, self.start_ms), self.end_ms) - self.start_ms) * self.scale

    def bucket_ms(self) -> int:
        """The time one drawn point stands for: a second, or one pixel column of a long recording."""
        return max(MIN_BUCKET_MS, math.ceil((self.end_ms - self.start_ms) / PLOT_WIDTH))

    def ticks(self) -> list[tuple[float, str]]:
        """Round site-clock times across the axis, about a dozen of them."""
        span_s = (self.end_ms - self.start_ms) / 1000
        step_s = next((s for s in TICK_STEPS_S if span_s / s <= TICKS_WANTED), TICK_STEPS_S[-1])
        step_ms = step_s * 1000
        offset_ms = self.utc_offset_minutes * 60_000
        first = -(-(self.start_ms + offset_ms) // step_ms) * step_ms - offset_ms
        return [(self.x(ts), clock_time(ts, self.utc_offset_minutes)) for ts in range(first, self.end_ms + 1, step_ms)]


class Span(msgspec.Struct, frozen=True):
    """A stretch of a lane in one state: its colour, the word written in it when it fits, and the hover text."""

    start: int
    end: int
    fill: str
    text: str = ""
    tooltip: str = ""
    hatch: bool = False
    ink: str = "#1b1b1b"


class Lane(msgspec.Struct, frozen=True):
    """A row of states over time (enable, payload validity, a person inside or out, a PLC signal)."""

    label: str
    spans: list[Span]
    note: str = ""
    height: int = 26


class Run(msgspec.Struct, frozen=True):
    """Consecutive drawn points of one trace, all valid or all not: (time, lowest, highest) per bucket."""

    valid: bool
    points: list[tuple[int, float, float]]


class Trace(msgspec.Struct, frozen=True):
    label: str
    colour: str
    runs: list[Run]


class Threshold(msgspec.Struct, frozen=True):
    """A limit drawn across a panel (a site gas limit, the tie-off height)."""

    value: float
    text: str
    colour: str = "#c62828"


class Band(msgspec.Struct, frozen=True):
    """A hatched stretch of a panel: data that arrived but is not valid evidence (shown, never hidden); `lines` are
    written in it, one under the other, as far as they fit."""

    start: int
    end: int
    tooltip: str
    lines: tuple[str, ...] = ()


class LinePanel(msgspec.Struct, frozen=True):
    label: str
    unit: str
    low: float
    high: float
    traces: list[Trace]
    thresholds: list[Threshold] = []
    bands: list[Band] = []
    height: int = 62


class Divider(msgspec.Struct, frozen=True):
    """A heading row inside a stack: what the rows below it are about."""

    title: str
    height: int = 26


class Marker(msgspec.Struct, frozen=True):
    """A vertical line across every row of a stack at an event, with a label above the rows.

    `priority` orders label placement (0 first): when labels would need more rows than allowed, the least important
    lose their label but keep their line and hover text. `attrs` become `data-*` attributes, for tests and tools."""

    ts: int
    colour: str
    label: str
    tooltip: str
    style: str = "solid"
    width: float = 2.0
    priority: int = 5
    attrs: dict[str, str] = {}


Row = Lane | LinePanel | Divider


def envelope_runs(times: Sequence[int], values: Sequence[float | None], valid: Sequence[bool], start_ms: int,
                  bucket_ms: int, gap_ms: int) -> list[Run]:
    """Min/max per time bucket, split into runs wherever validity changes, a value is missing (sensor fault) or the data
    goes silent for longer than `gap_ms`: a line never bridges a silence or a change of trust."""
    runs: list[Run] = []
    points: list[tuple[int, float, float]] = []
    open_run = False
    run_valid = True
    bucket = bucket_start = previous_ts = 0
    low = high = 0.0
    for ts, value, ok in zip(times, values, valid):
        missing = value is None or value != value
        if open_run and (missing or ok != run_valid or ts - previous_ts > gap_ms):
            points.append((bucket_start, low, high))
            runs.append(Run(run_valid, points))
            points, open_run = [], False
        if missing:
            continue
        this_bucket = (ts - start_ms) // bucket_ms
        if not open_run:
            open_run, run_valid = True, ok
            bucket, bucket_start, low, high = this_bucket, ts, value, value
        elif this_bucket != bucket:
            points.append((bucket_start, low, high))
            bucket, bucket_start, low, high = this_bucket, ts, value, value
        elif value < low:
            low = value
        elif value > high:
            high = value
        previous_ts = ts
    if open_run:
        points.append((bucket_start, low, high))
        runs.append(Run(run_valid, points))
    return runs


def _fmt(value: float) -> str:
    """Pixel coordinates with one decimal at most: enough for a screen, and a small file."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _polyline_points(points: list[tuple[float, float]]) -> str:
    """Points without the middle of horizontal stretches: a flat channel costs two points, not two per second."""
    kept: list[tuple[float, float]] = []
    for point in points:
        if len(kept) >= 2 and kept[-1][1] == point[1] and kept[-2][1] == point[1]:
            kept[-1] = point
        elif not kept or kept[-1] != point:
            kept.append(point)
    return " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in kept)


_NARROW = frozenset(" .,:;'|!iIjlft()[]/·")


def text_width(text: str, px: float) -> float:
    """Width of bold text at `px`, by the advances of DejaVu Sans Bold (the widest common UI sans), so a label boxed to
    this width fits in any browser's font."""
    em = 0.0
    for char in text:
        if char in _NARROW:
            em += 0.40
        elif char.isupper() or char in "mw_%@":
            em += 0.80 if char not in "MW" else 1.05
        elif char.isdigit():
            em += 0.70
        elif char.islower():
            em += 0.66
        elif ord(char) > 0x2E80:
            em += 1.0
        else:
            em += 0.84
    return em * px


def fitting_text(text: str, width: float, px: float = SPAN_FONT_PX) -> str:
    """The longest head of `text` (its ` · `-separated parts, most important first) that fits in `width`, or ''."""
    parts = text.split(" · ")
    while parts:
        candidate = " · ".join(parts)
        if text_width(candidate, px) + 8 <= width:
            return candidate
        parts.pop()
    return ""


class _Label(msgspec.Struct):
    marker: Marker
    row: int
    left: float
    right: float
    anchor_end: bool


def _greedy_rows(axis: TimeAxis, markers: list[Marker], max_rows: int) -> list[_Label]:
    """Each label in the first row where it overlaps nothing, in the order given; a label that would run off the
    right edge is written to the left of its line; one that finds no row is left out."""
    rows: list[list[tuple[float, float]]] = []
    placed: list[_Label] = []
    right_edge = PLOT_LEFT + PLOT_WIDTH
    for marker in markers:
        x = axis.x(marker.ts)
        width = text_width(marker.label, LABEL_FONT_PX) + 10
        anchor_end = x + 4 + width > right_edge + 20
        left, right = (x - 4 - width, x) if anchor_end else (x, x + 4 + width)
        for number in range(max_rows):
            if number == len(rows):
                rows.append([])
            if all(right + 6 <= a or left >= b + 6 for a, b in rows[number]):
                rows[number].append((left, right))
                placed.append(_Label(marker, number, left, right, anchor_end))
                break
    return placed


def _place_labels(axis: TimeAxis, markers: list[Marker], max_rows: int) -> list[_Label]:
    """Which labels get a place is decided by importance (a stop before an ENABLE); where they go, by time, so the rows
    read top-down in the order things happened (at one instant: the input, the fault, then the command)."""
    labelled = [(index, marker) for index, marker in enumerate(markers) if marker.label]
    by_importance = [marker for _, marker in sorted(labelled, key=lambda pair: (pair[1].priority, pair[1].ts, pair[0]))]
    chosen = {id(label.marker) for label in _greedy_rows(axis, by_importance, max_rows)}
    in_time = [marker for _, marker in sorted(labelled, key=lambda pair: (pair[1].ts, pair[0])) if id(marker) in chosen]
    placed = _greedy_rows(axis, in_time, max_rows)
    if len(placed) < len(in_time):
        placed = _greedy_rows(axis, by_importance, max_rows)
    return placed


def _dash(style: str) -> str:
    return {"dashed": ' stroke-dasharray="7 4"', "dotted": ' stroke-dasharray="2 3"'}.get(style, "")


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' data-{name}="{escape(value)}"' for name, value in attrs.items())


class _Canvas:
    """SVG parts of one stack, top to bottom, with a unique id prefix so several stacks can share a page."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.uid = f"c{next(_svg_ids)}"

    def add(self, text: str) -> None:
        self.parts.append(text)


def _hatch_defs(uid: str) -> str:
    return (
        f'<defs><pattern id="{uid}-hatch" patternUnits="userSpaceOnUse" width="9" height="9" '
        f'patternTransform="rotate(45)"><rect width="9" height="9" fill="#ffe3c2"/>'
        f'<line x1="0" y1="0" x2="0" y2="9" stroke="#e8590c" stroke-width="3.2"/></pattern></defs>'
    )


def _draw_lane(canvas: _Canvas, axis: TimeAxis, lane: Lane, top: float) -> None:
    height = lane.height
    label_y = top + height / 2 - 1 if lane.note else top + height / 2 + 4.5
    canvas.add(f'<text x="{PLOT_LEFT - 10}" y="{_fmt(label_y)}" class="lane-label" '
               f'text-anchor="end">{escape(lane.label)}</text>')
    if lane.note:
        canvas.add(f'<text x="{PLOT_LEFT - 10}" y="{_fmt(top + height / 2 + 10.5)}" class="lane-note" '
                   f'text-anchor="end">{escape(lane.note)}</text>')
    canvas.add(f'<rect x="{PLOT_LEFT}" y="{_fmt(top)}" width="{PLOT_WIDTH}" height="{height}" class="lane-bg"/>')
    for span in lane.spans:
        x0, x1 = axis.x(span.start), axis.x(span.end)
        width = max(x1 - x0, 1.0)
        fill = f"url(#{canvas.uid}-hatch)" if span.hatch else span.fill
        tooltip = f"<title>{escape(span.tooltip)}</title>" if span.tooltip else ""
        canvas.add(f'<rect x="{_fmt(x0)}" y="{_fmt(top + 1)}" width="{_fmt(width)}" height="{height - 2}" '
                   f'fill="{fill}">{tooltip}</rect>')
        text = fitting_text(span.text, width) if span.text else ""
        small = not text and span.text and bool(fitting_text(span.text, width, SMALL_FONT_PX))
        if small:
            text = fitting_text(span.text, width, SMALL_FONT_PX)
        if text:
            halo = " halo" if span.hatch else ""
            size = ' style="font-size:10px"' if small else ""
            canvas.add(f'<text x="{_fmt(x0 + 5)}" y="{_fmt(top + height / 2 + 4.5)}" class="span-text{halo}" '
                       f'fill="{span.ink}"{size}>{escape(text)}</text>')


def _draw_panel(canvas: _Canvas, axis: TimeAxis, panel: LinePanel, top: float) -> None:
    height = panel.height
    pad = 5
    low, high = panel.low, panel.high
    if high <= low:
        high = low + 1.0

    def y(value: float) -> float:
        return top + pad + (high - min(max(value, low), high)) * (height - 2 * pad) / (high - low)

    canvas.add(f'<text x="{PLOT_LEFT - 10}" y="{_fmt(top + 17)}" class="lane-label" text-anchor="end">'
               f'{escape(panel.label)}</text>')
    canvas.add(f'<text x="{PLOT_LEFT - 10}" y="{_fmt(top + 31)}" class="lane-note" text-anchor="end">'
               f'{escape(panel.unit)}</text>')
    legend_y = top + 45
    if len(panel.traces) > 1:
        for trace in panel.traces:
            canvas.add(f'<text x="{PLOT_LEFT - 10}" y="{_fmt(legend_y)}" class="lane-note" text-anchor="end" '
                       f'fill="{trace.colour}">&#9473; {escape(trace.label)}</text>')
            legend_y += 12
    canvas.add(f'<rect x="{PLOT_LEFT}" y="{_fmt(top)}" width="{PLOT_WIDTH}" height="{height}" class="panel-bg"/>')
    canvas.add(f'<text x="{PLOT_LEFT + 4}" y="{_fmt(top + 11)}" class="axis-value">{high:g}</text>'
               f'<text x="{PLOT_LEFT + 4}" y="{_fmt(top + height - 3)}" class="axis-value">{low:g}</text>')
    for band in panel.bands:
        x0, x1 = axis.x(band.start), axis.x(band.end)
        canvas.add(f'<rect x="{_fmt(x0)}" y="{_fmt(top)}" width="{_fmt(max(x1 - x0, 2.0))}" height="{height}" '
                   f'fill="url(#{canvas.uid}-hatch)" opacity="0.55"><title>{escape(band.tooltip)}</title></rect>')
        line_y = top + 15
        for line in band.lines:
            if line_y > top + height - 3 or text_width(line, SPAN_FONT_PX) + 10 > x1 - x0:
                break
            canvas.add(f'<text x="{_fmt(x0 + 5)}" y="{_fmt(line_y)}" class="band-text">{escape(line)}</text>')
            line_y += 15
    for threshold in panel.thresholds:
        ty = y(threshold.value)
        canvas.add(f'<line x1="{PLOT_LEFT}" x2="{PLOT_LEFT + PLOT_WIDTH}" y1="{_fmt(ty)}" y2="{_fmt(ty)}" '
                   f'stroke="{threshold.colour}" stroke-width="1.3" stroke-dasharray="9 5"/>')
        above = ty - 4 if ty - top > 14 else ty + 12
        canvas.add(f'<text x="{PLOT_LEFT + PLOT_WIDTH - 4}" y="{_fmt(above)}" class="threshold" text-anchor="end" '
                   f'fill="{threshold.colour}">{escape(threshold.text)}</text>')
    for trace in panel.traces:
        for run in trace.runs:
            points: list[tuple[float, float]] = []
            for ts, run_low, run_high in run.points:
                x = axis.x(ts)
                points.append((x, y(run_low)))
                if run_high != run_low:
                    points.append((x, y(run_high)))
            if len(points) == 1:
                points.append((points[0][0] + 1.5, points[0][1]))
            style = ' stroke-width="1.8"' if run.valid else ' stroke-width="1.6" stroke-dasharray="4 3" opacity="0.9"'
            what = trace.label if run.valid else f"{trace.label}: not valid evidence (decoded for display only)"
            canvas.add(f'<polyline fill="none" stroke="{trace.colour}"{style} points="{_polyline_points(points)}">'
                       f'<title>{escape(what)}</title></polyline>')


def _draw_divider(canvas: _Canvas, divider: Divider, top: float) -> None:
    canvas.add(f'<text x="8" y="{_fmt(top + 18)}" class="divider">{escape(divider.title)}</text>')
    canvas.add(f'<line x1="8" x2="{PLOT_LEFT + PLOT_WIDTH}" y1="{_fmt(top + 23)}" y2="{_fmt(top + 23)}" '
               f'class="divider-rule"/>')


def _draw_marker_line(canvas: _Canvas, axis: TimeAxis, marker: Marker, top: float, bottom: float) -> None:
    x = _fmt(axis.x(marker.ts))
    canvas.add(f'<g class="marker"{_attrs(marker.attrs)}><line x1="{x}" x2="{x}" y1="{_fmt(top)}" '
               f'y2="{_fmt(bottom)}" stroke="{marker.colour}" stroke-width="{_fmt(marker.width)}"{_dash(marker.style)}/>'
               f'<title>{escape(marker.tooltip)}</title></g>')


def _draw_leader(canvas: _Canvas, axis: TimeAxis, label: _Label, band_bottom: float) -> None:
    """The line from a label down to the rows, drawn before every label box so the boxes it passes stay readable."""
    marker = label.marker
    top = 4 + label.row * LABEL_ROW_PX
    x = _fmt(axis.x(marker.ts))
    canvas.add(f'<line x1="{x}" x2="{x}" y1="{_fmt(top + LABEL_ROW_PX - 3)}" y2="{_fmt(band_bottom)}" '
               f'stroke="{marker.colour}" stroke-width="1.2"{_dash(marker.style)}/>')


def _draw_label(canvas: _Canvas, label: _Label) -> None:
    marker = label.marker
    top = 4 + label.row * LABEL_ROW_PX
    text_x = label.left + 5 if not label.anchor_end else label.right - 5
    anchor = "end" if label.anchor_end else "start"
    canvas.add(f'<g class="marker-label"{_attrs(marker.attrs)}>'
               f'<rect x="{_fmt(label.left)}" y="{_fmt(top)}" width="{_fmt(label.right - label.left)}" '
               f'height="{LABEL_ROW_PX - 3}" rx="3" fill="#ffffff" stroke="{marker.colour}" stroke-width="1.4"/>'
               f'<text x="{_fmt(text_x)}" y="{_fmt(top + 12)}" class="marker-text" text-anchor="{anchor}">'
               f'{escape(marker.label)}</text><title>{escape(marker.tooltip)}</title></g>')


def _draw_axis(canvas: _Canvas, axis: TimeAxis, top: float, bottom: float) -> None:
    for x, text in axis.ticks():
        canvas.add(f'<line x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_fmt(top)}" y2="{_fmt(bottom + 4)}" class="grid"/>'
                   f'<text x="{_fmt(x)}" y="{_fmt(bottom + 18)}" class="tick" text-anchor="middle">{text}</text>')


def render_stack(axis: TimeAxis, rows: list[Row], markers: list[Marker], *, max_label_rows: int = 7,
                 caption: str = "") -> str:
    """One SVG: labels of the markers on top, then the rows in order, the site-clock axis at the bottom, and every
    marker's line across all rows (input events under faults under commands, as the markers are given)."""
    canvas = _Canvas()
    labels = _place_labels(axis, markers, max_label_rows)
    label_rows = max((label.row for label in labels), default=-1) + 1
    band_bottom = 6 + label_rows * LABEL_ROW_PX + 4
    body: list[tuple[Row, float]] = []
    y = band_bottom
    for row in rows:
        body.append((row, y))
        y += row.height + (2 if isinstance(row, Lane) else 6)
    bottom = y
    height = bottom + 26
    canvas.add(_hatch_defs(canvas.uid))
    _draw_axis(canvas, axis, band_bottom, bottom)
    for row, top in body:
        if isinstance(row, Lane):
            _draw_lane(canvas, axis, row, top)
        elif isinstance(row, LinePanel):
            _draw_panel(canvas, axis, row, top)
        else:
            _draw_divider(canvas, row, top)
    for marker in markers:
        _draw_marker_line(canvas, axis, marker, band_bottom, bottom)
    for label in labels:
        _draw_leader(canvas, axis, label, band_bottom)
    for label in labels:
        _draw_label(canvas, label)
    title = f"<title>{escape(caption)}</title>" if caption else ""
    return (f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {_fmt(height)}" width="{CHART_WIDTH}" '
            f'height="{_fmt(height)}" role="img">{title}' + "".join(canvas.parts) + "</svg>")
