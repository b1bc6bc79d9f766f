"""A simulated training set (docs/training_data.md) as the risk model's zone sequences, hazards and crossings.

`load_set` reads only the columns the model may see live (the detectors' decoded values and statuses, the PLC
signals, occupancy and the limits) plus the labels, and fills each zone's raw vectors exactly as the interlock does
(`interlock.zone_risk.zone_raw`, layout `interlock.risk_inputs`):

| raw field | from the set's columns |
|---|---|
| `dt_s` | 1 (one row per second, no gaps) |
| `o2_low`, `o2_high` | min and max of `det1_o2`, `det2_o2` (a value is only there when that reading is fresh) |
| `lel`, `h2s`, `co` | max over the detectors' `det*_lel`, `det*_h2s`, `det*_co` |
| `limit_*` | `limit_o2_min`, `limit_o2_max`, `limit_lel`, `limit_h2s`, `limit_co` |
| `detectors` | slots whose `det*_device` is not null |
| `fresh` | slots whose `det*_status` is not null (a reading arrived in the last 10 s) |
| `faulted_channels` | null channels (o2, lel, h2s, co) of fresh slots |
| `warming` | fresh slots whose status is `warmup` |
| `fan`, `equipment` | `fan_running`, `equipment_on`: 1, 0, NaN when null |
| `occupancy`, `since_first_entry_s`, `occupied_for_s` | the same columns, NaN when null |

NaN wherever no detector has the value. Labels: `label` = `crossing_within_12min`, `seconds_to_crossing`,
`over_limit` = `true_over_limit`, `hazard_active` = `hazard_active` is not null. Everything is vectorised: a
1,000 zone-hour set (3.6 M rows) loads in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from interlock import risk_inputs as R
from training.zone_sequence import Crossing, Hazard, ZoneSequence

SPLITS = ("train", "validation", "test")
SLOTS = (1, 2)
CHANNELS = ("o2", "lel", "h2s", "co")
DETECTOR_COLUMNS = tuple(f"det{s}_{c}" for s in SLOTS for c in ("device", *CHANNELS, "status"))
LIMIT_COLUMNS = {R.LIMIT_O2_MIN: "limit_o2_min", R.LIMIT_O2_MAX: "limit_o2_max", R.LIMIT_LEL: "limit_lel",
                 R.LIMIT_H2S: "limit_h2s", R.LIMIT_CO: "limit_co"}
SIGNAL_COLUMNS = {R.FAN: "fan_running", R.EQUIPMENT: "equipment_on", R.OCCUPANCY: "occupancy",
                  R.SINCE_FIRST_ENTRY_S: "since_first_entry_s", R.OCCUPIED_FOR_S: "occupied_for_s"}
LABEL_COLUMNS = ("crossing_within_12min", "seconds_to_crossing", "true_over_limit", "hazard_active")
COLUMNS = ("scenario_id", "split", "zone", "zone_kind", "work_type", "t_ms", *DETECTOR_COLUMNS,
           *LIMIT_COLUMNS.values(), *SIGNAL_COLUMNS.values(), *LABEL_COLUMNS)
"""The only columns `load_set` reads: never the true air, which the interlock does not have."""


def read_manifest(directory: str | Path) -> dict:
    """A set's manifest.json; a clear error when the folder is not a (finished) training set."""
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a training set: it has no manifest.json (generate one with `interlock training-data "
            f"--out {directory}`, and wait for it to finish: the manifest is written last)")
    return json.loads(path.read_text(encoding="utf-8"))


