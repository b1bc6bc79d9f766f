"""Labels for a site's own recordings: the limit crossings (and hazards) of its history, and each recording's split.

A recording replayed through the interlock gives each zone's raw vectors at its steps (the capture:
zone -> (t_ms int64[n], raw float64[n, RAW_WIDTH])). What the recording cannot say is when the air really crossed a
limit: the site writes that down in a labels file, one per site, in TOML (docs/risk_model.md, "Training on a
site's own recordings"):

```toml
format = "interlock-risk-labels/1"

[[recording]]                      # every recording used, by its file name without .jsonl, and its part
name = "2027-03-14-day"
split = "train"                    # train, validation or test

[[zone]]                           # optional: what a zone is (kept with its sequences; "" when not given)
name = "Z03"
kind = "confined_space"            # confined_space, hot_work_area, open_area or the site's own word
work_type = "confined_space"

[[crossing]]                       # every crossing of a gas limit in any zone over the recordings' time
zone = "Z03"
channel = "lel"                    # o2, lel, h2s or co
at = 2027-03-14T10:21:07+08:00     # the first second over the limit: a TOML date-time with its UTC offset,
                                   # the same as an ISO-8601 string ("2027-03-14T10:21:07+08:00"), or ms since the epoch
end = 2027-03-14T10:35:00+08:00    # optional: the air back within the limit (no end: still over when recorded last)
hazard = "Z03/H1"                  # optional: the [[hazard]] behind it

[[hazard]]                         # optional: what caused crossings, or came close
id = "Z03/H1"                      # optional, "<zone>/H<n>" in file order by default
zone = "Z03"
kind = "flammable_leak"
start = 2027-03-14T10:05:00+08:00
end = 2027-03-14T10:50:00+08:00    # optional: its source stopped and its gas cleared
channels = ["lel"]                 # optional: the channels it can move (default all)
```

Crossings are in absolute time and belong to a zone, not to a recording: a crossing labels every recording of that
zone whose steps come up to 12 minutes before it, so the file is the site's history and recordings may be cut
anyway. The rules are the simulated sets' (docs/training_data.md):

- a crossing is the first second a channel is past its limit after at least 60 s within it; a spell over the limit
  that starts less than 60 s after the previous one of that zone and channel ended continues it and is not listed;
- `label` at a step t: some channel of the zone crosses in (t, t + 720 s]; `seconds_to_crossing`: s to the next
  crossing however far ahead, NaN when none (`labels_for`);
- `over_limit` at t: inside a crossing's spell, [at, end) (to the end of the recording when the end is not given);
- `hazard_active` at t: inside a hazard, [start, end); without an end, until the end of the spell of the last
  crossing put down to it, or to the end of the recording when it has none (give `end` whenever it is known);
- a crossing without `hazard` is put down to the zone's latest hazard started by then that can move its channel.

Errors name the file, the entry (`crossing 3`: the third [[crossing]]), the key and the bad value.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from interlock.risk_inputs import RAW_WIDTH
from training.zone_sequence import Crossing, Hazard, ZoneSequence

FORMAT = "interlock-risk-labels/1"
HORIZON_S = 720
REARM_S = 60
SPLITS = ("train", "validation", "test")
CHANNELS = ("o2", "lel", "h2s", "co")
TOP_KEYS = {"format", "recording", "zone", "crossing", "hazard"}
KEYS = {
    "recording": ({"name", "split"}, set()),
    "zone": ({"name"}, {"kind", "work_type"}),
    "crossing": ({"zone", "channel", "at"}, {"end", "hazard"}),
    "hazard": ({"zone", "kind", "start"}, {"id", "end", "channels"}),
}
"""[[table]] -> (required keys, optional keys)."""


class LabelsError(ValueError):
    """A labels file that cannot be used, with where and why."""


@dataclass(frozen=True)
class LabelledCrossing:
    zone: str
    channel: str
    crossing_ms: int
    end_ms: int | None
    """The air back within the limit; None: still over at the end of what was recorded."""
    hazard: str | None
    hazard_kind: str | None


@dataclass(frozen=True)
class LabelledHazard:
    hazard: str
    zone: str
    kind: str
    start_ms: int
    end_ms: int | None
    channels: tuple[str, ...]


@dataclass(frozen=True)
class RecordingLabels:
    """A site's labels file: each recording's split, its zones, and the crossings and hazards of its history."""

    source: str
    splits: dict[str, str]
    """Recording name -> train, validation or test."""
    crossings: tuple[LabelledCrossing, ...]
    """In time order."""
    hazards: tuple[LabelledHazard, ...] = ()
    zones: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Zone -> (zone kind, work type), when given."""

    def split_of(self, recording: str) -> str:
        if recording not in self.splits:
            raise LabelsError(
                f"{self.source}: recording {recording!r} is not listed: add a [[recording]] with name = "
                f"{recording!r} and its split ({', '.join(SPLITS)})")
        return self.splits[recording]

    def zone_crossings(self, zone: str) -> list[LabelledCrossing]:
        return [c for c in self.crossings if c.zone == zone]

    def crossings_ms(self, zone: str) -> np.ndarray:
        """int64, sorted: the zone's crossing times."""
        return np.array(sorted(c.crossing_ms for c in self.crossings if c.zone == zone), dtype=np.int64)


