"""Choose a model file's grade thresholds again on validation data, under a site's own alarm budget: the same
weights, new thresholds, no training and no PyTorch.

```sh
interlock risk-thresholds --model shipped --data runs/training_data --data runs/risk_val_2041 \
    --max-false-warnings 20 --out runs/risk_lstm_fw20.npz
python -m training.risk_thresholds ...   # the same
```

How many false warnings a guardian acknowledges per zone-hour, against how many hazards are warned 10 minutes
ahead, is the site's alarm policy (docs/risk_model.md). `interlock risk-train` picks the thresholds under the default
caps; this command picks them again under others, in the time it takes to score the validation data.

1. **Data**: each `--data` set's `validation` part, and the `validation` recordings of `--recordings DIR --labels
   FILE`, as `interlock risk-train` reads them.
2. **Scores**: the model's, stepped by the served numba path (`interlock.risk_model.sequence_probabilities`).
3. **Thresholds**: `training.risk_metrics.threshold_search` with the caps given (the others at their defaults), the
   air rule given (else the model file's) and the model file's confirmation and release rules.
4. **The file**: the same arrays and meta, `thresholds` replaced; `trained.thresholds_rechosen` lists, oldest first,
   each time the thresholds were chosen again: the thresholds before, the caps and data, and what the new ones gave
   on validation. Exit status 0 when written, 2 on a usage or input error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from training.risk_eval import load_model, model_scores, model_thresholds
from training.risk_metrics import ThresholdSearch, threshold_search
from training.risk_train import (
    add_threshold_arguments, data_arguments_problem, load_recordings, recordings_record, recordings_split,
    threshold_options, validation_figures,
)
from training.zone_sequence import Crossing, Hazard, ZoneSequence

PROG = "interlock risk-thresholds"


def rechosen_record(before: dict[str, Any], options: dict[str, float], data: list[dict[str, Any]],
                    search: ThresholdSearch, zone_hours: float, hazards: int) -> dict[str, Any]:
    """What the model file keeps of one choice of its thresholds again."""
    return {
        "thresholds_before": before, "threshold_options": dict(options), "data": data,
        "validation_zone_hours": round(zone_hours, 3), "hazards": hazards,
        "thresholds_on_validation": {
            **validation_figures(search),
            "blue_notices_benign_per_100h": round(search.blue_notices_benign_per_100h, 4)}}


def rechoose(model: Any, sequences: list[ZoneSequence], hazards: list[Hazard], crossings: list[Crossing],
             options: dict[str, float], data: list[dict[str, Any]]) -> tuple[bytes, ThresholdSearch, dict[str, Any]]:
    """The model file's bytes with thresholds chosen again on these validation sequences, the search, and the
    record the file keeps of it."""
    from interlock.risk_model import write_model_bytes

    if not sequences:
        raise ValueError("no validation sequences: give --data sets with a validation part or --recordings whose "
                         "labels file puts some in the validation split")
    search = threshold_search(model_scores(model, sequences), sequences, hazards, crossings, **options)
    meta = msgspec.json.decode(model.meta_json)
    before = msgspec.structs.asdict(model_thresholds(model))
    meta["thresholds"] = msgspec.structs.asdict(search.thresholds)
    record = rechosen_record(before, options, data, search, sum(s.hours for s in sequences), len(hazards))
    trained = meta.setdefault("trained", {})
    trained["thresholds_rechosen"] = [*trained.get("thresholds_rechosen", []), record]
    return write_model_bytes(model.arrays(), meta), search, record


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Choose a risk model file's grade thresholds again on validation data under the caps given "
                    "(a site's alarm budget), and write the model file with them (docs/risk_model.md).")
    p.add_argument("--model", default="shipped", metavar="MODEL.npz",
                   help="a file made by interlock risk-train, or shipped (default: the packaged model)")
    p.add_argument("--data", action="append", default=[], metavar="DIR",
                   help="a training set from `interlock training-data`: its validation part (repeatable)")
    p.add_argument("--recordings", metavar="DIR", help="recordings (*.jsonl) of a site, with --labels")
    p.add_argument("--labels", metavar="FILE", help="the site's labels file (TOML, training.risk_labels)")
    p.add_argument("--out", required=True, metavar="MODEL.npz", help="the model file to write")
    add_threshold_arguments(p, "the model file's", "the model file's")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (problem := data_arguments_problem(args)) is not None:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 2
    from training.risk_dataset import load_crossings, load_hazards, load_set, set_summary

    started = time.monotonic()
    try:
        model, info = load_model(args.model)
        current = model_thresholds(model)
        args.air_yellow = current.air_yellow if args.air_yellow is None else args.air_yellow
        args.air_yellow_steps = current.air_yellow_steps if args.air_yellow_steps is None else args.air_yellow_steps
        sequences: list[ZoneSequence] = []
        hazards: list[Hazard] = []
        crossings: list[Crossing] = []
        data: list[dict[str, Any]] = []
        for directory in args.data:
            sequences += load_set(directory, ("validation",))
            hazards += load_hazards(directory, ("validation",))
            crossings += load_crossings(directory, ("validation",))
            data.append(set_summary(directory))
        if args.recordings:
            seqs, rec_hazards, rec_crossings, _ = load_recordings(args.recordings, args.labels)
            chosen, rec_hazards, rec_crossings = recordings_split(seqs, rec_hazards, rec_crossings, "validation")
            sequences += chosen
            hazards += rec_hazards
            crossings += rec_crossings
            data.append({"recordings": recordings_record(args.recordings, args.labels, seqs)})
        options = {**threshold_options(args), "red_confirm_steps": current.red_confirm_steps,
                   "release_ratio": current.release_ratio, "release_steps": current.release_steps}
        written, search, record = rechoose(model, sequences, hazards, crossings, options, data)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(written)
    except (OSError, ValueError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    t = search.thresholds
    print(f"wrote {out} (weights of {info.path}): thresholds blue {t.blue:g}, yellow {t.yellow:g}, red {t.red:g} "
          f"(were {current.blue:g}, {current.yellow:g}, {current.red:g}); on validation "
          f"({record['validation_zone_hours']:.1f} zone-hours, {record['hazards']} hazards): recall >= 10 min "
          f"{search.recall_10min:.3f}, false warnings {search.false_warnings_per_100h:.2f} and false RED "
          f"{search.false_red_per_100h:.2f} per 100 zone-hours, {100 * search.benign_warning_share:.2f} % of benign "
          f"steps YELLOW or higher; {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