def _check_splits(splits: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    if isinstance(splits, str):
        splits = (splits,)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown split {bad[0]!r}: a set's parts are {', '.join(SPLITS)}")
    return tuple(splits)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric or boolean column as float64, NaN where null."""
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


def _bools(column: pa.ChunkedArray) -> np.ndarray:
    """A boolean column, null read as False."""
    return pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _valid(column: pa.ChunkedArray) -> np.ndarray:
    return pc.is_valid(column).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """A dictionary (or plain string) column as int32 codes (-1 for null) and the names they index."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    array = column.unify_dictionaries().combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    codes = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return codes, array.dictionary.to_pylist()


def _equals(column: pa.ChunkedArray, value: str) -> np.ndarray:
    codes, names = _codes(column)
    return codes == names.index(value) if value in names else np.zeros(codes.shape[0], dtype=bool)


def raw_from_table(table: pa.Table) -> np.ndarray:
    """The raw vectors (n, RAW_WIDTH) of a set's rows (any order; each row on its own)."""
    n = table.num_rows
    raw = np.full((n, R.RAW_WIDTH), np.nan, dtype=np.float64)
    raw[:, R.DT_S] = 1.0
    value = {(s, c): _floats(table.column(f"det{s}_{c}")) for s in SLOTS for c in CHANNELS}
    fresh = {s: _valid(table.column(f"det{s}_status")) for s in SLOTS}
    # A channel's value is there only for a fresh reading (docs/training_data.md); mask it anyway, as zone_raw does.
    for (s, c), v in value.items():
        v[~fresh[s]] = np.nan
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        o2 = np.stack([value[(s, "o2")] for s in SLOTS], axis=1)
        raw[:, R.O2_LOW] = np.nanmin(o2, axis=1)
        raw[:, R.O2_HIGH] = np.nanmax(o2, axis=1)
        for index, c in ((R.LEL, "lel"), (R.H2S, "h2s"), (R.CO, "co")):
            raw[:, index] = np.nanmax(np.stack([value[(s, c)] for s in SLOTS], axis=1), axis=1)
    for index, name in LIMIT_COLUMNS.items():
        raw[:, index] = _floats(table.column(name))
    raw[:, R.DETECTORS] = sum(_valid(table.column(f"det{s}_device")).astype(np.float64) for s in SLOTS)
    raw[:, R.FRESH] = sum(fresh[s].astype(np.float64) for s in SLOTS)
    raw[:, R.FAULTED_CHANNELS] = sum((fresh[s] & np.isnan(value[(s, c)])).astype(np.float64)
                                     for s in SLOTS for c in CHANNELS)
    raw[:, R.WARMING] = sum((fresh[s] & _equals(table.column(f"det{s}_status"), "warmup")).astype(np.float64)
                            for s in SLOTS)
    for index, name in SIGNAL_COLUMNS.items():
        raw[:, index] = _floats(table.column(name))
    return raw


class _quiet_nan_warnings:
    """nanmin/nanmax of an all-NaN row give NaN (what we want) with a RuntimeWarning: silence only that."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def sequences_from_table(table: pa.Table, split: str | None = None) -> list[ZoneSequence]:
    """A scenario file's rows (zone then time order) as one ZoneSequence per zone."""
    if table.num_rows == 0:
        return []
    raw = raw_from_table(table)
    t_ms = table.column("t_ms").to_numpy().astype(np.int64, copy=False)
    zone_codes, zone_names = _codes(table.column("zone"))
    label = _bools(table.column("crossing_within_12min"))
    seconds = _floats(table.column("seconds_to_crossing"))
    over = _bools(table.column("true_over_limit"))
    active = _valid(table.column("hazard_active"))
    scenario_codes, scenario_names = _codes(table.column("scenario_id"))
    split_codes, split_names = _codes(table.column("split"))
    kind_codes, kind_names = _codes(table.column("zone_kind"))
    work_codes, work_names = _codes(table.column("work_type"))
    starts = np.flatnonzero(np.r_[True, (zone_codes[1:] != zone_codes[:-1]) | (scenario_codes[1:] != scenario_codes[:-1])])
    ends = np.r_[starts[1:], table.num_rows]
    sequences = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        if np.any(np.diff(t_ms[a:b]) <= 0):
            raise ValueError(f"zone {zone_names[zone_codes[a]]} of {scenario_names[scenario_codes[a]]}: rows are not "
                             f"in time order (a set has each zone's rows together, in time order)")
        sequences.append(ZoneSequence(
            scenario_id=scenario_names[scenario_codes[a]],
            zone=zone_names[zone_codes[a]],
            split=split if split is not None else split_names[split_codes[a]],
            zone_kind=kind_names[kind_codes[a]] if kind_codes[a] >= 0 else "",
            work_type=work_names[work_codes[a]] if work_codes[a] >= 0 else "",
            t_ms=t_ms[a:b].copy(),
            raw=raw[a:b].copy(),
            label=label[a:b].copy(),
            seconds_to_crossing=seconds[a:b].copy(),
            over_limit=over[a:b].copy(),
            hazard_active=active[a:b].copy(),
        ))
    return sequences


def set_files(directory: str | Path, splits: tuple[str, ...] | list[str] = ("train",)) -> list[tuple[str, Path]]:
    """(split, path) of a set's scenario files in the given parts, in the manifest's order."""
    splits = _check_splits(splits)
    manifest = read_manifest(directory)
    root = Path(directory)
    files = [(f["split"], root / f["path"]) for f in manifest.get("files", []) if f["split"] in splits]
    missing = [p for _, p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} is listed in {root / 'manifest.json'} but missing: regenerate the set")
    return files


def load_set(directory: str | Path, splits: tuple[str, ...] | list[str] = ("train",)) -> list[ZoneSequence]:
    """Every zone of every scenario of the set's `splits` parts (train, validation, test) as ZoneSequences, in
    manifest (scenario) then zone order. Only the parts asked for are read: ask for test only to evaluate."""
    sequences: list[ZoneSequence] = []
    for split, path in set_files(directory, splits):
        table = pq.read_table(path, columns=list(COLUMNS))
        sequences.extend(sequences_from_table(table, split))
    return sequences


def _optional_int(value) -> int | None:
    return None if value is None else int(value)


def _split_filter(table: pa.Table, splits) -> pa.Table:
    if splits is None:
        return table
    splits = _check_splits(splits)
    return table.filter(pc.is_in(table.column("split"), value_set=pa.array(list(splits))))


def load_hazards(directory: str | Path, splits: tuple[str, ...] | list[str] | None = None) -> list[Hazard]:
    """The set's hazards.parquet (every part, or only `splits`): what was put into each zone, and whether and when
    it crossed a limit."""
    read_manifest(directory)
    table = _split_filter(pq.read_table(Path(directory) / "hazards.parquet", columns=[
        "scenario_id", "split", "zone", "hazard", "kind", "start_ms", "crossed", "first_crossing_ms", "lead_s"]),
        splits)
    return [Hazard(scenario_id=r["scenario_id"], zone=r["zone"], hazard=r["hazard"], kind=r["kind"],
                   start_ms=int(r["start_ms"]), crossed=bool(r["crossed"]),
                   first_crossing_ms=_optional_int(r["first_crossing_ms"]),
                   lead_s=None if r["lead_s"] is None else float(r["lead_s"]))
            for r in table.to_pylist()]


def load_crossings(directory: str | Path, splits: tuple[str, ...] | list[str] | None = None) -> list[Crossing]:
    """The set's crossings.parquet (every part, or only `splits`): each crossing of a limit by a zone's true air."""
    read_manifest(directory)
    table = _split_filter(pq.read_table(Path(directory) / "crossings.parquet", columns=[
        "scenario_id", "split", "zone", "channel", "crossing_ms", "hazard", "hazard_kind"]), splits)
    return [Crossing(scenario_id=r["scenario_id"], zone=r["zone"], channel=r["channel"],
                     crossing_ms=int(r["crossing_ms"]), hazard=r["hazard"], hazard_kind=r["hazard_kind"])
            for r in table.to_pylist()]


def set_summary(directory: str | Path) -> dict:
    """What a model's meta records of a set it was trained or validated on: path, seed, zone-hours, and the
    manifest's sha256 (it holds every file's sha256, so it pins the data)."""
    import hashlib

    path = Path(directory) / "manifest.json"
    manifest = read_manifest(directory)
    return {"path": str(directory), "seed": manifest.get("seed"), "zone_hours": manifest.get("zone_hours"),
            "manifest_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