def labels_for(t_ms: np.ndarray, crossings_ms: np.ndarray, horizon_s: float = HORIZON_S) -> tuple[np.ndarray, np.ndarray]:
    """(label bool[n], seconds_to_crossing float64[n]) of steps at `t_ms` given a zone's crossing times: label is
    a crossing in (t, t + horizon_s]; seconds to the next crossing after t, NaN when none is ahead."""
    t = np.asarray(t_ms, dtype=np.int64)
    c = np.sort(np.asarray(crossings_ms, dtype=np.int64).ravel())
    seconds = np.full(t.shape, np.nan, dtype=np.float64)
    if c.size == 0:
        return np.zeros(t.shape, dtype=bool), seconds
    nxt = np.searchsorted(c, t, side="right")  # the first crossing strictly after t
    ahead = nxt < c.size
    seconds[ahead] = (c[nxt[ahead]] - t[ahead]) / 1000.0
    label = ahead & (seconds <= horizon_s)
    return label, seconds


def _intervals(t_ms: np.ndarray, spans: list[tuple[int, int | None]]) -> np.ndarray:
    """bool[n]: t inside some [start, end) (end None: to the end)."""
    inside = np.zeros(t_ms.shape, dtype=bool)
    for start, end in spans:
        a = np.searchsorted(t_ms, start, side="left")
        b = t_ms.size if end is None else np.searchsorted(t_ms, end, side="left")
        inside[a:b] = True
    return inside


# ---------------------------------------------------------------------------------------------------------- parsing

