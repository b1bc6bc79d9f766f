"""The replay timeline: one line per command and fault, in decision order, for a control-room engineer to read at a glance."""

from __future__ import annotations

from typing import Iterable

import msgspec

from interlock.site_time import format_site_time

_ENTRY = msgspec.json.Decoder()


def _source(source: dict | None) -> str:
    if not source:
        return "timer"
    return f"{source['topic']}/{source['partition']}@{source['offset']}"


def _reason(reason: dict) -> str:
    """A reason resting on a fault points at it (its line tells the whole story); other reasons say their detail."""
    if reason.get("fault"):
        return f"{reason['code']} ({reason['fault']})"
    return f"{reason['code']}: {reason['detail']}"


def timeline_line(kind: str, record: dict, utc_offset_minutes: int) -> str:
    """One line: site time, grade or command, permit(s), what happened and why, and the input record it rests on."""
    when = format_site_time(record["ts"], utc_offset_minutes)
    if kind == "command":
        reasons = "; ".join(_reason(r) for r in record["reasons"])
        latched = " (latched)" if record.get("latched") else ""
        what = f"{record['kind']}{latched} {','.join(record['targets'])} <- {reasons}"
        return f"{when}  {record['kind']:<9} {record['permit']:<10} {what}  [{_source(record.get('trigger'))}]"
    permits = ",".join(record.get("permits") or []) or "-"
    state = record["state"]
    count = f" x{record['count']}" if record["count"] > 1 else ""
    if state == "raised":
        what = f"{record['code']} raised{count} ({record['id']}): {record['detail']} -> {record['action']}"
    else:
        times = "once" if record["count"] == 1 else f"{record['count']} times"
        what = f"{record['code']} cleared ({record['id']}) for {record.get('subject', '-')}, raised {times}"
    return f"{when}  {record['grade']:<9} {permits:<10} {what}  [{_source(record.get('source'))}]"


HEADER = f"{'time (site)':<23}  {'what':<9} {'permit':<10} details  [input record]"


def input_events(records: Iterable, utc_offset_minutes: int) -> list[tuple[int, str]]:
    """The inputs a reader needs to follow the story: permit state changes, firmware approvals in the CMDB, permit actions."""
    firmware: dict[str, str] = {}
    states: dict[str, tuple[int, str]] = {}
    events: list[tuple[int, str]] = []
    for record in records:
        topic = getattr(record, "topic", None)
        if topic not in ("cmdb.devices", "ptw.permits", "ptw.actions") or record.payload is None:
            continue
        try:
            row = _ENTRY.decode(record.payload)
        except msgspec.DecodeError:
            continue
        if not isinstance(row, dict):
            continue
        where = f"[{topic}/{record.partition}@{record.offset}]"
        when = format_site_time(record.ts, utc_offset_minutes)
        text = None
        permit = "-"
        if topic == "cmdb.devices":
            device, approved = row.get("device"), row.get("firmware")
            if isinstance(device, str) and isinstance(approved, str):
                before = firmware.get(device)
                firmware[device] = approved
                if before is not None and before != approved:
                    text = f"CMDB approves firmware {approved} for {device} (was {before})"
        elif topic == "ptw.permits":
            permit, rev, state = row.get("permit"), row.get("rev"), row.get("state")
            if isinstance(permit, str) and isinstance(rev, int) and isinstance(state, str):
                held = states.get(permit)
                if held is None or rev > held[0]:
                    states[permit] = (rev, state)
                    if held is None or held[1] != state:
                        text = f"permit {permit} rev {rev} is {state}" + (f" (was {held[1]})" if held else "")
            permit = permit if isinstance(permit, str) else "-"
        else:
            permit = row.get("permit") if isinstance(row.get("permit"), str) else "-"
            text = f"{row.get('action')} of {permit} sent by {row.get('by')}"
        if text is not None:
            events.append((record.ts, f"{when}  {'input':<9} {permit:<10} {text}  {where}"))
    return events


def merged_timeline(events: list[tuple[int, str]], evidence_lines: Iterable[bytes], utc_offset_minutes: int) -> list[str]:
    """Input events and decisions in time order; an input comes before the decisions made at its time."""
    rows: list[tuple[int, int, str]] = [(ts, 0, line) for ts, line in events]
    for raw in evidence_lines:
        if raw.strip():
            entry = _ENTRY.decode(raw)
            record = entry["record"]
            rows.append((record["ts"], 1, timeline_line(entry["type"], record, utc_offset_minutes)))
    rows.sort(key=lambda row: (row[0], row[1]))
    return [line for _, _, line in rows]
