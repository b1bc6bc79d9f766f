"""Replay reports: one self-contained HTML file that shows an engineer, at a glance, what the interlock did and why."""

from __future__ import annotations

import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import msgspec
import pytest
from bytewax.testing import TestingSink, run_main

from dataflows.interlock_flow import build_flow
from dataflows.recording import RecordingSource, read_recording
from dataflows.replay_files import ReplayFilesSink
from dataflows.replay_report import build_story, read_outputs, write_report
from dataflows.report_charts import PLOT_WIDTH, TimeAxis, envelope_runs
from interlock.config import DEFAULT_CONFIG, SiteConfig
from interlock.fault_catalog import CATALOG
from interlock.site import COMMANDS_TOPIC, FAULTS_TOPIC, Output

ROOT = Path(__file__).resolve().parents[1]
INCIDENT = ROOT / "simulators" / "incidents" / "firmware_change.jsonl"
FIRMWARE_CHANGE_MS = 1795136520464
"""The first 3.0.0 payload of GAS-07, 09:02:00.464 site time: the CRITICAL fault and the HARD_STOP."""
APPROVAL_MS = 1795136600000
"""The CMDB row approving 3.0.0 for GAS-07, 09:03:20 site time."""
HARD_STOP_RED = (0xC6, 0x28, 0x28)


class Replayed(msgspec.Struct):
    records: list
    outputs: list[Output]
    path: Path
    page: str
    seconds: float


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Replayed:
    with open(INCIDENT, "rb") as stream:
        records = read_recording(stream)
    captured: list = []
    run_main(build_flow(RecordingSource(records), TestingSink(captured), DEFAULT_CONFIG))
    outputs = [output for _, batch in captured for output in batch]
    path = tmp_path_factory.mktemp("report") / "firmware_change.html"
    started = time.perf_counter()
    write_report(records, outputs, path, title="firmware_change.jsonl", config=DEFAULT_CONFIG)
    seconds = time.perf_counter() - started
    return Replayed(records, outputs, path, path.read_text(encoding="utf-8"), seconds)


def sent(replayed: Replayed, topic: str) -> list[dict]:
    return [msgspec.json.decode(o.value) for o in replayed.outputs if o.topic == topic]