def _show(value) -> str:
    """A TOML value as the file wrote it, for errors."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return repr(value)


def _time_ms(value, where: str) -> int:
    if isinstance(value, bool):
        raise LabelsError(f"{where} = {_show(value)}: a time is a date-time with its UTC offset or ms since the epoch")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise LabelsError(f"{where} = {value!r} is not an ISO-8601 date-time "
                              f"(write it like 2027-03-14T10:21:07+08:00, or ms since the epoch)") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise LabelsError(f"{where} = {value.isoformat()!r} has no UTC offset: write the site's offset, e.g. "
                              f"{value.isoformat()}+08:00, so the time is not ambiguous")
        return round(value.timestamp() * 1000)
    raise LabelsError(f"{where} = {_show(value)}: a time is a date-time with its UTC offset "
                      f"(2027-03-14T10:21:07+08:00) or ms since the epoch")


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LabelsError(f"{where} = {value!r}: must be a non-empty string")
    return value


def _entries(document: dict, table: str, source: str) -> list[tuple[str, dict]]:
    items = document.get(table, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise LabelsError(f"{source}: {table} must be an array of tables ([[{table}]])")
    required, optional = KEYS[table]
    out = []
    for number, item in enumerate(items, 1):
        where = f"{source}: {table} {number}"
        unknown = sorted(set(item) - required - optional)
        if unknown:
            raise LabelsError(f"{where}: unknown key {unknown[0]!r} (a [[{table}]] has "
                              f"{', '.join(sorted(required | optional))})")
        missing = sorted(required - set(item))
        if missing:
            raise LabelsError(f"{where}: {missing[0]!r} is missing")
        out.append((where, item))
    return out


def parse_labels(text: str, source: str = "<labels>") -> RecordingLabels:
    """A labels file's text (TOML, the module docstring's format) checked and read."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LabelsError(f"{source}: not valid TOML: {error}") from None
    unknown = sorted(set(document) - TOP_KEYS)
    if unknown:
        raise LabelsError(f"{source}: unknown key {unknown[0]!r} (a labels file has {', '.join(sorted(TOP_KEYS))})")
    if document.get("format") != FORMAT:
        raise LabelsError(f"{source}: format = {document.get('format')!r}: a labels file starts with "
                          f"format = {FORMAT!r}")

    splits: dict[str, str] = {}
    for where, item in _entries(document, "recording", source):
        name = _text(item["name"], f"{where}: name")
        if item["split"] not in SPLITS:
            raise LabelsError(f"{where}: split = {_show(item['split'])}: must be one of {', '.join(SPLITS)}")
        if name in splits:
            raise LabelsError(f"{where}: name = {name!r} is listed twice")
        splits[name] = item["split"]

    zones: dict[str, tuple[str, str]] = {}
    for where, item in _entries(document, "zone", source):
        name = _text(item["name"], f"{where}: name")
        if name in zones:
            raise LabelsError(f"{where}: name = {name!r} is listed twice")
        zones[name] = tuple(_text(item[key], f"{where}: {key}") if key in item else "" for key in ("kind", "work_type"))

    hazards: list[LabelledHazard] = []
    per_zone: dict[str, int] = {}
    for where, item in _entries(document, "hazard", source):
        zone = _text(item["zone"], f"{where}: zone")
        per_zone[zone] = per_zone.get(zone, 0) + 1
        hazard_id = _text(item["id"], f"{where}: id") if "id" in item else f"{zone}/H{per_zone[zone]}"
        start = _time_ms(item["start"], f"{where}: start")
        end = _time_ms(item["end"], f"{where}: end") if "end" in item else None
        if end is not None and end <= start:
            raise LabelsError(f"{where}: end = {_show(item['end'])} is not after start = {_show(item['start'])}")
        channels = item.get("channels", list(CHANNELS))
        if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
            raise LabelsError(f"{where}: channels = {_show(channels)}: must be a list of some of {', '.join(CHANNELS)}")
        channels = tuple(channels)
        if any(h.hazard == hazard_id for h in hazards):
            raise LabelsError(f"{where}: id = {hazard_id!r} is used twice")
        hazards.append(LabelledHazard(hazard_id, zone, _text(item["kind"], f"{where}: kind"), start, end, channels))
    by_id = {h.hazard: h for h in hazards}

    crossings: list[tuple[str, dict, LabelledCrossing]] = []
    for where, item in _entries(document, "crossing", source):
        zone = _text(item["zone"], f"{where}: zone")
        channel = item["channel"]
        if channel not in CHANNELS:
            raise LabelsError(f"{where}: channel = {channel!r}: must be one of {', '.join(CHANNELS)}")
        at = _time_ms(item["at"], f"{where}: at")
        end = _time_ms(item["end"], f"{where}: end") if "end" in item else None
        if end is not None and end <= at:
            raise LabelsError(f"{where}: end = {_show(item['end'])} is not after at = {_show(item['at'])}")
        if "hazard" in item:
            hazard = by_id.get(item["hazard"])
            if hazard is None:
                raise LabelsError(f"{where}: hazard = {_show(item['hazard'])} is not the id of any [[hazard]]")
            if hazard.zone != zone:
                raise LabelsError(f"{where}: hazard = {_show(item['hazard'])} is in zone {hazard.zone}, not {zone}")
        else:
            candidates = [h for h in hazards if h.zone == zone and h.start_ms <= at and channel in h.channels]
            hazard = max(candidates, key=lambda h: h.start_ms) if candidates else None
        crossings.append((where, item, LabelledCrossing(zone, channel, at, end, hazard.hazard if hazard else None,
                                                         hazard.kind if hazard else None)))

    crossings.sort(key=lambda x: (x[2].zone, x[2].channel, x[2].crossing_ms))
    for (where0, item0, c0), (where1, item1, c1) in zip(crossings, crossings[1:]):
        if (c0.zone, c0.channel) != (c1.zone, c1.channel):
            continue
        if c0.end_ms is None:
            raise LabelsError(f"{where0} ({c0.zone} {c0.channel} at {_show(item0['at'])}) has no end but {where1} of the "
                              f"same zone and channel follows at {_show(item1['at'])}: give its end")
        if c1.crossing_ms - c0.end_ms < REARM_S * 1000:
            raise LabelsError(
                f"{where1}: at = {_show(item1['at'])} is less than {REARM_S} s after the spell of {where0} ended "
                f"({_show(item0['end'])}): it continues that spell and is not a crossing; remove it and move {where0}'s "
                f"end to the end of the later spell")
    ordered = tuple(sorted((c for _, _, c in crossings), key=lambda c: (c.crossing_ms, c.zone, c.channel)))
    return RecordingLabels(source=source, splits=splits, crossings=ordered, hazards=tuple(hazards), zones=zones)


