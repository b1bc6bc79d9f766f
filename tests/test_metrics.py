"""The live run's Prometheus metrics: what each call counts, the naming conventions, and the exporter."""

from __future__ import annotations

import urllib.request

import msgspec
import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from dataflows.metrics import InterlockMetrics, live_registry, start_exporter
from interlock.site import COMMANDS_TOPIC, EVIDENCE_TOPIC, FAULTS_TOPIC, Output
from schemas.envelope import Record, UnreadableRecord

NOW_S = 1_795_358_700.0


def command(kind: str, ts_ms: int) -> Output:
    value = {"id": "c1", "ts": ts_ms, "kind": kind, "permit": "HW-113", "targets": ["WELD-5"], "reasons": [],
             "trigger": None, "zone": "Z1"}
    return Output(COMMANDS_TOPIC, "HW-113", msgspec.json.encode(value))


def fault(grade: str, code: str, state: str) -> Output:
    value = {"id": "f1", "ts": 1, "grade": grade, "code": code, "state": state, "count": 1, "device": "GAS-07",
             "detail": "", "permits": [], "source": None, "subject": "GAS-07", "action": ""}
    return Output(FAULTS_TOPIC, "f1", msgspec.json.encode(value))


@pytest.fixture
def metrics() -> InterlockMetrics:
    return InterlockMetrics(CollectorRegistry(), clock=lambda: NOW_S)


