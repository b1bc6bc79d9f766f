"""The "decoding" suite of the release gate: what one strict payload decode costs per schema, and the two references.

    decode_us.<schema>       one `decode_payload` of a real payload of the workload, in microseconds
                             (the median over several timed loops)
    baseline_records_per_s   the reference pipeline of `bench.baseline_pipeline` (json + pydantic, one
                             record at a time) over the workload's recording lines
    limit_records_per_s      the decode-only loop of `bench.machine_limit` over the same lines

The references are measured in the same run as the gate's own throughput and alternately
(limit, baseline, limit, baseline, ...), so a noisy machine slows both alike and the ratios
hold. The full workload has about a million lines and the reference pipeline reads some
30,000-50,000 a second, so on the full size both references are measured on a prefix of its
lines (`FULL_PREFIX_LINES`, said in the notes) to keep the suite within about a minute.

    python -m bench.decoding_suite [--full]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time

import msgspec

from bench import baseline_pipeline, machine_limit
from bench.machine_limit import timed_rate
from bench.results import Metric, SuiteResult
from bench.workloads import FULL, QUICK, recording_lines
from schemas import payloads as wire
from schemas.catalog import PLC_SCHEMA, schema_for_firmware
from schemas.decoding import decode_payload
from dataflows.recording import read_recording
from dataflows.risk_model_file import load_risk_model
from interlock.site import Site
from schemas.envelope import Record, read_envelope

SUITE = "decoding"
SCHEMAS = ("gd4/2", "gd4/3", "sh2/1", "sh2/2", "anchorline/4", "qubit/2", PLC_SCHEMA)
"""Every device payload schema of the protocol catalog (protocols §1-§4)."""

PAYLOADS_PER_SCHEMA = 64
"""Distinct payloads each timed loop cycles through, so no single payload's shape decides the figure."""

DECODE_CALLS_PER_LOOP = 256
DECODE_LOOPS_QUICK = 41
DECODE_LOOPS_FULL = 101

REFERENCE_ROUNDS_QUICK = 5
REFERENCE_ROUNDS_FULL = 3
"""Alternating rounds of the references (best of each): a quick round takes a fraction of a second, a full one ~5 s."""

FULL_PREFIX_LINES = 60_000
"""Lines of the full workload the references run on (every copy of the site, its first two minutes): the
straightforward pipeline tests each fix against all 168 zones of the full site."""

SHEET_EXAMPLES: dict[str, list[str]] = {
    "gd4/2": ['{"dev":"GAS-07","fw":"2.3.1","ts":1795358656120,"seq":4411,"r":[20.9,0.0,0.0,1.0],"alm":0}'],
    "gd4/3": [
        '{"dev":"GAS-07","fw":"3.0.0","ts":1795358656120,"seq":4411,"r":{"o2":20.9,"lel":0.0,"h2s":0.0,"co":1.0},'
        '"st":"ok","bump":1795300000000}',
        '{"dev":"GAS-07","fw":"3.0.0","ts":1795358657120,"seq":4412,"r":{"o2":20.8,"lel":0.1,"h2s":0.0,"co":null},'
        '"st":"ok","bump":1795300000000}',
        '{"dev":"GAS-07","fw":"3.0.0","ts":1795358658120,"seq":4413,"r":{"o2":20.9,"lel":0.0,"h2s":0.2,"co":1.0},'
        '"st":"warmup","bump":1795300000000}',
    ],
    "sh2/1": ['{"dev":"HB-33","fw":"1.4.2","ts":1795358656120,"seq":77,"hook":"clipped","h":12.5,"bat":87}'],
    "sh2/2": [
        '{"dev":"HB-33","fw":"2.0.1","ts":1795358656120,"seq":78,"hooks":[1,0],"h":12.5,"bat":87}',
        '{"dev":"HB-33","fw":"2.0.1","ts":1795358657120,"seq":79,"hooks":[1,1],"h":12.4,"bat":87}',
        '{"dev":"HB-33","fw":"2.0.1","ts":1795358658120,"seq":80,"hooks":[0,1],"h":12.6,"bat":86}',
    ],
    "anchorline/4": ['{"tag":"T-00012","ts":"2026-03-02T08:15:30.120Z","pos":[12.31,4.02,1.10],"q":0.93}'],
    "qubit/2": [
        '[{"tagId":"0x6a3f","timestamp":1795358656.120,"success":true,"data":{"coordinates":{"x":12310,"y":4020,"z":1100}}},'
        '{"tagId":"0x6a40","timestamp":1795358656.121,"success":false}]'
    ],
    PLC_SCHEMA: ['{"plc":"PLC-3","ts":1795358656120,"seq":9001,"tags":{"FAN-2.running":true,"WELD-5.power":false,'
                 '"V-101.isolated":true}}'],
}
"""The examples of the protocol sheet (and a few variations of them), used only for a schema the workload lacks."""

