"""Replay reports: one self-contained HTML file per replay, for simulation engineers to see what the interlock did.

After a replay, with the records it read and the outputs it sent:

    from dataflows.replay_report import write_report
    write_report(records, outputs, "runs/incident/report.html", title="firmware_change.jsonl", config=config)

`records` are the replay's input records in decision order (`dataflows.recording.read_recording`); `outputs` the
interlock's `interlock.site.Output`s (commands, faults; evidence entries are ignored). A replay that wrote its
outputs to files reads them back with `read_outputs(folder)`; in `interlock replay`, after `run_main(flow)`:

    if args.report:
        from dataflows.replay_report import read_outputs, write_report
        title = "standard input" if args.recording == "-" else os.path.basename(args.recording)
        write_report(records, read_outputs(args.out), args.report, title=title, config=config)

The page has, top to bottom: the header (recording, time span in site time, counts, one outcome line per permit), an
overview lane per permit with the key events labelled, then per permit stacked charts on the same time axis (enable
state, gas channels with the site limits, payload validity of each detector, people in the zone, harnesses, PLC
signals) with every command, fault and input event of the permit as a vertical marker, then the table of decisions
and the table of faults. Charts are inline SVG: no script, no network, no files beside it. See docs/reports.md.
"""

from __future__ import annotations

import html
import math
import os
from array import array
from collections import Counter
from typing import Iterable, Sequence

import msgspec

from dataflows.report_charts import (
    Band,
    Divider,
    Lane,
    LinePanel,
    Marker,
    Row,
    Span,
    Threshold,
    TimeAxis,
    Trace,
    clock_time,
    envelope_runs,
    render_stack,
)
from interlock.config import DEFAULT_CONFIG, GasLimits, SiteConfig
from interlock.fault_catalog import CATALOG, GRADE_RANK
from interlock.gas_test import limits_for
from interlock.geometry import Area, area_from_metres
from interlock.site import COMMANDS_TOPIC, FAULTS_TOPIC, Output
from interlock.site_time import format_site_time, site_date
from schemas.catalog import FAMILY_SCHEMAS, PLC_SCHEMA, schema_for_firmware
from schemas.decoding import PAYLOAD_DECODERS, Diagnosis, reported_field
from schemas.envelope import TOPICS, Record, UnreadableRecord
from schemas.readings import GasSample, HarnessSample

# ---------------------------------------------------------------------------------------------------- colours

GRADE_COLOURS = {"CRITICAL": "#d32f2f", "MAJOR": "#ef6c00", "MINOR": "#f9c623", "INFO": "#8a8f98"}
"""Fault grades as the control room knows them: CRITICAL red, MAJOR orange, MINOR yellow, INFO grey."""
GRADE_INK = {"CRITICAL": "#ffffff", "MAJOR": "#ffffff", "MINOR": "#1b1b1b", "INFO": "#ffffff"}
COMMAND_COLOURS = {"ENABLE": "#2e7d32", "HARD_STOP": "#c62828", "ALERT": "#ffa000"}
COMMAND_INK = {"ENABLE": "#ffffff", "HARD_STOP": "#ffffff", "ALERT": "#1b1b1b"}
INPUT_COLOUR = "#5e35b1"
"""Input events (table rows, permit actions, a device's firmware change): purple, dotted, apart from decisions."""
CLEARED_COLOUR = "#78909c"
TRACE_COLOURS = ("#1f5fbf", "#8e24aa", "#00897b", "#6d4c41")
VALID_FILL = "#c8e6c9"
INSIDE_FILL, ENTRANCE_FILL, OUTSIDE_FILL, UNLOCATED_FILL = "#1565c0", "#64b5f6", "#dfe3e8", "#ffffff"

# ---------------------------------------------------------------------------------------------------- limits

MAX_CHARTED_PERMITS = 12
"""Permits drawn with full charts, the eventful first; the others get their outcome line and an overview lane."""
MAX_OVERVIEW_LANES = 24
MAX_OUTCOME_LINES = 12
"""Outcome lines shown open in the header; with more permits the first 8 are shown and the rest folded."""
MAX_TABLE_ROWS = 3_000
"""Rows of the decision and fault tables; the rest are counted, they are all in commands.jsonl and faults.jsonl."""
MAX_OUTCOME_ITEMS = 14
DATA_GAP_MS = 10_000
"""A device silent this long shows as a gap: no line bridges it, no validity span covers it."""
FIX_SILENCE_MS = 10_000
LABEL_ALL_UP_TO = 16
"""A chart with more markers than this labels only the important ones (priority below MINOR_PRIORITY)."""
MINOR_PRIORITY = 4
GAS_CHANNELS = (("o2", "O2", "%vol"), ("lel", "LEL", "%LEL"), ("h2s", "H2S", "ppm"), ("co", "CO", "ppm"))
SIGNAL_WORDS = {"isolated": ("isolated", "NOT isolated"), "running": ("running", "stopped"), "power": ("on", "off")}

_ANY = msgspec.json.Decoder()


# ==================================================================================================== outputs


class FaultStory(msgspec.Struct):
    """Everything sent about one fault id: first raise, highest grade, the raise of each grade, the clearing."""

    id: str
    first: dict
    grade: str
    raises: list[dict]
    cleared: dict | None = None
    last: dict | None = None

    @property
    def permits(self) -> list[str]:
        seen: dict[str, None] = {}
        for record in self.raises + ([self.cleared] if self.cleared else []):
            for permit in record.get("permits") or []:
                seen[permit] = None
        return list(seen)


class Decisions(msgspec.Struct):
    """What the interlock sent: commands in order, faults by id."""

    commands: list[dict]
    faults: list[FaultStory]


def _json_object(output: Output, index: int) -> dict:
    try:
        value = _ANY.decode(output.value)
    except msgspec.DecodeError as error:
        raise ValueError(f"output {index} on {output.topic} is not JSON ({error}): {output.value[:80]!r}; pass the "
                         f"interlock's Output values unchanged") from None
    if not isinstance(value, dict):
        raise ValueError(f"output {index} on {output.topic} is not a JSON object: {output.value[:80]!r}")
    return value


def read_decisions(outputs: Iterable[Output]) -> Decisions:
    """Commands in the order sent, and faults grouped by id (a fault is raised once, re-sent when escalated, cleared)."""
    commands: list[dict] = []
    faults: dict[str, FaultStory] = {}
    for index, output in enumerate(outputs):
        if output.topic == COMMANDS_TOPIC:
            commands.append(_json_object(output, index))
        elif output.topic == FAULTS_TOPIC:
            record = _json_object(output, index)
            story = faults.get(record["id"])
            if story is None:
                story = faults[record["id"]] = FaultStory(record["id"], record, record["grade"], [])
            story.last = record
            if record["state"] == "cleared":
                story.cleared = record
            else:
                if not story.raises or story.raises[-1]["grade"] != record["grade"]:
                    story.raises.append(record)
                if GRADE_RANK.get(record["grade"], 9) < GRADE_RANK.get(story.grade, 9):
                    story.grade = record["grade"]
    return Decisions(commands, list(faults.values()))


def read_outputs(folder: str) -> list[Output]:
    """A replay's commands.jsonl and faults.jsonl read back as Outputs, in the order each file holds them."""
    outputs: list[Output] = []
    for topic, name in ((COMMANDS_TOPIC, "commands.jsonl"), (FAULTS_TOPIC, "faults.jsonl")):
        with open(os.path.join(folder, name), "rb") as handle:
            outputs += [Output(topic, None, line.strip()) for line in handle if line.strip()]
    return outputs


# ==================================================================================================== inputs


class InputEvent(msgspec.Struct, frozen=True):
    """An input a reader needs to follow the story: a permit state change, a CMDB change, a permit action, a device
    that starts reporting other firmware. `concerns` lists the permits and devices it is about."""

    ts: int
    kind: str
    label: str
    detail: str
    concerns: tuple[str, ...]
    source: str


class Tables(msgspec.Struct):
    """The table rows of a recording as they stood at its end, with their history where the report needs it."""

    topic_counts: Counter
    first_ts: int | None = None
    last_ts: int | None = None
    devices: dict[str, dict] = {}
    permits: dict[str, dict] = {}
    permit_states: dict[str, list[tuple[int, str]]] = {}
    zones: dict[str, dict] = {}
    worker_names: dict[str, str] = {}
    events: list[InputEvent] = []


def _where(record: Record) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"


def _row(record: Record) -> dict | None:
    if record.payload is None:
        return None
    try:
        row = _ANY.decode(record.payload)
    except msgspec.DecodeError:
        return None
    return row if isinstance(row, dict) else None