def read_labels(path: str | Path) -> RecordingLabels:
    """A site's labels file (TOML, the module docstring's format)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelsError(f"labels file {path} does not exist") from None
    return parse_labels(text, str(path))


# ----------------------------------------------------------------------------------------------- capture -> sequences

def _check_capture(zone: str, t_ms, raw, scenario_id: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t_ms)
    if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"{scenario_id} zone {zone}: t_ms must be a 1-d integer array of ms, got {t.dtype} {t.shape}")
    t = t.astype(np.int64, copy=False)
    r = np.asarray(raw, dtype=np.float64)
    if r.shape != (t.shape[0], RAW_WIDTH):
        raise ValueError(f"{scenario_id} zone {zone}: raw must be ({t.shape[0]}, {RAW_WIDTH}) "
                         f"(interlock.risk_inputs layout), got {r.shape}")
    if t.size and np.any(np.diff(t) <= 0):
        raise ValueError(f"{scenario_id} zone {zone}: step times must rise strictly")
    return t, r


def _hazard_spans(labels: RecordingLabels, zone: str) -> list[tuple[int, int | None]]:
    spans = []
    for h in labels.hazards:
        if h.zone != zone:
            continue
        if h.end_ms is not None:
            spans.append((h.start_ms, h.end_ms))
            continue
        own = [c for c in labels.crossings if c.hazard == h.hazard]
        spans.append((h.start_ms, own[-1].end_ms if own else None))
    return spans


def sequences_from_capture(capture: dict[str, tuple[np.ndarray, np.ndarray]], labels: RecordingLabels,
                           scenario_id: str, horizon_s: float = HORIZON_S) -> list[ZoneSequence]:
    """A recording's capture (zone -> (t_ms int64[n], raw float64[n, RAW_WIDTH]), from replaying it through the
    interlock) joined with the site's labels: one ZoneSequence per zone, in zone order, split from the labels file's
    [[recording]] named `scenario_id`."""
    split = labels.split_of(scenario_id)
    sequences = []
    for zone in sorted(capture):
        t, raw = _check_capture(zone, *capture[zone], scenario_id)
        label, seconds = labels_for(t, labels.crossings_ms(zone), horizon_s)
        spells = [(c.crossing_ms, c.end_ms) for c in labels.zone_crossings(zone)]
        kind, work_type = labels.zones.get(zone, ("", ""))
        sequences.append(ZoneSequence(
            scenario_id=scenario_id, zone=zone, split=split, zone_kind=kind, work_type=work_type,
            t_ms=t.copy(), raw=raw.copy(), label=label, seconds_to_crossing=seconds,
            over_limit=_intervals(t, spells), hazard_active=_intervals(t, _hazard_spans(labels, zone))))
    return sequences


def _span(capture: dict, zone: str) -> tuple[int, int] | None:
    t = np.asarray(capture[zone][0], dtype=np.int64)
    return (int(t[0]), int(t[-1])) if t.size else None


def capture_crossings(capture: dict[str, tuple[np.ndarray, np.ndarray]], labels: RecordingLabels,
                      scenario_id: str) -> list[Crossing]:
    """The labelled crossings inside the capture's zones' time spans, as the trainer's and evaluation's Crossing."""
    out = []
    for zone in sorted(capture):
        span = _span(capture, zone)
        if span is None:
            continue
        out.extend(Crossing(scenario_id, zone, c.channel, c.crossing_ms, c.hazard, c.hazard_kind)
                   for c in labels.zone_crossings(zone) if span[0] < c.crossing_ms <= span[1])
    return out


def capture_hazards(capture: dict[str, tuple[np.ndarray, np.ndarray]], labels: RecordingLabels,
                    scenario_id: str) -> list[Hazard]:
    """The labelled hazards starting inside the capture's zones' time spans, with their first crossing and lead."""
    out = []
    for zone in sorted(capture):
        span = _span(capture, zone)
        if span is None:
            continue
        for h in labels.hazards:
            if h.zone != zone or not span[0] <= h.start_ms <= span[1]:
                continue
            own = [c.crossing_ms for c in labels.crossings if c.hazard == h.hazard]
            first = min(own) if own else None
            out.append(Hazard(scenario_id, zone, h.hazard, h.kind, h.start_ms, first is not None, first,
                              None if first is None else (first - h.start_ms) / 1000.0))
    return out


__all__ = [
    "FORMAT", "HORIZON_S", "LabelledCrossing", "LabelledHazard", "LabelsError", "RecordingLabels",
    "capture_crossings", "capture_hazards", "labels_for", "parse_labels", "read_labels", "sequences_from_capture",
]