_DEVICE_ROW = msgspec.json.Decoder(wire.DeviceRow)


def schema_of(record: Record, device_schema: dict[str, str | None]) -> str | None:
    """The schema the core decodes a telemetry record with: approved firmware for GD-4/SH-2, shape for UWB."""
    if record.topic in ("gas.readings", "harness.status"):
        return device_schema.get(record.key or "")
    if record.topic == "rtls.position":
        return "qubit/2" if record.payload.lstrip()[:1] in ("[", b"[") else "anchorline/4"
    if record.topic == "plc.state":
        return PLC_SCHEMA
    return None


def workload_payloads(lines: list[bytes], per_schema: int = PAYLOADS_PER_SCHEMA) -> dict[str, list[str]]:
    """Up to `per_schema` distinct payloads of each schema, in recording order, read until every schema has enough."""
    found: dict[str, dict[str, None]] = {schema: {} for schema in SCHEMAS}
    device_schema: dict[str, str | None] = {}
    for number, line in enumerate(lines, start=1):
        record = read_envelope(line, number, 0)
        if not isinstance(record, Record) or record.payload is None:
            continue
        if record.topic == "cmdb.devices":
            row = _DEVICE_ROW.decode(record.payload)
            device_schema[row.device] = schema_for_firmware(row.model, row.firmware)
            continue
        schema = schema_of(record, device_schema)
        if schema is not None and len(found[schema]) < per_schema:
            found[schema][record.payload] = None
            if all(len(payloads) >= per_schema for payloads in found.values()):
                break
    return {schema: list(payloads) for schema, payloads in found.items()}


def sample_payloads(lines: list[bytes]) -> tuple[dict[str, list[str]], list[str]]:
    """The workload's payloads per schema; a schema it lacks gets the protocol sheet's examples, and a note says so."""
    payloads = workload_payloads(lines)
    notes = []
    for schema, found in payloads.items():
        if not found:
            payloads[schema] = list(SHEET_EXAMPLES[schema])
            notes.append(f"decode_us.{schema}: the workload has no {schema} payload; timed on "
                         f"{len(payloads[schema])} examples of the protocol sheet")
    return payloads, notes