def read_tables(records: Sequence[Record | UnreadableRecord]) -> Tables:
    """First pass: counts per topic, the span, and the CMDB, GIS, HR and permit rows with the events among them."""
    tables = Tables(Counter(), devices={}, permits={}, permit_states={}, zones={}, worker_names={}, events=[])
    counts = tables.topic_counts
    for record in records:
        if tables.first_ts is None:
            tables.first_ts = record.ts
        tables.last_ts = record.ts
        if isinstance(record, UnreadableRecord):
            counts["unreadable lines"] += 1
            tables.events.append(InputEvent(record.ts, "unreadable", f"line {record.line} unreadable",
                                            f"recording line {record.line} is not a kcat envelope: {record.problem}",
                                            (), f"line {record.line}"))
            continue
        counts[record.topic] += 1
        if record.topic == "cmdb.devices":
            _device_row(tables, record)
        elif record.topic == "ptw.permits":
            _permit_row(tables, record)
        elif record.topic == "gis.zones":
            row = _row(record)
            if row and isinstance(row.get("zone"), str):
                tables.zones[row["zone"]] = row
        elif record.topic == "hr.qualifications":
            row = _row(record)
            if row and isinstance(row.get("worker"), str) and isinstance(row.get("name"), str):
                tables.worker_names[row["worker"]] = row["name"]
        elif record.topic == "ptw.actions":
            _permit_action(tables, record)
    return tables


def _device_row(tables: Tables, record: Record) -> None:
    device = record.key
    row = _row(record)
    if row is not None and isinstance(row.get("device"), str):
        device = row["device"]
    if device is None:
        return
    before = tables.devices.get(device)
    if row is None:
        if record.payload is None and before is not None:
            tables.events.append(InputEvent(record.ts, "cmdb", f"CMDB decommissions {device}",
                                            f"CMDB tombstone: {device} decommissioned", (device,), _where(record)))
            del tables.devices[device]
        return
    tables.devices[device] = row
    if before is None or before == row:
        return
    approved, was = row.get("firmware"), before.get("firmware")
    if approved != was:
        label = f"CMDB approves {device} firmware {approved}"
        detail = f"CMDB approves firmware {approved} for {device} (was {was})"
    else:
        changed = sorted(name for name in set(row) | set(before) if row.get(name) != before.get(name))
        label = f"CMDB changes {device}"
        detail = f"CMDB row of {device} changed: {', '.join(changed)}"
    tables.events.append(InputEvent(record.ts, "cmdb", label, detail, (device,), _where(record)))


def _permit_row(tables: Tables, record: Record) -> None:
    row = _row(record)
    if row is None:
        if record.payload is None and record.key in tables.permits:
            tables.permit_states.setdefault(record.key, []).append((record.ts, "deleted"))
            tables.events.append(InputEvent(record.ts, "permit", f"{record.key} deleted",
                                            f"permit {record.key} deleted (tombstone)", (record.key,), _where(record)))
        return
    permit, rev, state = row.get("permit"), row.get("rev"), row.get("state")
    if not (isinstance(permit, str) and isinstance(rev, int) and isinstance(state, str)):
        return
    held = tables.permits.get(permit)
    if held is not None and rev <= held.get("rev", -1):
        return
    tables.permits[permit] = row
    states = tables.permit_states.setdefault(permit, [])
    if not states or states[-1][1] != state:
        was = f" (was {states[-1][1]})" if states else ""
        states.append((record.ts, state))
        tables.events.append(InputEvent(record.ts, "permit", f"{permit} {state}",
                                        f"permit {permit} rev {rev} is {state}{was}", (permit,), _where(record)))


def _permit_action(tables: Tables, record: Record) -> None:
    row = _row(record)
    if row is None:
        return
    permit, action, by = row.get("permit"), row.get("action"), row.get("by")
    permit = permit if isinstance(permit, str) else "-"
    label = f"{action} by {by}"
    tables.events.append(InputEvent(record.ts, "action", label, f"{action} of {permit} sent by {by}", (permit,),
                                    _where(record)))


# ---------------------------------------------------------------------------------------------------- telemetry


class Verdict(msgspec.Struct, frozen=True):
    """Whether a payload is valid evidence for the device's approved firmware: `text` for its lane (` · `-separated,
    most important first), `lines` for the band over the charts, `tooltip` with the diagnosis."""

    valid: bool
    text: str
    tooltip: str
    lines: tuple[str, ...] = ()
    decoded_with: str | None = None
    """The schema the values were read with when it is not the approved firmware's (display only)."""


class ValiditySpans:
    """Stretches of a device's payloads with the same verdict, as (first time, last time, verdict)."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int, Verdict]] = []

    def note(self, ts: int, verdict: Verdict) -> None:
        spans = self.spans
        if spans:
            start, end, held = spans[-1]
            if held.text == verdict.text and ts - end <= DATA_GAP_MS:
                spans[-1] = (start, ts, held)
                return
        spans.append((ts, ts, verdict))


class GasSeries(msgspec.Struct):
    """One detector's readings as columns; invalid payloads keep the values they had when decoded leniently."""

    device: str
    ts: list[int]
    o2: list[float]
    lel: list[float]
    h2s: list[float]
    co: list[float]
    valid: list[bool]
    verdicts: ValiditySpans


class HarnessSeries(msgspec.Struct):
    """One harness's reports as columns: height (m), tied off, and whether the payload was valid evidence."""

    device: str
    ts: list[int]
    height_m: list[float]
    tied: list[bool]
    valid: list[bool]
    verdicts: ValiditySpans


class PlcSeries(msgspec.Struct):
    """A PLC's tags as change points (the gateway publishes every 5 s; only changes matter for a lane)."""

    plc: str
    changes: dict[str, list[tuple[int, bool]]]
    last_ts: int
    verdicts: ValiditySpans


class TagTrack(msgspec.Struct):
    """A UWB tag's fixes as packed columns (mm); `good` is 1 for a fix that is evidence of where the tag is."""

    ts: array
    x: array
    y: array
    z: array
    good: array
    box: list[float]
    """x_min, x_max, y_min, y_max over the good fixes: which zones a tag can have been in, without testing every fix."""


class Telemetry(msgspec.Struct):
    """The device data of a recording, per device, as the charts need it."""

    gas: dict[str, GasSeries]
    harness: dict[str, HarnessSeries]
    plc: dict[str, PlcSeries]
    tags: dict[str, TagTrack]
    events: list[InputEvent]


_NAN = float("nan")


def _nan(value: float | None) -> float:
    return _NAN if value is None else value


def judge_payload(family: str, row: dict | None, payload: str | bytes) -> tuple[object | None, Verdict]:
    """A device payload read as the interlock reads it (the schema of the CMDB's approved firmware) and, when that
    fails, leniently with the family's other schemas, for display only: (reading or None, verdict)."""
    approved = row.get("firmware") if row else None
    schema = schema_for_firmware(row.get("model") if row else None, approved)
    others = FAMILY_SCHEMAS[family]
    if row is None or schema is None:
        why = "no CMDB row" if row is None else f"{row.get('model')} {approved} not in the protocol catalog"
        for other in others:
            reading, _ = PAYLOAD_DECODERS[other](payload)
            if reading is not None:
                return reading, Verdict(False, f"NOT VALID · {why}", f"{why}; values decoded with {other}, display only",
                                        ("payload not valid:", why), other)
        return None, Verdict(False, f"NOT VALID · {why}", why, ("payload not valid:", why))
    reading, problem = PAYLOAD_DECODERS[schema](payload)
    if reading is not None:
        if reading.firmware != approved:
            return reading, Verdict(False, f"NOT VALID · reports {reading.firmware} · CMDB approves {approved}",
                                    f"reports firmware {reading.firmware}, CMDB approves {approved} (payload fits {schema})",
                                    ("firmware not approved:", f"reports {reading.firmware}", f"CMDB approves {approved}"))
        return reading, Verdict(True, f"valid · {approved} ({schema})", f"payloads fit {schema} of approved firmware {approved}")
    assert isinstance(problem, Diagnosis)
    reported = reported_field(payload, "fw") or "?"
    for other in problem.matches + tuple(s for s in others if s != schema and s not in problem.matches):
        lenient, _ = PAYLOAD_DECODERS[other](payload)
        if lenient is not None:
            return lenient, Verdict(
                False, f"NOT VALID for {approved} · sends {reported} · {other} shape",
                f"payload not valid for approved firmware {approved} ({schema}): {problem.summary()}; values shown "
                f"dashed as decoded with {other}, display only",
                ("payload not valid for", f"approved firmware {approved}:", f"sends {reported}, {other} shape"), other)
    return None, Verdict(False, f"NOT VALID for {approved} · {schema}", f"payload not valid for approved firmware "
                         f"{approved} ({schema}): {problem.summary()}", ("payload not valid for", f"approved firmware {approved}"))


