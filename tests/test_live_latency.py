"""bench.live_latency: a short live run at a low rate reports every probe it sent, on both paths, in a well-formed
report.

No timing asserts: speed is measured by the benchmark (python -m bench.live_latency), never asserted in tests.
"""

from __future__ import annotations

import msgspec

from bench.live_latency import (
    ENABLE,
    HARD_STOP,
    CommandView,
    LiveLatencyReport,
    LiveLatencySettings,
    ProbeRecord,
    format_report,
    match_probes,
    measure_live_latency,
)
from simulators.plc_sim import ReceivedWrite


def test_a_short_live_run_at_500_records_per_s_observes_every_probe_on_both_paths(tmp_path):
    settings = LiveLatencySettings(rate=500, seconds=5.0, warmup_s=1.0, permits=6, probe_permits=4, pinning="none",
                                   workdir=str(tmp_path))
    report = measure_live_latency(settings, log=lambda _: None)

    assert msgspec.json.decode(msgspec.json.encode(report), type=LiveLatencyReport) == report
    for path in (report.hard_stop, report.enable):
        assert path.sent >= settings.probe_permits, f"{path.path}: every probed permit is probed at least once"
        assert path.observed == path.sent and path.missing == [], path.missing
        assert len(path.samples) == path.observed
        assert path.p50_ms is not None and path.p50_ms <= path.p99_ms <= path.p999_ms <= path.max_ms
    assert report.probe_faults["GAS_LIMIT_EXCEEDED"] == {"raised": report.hard_stop.sent,
                                                         "cleared": report.hard_stop.sent}
    assert report.other_faults == {} and report.other_stops == [] and report.watchdog_trips == 0
    assert report.commands[HARD_STOP] == report.hard_stop.sent
    assert report.records > 0 and report.consumed_rate > 0
    assert {p.role for p in report.processes} >= {"interlock run", "dev broker", "load producer 0"}
    table = format_report(report)
    assert "HARD_STOP" in table and "ENABLE" in table and "offered 500/s" in table


def _write(ts: int, value: bool) -> ReceivedWrite:
    return ReceivedWrite(ts=ts, plc="PLC-1", protocol="modbus", item="WELD-1", address=0, value=value)


def _command(kind: str, offset: int) -> CommandView:
    return CommandView(id=f"C-{offset}", kind=kind, permit="HW-1", reasons=[],
                       trigger={"topic": "gas.readings" if kind == HARD_STOP else "ptw.actions", "partition": 0,
                                "offset": offset})


def test_a_probe_is_matched_to_its_command_and_the_first_write_of_the_commanded_value_after_it():
    trip = ProbeRecord(path=HARD_STOP, permit="HW-1", plc="PLC-1", equipment="WELD-1", produced_ns=1_000_000_000,
                       topic="gas.readings", partition=0, offset=7)
    reset = ProbeRecord(path=ENABLE, permit="HW-1", plc="PLC-1", equipment="WELD-1", produced_ns=9_000_000_000,
                        topic="ptw.actions", partition=0, offset=3)
    unanswered = ProbeRecord(path=HARD_STOP, permit="HW-1", plc="PLC-1", equipment="WELD-1",
                             produced_ns=20_000_000_000, topic="gas.readings", partition=0, offset=9)
    writes = {("PLC-1", "WELD-1"): [_write(990, True), _write(1_012, False), _write(9_004, True), _write(9_050, True)]}
    commands = [_command(HARD_STOP, 7), _command(ENABLE, 3)]

    outcomes = match_probes([trip, reset, unanswered], commands, writes)

    assert [o.latency_ms for o in outcomes] == [12.0, 4.0, None]
    assert outcomes[2].why_missing == "no HARD_STOP command triggered by it"
