"""Recording envelopes, and the timeline events the firmware-change incident does not use, on a small site."""

from __future__ import annotations

import msgspec

from simulators.recording import Envelope, Record, encode_recording, envelopes, read_recording
from simulators.scenario import generate, load_scenario

SMALL_SITE = """
seed = 1
start = 2026-11-20T09:00:00+08:00
duration = 10.0

[points]
door = [1.0, 1.0, 1.1]

[positions]
W0001 = "door"

[[devices]]
device = "GAS-01"
family = "gas"
model = "GD-4"
firmware = "2.3.1"

[[devices]]
device = "HB-01"
family = "harness"
model = "SH-2"
firmware = "1.4.2"
worker = "W0001"

[[devices]]
device = "0x0001"
family = "uwb_tag"
vendor = "qubit"
worker = "W0001"

[harness.HB-01]
h = 3.0
hooks = [1]

[[timeline]]
at = 2.0
kind = "gas"
device = "GAS-01"
fault = ["h2s"]
co = 40.0

[[timeline]]
at = 4.0
kind = "firmware"
device = "HB-01"
firmware = "2.0.1"

[[timeline]]
at = 5.0
kind = "harness"
device = "HB-01"
hooks = [0, 0]

[[timeline]]
at = 6.0
kind = "decommission"
device = "GAS-01"
"""


def test_envelopes_number_each_topic_from_zero_in_arrival_order():
    records = [Record("b", "k", 20, "{}"), Record("a", "k", 10, "{}"), Record("b", "k", 5, "{}")]
    assert [(e.topic, e.offset, e.ts) for e in envelopes(records)] == [("b", 0, 5), ("a", 0, 10), ("b", 1, 20)]


def test_records_with_equal_times_keep_the_order_they_were_produced():
    records = [Record("t", "first", 7, "{}"), Record("t", "second", 7, "{}")]
    assert [e.key for e in envelopes(records)] == ["first", "second"]


def test_a_tombstone_has_a_null_payload(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(encode_recording([Record("cmdb.devices", "GAS-01", 1, None)]))
    assert path.read_bytes() == (
        b'{"topic":"cmdb.devices","partition":0,"offset":0,"tstype":"create","ts":1,"broker":-1,'
        b'"key":"GAS-01","payload":null}\n'
    )
    [envelope] = read_recording(path)
    assert envelope.payload is None


def small_site(tmp_path) -> list[Envelope]:
    path = tmp_path / "small.toml"
    path.write_text(SMALL_SITE, encoding="utf-8")
    return envelopes(generate(load_scenario(path)))


def test_a_faulted_gd4_2_channel_reads_minus_one_with_the_fault_and_gas_alarm_bits(tmp_path):
    readings = [msgspec.json.decode(e.payload) for e in small_site(tmp_path) if e.topic == "gas.readings"]
    start = 1795136400000
    after = [r for r in readings if r["ts"] > start + 2100]
    assert after and all(r["r"][2] == -1.0 and r["alm"] & 0x80 and r["alm"] & 0x10 for r in after)


def test_a_harness_upgrade_switches_shape_and_an_unclip_is_reported_at_once(tmp_path):
    recording = small_site(tmp_path)
    statuses = [(e.ts, msgspec.json.decode(e.payload)) for e in recording if e.topic == "harness.status"]
    assert all("hook" in s for ts, s in statuses if ts < 1795136404000)
    assert all("hooks" in s for ts, s in statuses if ts > 1795136404000)
    assert (1795136405000, [0, 0]) in [(ts, s.get("hooks")) for ts, s in statuses]


def test_decommission_publishes_a_tombstone_for_the_device(tmp_path):
    tombstones = [e for e in small_site(tmp_path) if e.topic == "cmdb.devices" and e.payload is None]
    assert [(e.key, e.ts) for e in tombstones] == [("GAS-01", 1795136406000)]