class _Elements(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


def elements(page: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(page)
    return parser.tags


def markers(page: str, **wanted: str) -> list[dict[str, str]]:
    """The chart markers whose data-* attributes have the wanted values."""
    found = [attrs for tag, attrs in elements(page) if tag == "g" and attrs.get("class") == "marker"]
    return [m for m in found if all(m.get(f"data-{name}") == value for name, value in wanted.items())]


def test_the_report_is_one_html_file_that_needs_nothing_from_outside(replayed):
    page = replayed.page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "<img" not in page and "@import" not in page
    assert page.count("<svg") >= 4


def test_the_report_of_the_incident_builds_in_a_couple_of_seconds(replayed):
    assert replayed.seconds < 2.0


def test_the_hard_stop_is_marked_at_the_first_3_0_0_payload(replayed):
    stops = markers(replayed.page, kind="HARD_STOP", permit="HW-201")
    assert stops and {m["data-ts"] for m in stops} == {str(FIRMWARE_CHANGE_MS)}
    assert stops[0]["data-time"] == "09:02:00.464"


def test_the_enables_are_marked_at_the_start_and_after_the_reset(replayed):
    enables = markers(replayed.page, kind="ENABLE", permit="HW-201")
    assert sorted({m["data-time"] for m in enables}) == ["09:00:20.000", "09:04:00.000"]
    assert {m["data-permit"] for m in markers(replayed.page, kind="ENABLE")} == {"HW-201", "CS-202", "HT-203"}


def test_the_critical_fault_is_marked_with_its_code_and_device(replayed):
    faults = markers(replayed.page, kind="fault", grade="CRITICAL", code="PAYLOAD_SCHEMA_MISMATCH", device="GAS-07")
    assert faults and {m["data-time"] for m in faults} == {"09:02:00.464"}


def test_the_cmdb_approval_of_the_new_firmware_is_marked(replayed):
    approvals = markers(replayed.page, kind="cmdb", concerns="GAS-07")
    assert approvals and {m["data-ts"] for m in approvals} == {str(APPROVAL_MS)}
    assert "09:03:20 CMDB approves GAS-07 firmware 3.0.0" in replayed.page


def test_the_change_of_payload_and_the_reset_are_marked(replayed):
    assert {m["data-time"] for m in markers(replayed.page, kind="firmware", concerns="GAS-07")} == {"09:02:00.464"}
    assert {m["data-time"] for m in markers(replayed.page, kind="action", concerns="HW-201")} == {"09:04:00.000"}


def test_the_header_gives_one_outcome_line_per_permit(replayed):
    page = replayed.page
    hot_work = page.split('<span class="pid">HW-201</span>', 1)[1].split("</li>", 1)[0]
    story = ["ENABLE 09:00:20", "HARD_STOP 09:02:00 (PAYLOAD_SCHEMA_MISMATCH, latched)",
             "ALERT 09:03:24 (TRIP_RESET_REQUIRED, to W0201)", "reset by W0201 09:04:00", "ENABLE 09:04:00"]
    positions = [hot_work.index(step) for step in story]
    assert positions == sorted(positions) and "ENABLED at the end" in hot_work
    for permit in ("CS-202", "HT-203"):
        assert f'<span class="pid">{permit}</span>' in page


def test_the_header_counts_records_per_topic_commands_by_kind_and_faults_by_grade(replayed):
    header = replayed.page.split('<h2 id="overview">', 1)[0]
    assert "records</b> 5,765" in header and "gas.readings 1,260" in header and "ptw.actions 1" in header
    assert "ENABLE 4" in header and "HARD_STOP 1" in header and "ALERT 1" in header and "CRITICAL 1" in header
    assert "2026-11-20 08:59:54.000" in header and "(UTC+8)" in header


def test_the_decision_table_has_every_command_with_its_reasons_faults_and_trigger(replayed):
    table = replayed.page.split('<table class="decisions">', 1)[1].split("</table>", 1)[0]
    rows = {attrs["id"] for tag, attrs in elements(table) if tag == "tr" and "id" in attrs}
    commands = sent(replayed, COMMANDS_TOPIC)
    assert rows == {command["id"] for command in commands} and len(commands) == 6
    stop = next(command for command in commands if command["kind"] == "HARD_STOP")
    stop_row = table.split(f'<tr id="{stop["id"]}">', 1)[1].split("</tr>", 1)[0]
    assert "09:02:00.464" in stop_row and "PAYLOAD_SCHEMA_MISMATCH" in stop_row and "latched" in stop_row
    assert stop["reasons"][0]["fault"] in stop_row and "gas.readings/0@361" in stop_row


def test_the_fault_table_gives_firmware_schema_path_count_and_the_operators_action(replayed):
    fault = sent(replayed, FAULTS_TOPIC)[0]
    table = replayed.page.split('<table class="faults">', 1)[1].split("</table>", 1)[0]
    row = table.split(f'<tr id="{fault["id"]}" class="grade-CRITICAL">', 1)[1].split("</tr>", 1)[0]
    for expected in ("09:02:00.464", "cleared 09:03:20.474", "CRITICAL", "GAS-07", "3.0.0 / 2.3.1", "gd4/2", "matches gd4/3",
                     "$.r", "array / object with keys o2, lel, h2s, co", "<td>80</td>", "HW-201",
                     "gas.readings/0@361"):
        assert expected in row, expected
    assert CATALOG["PAYLOAD_SCHEMA_MISMATCH"].action in row


def test_payloads_not_valid_for_the_approved_firmware_are_kept_and_marked_not_valid(replayed):
    story = build_story(replayed.records, replayed.outputs, title="t", config=DEFAULT_CONFIG)
    gas = story.telemetry.gas["GAS-07"]
    invalid = [(start, end, verdict) for start, end, verdict in gas.verdicts.spans if not verdict.valid]
    assert len(invalid) == 1
    start, end, verdict = invalid[0]
    assert start == FIRMWARE_CHANGE_MS and FIRMWARE_CHANGE_MS < end < APPROVAL_MS
    assert verdict.text.startswith("NOT VALID for 2.3.1") and "gd4/3 shape" in verdict.text
    shown = [o2 for ts, o2, valid in zip(gas.ts, gas.o2, gas.valid) if start <= ts <= end]
    assert len(shown) > 50 and all(19.0 < value < 23.0 for value in shown)
    assert "payload not valid for" in replayed.page and "NOT VALID for 2.3.1" in replayed.page


def test_times_follow_the_site_utc_offset_of_the_config(replayed, tmp_path):
    path = tmp_path / "utc.html"
    write_report(replayed.records, replayed.outputs, path, title="utc", config=SiteConfig(utc_offset_minutes=0))
    page = path.read_text(encoding="utf-8")
    assert "2026-11-20 00:59:54.000" in page and "(UTC+0)" in page
    assert {m["data-time"] for m in markers(page, kind="HARD_STOP")} == {"01:02:00.464"}


def test_the_report_from_the_replay_files_is_the_report_from_the_outputs(replayed, tmp_path):
    run_main(build_flow(RecordingSource(replayed.records), ReplayFilesSink(str(tmp_path / "out")), DEFAULT_CONFIG))
    path = tmp_path / "from_files.html"
    write_report(replayed.records, read_outputs(str(tmp_path / "out")), path, title="firmware_change.jsonl",
                 config=DEFAULT_CONFIG)
    assert _without_ids(path.read_text(encoding="utf-8")) == _without_ids(replayed.page)


def _without_ids(page: str) -> str:
    """A page without its SVG pattern ids, which count the charts drawn in this process."""
    import re

    return re.sub(r"\bc\d+-hatch\b", "hatch", page)


def test_an_output_that_is_not_json_is_refused_naming_it(replayed, tmp_path):
    broken = [Output(COMMANDS_TOPIC, None, b"{not json")]
    with pytest.raises(ValueError, match=r"output 0 on interlock\.commands is not JSON"):
        write_report(replayed.records, broken, tmp_path / "x.html", title="x", config=DEFAULT_CONFIG)


def test_long_recordings_are_drawn_from_per_bucket_minima_and_maxima():
    day = 86_400_000
    axis = TimeAxis(0, day, 480)
    times = list(range(0, day, 500))
    values = [float(index % 7) for index in range(len(times))]
    runs = envelope_runs(times, values, [True] * len(times), 0, axis.bucket_ms(), 10_000)
    points = [point for run in runs for point in run.points]
    assert len(runs) == 1 and len(points) <= PLOT_WIDTH + 1
    assert {(low, high) for _, low, high in points} == {(0.0, 6.0)}


def test_a_drawn_line_never_bridges_a_silence_a_sensor_fault_or_a_change_of_validity():
    times = [0, 1_000, 2_000, 3_000, 20_000, 21_000, 22_000, 23_000]
    values = [1.0, 1.0, None, 1.0, 1.0, 1.0, 1.0, 1.0]
    valid = [True, True, True, True, True, True, False, False]
    runs = envelope_runs(times, values, valid, 0, 1_000, 10_000)
    assert [(run.valid, [ts for ts, _, _ in run.points]) for run in runs] == [
        (True, [0, 1_000]), (True, [3_000]), (True, [20_000, 21_000]), (False, [22_000, 23_000])]


def _browser() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_browser() is None, reason="no chromium or chromium-browser on PATH (Debian: apt-get install chromium)")
def test_a_headless_browser_shows_the_first_screen_with_the_hard_stop_in_red(replayed, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "report.png"
    subprocess.run([_browser(), "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={shot}",
                    "--window-size=1400,2400", replayed.path.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120, cwd=tmp_path)
    pixels = imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (2400, 1400)
    assert pixels.reshape(-1, 3).std(axis=0).max() > 0.05
    red = (abs(pixels * 255 - HARD_STOP_RED) <= 8).all(axis=2)
    assert red.sum() > 2_000
    assert red[:1200].any(), "the HARD_STOP red is in the upper half of the first screen"


def test_an_empty_recording_still_gives_a_readable_page(tmp_path):
    path = tmp_path / "empty.html"
    write_report([], [], path, title="empty.jsonl", config=DEFAULT_CONFIG)
    page = path.read_text(encoding="utf-8")
    assert "Replay report · empty.jsonl" in page and "Decisions (0 commands)" in page and "Faults (0)" in page


def test_interlock_replay_with_report_writes_the_report_beside_its_outputs(tmp_path):
    from dataflows.cli import main

    report = tmp_path / "report.html"
    assert main(["replay", str(INCIDENT), "--out", str(tmp_path), "--quiet", "--report", str(report)]) == 0
    assert "HARD_STOP" in report.read_text(encoding="utf-8")
