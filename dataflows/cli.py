"""The `interlock` command: replay recordings, certify firmware, verify evidence chains, run live, and the live stand-ins."""

from __future__ import annotations

import argparse
import os
import sys
import time

from interlock.config import DEFAULT_CONFIG, SiteConfig, load_config


def _config(path: str | None) -> SiteConfig:
    if path is None:
        return DEFAULT_CONFIG
    with open(path, "rb") as handle:
        return load_config(handle.read())


def replay(args: argparse.Namespace) -> int:
    """Replay a recording through the real dataflow; write commands, faults and evidence; print the timeline."""
    from bytewax.testing import run_main
    from tqdm import tqdm

    from dataflows.interlock_flow import build_flow
    from dataflows.recording import RecordingSource, open_recording, read_recording
    from dataflows.risk_model_file import load_risk_model
    from dataflows.replay_files import ReplayFilesSink
    from dataflows.timeline import HEADER, input_events, merged_timeline

    try:
        config = _config(args.config)
    except (OSError, ValueError) as error:
        print(f"interlock replay: cannot use config {args.config}: {error}", file=sys.stderr)
        return 2
    try:
        risk_model = load_risk_model(args.risk_model)
    except ValueError as error:
        print(f"interlock replay: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        stream = open_recording(args.recording)
        with stream:
            records = read_recording(stream)
    except OSError as error:
        print(f"interlock replay: cannot read recording {args.recording}: {error}", file=sys.stderr)
        return 2
    read_seconds = time.perf_counter() - started
    with tqdm(total=len(records), unit="rec", unit_scale=True, desc="replay", file=sys.stderr,
              disable=not sys.stderr.isatty() or args.quiet, leave=False) as bar:
        flow = build_flow(RecordingSource(records, bar.update), ReplayFilesSink(args.out), config, risk_model=risk_model)
        run_main(flow)
    elapsed = time.perf_counter() - started
    with open(os.path.join(args.out, "evidence.jsonl"), "rb") as handle:
        lines = merged_timeline(input_events(records, config.utc_offset_minutes), handle, config.utc_offset_minutes)
    if not args.quiet:
        print(HEADER)
        for line in lines:
            print(line)
    if args.report:
        from dataflows.replay_report import read_outputs, write_report

        title = "standard input" if args.recording == "-" else os.path.basename(args.recording)
        write_report(records, read_outputs(args.out), args.report, title=title, config=config)
        print(f"report written to {args.report}", file=sys.stderr)
    rate = len(records) / elapsed if elapsed > 0 else float("inf")
    print(
        f"replayed {len(records)} records in {elapsed:.2f} s ({rate:,.0f} records/s; reading {read_seconds:.2f} s); "
        f"outputs written to {args.out}/",
        file=sys.stderr,
    )
    return 0


def verify_evidence(args: argparse.Namespace) -> int:
    """Exit 0 when the chain verifies from its genesis, 1 naming the first broken record."""
    from interlock.evidence import BrokenLink, check_chain

    try:
        with open(args.file, "rb") as handle:
            lines = handle.readlines()
    except OSError as error:
        print(f"interlock verify-evidence: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    checked = check_chain(lines)
    if not isinstance(checked, BrokenLink):
        after = f" ({checked.repeats} repeated after restarts, {checked.restarts} restart branches)" if checked.repeats or checked.restarts else ""
        print(f"evidence chain intact: {checked.entries} records{after}")
        return 0
    broken = checked
    seq = f" (seq {broken.seq})" if broken.seq is not None else ""
    print(f"evidence chain broken at line {broken.line}{seq}: {broken.problem}")
    return 1


def certify(args: argparse.Namespace) -> int:
    """Run every parsing rule over sample payloads of a firmware; non-zero exit on any failure."""
    from schemas.certification import certify as run_rules
    from schemas.certification import format_table

    try:
        with open(args.samples, "rb") as handle:
            lines = [line.rstrip(b"\r\n") for line in handle]
    except OSError as error:
        print(f"interlock certify: cannot read {args.samples}: {error}", file=sys.stderr)
        return 2
    schema, results = run_rules(lines, args.model, args.firmware)
    print(format_table(schema, args.model, args.firmware, results))
    return 0 if results and all(result.passed for result in results) else 1


def bench_gate(arguments: list[str]) -> int:
    """The release gate (bench/gate.py) with the arguments given after `bench-gate`."""
    from bench.gate import main as gate

    return gate(arguments)


def risk_train(arguments: list[str]) -> int:
    """The risk model's trainer (training/risk_train.py; needs the `train` extra)."""
    from training.risk_train import main as train

    return train(arguments)


def risk_eval(arguments: list[str]) -> int:
    """The risk model's evaluation against the baselines (training/risk_eval.py)."""
    from training.risk_eval import main as evaluate

    return evaluate(arguments)


def risk_thresholds(arguments: list[str]) -> int:
    """A risk model's grade thresholds chosen again under a site's alarm budget (training/risk_thresholds.py)."""
    from training.risk_thresholds import main as rechoose

    return rechoose(arguments)


PASS_THROUGH = {"bench-gate": bench_gate, "risk-train": risk_train, "risk-eval": risk_eval,
                "risk-thresholds": risk_thresholds}
"""Commands whose own parser takes every argument after the command's name."""


def parser() -> argparse.ArgumentParser:
    from dataflows.risk_model_file import add_risk_model_argument

    main = argparse.ArgumentParser(prog="interlock", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)

    p = commands.add_parser("replay", help="replay a kcat -J recording through the interlock dataflow")
    p.add_argument("recording", help="recording file, or - for standard input")
    p.add_argument("--out", required=True, help="folder for commands.jsonl, faults.jsonl and evidence.jsonl")
    p.add_argument("--config", help="site settings (TOML); see docs/config.md")
    p.add_argument("--quiet", action="store_true", help="no timeline, no progress bar")
    p.add_argument("--report", metavar="FILE.html", help="also write a self-contained HTML report (docs/reports.md)")
    add_risk_model_argument(p)
    p.set_defaults(run=replay)

    p = commands.add_parser("certify", help="check sample payloads of a new firmware before approving it")
    p.add_argument("samples", help="JSONL of payloads (or kcat -J envelopes)")
    p.add_argument("--model", required=True, help="device model, e.g. GD-4")
    p.add_argument("--firmware", required=True, help="firmware version, e.g. 3.0.0")
    p.set_defaults(run=certify)

    commands.add_parser("bench-gate", help="run the benchmark suites against bench/budgets.toml (bench-gate --help)")
    commands.add_parser("risk-train", help="train the zone risk model on training sets or site recordings (risk-train --help)")
    commands.add_parser("risk-eval", help="evaluate a risk model against the baselines on held-out data (risk-eval --help)")
    commands.add_parser("risk-thresholds", help="choose a risk model's grade thresholds again under a site's alarm "
                                                "budget (risk-thresholds --help)")

    p = commands.add_parser("verify-evidence", help="verify an evidence chain (evidence.jsonl)")
    p.add_argument("file")
    p.set_defaults(run=verify_evidence)

    from dataflows.kafka_io import add_dev_broker_command
    from dataflows.live import add_run_command
    from simulators.live_replay import add_simulate_command
    from simulators.plc_sim import add_plc_sim_command
    from simulators.scenario_command import add_simulate_scenario_command
    from simulators.training_data import add_training_data_command

    add_run_command(commands)
    add_dev_broker_command(commands)
    add_plc_sim_command(commands)
    add_simulate_command(commands)
    add_simulate_scenario_command(commands)
    add_training_data_command(commands)
    return main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in PASS_THROUGH:
        return PASS_THROUGH[argv[0]](argv[1:])
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