def decode_cost_us(schema: str, payloads: list[str], loops: int, calls: int) -> float:
    """Microseconds per `decode_payload(schema, payload)`: the median of `loops` timed loops of `calls` decodes each.

    Every payload must decode cleanly, so the figure is the cost of the path every healthy record takes.
    Loops are short (well under a millisecond), so on a busy machine most of them run undisturbed
    and the median is one of those.
    """
    for payload in payloads:
        _, diagnosis = decode_payload(schema, payload)
        if diagnosis is not None:
            raise ValueError(f"a {schema} payload of the workload does not decode: {diagnosis.summary()}")
    batch = (payloads * (calls // len(payloads) + 1))[:calls]
    gc.collect()
    per_call = []
    for _ in range(loops):
        begin = time.perf_counter_ns()
        for payload in batch:
            decode_payload(schema, payload)
        per_call.append((time.perf_counter_ns() - begin) / calls / 1000)
    return statistics.median(per_call)


def decode_metrics(payloads: dict[str, list[str]], loops: int, calls: int) -> list[Metric]:
    return [Metric(f"decode_us.{schema}", decode_cost_us(schema, payloads[schema], loops, calls), "us", "lower")
            for schema in SCHEMAS]


def decide_lines(lines: list[bytes]) -> list:
    """Our decision path from the same recording lines the references read: envelopes read and ordered, then the Site
    with the shipped risk model, as a site runs it."""
    return Site(risk_model=load_risk_model()).process_batch(read_recording(lines))


def run_grid_baseline(lines: list[bytes]) -> list[dict]:
    return baseline_pipeline.run_baseline(lines, zone_lookup="grid")


REFERENCES = (
    ("limit_records_per_s", machine_limit.decode_lines),
    ("baseline_records_per_s", baseline_pipeline.run_baseline),
    ("baseline_grid_records_per_s", run_grid_baseline),
    ("decision_from_lines_records_per_s", decide_lines),
)
"""What runs side by side on the same lines, round after round: the machine's limit, the straightforward pipeline,
the same with a zone grid (for information), and ours from the same lines."""


def measure_references(lines: list[bytes], rounds: int = 3, budget_s: float = 40.0) -> list[Metric]:
    """Records/s of every entry of REFERENCES over `lines`, best of up to `rounds` each.

    They run alternately, round after round, until `rounds` or `budget_s` is spent (at least one round), so a noisy
    machine slows them alike. The reference pipeline reads some 10,000-50,000 lines a second here: for a recording as
    large as the full workload pass a prefix (`FULL_PREFIX_LINES`).
    """
    rates, _, _ = _reference_rates(lines, rounds, budget_s)
    return [Metric(name, rate, "records/s", "higher") for name, rate in rates.items()]


def _reference_rates(lines: list[bytes], rounds: int, budget_s: float) -> tuple[dict[str, float], list[dict], int]:
    """(best records/s per reference, the baseline's commands of its last run, rounds run)."""
    started = time.perf_counter()
    best = {name: 0.0 for name, _ in REFERENCES}
    commands: list[dict] = []
    done = 0
    for done in range(1, max(1, rounds) + 1):
        for name, run in REFERENCES:
            rate, result = timed_rate(run, lines)
            best[name] = max(best[name], rate)
            if run is baseline_pipeline.run_baseline:
                commands = result
        if time.perf_counter() - started >= budget_s:
            break
    return best, commands, done


def measure(quick: bool) -> SuiteResult:
    """Decode cost per schema and the two references, on the quick or the full workload."""
    copies, minutes = QUICK if quick else FULL
    lines = recording_lines(copies, minutes)
    payloads, notes = sample_payloads(lines)
    loops = DECODE_LOOPS_QUICK if quick else DECODE_LOOPS_FULL
    metrics = decode_metrics(payloads, loops, DECODE_CALLS_PER_LOOP)
    measured = lines if quick else lines[:FULL_PREFIX_LINES]
    rates, commands, rounds = _reference_rates(
        measured, REFERENCE_ROUNDS_QUICK if quick else REFERENCE_ROUNDS_FULL, budget_s=15.0 if quick else 40.0)
    metrics += [Metric(name, rate, "records/s", "higher") for name, rate in rates.items()]
    workload = f"{copies} copies x {minutes:g} min"
    if len(measured) < len(lines):
        notes.append(f"the references and decision_from_lines are measured on the first {len(measured):,} of "
                     f"the {len(lines):,} lines of the full workload ({workload}), to keep the suite near a minute")
    else:
        notes.append(f"the references and decision_from_lines are measured on all {len(lines):,} lines of "
                     f"the workload ({workload})")
    kinds = [c["kind"] for c in commands]
    notes.append(f"references: best of {rounds} alternating round(s); the baseline sent {kinds.count('ENABLE')} "
                 f"ENABLE, {kinds.count('HARD_STOP')} HARD_STOP, {kinds.count('ALERT')} ALERT on those lines")
    notes.append(f"decode_us: median of {loops} loops of {DECODE_CALLS_PER_LOOP} decodes, cycling through up to "
                 f"{PAYLOADS_PER_SCHEMA} distinct payloads of the schema")
    return SuiteResult(SUITE, metrics, notes=notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decoding_suite", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--full", action="store_true", help="the full workload (default: quick)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = measure(quick=not args.full)
    for metric in result.metrics:
        print(f"{metric.name:<28} {metric.value:>14,.3f} {metric.unit}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"suite took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