def read_telemetry(records: Sequence[Record | UnreadableRecord], wanted: set[str], config: SiteConfig) -> Telemetry:
    """Second pass: readings of the wanted gas detectors, harnesses and PLCs (checked against the CMDB row in force at
    each record), and every UWB fix; a device that starts reporting other firmware is an input event."""
    telemetry = Telemetry({}, {}, {}, {}, [])
    devices: dict[str, dict] = {}
    reported: dict[str, str] = {}
    quality_min = config.fix_quality_min
    for record in records:
        if isinstance(record, UnreadableRecord) or record.payload is None:
            if isinstance(record, Record) and record.topic == "cmdb.devices" and record.key:
                devices.pop(record.key, None)
            continue
        topic = record.topic
        if topic == "rtls.position":
            _note_fixes(telemetry.tags, record, quality_min)
        elif topic == "cmdb.devices":
            row = _row(record)
            if row is not None and isinstance(row.get("device"), str):
                devices[row["device"]] = row
        elif topic in ("gas.readings", "harness.status"):
            if record.key is not None and record.key not in wanted:
                continue
            _note_device_payload(telemetry, record, devices, reported)
        elif topic == "plc.state" and (record.key is None or record.key in wanted):
            _note_plc(telemetry.plc, record)
    return telemetry


def _note_device_payload(telemetry: Telemetry, record: Record, devices: dict[str, dict], reported: dict[str, str]) -> None:
    gas = record.topic == "gas.readings"
    device = record.key or reported_field(record.payload, "dev")
    if device is None:
        return
    reading, verdict = judge_payload("gas" if gas else "harness", devices.get(device), record.payload)
    valid = verdict.valid
    firmware = reading.firmware if reading is not None else reported_field(record.payload, "fw")
    if firmware is not None:
        before = reported.get(device)
        reported[device] = firmware
        if before is not None and before != firmware:
            shape = f" ({verdict.decoded_with} shape)" if verdict.decoded_with else ""
            telemetry.events.append(InputEvent(
                record.ts, "firmware", f"{device} sends firmware {firmware}{shape}",
                f"{device} reports firmware {firmware} (was {before}); {verdict.tooltip}", (device,), _where(record)))
    ts = record.ts
    if gas:
        series = telemetry.gas.get(device)
        if series is None:
            series = telemetry.gas[device] = GasSeries(device, [], [], [], [], [], [], ValiditySpans())
        series.verdicts.note(ts, verdict)
        if isinstance(reading, GasSample):
            series.ts.append(ts)
            series.o2.append(_nan(reading.o2))
            series.lel.append(_nan(reading.lel))
            series.h2s.append(_nan(reading.h2s))
            series.co.append(_nan(reading.co))
            series.valid.append(valid)
    else:
        series = telemetry.harness.get(device)
        if series is None:
            series = telemetry.harness[device] = HarnessSeries(device, [], [], [], [], ValiditySpans())
        series.verdicts.note(ts, verdict)
        if isinstance(reading, HarnessSample):
            series.ts.append(ts)
            series.height_m.append(reading.height_mm / 1000)
            series.tied.append(reading.tied)
            series.valid.append(valid)


_PLC_VALID = Verdict(True, "valid", f"PLC state fits {PLC_SCHEMA}")


def _note_plc(plcs: dict[str, PlcSeries], record: Record) -> None:
    snapshot, problem = PAYLOAD_DECODERS[PLC_SCHEMA](record.payload)
    plc = snapshot.device if snapshot is not None else (record.key or reported_field(record.payload, "plc"))
    if plc is None:
        return
    series = plcs.get(plc)
    if series is None:
        series = plcs[plc] = PlcSeries(plc, {}, record.ts, ValiditySpans())
    series.last_ts = record.ts
    if snapshot is None:
        series.verdicts.note(record.ts, Verdict(False, f"NOT VALID · {PLC_SCHEMA}", f"PLC state not valid: {problem.summary()}"))
        return
    series.verdicts.note(record.ts, _PLC_VALID)
    for tag, value in snapshot.tags.items():
        changes = series.changes.setdefault(tag, [])
        if not changes or changes[-1][1] != value:
            changes.append((record.ts, value))


def _note_fixes(tags: dict[str, TagTrack], record: Record, quality_min: float) -> None:
    payload = record.payload
    first = payload.lstrip()[:1]
    schema = "qubit/2" if first in ("[", b"[") else "anchorline/4"
    fixes, _ = PAYLOAD_DECODERS[schema](payload)
    if fixes is None:
        return
    for fix in fixes:
        track = tags.get(fix.tag)
        if track is None:
            track = tags[fix.tag] = TagTrack(array("q"), array("d"), array("d"), array("d"), array("b"),
                                             [math.inf, -math.inf, math.inf, -math.inf])
        good = fix.located and fix.quality >= quality_min
        track.ts.append(record.ts)
        track.x.append(fix.x)
        track.y.append(fix.y)
        track.z.append(fix.z)
        track.good.append(1 if good else 0)
        if good:
            box = track.box
            if fix.x < box[0]:
                box[0] = fix.x
            if fix.x > box[1]:
                box[1] = fix.x
            if fix.y < box[2]:
                box[2] = fix.y
            if fix.y > box[3]:
                box[3] = fix.y


# ==================================================================================================== the story


class Story(msgspec.Struct):
    """Everything the page shows, read once from the records and the outputs."""

    title: str
    config: SiteConfig
    tables: Tables
    decisions: Decisions
    telemetry: Telemetry
    axis: TimeAxis
    order: list[str]
    """Permits, the eventful first (a stop, then alerts and faults), then by id."""
    charted: list[str]
    events: list[InputEvent]


def _permit_devices(permit: dict, tables: Tables) -> set[str]:
    """The devices whose data gate a permit: its detectors, harnesses, the PLCs of its equipment, its crew's tags."""
    wanted = set(_strings(permit.get("detectors"))) | set(_strings(permit.get("harnesses")))
    items = set(_strings(permit.get("equipment"))) | set(_strings(permit.get("isolations"))) | set(
        _strings(permit.get("ventilation")))
    crew = set(_crew(permit))
    for device, row in tables.devices.items():
        if row.get("family") == "plc" and items & set(_strings(row.get("equipment"))):
            wanted.add(device)
        if row.get("family") == "uwb_tag" and row.get("worker") in crew:
            wanted.add(device)
    return wanted


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _crew(permit: dict) -> list[str]:
    people = _strings(permit.get("workers"))
    guardian = permit.get("guardian")
    if isinstance(guardian, str) and guardian not in people:
        people.append(guardian)
    return people


def _permit_order(tables: Tables, decisions: Decisions) -> list[str]:
    permits = dict.fromkeys(list(tables.permits) + [c["permit"] for c in decisions.commands])
    rank: dict[str, tuple[int, int]] = {pid: (3, 0) for pid in permits}

    def note(pid: str, level: int, ts: int) -> None:
        if pid in rank and (level, ts) < rank[pid]:
            rank[pid] = (level, ts)

    for command in decisions.commands:
        level = {"HARD_STOP": 0, "ALERT": 1}.get(command["kind"], 2)
        note(command["permit"], level, command["ts"])
    for fault in decisions.faults:
        for pid in fault.permits:
            note(pid, 1, fault.first["ts"])
    return sorted(permits, key=lambda pid: (rank[pid], pid))


