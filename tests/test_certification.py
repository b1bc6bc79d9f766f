"""`interlock certify`: the firmware compatibility rules over sample payloads, one behaviour per test."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.certification import RULES, CertificationRun, Rule, RuleResult, certify, format_table, read_samples, run_rule
from schemas.decoding import MAX_PAYLOAD_BYTES

START_MS = 1795358656120
RECORD_DELAY_MS = 3


# Sample payloads as the protocol sheets give them --------------------------------------------------------------


def gd4v2(seq: int = 4411, ts: int = START_MS, **changes: Any) -> dict[str, Any]:
    return {"dev": "GAS-07", "fw": "2.3.1", "ts": ts, "seq": seq, "r": [20.9, 0.0, 0.0, 1.0], "alm": 0} | changes


def gd4v3(seq: int = 4411, ts: int = START_MS, **changes: Any) -> dict[str, Any]:
    channels = {"o2": 20.9, "lel": 0.0, "h2s": 0.0, "co": 1.0}
    return {"dev": "GAS-07", "fw": "3.0.0", "ts": ts, "seq": seq, "r": channels, "st": "ok", "bump": ts - 3_600_000} | changes


def sh2v1(seq: int = 77, ts: int = START_MS, **changes: Any) -> dict[str, Any]:
    return {"dev": "HB-33", "fw": "1.4.2", "ts": ts, "seq": seq, "hook": "clipped", "h": 12.5, "bat": 87} | changes


def sh2v2(seq: int = 78, ts: int = START_MS, **changes: Any) -> dict[str, Any]:
    return {"dev": "HB-33", "fw": "2.0.1", "ts": ts, "seq": seq, "hooks": [1, 0], "h": 12.5, "bat": 87} | changes


def rfc3339(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def anchorline(seq: int = 0, ts: int = START_MS, **changes: Any) -> dict[str, Any]:
    return {"tag": "T-00012", "ts": rfc3339(ts), "pos": [12.31, 4.02, 1.10], "q": 0.93} | changes


def qubit(seq: int = 0, ts: int = START_MS) -> list[dict[str, Any]]:
    return [
        {"tagId": "0x6a3f", "timestamp": ts / 1000, "success": True, "data": {"coordinates": {"x": 12310, "y": 4020, "z": 1100}}},
        {"tagId": "0x6a40", "timestamp": (ts + 1) / 1000, "success": False},
    ]


def raw(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def envelope(payload: Any, record_ts: int, topic: str = "gas.readings", key: str | None = "GAS-07") -> bytes:
    record = {"topic": topic, "partition": 0, "offset": 812, "tstype": "create", "ts": record_ts, "broker": -1, "key": key,
              "payload": json.dumps(payload)}
    return json.dumps(record).encode()


def stream(make: Callable[..., Any], count: int = 5, first_seq: int = 4411) -> list[Any]:
    """Payloads a second apart with consecutive seq."""
    return [make(seq=(first_seq + i) % 65536, ts=START_MS + i * 1000) for i in range(count)]


def enveloped(
    payloads: list[Any], topic: str = "gas.readings", key: str | None = "GAS-07", delay_ms: int = RECORD_DELAY_MS
) -> list[bytes]:
    """Each payload in a kcat envelope whose record ts is the device ts plus `delay_ms`."""
    return [envelope(p, START_MS + i * 1000 + delay_ms, topic, key) for i, p in enumerate(payloads)]


def results(lines: list[bytes], model: str = "GD-4", firmware: str = "2.3.1") -> dict[str, RuleResult]:
    _, outcome = certify(lines, model, firmware)
    return {result.rule: result for result in outcome}


def failed(outcome: dict[str, RuleResult]) -> list[str]:
    return [name for name, result in outcome.items() if not result.passed]


CLEAN_SETS = {
    "gd4/2": ("GD-4", "2.3.1", lambda: enveloped(stream(gd4v2))),
    "gd4/3": ("GD-4", "3.0.0", lambda: enveloped(stream(gd4v3))),
    "sh2/1": ("SH-2", "1.4.2", lambda: enveloped(stream(sh2v1), "harness.status", "HB-33")),
    "sh2/2": ("SH-2", "2.0.1", lambda: enveloped(stream(sh2v2), "harness.status", "HB-33")),
    "anchorline/4": ("anchorline", "4.2.0", lambda: enveloped(stream(anchorline), "rtls.position", "GW-1")),
    "qubit/2": ("qubit", "2.1.0", lambda: enveloped(stream(qubit), "rtls.position", "GW-2")),
}


# Clean samples --------------------------------------------------------------------------------------------------


def test_clean_gd4v2_sample_set_passes_every_rule() -> None:
    schema, outcome = certify(enveloped(stream(gd4v2)), "GD-4", "2.3.1")
    assert schema == "gd4/2"
    assert [r.rule for r in outcome if not r.passed] == []
    assert [r.rule for r in outcome if r.checked and r.example] == []


@pytest.mark.parametrize("schema", sorted(CLEAN_SETS))
def test_clean_sample_set_of_every_schema_passes_every_rule(schema: str) -> None:
    model, firmware, lines = CLEAN_SETS[schema]
    got_schema, outcome = certify(lines(), model, firmware)
    assert got_schema == schema
    assert [r.rule for r in outcome if not r.passed] == []


def test_raw_payload_lines_without_envelopes_pass_every_rule() -> None:
    assert failed(results([raw(p) for p in stream(gd4v2)])) == []


def test_gd4v2_sensor_fault_as_minus_one_passes_every_rule() -> None:
    payloads = [gd4v2(seq=i, ts=START_MS + i * 1000, r=[20.9, -1, 0.0, 1.0], alm=0b1000_0000) for i in range(3)]
    assert failed(results(enveloped(payloads))) == []


def test_blank_lines_are_not_samples() -> None:
    lines = [raw(gd4v2(seq=1)), b"", b"   \r\n", raw(gd4v2(seq=2, ts=START_MS + 1000))]
    outcome = results(lines)
    assert failed(outcome) == []
    assert outcome["json_wellformed"].checked == 2


# The sample file -------------------------------------------------------------------------------------------------


def test_empty_sample_set_fails_samples_present() -> None:
    outcome = results([])
    assert not outcome["samples_present"].passed


def test_unknown_model_firmware_fails_catalog_known() -> None:
    schema, outcome = certify([raw(gd4v2())], "GD-4", "9.0.0")
    catalog = next(r for r in outcome if r.rule == "catalog_known")
    assert schema is None
    assert not catalog.passed
    assert "9.x" in catalog.example


def test_unknown_model_fails_catalog_known() -> None:
    assert not results([raw(gd4v2())], "GD-5", "2.3.1")["catalog_known"].passed


def test_rules_needing_a_schema_are_not_checked_without_one() -> None:
    outcome = results([raw(gd4v2())], "GD-4", "9.0.0")
    assert outcome["strict_decode"].checked == 0
    assert outcome["strict_decode"].example.startswith("not checked")


def test_non_utf8_line_fails_utf8_without_raising() -> None:
    outcome = results([raw(gd4v2()), b'{"dev":"GAS-\xff07"}'])
    assert not outcome["utf8"].passed
    assert outcome["utf8"].failures == 1
    assert outcome["utf8"].example.startswith("line 2: $:")


def test_lone_surrogate_in_envelope_payload_fails_utf8() -> None:
    line = json.dumps({"topic": "gas.readings", "ts": START_MS, "payload": '{"dev":"\ud800"}'}).encode()
    assert not results([line])["utf8"].passed


def test_malformed_json_fails_json_wellformed() -> None:
    outcome = results([raw(gd4v2()), b'{"dev":"GAS-07",'])
    assert not outcome["json_wellformed"].passed
    assert outcome["json_wellformed"].example.startswith("line 2:")


def test_nan_fails_json_wellformed() -> None:
    assert not results([b'{"dev":"GAS-07","fw":"2.3.1","ts":1795358656120,"seq":1,"r":[NaN,0,0,1],"alm":0}'])["json_wellformed"].passed


def test_oversized_payload_fails_payload_size() -> None:
    big = raw(gd4v2(dev="G" * (MAX_PAYLOAD_BYTES + 1)))
    assert not results([big])["payload_size"].passed


def test_duplicate_key_fails_duplicate_keys() -> None:
    line = b'{"dev":"GAS-07","fw":"2.3.1","ts":1795358656120,"seq":4411,"r":[20.9,0.0,0.0,1.0],"alm":0,"alm":8}'
    outcome = results([line])
    assert not outcome["duplicate_keys"].passed
    assert outcome["duplicate_keys"].example.startswith("line 1: $.alm:")


def test_duplicate_key_in_a_nested_object_is_reported_with_its_path() -> None:
    line = (b'{"dev":"GAS-07","fw":"3.0.0","ts":1795358656120,"seq":1,"r":{"o2":20.9,"lel":0,"h2s":0,"co":1,"o2":0.5},'
            b'"st":"ok","bump":1795358000000}')
    outcome = results([line], "GD-4", "3.0.0")
    assert outcome["duplicate_keys"].example.startswith("line 1: $.r.o2:")


def test_envelope_from_another_topic_fails_record_topic() -> None:
    outcome = results(enveloped(stream(gd4v2), topic="harness.status"))
    assert not outcome["record_topic"].passed


# Shape -----------------------------------------------------------------------------------------------------------


def test_gd4v3_payloads_certified_as_gd4_2_3_1_fail_strict_decode_at_r() -> None:
    outcome = results(enveloped(stream(gd4v3)), "GD-4", "2.3.1")
    decode = outcome["strict_decode"]
    assert not decode.passed
    assert decode.failures == decode.checked == 5
    assert decode.example.startswith("line 1: $.r: expected array")
    assert "matches gd4/3" in decode.example


def test_gd4v3_payloads_certified_as_gd4_2_3_1_fail_firmware_self_report() -> None:
    outcome = results(enveloped(stream(gd4v3)), "GD-4", "2.3.1")
    assert not outcome["firmware_self_report"].passed
    assert '"3.0.0"' in outcome["firmware_self_report"].example


def test_unknown_field_fails_unknown_fields() -> None:
    outcome = results([raw(gd4v2(temp=21.5))])
    assert not outcome["unknown_fields"].passed
    assert outcome["unknown_fields"].example.startswith("line 1: $.temp:")


def test_missing_field_fails_required_fields() -> None:
    payload = gd4v2()
    del payload["alm"]
    outcome = results([raw(payload)])
    assert not outcome["required_fields"].passed
    assert outcome["required_fields"].example.startswith("line 1: $.alm:")


def test_missing_nested_field_fails_required_fields() -> None:
    batch = qubit()
    del batch[0]["data"]["coordinates"]["z"]
    outcome = results([raw(batch)], "qubit", "2.1.0")
    assert outcome["required_fields"].example.startswith("line 1: $[0].data.coordinates.z:")


def test_string_where_integer_required_fails_field_types() -> None:
    outcome = results([raw(gd4v2(seq="4411"))])
    assert not outcome["field_types"].passed
    assert outcome["field_types"].example.startswith("line 1: $.seq: expected integer")


def test_gd4v3_channel_missing_fails_array_layout() -> None:
    payload = gd4v3()
    del payload["r"]["co"]
    assert not results([raw(payload)], "GD-4", "3.0.0")["array_layout"].passed


def test_gd4v2_three_channels_fail_array_layout() -> None:
    assert not results([raw(gd4v2(r=[20.9, 0.0, 0.0]))])["array_layout"].passed


def test_sh2v2_empty_hooks_fail_array_layout() -> None:
    assert not results([raw(sh2v2(hooks=[]))], "SH-2", "2.0.1")["array_layout"].passed


def test_unknown_gd4v3_status_fails_status_values() -> None:
    assert not results([raw(gd4v3(st="error"))], "GD-4", "3.0.0")["status_values"].passed


def test_unknown_hook_state_fails_status_values() -> None:
    assert not results([raw(sh2v1(hook="open"))], "SH-2", "1.4.2")["status_values"].passed


# Values ----------------------------------------------------------------------------------------------------------


def test_o2_given_as_fraction_fails_units() -> None:
    payloads = [gd4v2(seq=i, ts=START_MS + i * 1000, r=[0.209, 0.0, 0.0, 1.0]) for i in range(3)]
    outcome = results(enveloped(payloads))
    assert not outcome["units"].passed
    assert outcome["units"].example.startswith("line 1: $.r[0]:")


def test_device_ts_in_seconds_fails_units() -> None:
    assert not results([raw(gd4v2(ts=START_MS // 1000))])["units"].passed


def test_qubit_timestamp_in_milliseconds_fails_units() -> None:
    batch = qubit()
    batch[0]["timestamp"] = START_MS
    assert not results([raw(batch)], "qubit", "2.1.0")["units"].passed


def test_qubit_coordinates_in_metres_fail_units() -> None:
    batch = qubit()
    batch[0]["data"]["coordinates"] = {"x": 12.31, "y": 4.02, "z": 1.1}
    assert not results([raw(batch)], "qubit", "2.1.0")["units"].passed


def test_anchorline_position_in_millimetres_fails_units() -> None:
    assert not results([raw(anchorline(pos=[12310, 4020, 1100]))], "anchorline", "4.2.0")["units"].passed


def test_out_of_range_gas_channel_fails_value_ranges() -> None:
    outcome = results([raw(gd4v2(r=[20.9, 0.0, 900.0, 1.0]))])
    assert not outcome["value_ranges"].passed
    assert outcome["value_ranges"].example.startswith("line 1: $.r[2]:")


def test_battery_above_100_fails_value_ranges() -> None:
    assert not results([raw(sh2v1(bat=120))], "SH-2", "1.4.2")["value_ranges"].passed


def test_gd4v2_negative_other_than_minus_one_fails_fault_sentinels() -> None:
    assert not results([raw(gd4v2(r=[20.9, -2, 0.0, 1.0]))])["fault_sentinels"].passed


def test_gd4v2_null_channel_fails_fault_sentinels() -> None:
    assert not results([raw(gd4v2(r=[20.9, None, 0.0, 1.0]))])["fault_sentinels"].passed


def test_gd4v3_minus_one_fails_fault_sentinels() -> None:
    payload = gd4v3()
    payload["r"]["h2s"] = -1
    assert not results([raw(payload)], "GD-4", "3.0.0")["fault_sentinels"].passed


def test_undocumented_alarm_bit_fails_alarm_bits() -> None:
    outcome = results([raw(gd4v2(alm=0b0010_0000))])
    assert not outcome["alarm_bits"].passed
    assert "bit 5" in outcome["alarm_bits"].example


def test_rule_not_applicable_to_the_schema_passes_with_nothing_checked() -> None:
    model, firmware, lines = CLEAN_SETS["sh2/1"]
    alarm = results(lines(), model, firmware)["alarm_bits"]
    assert (alarm.passed, alarm.checked, alarm.failures) == (True, 0, 0)
    assert "not applicable" in alarm.example


def test_located_qubit_tag_without_data_fails_located_data() -> None:
    batch = qubit()
    del batch[0]["data"]
    assert not results([raw(batch)], "qubit", "2.1.0")["located_data"].passed


def test_device_id_other_than_the_record_key_fails_device_id() -> None:
    assert not results(enveloped(stream(gd4v2), key="GAS-08"))["device_id"].passed


def test_empty_device_id_fails_device_id() -> None:
    assert not results([raw(gd4v2(dev=""))])["device_id"].passed


# Time ------------------------------------------------------------------------------------------------------------


def test_gd4_ts_as_float_fails_timestamp_form() -> None:
    assert not results([raw(gd4v2(ts=START_MS + 0.5))])["timestamp_form"].passed


def test_anchorline_time_without_milliseconds_fails_timestamp_form() -> None:
    outcome = results([raw(anchorline() | {"ts": "2026-11-20T01:00:00Z"})], "anchorline", "4.2.0")
    assert not outcome["timestamp_form"].passed


def test_anchorline_time_with_an_offset_passes_timestamp_form() -> None:
    outcome = results([raw(anchorline() | {"ts": "2026-11-20T09:00:00.120+08:00"})], "anchorline", "4.2.0")
    assert outcome["timestamp_form"].passed


def test_skew_of_8_s_fails_timestamp_skew_with_envelope_lines() -> None:
    outcome = results(enveloped(stream(gd4v2), delay_ms=8_000))
    skew = outcome["timestamp_skew"]
    assert not skew.passed
    assert skew.failures == skew.checked == 5
    assert skew.example.startswith("line 1: $.ts:")


def test_skew_of_4_s_passes_timestamp_skew() -> None:
    assert results(enveloped(stream(gd4v2), delay_ms=-4_000))["timestamp_skew"].passed


def test_implausible_device_time_without_envelopes_fails_timestamp_skew() -> None:
    assert not results([raw(gd4v2(ts=4_200_000_000_000))])["timestamp_skew"].passed


def test_bump_after_ts_fails_bump_recency() -> None:
    assert not results([raw(gd4v3(bump=START_MS + 60_000))], "GD-4", "3.0.0")["bump_recency"].passed


def test_bump_older_than_24_h_passes_bump_recency_with_a_note() -> None:
    outcome = results([raw(gd4v3(bump=START_MS - 25 * 3_600_000))], "GD-4", "3.0.0")["bump_recency"]
    assert outcome.passed
    assert outcome.example.startswith("informational")


# Sequence --------------------------------------------------------------------------------------------------------


def seq_lines(*seqs: int, dev: str = "GAS-07") -> list[bytes]:
    return [raw(gd4v2(seq=seq, ts=START_MS + i * 1000, dev=dev)) for i, seq in enumerate(seqs)]


def test_seq_going_backwards_fails_sequence_monotonic() -> None:
    outcome = results(seq_lines(10, 11, 9, 12))
    assert not outcome["sequence_monotonic"].passed
    assert outcome["sequence_monotonic"].example.startswith("line 3: $.seq:")


def test_repeated_seq_fails_sequence_monotonic() -> None:
    assert not results(seq_lines(10, 11, 11))["sequence_monotonic"].passed


def test_wrap_from_65535_to_0_passes() -> None:
    outcome = results(seq_lines(65534, 65535, 0, 1))
    assert outcome["sequence_monotonic"].passed
    assert (outcome["sequence_wrap"].passed, outcome["sequence_wrap"].checked) == (True, 1)


def test_no_wrap_passes_sequence_wrap_with_nothing_checked_and_says_so() -> None:
    wrap = results(seq_lines(1, 2, 3))["sequence_wrap"]
    assert (wrap.passed, wrap.checked) == (True, 0)
    assert "no wrap" in wrap.example


def test_counter_wrapping_at_32767_fails_sequence_monotonic() -> None:
    assert not results(seq_lines(32766, 32767, 0))["sequence_monotonic"].passed


def test_wrap_skipping_zero_fails_sequence_wrap() -> None:
    assert not results(seq_lines(65533, 1))["sequence_wrap"].passed


def test_seq_above_uint16_fails_sequence_wrap() -> None:
    assert not results(seq_lines(65535, 65536))["sequence_wrap"].passed


def test_sequences_are_followed_per_device() -> None:
    lines = [raw(gd4v2(seq=seq, dev=dev, ts=START_MS + i * 1000)) for i, (dev, seq) in
             enumerate([("GAS-07", 100), ("GAS-08", 5), ("GAS-07", 101), ("GAS-08", 6)])]
    outcome = results(lines)
    assert outcome["sequence_monotonic"].passed
    assert outcome["sequence_monotonic"].checked == 2


# The rule table and the report -------------------------------------------------------------------------------------


def test_there_are_at_least_21_rules_with_unique_snake_case_names() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) >= 21
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name) for name in names)
    _, outcome = certify([raw(gd4v2())], "GD-4", "2.3.1")
    assert [r.rule for r in outcome] == names


def test_rule_that_raises_counts_as_a_failure_of_that_rule() -> None:
    def broken(run: CertificationRun, tally: Any) -> str:
        raise KeyError("boom")

    run = CertificationRun("GD-4", "2.3.1", "gd4/2", read_samples([raw(gd4v2())]))
    result = run_rule(Rule("broken", broken), run)
    assert (result.passed, result.failures) == (False, 1)
    assert "KeyError" in result.example


def test_format_table_lists_every_rule_and_a_pass_verdict() -> None:
    schema, outcome = certify(enveloped(stream(gd4v2)), "GD-4", "2.3.1")
    table = format_table(schema, "GD-4", "2.3.1", outcome)
    for result in outcome:
        assert re.search(rf"^{result.rule}\s+PASS\s+{result.checked}\s+0\b", table, re.MULTILINE)
    assert table.splitlines()[-1].startswith("VERDICT: PASS")


def test_format_table_gives_a_fail_verdict_naming_the_failed_rules() -> None:
    schema, outcome = certify(enveloped(stream(gd4v3)), "GD-4", "2.3.1")
    table = format_table(schema, "GD-4", "2.3.1", outcome)
    verdict = table.splitlines()[-1]
    assert verdict.startswith("VERDICT: FAIL")
    assert "strict_decode" in verdict and "firmware_self_report" in verdict
    assert re.search(r"^strict_decode\s+FAIL\s+5\s+5\s+line 1: \$\.r:", table, re.MULTILINE)


# Never raises ----------------------------------------------------------------------------------------------------

PAIRS = st.sampled_from(
    [("GD-4", "2.3.1"), ("GD-4", "3.0.0"), ("SH-2", "1.4.2"), ("SH-2", "2.0.1"), ("anchorline", "4.2.0"), ("qubit", "2.1.0")]
) | st.tuples(st.text(max_size=8), st.text(max_size=8))

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    ["dev", "fw", "ts", "seq", "r", "alm", "st", "bump", "hook", "hooks", "h", "bat", "tag", "pos", "q", "tagId",
     "timestamp", "success", "data", "coordinates", "o2", "x"]
)
BASE_PAYLOADS = st.sampled_from([gd4v2(), gd4v3(), sh2v1(), sh2v2(), anchorline(), qubit()[0]])


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A sheet payload with some fields replaced by arbitrary JSON, raw or in an envelope with an arbitrary record ts."""
    payload: Any = dict(draw(BASE_PAYLOADS))
    payload.update(draw(st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=4)))
    if draw(st.booleans()):
        payload = [payload]
    text = json.dumps(payload)
    if draw(st.booleans()):
        key = draw(st.none() | st.text(max_size=6))
        return json.dumps({"ts": draw(st.integers()), "topic": draw(st.text(max_size=6)), "key": key, "payload": text}).encode()
    return text.encode()


def assert_well_formed(outcome: list[RuleResult]) -> None:
    assert [r.rule for r in outcome] == [rule.name for rule in RULES]
    for result in outcome:
        assert result.passed == (result.failures == 0)
        assert result.failures <= result.checked or result.rule == "samples_present"


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.binary(max_size=120), max_size=6), pair=PAIRS)
def test_certify_never_raises_on_arbitrary_bytes_lines(lines: list[bytes], pair: tuple[str, str]) -> None:
    schema, outcome = certify(lines, *pair)
    assert_well_formed(outcome)
    format_table(schema, *pair, outcome)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(mutated_lines(), max_size=5), pair=PAIRS)
def test_certify_never_raises_on_arbitrary_json_in_sheet_payloads(lines: list[bytes], pair: tuple[str, str]) -> None:
    schema, outcome = certify(lines, *pair)
    assert_well_formed(outcome)
    assert not any(r.example.startswith("the rule could not finish") for r in outcome)
    format_table(schema, *pair, outcome)
