"""Properties that hold for any input: the decoder never raises, no ENABLE on doubt, and replays are deterministic."""

from __future__ import annotations

import io

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflows.recording import read_recording
from interlock.site import Site
from schemas.decoding import KNOWN_SCHEMAS, decode_payload
from schemas.envelope import read_envelope
from site_records import OUTSIDE, SECOND, T0, HotWorkSite, gas_v2

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=6),
    max_leaves=20,
)
near_payloads = st.fixed_dictionaries(
    {"dev": st.text(max_size=6), "fw": st.sampled_from(["2.3.1", "3.0.0", "x"]), "ts": st.integers(), "seq": st.integers(),
     "r": json_values, "alm": json_values},
    optional={"st": json_values, "bump": json_values, "hook": json_values, "h": json_values, "extra": json_values},
)


@given(st.sampled_from(KNOWN_SCHEMAS), st.binary(max_size=200))
def test_the_decoder_never_raises_on_arbitrary_bytes(schema, data):
    reading, problem = decode_payload(schema, data)
    assert (reading is None) != (problem is None)


@given(st.sampled_from(KNOWN_SCHEMAS), near_payloads | json_values)
def test_the_decoder_never_raises_on_arbitrary_json_and_always_names_a_path(schema, document):
    reading, problem = decode_payload(schema, msgspec.json.encode(document))
    if problem is not None:
        assert problem.path.startswith("$") and problem.expected and problem.got


@given(st.binary(max_size=300))
def test_an_envelope_line_never_raises(data):
    read_envelope(data, 1, 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=120), max_size=30), st.lists(st.sampled_from(["gas", "rtls", "plc", "cmdb", "permit"]), max_size=30))
def test_the_site_never_raises_whatever_the_payloads(garbage, topics):
    site = HotWorkSite().started()
    topic_names = {"gas": "gas.readings", "rtls": "rtls.position", "plc": "plc.state", "cmdb": "cmdb.devices", "permit": "ptw.permits"}
    for payload, topic in zip(garbage, topics):
        site.now += 100
        site.send(topic_names[topic], "GAS-07", payload.decode("utf-8", "replace"))


# --- no ENABLE on doubt -------------------------------------------------------------------------

ACTIONS = st.sampled_from(
    ["healthy", "healthy", "healthy", "bad_gas", "gas_silence", "guardian_away", "guardian_back", "intruder_in",
     "intruder_out", "plc_silence", "isolation_lost", "isolation_back", "reset", "suspend", "activate"]
)


class Oracle:
    """An independent reading of the inputs: what must hold for an ENABLE to be allowed."""

    def __init__(self) -> None:
        self.active = False
        self.last_gas_ts: int | None = None
        self.last_gas_ok = False
        self.guardian_seen: int | None = None
        self.intruder = False
        self.plc_ts: int | None = None
        self.isolated = False

    def allows_enable(self, now: int) -> list[str]:
        doubts = []
        if not self.active:
            doubts.append("permit not active")
        if not self.last_gas_ok or self.last_gas_ts is None or now - self.last_gas_ts > 10 * SECOND:
            doubts.append("gas")
        if self.guardian_seen is None or now - self.guardian_seen > 30 * SECOND:
            doubts.append("guardian")
        if self.intruder:
            doubts.append("intruder")
        if self.plc_ts is None or now - self.plc_ts > 15 * SECOND or not self.isolated:
            doubts.append("isolation")
        return doubts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ACTIONS, st.integers(1, 12)), min_size=1, max_size=25))
def test_no_enable_unless_every_precondition_holds(plan):
    site = HotWorkSite()
    site.tables()
    oracle = Oracle()
    rev = 1
    isolated = True
    guardian_away = False
    gas_silent = plc_silent = False
    checked = 0
    for action, seconds in plan:
        if action == "activate" or action == "suspend":
            rev += 1
            state = "active" if action == "activate" else "suspended"
            out = site.send("ptw.permits", "HW-1", _permit(rev, state))
            oracle.active = state == "active"
            checked += _check(site, out, oracle)
            continue
        if action == "reset":
            out = site.send("ptw.actions", "HW-1", {"permit": "HW-1", "action": "reset", "by": "A1", "ts": site.now})
            checked += _check(site, out, oracle)
            continue
        guardian_away = {"guardian_away": True, "guardian_back": False}.get(action, guardian_away)
        site.spots["G1"] = OUTSIDE if guardian_away else (5.0, 5.0)
        if action == "intruder_in":
            site.spots["X1"] = (11.0, 5.0)
        elif action == "intruder_out":
            site.spots.pop("X1", None)
        isolated = {"isolation_lost": False, "isolation_back": True}.get(action, isolated)
        gas_silent = action == "gas_silence"
        plc_silent = action == "plc_silence"
        for _ in range(seconds):
            if action == "bad_gas":
                out = site.gas(gas_v2("GAS-07", site.now, site.next_seq("GAS-07"), r=(20.9, 15.0, 0.0, 1.0)))
                oracle.last_gas_ok, oracle.last_gas_ts = False, site.now
                checked += _check(site, out, oracle)
            elif not gas_silent:
                out = site.gas()
                oracle.last_gas_ok, oracle.last_gas_ts = True, site.now
                checked += _check(site, out, oracle)
            for worker, (x, y) in list(site.spots.items()):
                out = site.fix(worker, x, y)
                if worker == "G1" and not guardian_away:
                    oracle.guardian_seen = site.now
                oracle.intruder = "X1" in site.spots
                checked += _check(site, out, oracle)
            if not plc_silent and (site.now - T0) % (5 * SECOND) == 0:
                out = site.plc({"V-101.isolated": isolated, "WELD-5.power": True})
                oracle.plc_ts, oracle.isolated = site.now, isolated
                checked += _check(site, out, oracle)
            site.now += SECOND


def _permit(rev: int, state: str) -> dict:
    from site_records import hot_work_permit

    return hot_work_permit(rev=rev, state=state)


def _check(site: HotWorkSite, outputs, oracle: Oracle) -> int:
    for output in outputs:
        if output.topic != "interlock.commands":
            continue
        command = msgspec.json.decode(output.value)
        if command["kind"] == "ENABLE":
            doubts = oracle.allows_enable(command["ts"])
            assert not doubts, f"ENABLE at {command['ts'] - T0} ms despite doubt about {doubts}"
    return 1


# --- deterministic replays ----------------------------------------------------------------------

def _replay(lines: list[bytes]) -> list[bytes]:
    site = Site()
    out = site.process_batch(read_recording(io.BytesIO(b"\n".join(lines))))
    return [o.value for o in out]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_replay_of_any_recording_gives_identical_outputs_every_time(data):
    from test_incident_replay import INCIDENT

    lines = INCIDENT.read_bytes().splitlines()
    start = data.draw(st.integers(0, len(lines) - 400))
    window = lines[start:start + 400]
    edits = data.draw(st.lists(st.tuples(st.integers(0, 399), st.sampled_from(["drop", "duplicate", "corrupt"])), max_size=20))
    for index, edit in edits:
        if edit == "drop":
            window[index] = b""
        elif edit == "duplicate":
            window.append(window[index])
        else:
            window[index] = window[index][: len(window[index]) // 2]
    assert _replay(window) == _replay(window)
