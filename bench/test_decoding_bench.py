"""One pytest-benchmark per payload schema: a strict `decode_payload` of a real payload of the quick workload.

    .venv/bin/python -m pytest bench -q --benchmark-enable -p no:cacheprovider

The gate's figures come from `bench.decoding_suite`; these are for looking at one schema interactively.
"""

from __future__ import annotations

import pytest

from bench.decoding_suite import SCHEMAS, SHEET_EXAMPLES, sample_payloads
from bench.workloads import QUICK, recording_lines
from schemas.decoding import decode_payload


@pytest.fixture(scope="module")
def payloads() -> dict[str, list[str]]:
    """Payloads of the quick workload per schema (the protocol sheet's examples for a schema it lacks)."""
    found, _ = sample_payloads(recording_lines(*QUICK))
    return found


@pytest.mark.parametrize("schema", SCHEMAS)
def test_decode_payload(benchmark, payloads, schema):
    benchmark.group = "decode_payload"
    payload = payloads[schema][0]
    reading, diagnosis = benchmark(decode_payload, schema, payload)
    assert diagnosis is None and reading is not None


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_fallback_examples_of_the_protocol_sheet_decode(schema):
    for payload in SHEET_EXAMPLES[schema]:
        assert decode_payload(schema, payload)[1] is None, payload
