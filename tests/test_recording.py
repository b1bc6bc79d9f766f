"""Recordings are read as kcat writes them: any field order, extra fields, interleaved partitions, and bad lines kept as faults."""

from __future__ import annotations

import io

from dataflows.recording import read_recording
from schemas.envelope import Record, UnreadableRecord


def _read(text: str) -> list:
    return read_recording(io.BytesIO(text.encode()))


def test_records_are_put_in_record_time_order_keeping_file_order_for_equal_times():
    records = _read(
        '{"topic":"b","partition":1,"offset":0,"ts":20,"key":null,"payload":"x"}\n'
        '{"topic":"a","partition":0,"offset":0,"ts":10,"key":"k","payload":"y"}\n'
        '{"topic":"c","partition":0,"offset":0,"ts":20,"key":"k","payload":"z"}\n'
    )
    assert [(r.topic, r.ts) for r in records] == [("a", 10), ("b", 20), ("c", 20)]


def test_kcat_fields_with_no_meaning_here_are_ignored():
    records = _read('{"topic":"a","partition":0,"offset":7,"tstype":"create","ts":1,"broker":-1,"headers":["h","v"],'
                    '"key":"k","payload":"{}"}\n')
    assert records == [Record("a", 0, 7, 1, "k", "{}")]


def test_a_tombstone_keeps_a_null_payload():
    assert _read('{"topic":"cmdb.devices","partition":0,"offset":0,"ts":1,"key":"GAS-07","payload":null}\n')[0].payload is None


def test_a_payload_written_as_json_instead_of_a_string_is_taken_as_its_bytes():
    record = _read('{"topic":"gas.readings","partition":0,"offset":0,"ts":1,"key":"G","payload":{"dev":"G"}}\n')[0]
    assert record.payload == b'{"dev":"G"}'


def test_a_line_that_is_not_an_envelope_is_kept_at_the_time_of_the_record_before_it():
    records = _read(
        '{"topic":"a","partition":0,"offset":0,"ts":10,"key":null,"payload":"x"}\n'
        'this is not json\n'
        '\n'
        '{"topic":"a","partition":0,"offset":1,"ts":30,"key":null,"payload":"x"}\n'
    )
    bad = records[1]
    assert isinstance(bad, UnreadableRecord) and bad.line == 2 and bad.ts == 10
    assert len(records) == 3