def build_story(records: Sequence[Record | UnreadableRecord], outputs: Iterable[Output], *, title: str,
                config: SiteConfig = DEFAULT_CONFIG) -> Story:
    """Read the records twice (tables, then the telemetry the charted permits need) and the outputs once."""
    decisions = read_decisions(outputs)
    tables = read_tables(records)
    order = _permit_order(tables, decisions)
    charted = [pid for pid in order if pid in tables.permits][:MAX_CHARTED_PERMITS]
    wanted: set[str] = set()
    for pid in charted:
        wanted |= _permit_devices(tables.permits[pid], tables)
    telemetry = read_telemetry(records, wanted, config)
    times = [t for t in (tables.first_ts, tables.last_ts) if t is not None]
    times += [c["ts"] for c in decisions.commands[-1:]] + [f.last["ts"] for f in decisions.faults[-1:] if f.last]
    start, end = (min(times), max(times)) if times else (0, 1_000)
    axis = TimeAxis(start, end + max(1_000, (end - start) // 100), config.utc_offset_minutes)
    events = sorted(tables.events + telemetry.events, key=lambda event: event.ts)
    return Story(title, config, tables, decisions, telemetry, axis, order, charted, events)


# ==================================================================================================== outcome lines


def _time(story: Story, ts: int) -> str:
    return clock_time(ts, story.config.utc_offset_minutes)


def _work(permit: dict | None) -> str:
    if not permit:
        return "(no permit record)"
    return f"{str(permit.get('type', '?')).replace('_', ' ')} in {permit.get('zone', '?')}"


def _command_words(command: dict) -> str:
    codes = [r["code"] for r in command["reasons"] if r["code"] not in ("ALL_PRECONDITIONS_MET", "RESET_ACCEPTED")]
    if command["kind"] == "HARD_STOP":
        codes.append("latched" if command.get("latched") else "not latched")
    if command["kind"] == "ALERT":
        codes.append(f"to {', '.join(command['targets'])}")
    return f" ({', '.join(codes)})" if codes else ""


def outcome_items(story: Story, pid: str) -> list[tuple[int, str, str]]:
    """A permit's story as (time, colour, text): commands and resets in order, e.g. `HARD_STOP 09:02:00
    (PAYLOAD_SCHEMA_MISMATCH, latched)`."""
    items = [(c["ts"], 1, COMMAND_COLOURS.get(c["kind"], "#555"), f"{c['kind']} {_time(story, c['ts'])}{_command_words(c)}")
             for c in story.decisions.commands if c["permit"] == pid]
    items += [(e.ts, 0, INPUT_COLOUR, f"{e.label} {_time(story, e.ts)}")
              for e in story.events if e.kind == "action" and pid in e.concerns]
    items.sort(key=lambda item: (item[0], item[1]))
    return [(ts, colour, text) for ts, _, colour, text in items]


def final_state(story: Story, pid: str) -> tuple[str, str]:
    """What the permit's equipment is doing at the end of the replay, as (text, colour)."""
    commands = [c for c in story.decisions.commands if c["permit"] == pid and c["kind"] != "ALERT"]
    if not commands:
        state = story.tables.permit_states.get(pid, [(0, "unknown")])[-1][1]
        return f"never enabled (permit {state})", "#8a8f98"
    last = commands[-1]
    if last["kind"] == "ENABLE":
        return "ENABLED at the end", COMMAND_COLOURS["ENABLE"]
    return ("STOPPED at the end (latched)" if last.get("latched") else "not enabled at the end"), COMMAND_COLOURS["HARD_STOP"]


# ==================================================================================================== markers


def _attrs(kind: str, ts: int, story: Story, **more: str) -> dict[str, str]:
    attrs = {"kind": kind, "ts": str(ts), "time": clock_time(ts, story.config.utc_offset_minutes, millis=True)}
    attrs.update({name: value for name, value in more.items() if value})
    return attrs


def command_marker(story: Story, command: dict, with_permit: bool) -> Marker:
    kind = command["kind"]
    reasons = [r["code"] for r in command["reasons"] if r["code"] not in ("ALL_PRECONDITIONS_MET",)]
    what = f"{kind} {command['permit']}" if with_permit else kind
    if kind == "HARD_STOP":
        what += f" · {', '.join(reasons)}" + (" · latched" if command.get("latched") else " · not latched")
    elif kind == "ALERT":
        what += f" · {', '.join(reasons)} → {', '.join(command['targets'])}"
    elif reasons:
        what += f" · {', '.join(reasons)}"
    tooltip = f"{format_site_time(command['ts'], story.config.utc_offset_minutes)} {kind} {command['permit']} " \
              f"{', '.join(command['targets'])}: " + "; ".join(f"{r['code']}: {r['detail']}" for r in command["reasons"])
    priority = {"HARD_STOP": 0, "ENABLE": 2, "ALERT": 2}.get(kind, 3)
    return Marker(command["ts"], COMMAND_COLOURS.get(kind, "#555"), f"{_time(story, command['ts'])} {what}", tooltip,
                  "solid", 3.0 if kind == "HARD_STOP" else 2.4, priority,
                  _attrs(kind, command["ts"], story, permit=command["permit"], id=command["id"]))


def fault_markers(story: Story, fault: FaultStory, label: bool = True) -> list[Marker]:
    markers = []
    for record in fault.raises:
        grade = record["grade"]
        subject = record.get("device") or record.get("subject") or ""
        text = f"{_time(story, record['ts'])} {grade} {record['code']}" + (f" · {subject}" if subject else "")
        tooltip = f"{format_site_time(record['ts'], story.config.utc_offset_minutes)} {grade} {record['code']} " \
                  f"raised ({fault.id}): {record.get('detail', '')}"
        priority = {"CRITICAL": 1, "MAJOR": 3}.get(grade, 6)
        markers.append(Marker(record["ts"], GRADE_COLOURS.get(grade, "#555"), text if label else "", tooltip,
                              "dashed", 2.2, priority,
                              _attrs("fault", record["ts"], story, grade=grade, code=record["code"], id=fault.id,
                                     device=subject)))
    if fault.cleared is not None:
        record = fault.cleared
        text = f"{_time(story, record['ts'])} cleared {record['code']} ×{record['count']}"
        tooltip = f"{format_site_time(record['ts'], story.config.utc_offset_minutes)} {record['code']} cleared " \
                  f"({fault.id}), raised {record['count']} times"
        markers.append(Marker(record["ts"], CLEARED_COLOUR, text if label else "", tooltip, "dashed", 1.4, 7,
                              _attrs("fault-cleared", record["ts"], story, code=record["code"], id=fault.id)))
    return markers


def event_marker(story: Story, event: InputEvent, label: bool = True) -> Marker:
    priority = {"cmdb": 1, "firmware": 1, "action": 1, "permit": 4, "unreadable": 6}.get(event.kind, 5)
    tooltip = f"{format_site_time(event.ts, story.config.utc_offset_minutes)} {event.detail} [{event.source}]"
    return Marker(event.ts, INPUT_COLOUR, f"{_time(story, event.ts)} {event.label}" if label else "", tooltip, "dotted",
                  2.2, priority, _attrs(event.kind, event.ts, story, concerns=" ".join(event.concerns)))


def permit_markers(story: Story, pid: str) -> list[Marker]:
    """A permit's markers, drawn input events first, then faults, then its commands on top."""
    permit = story.tables.permits.get(pid, {})
    devices = _permit_devices(permit, story.tables) if permit else set()
    concerned = devices | {pid}
    markers = [event_marker(story, e) for e in story.events if concerned & set(e.concerns)]
    for fault in story.decisions.faults:
        if pid in fault.permits or fault.first.get("device") in devices:
            markers += fault_markers(story, fault)
    markers += [command_marker(story, c, with_permit=False) for c in story.decisions.commands if c["permit"] == pid]
    return quiet_minor_labels(markers)


def quiet_minor_labels(markers: list[Marker]) -> list[Marker]:
    """When events are many, the minor ones (MINOR and INFO faults, clearings, permit paperwork) keep their line and
    hover text but give up their label, so stops, faults and approvals stay readable."""
    if len(markers) <= LABEL_ALL_UP_TO:
        return markers
    return [msgspec.structs.replace(m, label="") if m.priority >= MINOR_PRIORITY else m for m in markers]


def overview_markers(story: Story, permits: list[str]) -> list[Marker]:
    """The key events of the permits shown: their devices' and table changes, resets, CRITICAL and MAJOR faults, and
    their commands."""
    shown = set(permits)
    concerned = set(shown)
    for pid in permits:
        if pid in story.tables.permits:
            concerned |= _permit_devices(story.tables.permits[pid], story.tables)
    markers = [event_marker(story, e) for e in story.events
               if e.kind == "unreadable" or (e.kind in ("cmdb", "firmware", "action") and concerned & set(e.concerns))]
    for fault in story.decisions.faults:
        if fault.grade in ("CRITICAL", "MAJOR") and (shown & set(fault.permits) or not fault.permits):
            markers += [m for m in fault_markers(story, fault) if m.attrs.get("kind") == "fault"]
    markers += [command_marker(story, c, with_permit=True) for c in story.decisions.commands if c["permit"] in shown]
    return quiet_minor_labels(merge_coincident(markers))


def merge_coincident(markers: list[Marker]) -> list[Marker]:
    """Markers of the same kind, code and grade at the same instant (many permits stopped by one outage) become one,
    labelled for the first with `(+N more)`; `data-permit` then lists every permit."""
    groups: dict[tuple, list[Marker]] = {}
    for marker in markers:
        key = (marker.ts, marker.colour, marker.attrs.get("kind"), marker.attrs.get("code"), marker.attrs.get("grade"))
        groups.setdefault(key, []).append(marker)
    merged = []
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            merged.append(first)
            continue
        attrs = dict(first.attrs)
        for name in ("permit", "device", "concerns", "id"):
            values = [m.attrs[name] for m in group if m.attrs.get(name)]
            if values:
                attrs[name] = " ".join(dict.fromkeys(" ".join(values).split()))
        tooltip = first.tooltip + f"\n(and {len(group) - 1} more at the same time)"
        merged.append(msgspec.structs.replace(first, label=f"{first.label} (+{len(group) - 1} more)", tooltip=tooltip,
                                              attrs=attrs))
    return merged


# ==================================================================================================== lanes


class Look(msgspec.Struct, frozen=True):
    """How a stretch of an enable lane is drawn: words (most important first), fill, ink and hover text."""

    text: str
    fill: str
    ink: str
    tooltip: str


def _decision_look(command: dict, held: Look | None) -> Look | None:
    """What a command makes of the equipment: enabled, stopped (latched or not), or stopped awaiting the reset."""
    kind, codes = command["kind"], ", ".join(r["code"] for r in command["reasons"])
    if kind == "ENABLE":
        return Look("ENABLED · " + ", ".join(command["targets"]), COMMAND_COLOURS["ENABLE"], "#ffffff",
                    "enabled: " + "; ".join(r["detail"] for r in command["reasons"]))
    if kind == "HARD_STOP" and command.get("latched"):
        return Look(f"STOPPED (latched) · {codes}", COMMAND_COLOURS["HARD_STOP"], "#ffffff", f"stopped and latched: {codes}")
    if kind == "HARD_STOP":
        return Look(f"not enabled · {codes}", "#ef9a9a", "#1b1b1b", f"not enabled: {codes}")
    if kind == "ALERT" and "TRIP_RESET_REQUIRED" in codes:
        return Look(f"awaiting reset · by {', '.join(command['targets'])} · causes gone", "#ffcc80", "#1b1b1b",
                    "stopped; the causes of the stop are gone and the approver may reset")
    return held


def _lane_look(state: str | None, decision: Look | None) -> Look:
    """The decision when there is one (prefixed by the permit state when the permit is no longer active), else the
    permit's state."""
    if decision is None:
        if state == "active":
            return Look("active · not enabled yet", "#eceff1", "#1b1b1b", "active, no decision yet")
        return Look(f"permit {state}", "#eceff1", "#1b1b1b", f"permit {state}")
    if state not in (None, "active") and decision.fill != COMMAND_COLOURS["ENABLE"]:
        return msgspec.structs.replace(decision, text=f"permit {state} · {decision.text}")
    return decision


def enable_lane(story: Story, pid: str, label: str | None = None) -> Lane:
    """What the permit's equipment may do over time, from the permit's state changes and the interlock's commands (an
    input comes before the decisions made at its time)."""
    changes: list[tuple[int, int, str | dict]] = [(ts, 0, state) for ts, state in story.tables.permit_states.get(pid, [])]
    changes += [(c["ts"], 1, c) for c in story.decisions.commands if c["permit"] == pid]
    changes.sort(key=lambda change: (change[0], change[1]))
    state: str | None = None
    decision: Look | None = None
    looks: list[tuple[int, Look]] = []
    for ts, _, change in changes:
        if isinstance(change, str):
            state = change
        else:
            decision = _decision_look(change, decision)
        looks.append((ts, _lane_look(state, decision)))
    spans: list[Span] = []
    for index, (ts, look) in enumerate(looks):
        end = looks[index + 1][0] if index + 1 < len(looks) else story.axis.end_ms
        if spans and spans[-1].text == look.text:
            spans[-1] = msgspec.structs.replace(spans[-1], end=end)
        elif end > ts or index + 1 == len(looks):
            spans.append(Span(ts, max(end, ts + 1), look.fill, look.text, look.tooltip, ink=look.ink))
    permit = story.tables.permits.get(pid)
    return Lane(label or f"{pid} enable", spans, note=_work(permit) if label else "", height=30)


def validity_lane(label: str, verdicts: ValiditySpans, end_ms: int, note: str = "") -> Lane:
    """Payload validity of one device: green where valid evidence, hatched where data came but is not valid."""
    spans = []
    for start, end, verdict in verdicts.spans:
        end = min(end + 1_000, end_ms)
        if verdict.valid:
            spans.append(Span(start, end, VALID_FILL, verdict.text, verdict.tooltip))
        else:
            spans.append(Span(start, end, "#ffe3c2", verdict.text, verdict.tooltip, hatch=True))
    return Lane(label, spans, note=note)


def invalid_bands(verdicts: ValiditySpans, device: str, lines: slice | None = None, named: bool = False) -> list[Band]:
    """Hatched bands over a device's charts where its payloads were not valid; `lines` picks which lines of the
    verdict are written in them (the explanation runs down the stacked panels, two lines in each)."""
    bands = []
    for start, end, verdict in verdicts.spans:
        if not verdict.valid:
            written = ((device,) if named else ()) + verdict.lines + ("values dashed: display only",)
            bands.append(Band(start, end + 1_000, f"{device}: {verdict.tooltip}", written[lines] if lines else ()))
    return bands


def _range(values: Iterable[float], low: float, high: float) -> tuple[float, float]:
    finite = [v for v in values if v == v]
    if finite:
        low, high = min(low, min(finite)), max(high, max(finite))
    return low, high


def gas_rows(story: Story, permit: dict) -> list[Row]:
    """Per detector a payload-validity lane, then one panel per channel with every detector's line and the limits."""
    detectors = _strings(permit.get("detectors"))
    if not detectors:
        return []
    month = site_date(story.axis.start_ms, story.config.utc_offset_minutes).month
    limits = limits_for(story.config, str(permit.get("type")), month)
    rows: list[Row] = [Divider(f"Gas · {', '.join(detectors)} · limits for {_work(permit).split(' in ')[0]}: "
                               f"O2 {limits.o2_min:g}–{limits.o2_max:g} %vol, LEL < {limits.lel_max:g} %LEL, "
                               f"H2S < {limits.h2s_max:g} ppm, CO < {limits.co_max:g} ppm")]
    series = [story.telemetry.gas.get(device) for device in detectors]
    for device, found in zip(detectors, series):
        if found is None:
            rows.append(Lane(f"{device} payloads", [], note="no readings in the recording"))
            continue
        rows.append(validity_lane(f"{device} payloads", found.verdicts, story.axis.end_ms))
    bucket, start = story.axis.bucket_ms(), story.axis.start_ms
    for number, (channel, name, unit) in enumerate(GAS_CHANNELS):
        bands = [band for device, found in zip(detectors, series) if found is not None
                 for band in invalid_bands(found.verdicts, device, slice(2 * number, 2 * number + 2), len(detectors) > 1)]
        traces = []
        values: list[float] = []
        for index, (device, found) in enumerate(zip(detectors, series)):
            if found is None:
                continue
            column = getattr(found, channel)
            values += column
            traces.append(Trace(device, TRACE_COLOURS[index % len(TRACE_COLOURS)],
                                envelope_runs(found.ts, column, found.valid, start, bucket, DATA_GAP_MS)))
        low, high, thresholds = _channel_scale(channel, limits, values)
        rows.append(LinePanel(name, unit, low, high, traces, thresholds, bands))
    return rows


def _channel_scale(channel: str, limits: GasLimits, values: list[float]) -> tuple[float, float, list[Threshold]]:
    if channel == "o2":
        low, high = _range(values, limits.o2_min - 1.0, limits.o2_max + 1.0)
        return math.floor(low), math.ceil(high), [Threshold(limits.o2_max, f"max {limits.o2_max:g} %vol"),
                                                  Threshold(limits.o2_min, f"min {limits.o2_min:g} %vol")]
    maximum = getattr(limits, f"{channel}_max")
    unit = "%LEL" if channel == "lel" else "ppm"
    _, high = _range(values, 0.0, maximum * 1.4)
    return 0.0, math.ceil(high), [Threshold(maximum, f"limit {maximum:g} {unit}")]


def _zone_areas(story: Story, zone: str) -> tuple[Area | None, Area | None]:
    row = story.tables.zones.get(zone)
    if not row or not isinstance(row.get("polygon"), list):
        return None, None
    try:
        area = area_from_metres(row["polygon"], row.get("z"))
        entrance = row.get("entrance")
        gate = area_from_metres(entrance["polygon"]) if isinstance(entrance, dict) and entrance.get("polygon") else None
    except (TypeError, ValueError, KeyError, IndexError):
        return None, None
    return area, gate


def _presence_spans(track: TagTrack, area: Area, gate: Area | None, zone: str) -> list[Span]:
    looks = {
        "inside": (INSIDE_FILL, f"inside {zone}", "#ffffff"),
        "entrance": (ENTRANCE_FILL, "at the entrance", "#1b1b1b"),
        "outside": (OUTSIDE_FILL, "outside", "#1b1b1b"),
        "not located": (UNLOCATED_FILL, "not located", "#6b6b6b"),
    }
    spans: list[Span] = []
    current, start, last = None, 0, 0
    ts_column, xs, ys, zs, good = track.ts, track.x, track.y, track.z, track.good
    for index in range(len(ts_column)):
        ts = ts_column[index]
        if not good[index]:
            place = "not located"
        elif area.contains(xs[index], ys[index], zs[index]):
            place = "inside"
        elif gate is not None and gate.contains(xs[index], ys[index], zs[index]):
            place = "entrance"
        else:
            place = "outside"
        if current is not None and (place != current or ts - last > FIX_SILENCE_MS):
            end = ts if ts - last <= FIX_SILENCE_MS else last + 1_000
            fill, text, ink = looks[current]
            spans.append(Span(start, end, fill, text, f"{text} (UWB fixes)", ink=ink))
            current = None
        if current is None:
            current, start = place, ts
        last = ts
    if current is not None:
        fill, text, ink = looks[current]
        spans.append(Span(start, last + 1_000, fill, text, f"{text} (UWB fixes)", ink=ink))
    return spans


def _box_meets(track: TagTrack, area: Area) -> bool:
    x_min, x_max, y_min, y_max = track.box
    return not (x_max < area.x_min or x_min > area.x_max or y_max < area.y_min or y_min > area.y_max)


def _inside_stretches(track: TagTrack, area: Area, end_ms: int) -> list[tuple[int, int]]:
    """When a tag's last trusted fix put it inside (as the interlock holds it: a silent tag stays where it was)."""
    stretches: list[tuple[int, int]] = []
    entered = None
    ts_column, xs, ys, zs, good = track.ts, track.x, track.y, track.z, track.good
    for index in range(len(ts_column)):
        if not good[index]:
            continue
        inside = area.contains(xs[index], ys[index], zs[index])
        if inside and entered is None:
            entered = ts_column[index]
        elif not inside and entered is not None:
            stretches.append((entered, ts_column[index]))
            entered = None
    if entered is not None:
        stretches.append((entered, end_ms))
    return stretches


def people_rows(story: Story, permit: dict) -> list[Row]:
    """One lane per worker and the guardian (inside, at the entrance, outside, not located), then anyone else inside."""
    zone = str(permit.get("zone"))
    area, gate = _zone_areas(story, zone)
    rows: list[Row] = [Divider(f"People in {zone}")]
    if area is None:
        return rows + [Lane("zone", [], note=f"no GIS row for {zone}")]
    tags_of: dict[str, list[str]] = {}
    for device, row in story.tables.devices.items():
        if row.get("family") == "uwb_tag" and isinstance(row.get("worker"), str):
            tags_of.setdefault(row["worker"], []).append(device)
    guardian = permit.get("guardian")
    for person in _crew(permit):
        role = "guardian" if person == guardian else "worker"
        name = story.tables.worker_names.get(person, "")
        tags = [tag for tag in tags_of.get(person, []) if tag in story.telemetry.tags]
        if not tags:
            rows.append(Lane(f"{person} ({role})", [], note="no UWB fixes" if tags_of.get(person) else "no tag in CMDB"))
            continue
        spans = _presence_spans(story.telemetry.tags[tags[0]], area, gate, zone)
        rows.append(Lane(f"{person} ({role})", spans, note=f"tag {tags[0]}" + (f" · {name}" if name and name.isascii() else "")))
    rows.append(_others_lane(story, zone, area))
    return rows


def _others_lane(story: Story, zone: str, area: Area) -> Lane:
    """How many people not on any permit of the zone were inside, and who (an unregistered tag counts as a person)."""
    authorised: set[str] = set()
    for permit in story.tables.permits.values():
        if permit.get("zone") == zone:
            authorised |= set(_crew(permit))
    worker_of = {d: r.get("worker") for d, r in story.tables.devices.items() if r.get("family") == "uwb_tag"}
    changes: list[tuple[int, int, str]] = []
    for tag, track in story.telemetry.tags.items():
        worker = worker_of.get(tag)
        if worker in authorised or not _box_meets(track, area):
            continue
        who = worker if isinstance(worker, str) else f"unregistered tag {tag}"
        for entered, left in _inside_stretches(track, area, story.axis.end_ms):
            changes += [(entered, 1, who), (left, -1, who)]
    changes.sort(key=lambda change: (change[0], change[1]))
    spans: list[Span] = []
    inside: Counter = Counter()
    for index, (ts, step, who) in enumerate(changes):
        inside[who] += step
        if inside[who] <= 0:
            del inside[who]
        end = changes[index + 1][0] if index + 1 < len(changes) else story.axis.end_ms
        if inside and end > ts:
            names = ", ".join(sorted(inside))
            spans.append(Span(ts, end, "#d84315", f"{len(inside)} inside: {names}", f"not on a permit of {zone}: {names}",
                              ink="#ffffff"))
    return Lane("others inside", spans, note="nobody else" if not spans else "not on a permit of the zone")


def harness_rows(story: Story, permit: dict) -> list[Row]:
    harnesses = _strings(permit.get("harnesses"))
    if not harnesses:
        return []
    minimum_m = story.config.harness_height_min_mm / 1000
    rows: list[Row] = [Divider(f"Harnesses · tie-off required from {minimum_m:g} m")]
    bucket, start = story.axis.bucket_ms(), story.axis.start_ms
    for index, device in enumerate(harnesses):
        series = story.telemetry.harness.get(device)
        if series is None:
            rows.append(Lane(f"{device}", [], note="no reports in the recording"))
            continue
        rows.append(_hook_lane(series, story.axis.end_ms))
        if any(not verdict.valid for _, _, verdict in series.verdicts.spans):
            rows.append(validity_lane(f"{device} payloads", series.verdicts, story.axis.end_ms))
        low, high = _range(series.height_m, 0.0, minimum_m * 2)
        trace = Trace(device, TRACE_COLOURS[index % len(TRACE_COLOURS)],
                      envelope_runs(series.ts, series.height_m, series.valid, start, bucket, DATA_GAP_MS))
        rows.append(LinePanel(f"{device} height", "m above grade", math.floor(low), math.ceil(high), [trace],
                              [Threshold(minimum_m, f"tie-off from {minimum_m:g} m", "#ef6c00")],
                              invalid_bands(series.verdicts, device), height=48))
    return rows


def _hook_lane(series: HarnessSeries, end_ms: int) -> Lane:
    spans: list[Span] = []
    for ts, tied, valid in zip(series.ts, series.tied, series.valid):
        look = ("tied" if tied else "UNTIED") if valid else "not valid"
        if spans and spans[-1].text == look and ts - spans[-1].end <= DATA_GAP_MS:
            spans[-1] = msgspec.structs.replace(spans[-1], end=ts)
            continue
        if spans and ts - spans[-1].end <= DATA_GAP_MS:
            spans[-1] = msgspec.structs.replace(spans[-1], end=ts)
        if look == "tied":
            spans.append(Span(ts, ts, "#43a047", "tied", "at least one hook clipped", ink="#ffffff"))
        elif look == "UNTIED":
            spans.append(Span(ts, ts, "#e53935", "UNTIED", "no hook clipped", ink="#ffffff"))
        else:
            spans.append(Span(ts, ts, "#ffe3c2", "not valid", "payload not valid evidence", hatch=True))
    spans = [msgspec.structs.replace(span, end=min(span.end + 1_000, end_ms)) for span in spans]
    return Lane(f"{series.device} hooks", spans)


def plc_rows(story: Story, permit: dict) -> list[Row]:
    """Step lanes of the PLC signals the permit rests on or drives: isolations, ventilation, and its equipment."""
    wanted = [(item, "equipment") for item in _strings(permit.get("equipment"))]
    wanted += [(item, "isolation") for item in _strings(permit.get("isolations"))]
    wanted += [(item, "ventilation") for item in _strings(permit.get("ventilation"))]
    if not wanted:
        return []
    plc_of = {item: device for device, row in story.tables.devices.items() if row.get("family") == "plc"
              for item in _strings(row.get("equipment"))}
    rows: list[Row] = [Divider("PLC signals")]
    for item, role in wanted:
        plc = plc_of.get(item)
        series = story.telemetry.plc.get(plc) if plc else None
        if series is None:
            rows.append(Lane(item, [], note=f"{role} · " + (f"no state from {plc}" if plc else "on no PLC in the CMDB")))
            continue
        tags = [tag for tag in series.changes if tag.split(".", 1)[0] == item]
        if not tags:
            rows.append(Lane(item, [], note=f"{role} · {plc} reports no signal of it"))
        for tag in tags:
            rows.append(_signal_lane(tag, role, plc, series, story.axis.end_ms))
    return rows


def _signal_lane(tag: str, role: str, plc: str, series: PlcSeries, end_ms: int) -> Lane:
    signal = tag.split(".", 1)[-1]
    yes, no = SIGNAL_WORDS.get(signal, ("true", "false"))
    required = role in ("isolation", "ventilation")
    changes = series.changes[tag]
    spans = []
    for index, (ts, value) in enumerate(changes):
        end = changes[index + 1][0] if index + 1 < len(changes) else min(series.last_ts + 1_000, end_ms)
        if value:
            spans.append(Span(ts, end, "#37474f", yes, f"{tag} {yes} ({plc})", ink="#ffffff"))
        else:
            fill = "#ffcdd2" if required else "#eceff1"
            spans.append(Span(ts, end, fill, no, f"{tag} {no} ({plc})"))
    return Lane(tag, spans, note=f"{role} · {plc}")


# ==================================================================================================== the page

CSS = """
:root { --critical: #d32f2f; --major: #ef6c00; --minor: #f9c623; --info: #8a8f98; }
body { font-family: "DejaVu Sans", "Segoe UI", Roboto, Arial, sans-serif; margin: 0; color: #1b1b1b; background: #fff; }
main { max-width: 1360px; margin: 0 auto; padding: 18px 16px 60px; }
h1 { font-size: 34px; margin: 4px 0 6px; }
h2 { font-size: 27px; margin: 34px 0 6px; padding-top: 10px; border-top: 4px solid #263238; }
h3 { font-size: 20px; margin: 18px 0 6px; }
.span { font-size: 18px; margin: 0 0 10px; }
.counts { display: flex; flex-wrap: wrap; gap: 8px 26px; font-size: 15px; margin: 6px 0 12px; }
.counts div b { font-size: 16px; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 4px; font-weight: bold; font-size: 14px;
        white-space: nowrap; }
ul.outcomes { list-style: none; padding: 0; margin: 6px 0 8px; font-size: 17px; }
ul.outcomes li { margin: 5px 0; line-height: 1.5; }
ul.outcomes .pid { font-weight: bold; font-size: 18px; }
.item { white-space: nowrap; }
.item + .item::before { content: "•"; margin: 0 8px 0 2px; color: #999; }
.final { margin-left: 10px; }
.permit-facts { font-size: 15px; color: #333; margin: 2px 0 8px; }
.permit-outcome { font-size: 17px; margin: 4px 0 4px; }
.legend { font-size: 14px; color: #333; margin: 4px 0 6px; }
.legend span { margin-right: 16px; white-space: nowrap; }
.swatch { display: inline-block; width: 22px; height: 0; vertical-align: middle; margin-right: 5px; border-top: 3px solid; }
svg.chart { display: block; max-width: 100%; height: auto; font-family: inherit; }
svg .lane-label { font-size: 13.5px; font-weight: bold; fill: #1b1b1b; }
svg .lane-note { font-size: 11.5px; fill: #555; }
svg .lane-bg { fill: #f6f7f9; }
svg .panel-bg { fill: #fbfbfc; stroke: #d5d9de; }
svg .span-text { font-size: 12px; font-weight: bold; paint-order: stroke; }
svg .halo, svg .band-text { stroke: #fff; stroke-width: 3.5px; paint-order: stroke; }
svg .band-text { font-size: 12px; font-weight: bold; fill: #8a2c00; }
svg .axis-value { font-size: 10.5px; fill: #777; }
svg .threshold { font-size: 11px; font-weight: bold; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg .divider { font-size: 14.5px; font-weight: bold; fill: #263238; }
svg .divider-rule { stroke: #b0bec5; stroke-width: 1; }
svg .grid { stroke: #e3e6ea; stroke-width: 1; }
svg .tick { font-size: 12px; fill: #333; }
svg .marker-text { font-size: 12.5px; font-weight: bold; fill: #1b1b1b; }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin: 8px 0 16px; }
th, td { border: 1px solid #d5d9de; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #eceff1; position: sticky; top: 0; }
td.time, td.key { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.action { min-width: 220px; }
td.ids { word-break: break-all; min-width: 120px; }
table.faults td code { word-break: break-all; }
td code, li code { font-size: 13px; }
tr.grade-CRITICAL td:first-child { border-left: 6px solid var(--critical); }
tr.grade-MAJOR td:first-child { border-left: 6px solid var(--major); }
tr.grade-MINOR td:first-child { border-left: 6px solid var(--minor); }
tr.grade-INFO td:first-child { border-left: 6px solid var(--info); }
.more { font-style: italic; color: #555; }
details summary { cursor: pointer; font-size: 16px; margin: 6px 0; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _chip(text: str, fill: str, ink: str = "#ffffff") -> str:
    return f'<span class="chip" style="background:{fill};color:{ink}">{_e(text)}</span>'


def _grade_chip(grade: str, text: str | None = None) -> str:
    return _chip(text or grade, GRADE_COLOURS.get(grade, "#555"), GRADE_INK.get(grade, "#fff"))


def _kind_chip(kind: str, text: str | None = None) -> str:
    return _chip(text or kind, COMMAND_COLOURS.get(kind, "#555"), COMMAND_INK.get(kind, "#fff"))


def header_html(story: Story) -> str:
    """Recording, span in site time, counts, and one outcome line per permit: what a reader needs in ten seconds."""
    offset = story.config.utc_offset_minutes
    axis, tables = story.axis, story.tables
    sign = "+" if offset >= 0 else "-"
    zone_name = f"UTC{sign}{abs(offset) // 60}" + (f":{abs(offset) % 60:02d}" if offset % 60 else "")
    start = format_site_time(tables.first_ts or axis.start_ms, offset)
    end = format_site_time(tables.last_ts or axis.end_ms, offset)
    seconds = ((tables.last_ts or 0) - (tables.first_ts or 0)) / 1000
    topics = [t for t in TOPICS if t in tables.topic_counts] + sorted(t for t in tables.topic_counts if t not in TOPICS)
    records = " · ".join(f"{t} {tables.topic_counts[t]:,}" for t in topics)
    kinds = Counter(c["kind"] for c in story.decisions.commands)
    commands = " ".join(_kind_chip(kind, f"{kind} {kinds[kind]}") for kind in ("ENABLE", "HARD_STOP", "ALERT") if kinds[kind]) \
        or "none"
    grades = Counter(f.grade for f in story.decisions.faults)
    faults = " ".join(_grade_chip(g, f"{g} {grades[g]}") for g in ("CRITICAL", "MAJOR", "MINOR", "INFO") if grades[g]) \
        or "none"
    parts = [
        f"<h1>Replay report · {_e(story.title)}</h1>",
        f'<p class="span">{_e(start)} → {_e(end[11:])} site time ({zone_name}), {seconds:,.1f} s</p>',
        '<div class="counts">',
        f"<div><b>records</b> {sum(tables.topic_counts.values()):,}: {_e(records)}</div>",
        f"<div><b>commands</b> {commands}</div>",
        f"<div><b>faults</b> {faults}</div>",
        "</div>",
        "<h3>Outcome per permit</h3>",
        outcome_list_html(story, story.order),
    ]
    return "\n".join(parts)


def outcome_line_html(story: Story, pid: str, named: bool = True) -> str:
    items = outcome_items(story, pid)
    shown = items[:MAX_OUTCOME_ITEMS]
    words = " ".join(f'<span class="item" style="color:{colour}"><b>{_e(text)}</b></span>' for _, colour, text in shown)
    if len(items) > len(shown):
        words += f' <span class="item more">and {len(items) - len(shown)} more</span>'
    final, colour = final_state(story, pid)
    name = f'<span class="pid">{_e(pid)}</span> {_e(_work(story.tables.permits.get(pid)))}: ' if named else ""
    return f'{name}{words or "no command"} <span class="final">{_chip(final, colour)}</span>'


def outcome_list_html(story: Story, permits: list[str]) -> str:
    """One line per permit, the eventful first; a long list shows its head and folds the rest (no script needed)."""
    lines = [f"<li>{outcome_line_html(story, pid)}</li>" for pid in permits]
    if len(lines) <= MAX_OUTCOME_LINES:
        return f'<ul class="outcomes">{"".join(lines)}</ul>'
    shown = MAX_OUTCOME_LINES - 4
    return (f'<ul class="outcomes">{"".join(lines[:shown])}</ul><details><summary>{len(lines) - shown} more permits'
            f'</summary><ul class="outcomes">{"".join(lines[shown:])}</ul></details>')


def legend_html() -> str:
    entries = [
        (COMMAND_COLOURS["ENABLE"], "solid", "ENABLE"),
        (COMMAND_COLOURS["HARD_STOP"], "solid", "HARD_STOP"),
        (COMMAND_COLOURS["ALERT"], "solid", "ALERT"),
        (GRADE_COLOURS["CRITICAL"], "dashed", "CRITICAL fault"),
        (GRADE_COLOURS["MAJOR"], "dashed", "MAJOR fault"),
        (GRADE_COLOURS["MINOR"], "dashed", "MINOR fault"),
        (GRADE_COLOURS["INFO"], "dashed", "INFO fault"),
        (CLEARED_COLOUR, "dashed", "fault cleared"),
        (INPUT_COLOUR, "dotted", "input: CMDB / permit / reset / firmware change"),
    ]
    spans = "".join(f'<span><i class="swatch" style="border-top-color:{colour};border-top-style:{style}"></i>'
                    f"{_e(text)}</span>" for colour, style, text in entries)
    hatch = ('<span><i class="swatch" style="height:10px;border:0;background:repeating-linear-gradient(45deg,'
             '#e8590c 0 3px,#ffe3c2 3px 7px)"></i>payload not valid for the approved firmware (values dashed, display '
             'only)</span>')
    return f'<div class="legend">{spans}{hatch}</div>'


def overview_html(story: Story) -> str:
    shown = story.order[:MAX_OVERVIEW_LANES]
    lanes: list[Row] = [enable_lane(story, pid, label=pid) for pid in shown]
    more = len(story.order) - len(shown)
    note = f'<p class="more">{more} more permits are in the outcome list and the decision table.</p>' if more > 0 else ""
    svg = render_stack(story.axis, lanes, overview_markers(story, shown), max_label_rows=8,
                       caption="Overview: the enable state of every permit and the key events")
    return f'<h2 id="overview">Overview</h2>{legend_html()}{svg}{note}'


def permit_section_html(story: Story, pid: str) -> str:
    permit = story.tables.permits[pid]
    zone = str(permit.get("zone"))
    zone_name = story.tables.zones.get(zone, {}).get("name")
    facts = [f"workers {', '.join(_strings(permit.get('workers'))) or '-'}", f"guardian {permit.get('guardian', '-')}",
             f"approver {permit.get('approver', '-')}"]
    for field in ("equipment", "isolations", "ventilation", "detectors", "harnesses"):
        if _strings(permit.get(field)):
            facts.append(f"{field} {', '.join(_strings(permit.get(field)))}")
    rows: list[Row] = [enable_lane(story, pid)]
    rows += gas_rows(story, permit) + people_rows(story, permit) + harness_rows(story, permit) + plc_rows(story, permit)
    svg = render_stack(story.axis, rows, permit_markers(story, pid), caption=f"{pid}: every chart on one time axis")
    where = f"{_work(permit)}" + (f" ({zone_name})" if isinstance(zone_name, str) and zone_name else "")
    return (f'<h2 id="permit-{_e(pid)}">{_e(pid)} · {_e(where)}</h2>'
            f'<p class="permit-outcome">{outcome_line_html(story, pid, named=False)}</p>'
            f'<p class="permit-facts">{_e(" · ".join(facts))}</p>{svg}')


def _source(source: dict | None) -> str:
    if not source:
        return "timer"
    return f"{source.get('topic')}/{source.get('partition')}@{source.get('offset')}"


def decisions_table_html(story: Story) -> str:
    offset = story.config.utc_offset_minutes
    commands = story.decisions.commands
    rows = []
    for command in commands[:MAX_TABLE_ROWS]:
        reasons = "<br>".join(f"<code>{_e(r['code'])}</code>: {_e(r['detail'])}" for r in command["reasons"])
        faults = "<br>".join(f'<a href="#{_e(r["fault"])}"><code>{_e(r["fault"])}</code></a>'
                             for r in command["reasons"] if r.get("fault")) or "–"
        latched = {True: "latched", False: "not latched"}.get(command.get("latched"), "")
        rows.append(
            f'<tr id="{_e(command["id"])}"><td class="time">{_e(format_site_time(command["ts"], offset)[11:])}</td>'
            f"<td class=\"key\">{_kind_chip(command['kind'])} {_e(latched)}</td>"
            f"<td class=\"key\"><b>{_e(command['permit'])}</b></td>"
            f"<td>{_e(', '.join(command['targets']))}</td><td>{reasons}</td><td class=\"key\">{faults}</td>"
            f"<td class=\"key\"><code>{_e(_source(command.get('trigger')))}</code></td>"
            f"<td class=\"key\"><code>{_e(command['id'])}</code></td></tr>")
    more = len(commands) - MAX_TABLE_ROWS
    note = f'<p class="more">{more} more commands are in commands.jsonl.</p>' if more > 0 else ""
    return (f'<h2 id="decisions">Decisions ({len(commands)} commands)</h2><table class="decisions"><thead><tr>'
            "<th>time</th><th>kind</th><th>permit</th><th>targets</th><th>reasons (code: detail)</th><th>faults</th>"
            f"<th>trigger record</th><th>id</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{note}")


def faults_table_html(story: Story) -> str:
    offset = story.config.utc_offset_minutes
    faults = story.decisions.faults
    rows = []
    for fault in faults[:MAX_TABLE_ROWS]:
        first, last = fault.first, fault.last or fault.first
        raised = format_site_time(first["ts"], offset)[11:]
        if len(fault.raises) > 1:
            raised += "".join(f"<br>→ {_e(r['grade'])} {_e(format_site_time(r['ts'], offset)[11:])}" for r in fault.raises[1:])
        cleared = (f"cleared {_e(format_site_time(fault.cleared['ts'], offset)[11:])}" if fault.cleared
                   else "<b>not cleared</b>")
        firmware = "–"
        if first.get("firmware_reported") or first.get("firmware_approved"):
            firmware = f"{_e(first.get('firmware_reported', '?'))} / {_e(first.get('firmware_approved', '?'))}"
        schema = _e(first.get("schema_expected", "–"))
        if first.get("schema_matches"):
            schema += f"<br>matches {_e(', '.join(first['schema_matches']))}"
        expected_got = "–"
        if "expected" in first or "got" in first:
            expected_got = f"{_e(first.get('expected', '?'))} / {_e(first.get('got', '?'))}"
        kind = CATALOG.get(first["code"])
        action = kind.action if kind is not None else first.get("action", "")
        rows.append(
            f'<tr id="{_e(fault.id)}" class="grade-{_e(fault.grade)}"><td class="time">{raised}<br>{cleared}</td>'
            f'<td>{_grade_chip(fault.grade)}</td><td><code>{_e(first["code"])}</code>'
            f'<br><small>{_e(first.get("detail", ""))}</small></td>'
            f"<td>{_e(first.get('device') or first.get('subject') or '–')}</td><td>{firmware}</td>"
            f"<td>{schema}</td><td><code>{_e(first.get('path', '–'))}</code></td><td>{expected_got}</td>"
            f"<td>{last.get('count', 1)}</td><td>{_e(', '.join(fault.permits) or '–')}</td>"
            f"<td class=\"action\">{_e(action)}</td>"
            f"<td class=\"ids\"><code>{_e(_source(first.get('source')))}</code> <code>{_e(fault.id)}</code></td></tr>")
    more = len(faults) - MAX_TABLE_ROWS
    note = f'<p class="more">{more} more faults are in faults.jsonl.</p>' if more > 0 else ""
    return (f'<h2 id="faults">Faults ({len(faults)})</h2><table class="faults"><thead><tr><th>raised / cleared</th>'
            "<th>grade</th><th>code</th><th>device</th><th>firmware reported / approved</th><th>schema expected</th>"
            "<th>JSON path</th><th>expected / got</th><th>count</th><th>permits</th><th>operator's action</th>"
            f"<th>source record, id</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{note}")


def report_html(story: Story) -> str:
    """The whole page: header, overview, a section per charted permit, the decision and fault tables."""
    sections = [permit_section_html(story, pid) for pid in story.charted]
    uncharted = [pid for pid in story.order if pid not in story.charted]
    if uncharted:
        sections.append(f'<h2>Permits without charts ({len(uncharted)})</h2><p class="more">Only the '
                        f"{MAX_CHARTED_PERMITS} most eventful permits are charted; these ran as their outcome "
                        f"lines say.</p>{outcome_list_html(story, uncharted)}")
    body = "\n".join([header_html(story), overview_html(story), *sections, decisions_table_html(story),
                      faults_table_html(story)])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(story.title)} · replay report'
            f'</title><meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body><main>\n{body}\n</main></body></html>\n")


def write_report(records: Sequence[Record | UnreadableRecord], outputs: Iterable[Output], path: str | os.PathLike, *,
                 title: str, config: SiteConfig = DEFAULT_CONFIG) -> None:
    """Write the replay's report to `path`: one HTML file that needs nothing else to be read."""
    page = report_html(build_story(records, outputs, title=title, config=config))
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