def value(metrics: InterlockMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_command_output_counts_by_kind_and_times_the_decision_on_both_clocks(metrics):
    metrics.observe_outputs([command("HARD_STOP", int((NOW_S - 0.120) * 1000))], consumed_at_s=NOW_S - 0.004)

    assert value(metrics, "interlock_commands_total", kind="HARD_STOP") == 1
    assert value(metrics, "interlock_commands_total", kind="ENABLE") == 0
    assert value(metrics, "interlock_decision_latency_seconds_count", clock="record_ts") == 1
    assert value(metrics, "interlock_decision_latency_seconds_sum", clock="record_ts") == pytest.approx(0.120, abs=1e-3)
    assert value(metrics, "interlock_decision_latency_seconds_bucket", clock="record_ts", le="0.1") == 0
    assert value(metrics, "interlock_decision_latency_seconds_bucket", clock="record_ts", le="0.25") == 1
    assert value(metrics, "interlock_decision_latency_seconds_sum", clock="consumed") == pytest.approx(0.004, abs=1e-6)


def test_a_timer_driven_command_has_no_consumption_latency(metrics):
    metrics.observe_outputs([command("HARD_STOP", int(NOW_S * 1000) - 2)], consumed_at_s=None)

    assert value(metrics, "interlock_decision_latency_seconds_count", clock="record_ts") == 1
    assert value(metrics, "interlock_decision_latency_seconds_count", clock="consumed") == 0


def test_a_record_timestamp_ahead_of_this_host_counts_as_zero_latency(metrics):
    metrics.observe_outputs([command("ENABLE", int((NOW_S + 5) * 1000))], consumed_at_s=NOW_S)

    assert value(metrics, "interlock_decision_latency_seconds_sum", clock="record_ts") == 0
    assert value(metrics, "interlock_decision_latency_seconds_bucket", clock="record_ts", le="0.0005") == 1


def test_fault_outputs_count_by_grade_code_and_state(metrics):
    metrics.observe_outputs(
        [fault("CRITICAL", "GAS_DATA_STALE", "raised"), fault("CRITICAL", "GAS_DATA_STALE", "cleared"),
         fault("MINOR", "SEQ_GAP", "raised"), fault("MINOR", "SEQ_GAP", "raised")],
        consumed_at_s=NOW_S,
    )

    assert value(metrics, "interlock_faults_total", grade="CRITICAL", code="GAS_DATA_STALE", state="raised") == 1
    assert value(metrics, "interlock_faults_total", grade="CRITICAL", code="GAS_DATA_STALE", state="cleared") == 1
    assert value(metrics, "interlock_faults_total", grade="MINOR", code="SEQ_GAP", state="raised") == 2
    assert value(metrics, "interlock_commands_total", kind="HARD_STOP") == 0


def test_critical_raised_series_exist_at_zero_before_any_fault(metrics):
    assert value(metrics, "interlock_faults_total", grade="CRITICAL", code="GAS_DATA_STALE", state="raised") == 0


def test_an_unreadable_output_is_counted_and_skipped_without_raising(metrics):
    metrics.observe_outputs(
        [Output(COMMANDS_TOPIC, "x", b"not json"), Output(FAULTS_TOPIC, "y", b'{"grade": 1}'),
         Output(EVIDENCE_TOPIC, None, b"{}"), command("ALERT", int(NOW_S * 1000))],
        consumed_at_s=NOW_S,
    )

    assert value(metrics, "interlock_output_decode_errors_total", topic=COMMANDS_TOPIC) == 1
    assert value(metrics, "interlock_output_decode_errors_total", topic=FAULTS_TOPIC) == 1
    assert value(metrics, "interlock_commands_total", kind="ALERT") == 1


def test_consumed_records_are_counted_by_topic(metrics):
    chunk = [Record("gas.readings", 0, n, 1, "GAS-07", b"{}") for n in range(3)]
    chunk += [Record("plc.state", 1, 0, 1, "PLC-1", b"{}"), UnreadableRecord(4, 1, "bad line")]

    metrics.observe_consumed(chunk)

    assert value(metrics, "interlock_records_consumed_total", topic="gas.readings") == 3
    assert value(metrics, "interlock_records_consumed_total", topic="plc.state") == 1
    assert value(metrics, "interlock_records_consumed_total", topic="rtls.position") == 0


def test_plc_writes_are_timed_and_failures_counted_per_plc(metrics):
    metrics.add_plc("PLC-3")
    metrics.observe_plc_write("PLC-3", 0.003)
    metrics.observe_plc_write("PLC-3", 0.300, ok=False)
    metrics.set_plc_link("PLC-3", True)

    assert value(metrics, "interlock_plc_write_duration_seconds_count", plc="PLC-3") == 2
    assert value(metrics, "interlock_plc_write_duration_seconds_bucket", plc="PLC-3", le="0.005") == 1
    assert value(metrics, "interlock_plc_write_failures_total", plc="PLC-3") == 1
    assert value(metrics, "interlock_plc_link_up", plc="PLC-3") == 1


def test_a_configured_plc_starts_with_its_link_down():
    metrics = InterlockMetrics(CollectorRegistry(), clock=lambda: NOW_S)
    metrics.add_plc("PLC-9")

    assert value(metrics, "interlock_plc_link_up", plc="PLC-9") == 0
    assert value(metrics, "interlock_plc_write_failures_total", plc="PLC-9") == 0


def test_watchdog_age_is_computed_when_scraped_so_a_stuck_writer_shows():
    now = [NOW_S]
    metrics = InterlockMetrics(CollectorRegistry(), clock=lambda: now[0])
    metrics.watchdog_written("PLC-3")
    now[0] += 0.2
    assert value(metrics, "interlock_plc_watchdog_age_seconds", plc="PLC-3") == pytest.approx(0.2)

    now[0] += 3.0
    assert value(metrics, "interlock_plc_watchdog_age_seconds", plc="PLC-3") == pytest.approx(3.2)


def test_consumer_lag_is_taken_from_librdkafka_statistics(metrics):
    stats = {"name": "rdkafka#consumer-1", "type": "consumer", "topics": {"gas.readings": {"topic": "gas.readings",
             "partitions": {"0": {"partition": 0, "consumer_lag": 42, "fetchq_cnt": 0},
                            "-1": {"partition": -1, "consumer_lag": -1}}}}}

    metrics.observe_librdkafka_stats(msgspec.json.encode(stats))
    metrics.set_consumer_lag("plc.state", 3, 7)

    assert value(metrics, "interlock_consumer_lag_records", topic="gas.readings", partition="0") == 42
    assert value(metrics, "interlock_consumer_lag_records", topic="gas.readings", partition="-1") is None
    assert value(metrics, "interlock_consumer_lag_records", topic="plc.state", partition="3") == 7


def test_metric_names_follow_prometheus_conventions(metrics):
    metrics.add_plc("PLC-1")
    metrics.set_consumer_lag("gas.readings", 0, 1)
    families = [family for family in metrics.registry.collect()]

    assert families and all(family.name.startswith("interlock_") for family in families)
    for family in families:
        names = {sample.name for sample in family.samples}
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        if family.type == "counter":
            assert {name for name in names if not name.endswith("_created")} == {family.name + "_total"}
        if family.type == "gauge":
            assert not family.name.endswith("_total"), family.name


def test_metrics_stay_in_their_own_registry():
    first = InterlockMetrics()
    second = InterlockMetrics()

    assert first.registry is not second.registry
    assert REGISTRY.get_sample_value("interlock_commands_total", {"kind": "ENABLE"}) is None


def test_the_exporter_serves_the_text_format_on_an_ephemeral_port():
    metrics = InterlockMetrics(live_registry())
    metrics.observe_outputs([command("ENABLE", 1)], consumed_at_s=None)
    server, thread = start_exporter(0, metrics.registry, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as response:
            content_type = response.headers["Content-Type"]
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    assert content_type.startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("interlock_commands_total", (("kind", "ENABLE"),))] == 1
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)
