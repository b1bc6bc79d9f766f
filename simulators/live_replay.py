"""Publish a recording to Kafka as live traffic: `interlock simulate RECORDING --bootstrap SERVERS`.

Each record keeps its topic, key and payload (None stays a tombstone); the
producer picks the partition from the key, as the site's producers do. A live
interlock runs on the wall clock, so by default every time in the recording is
moved to now (`--rebase`): the Kafka timestamp and every time field of the
payloads (protocols §1-§9) shift by one delta, a whole number of seconds, and
calendar dates (§7) shift by the whole days that moves the site calendar.

Rebasing edits only the characters of the time values themselves: the rest of
each payload stays byte for byte as recorded (key order, number formats,
spacing, odd shapes), and a payload that is not JSON is sent unchanged, so an
incident's broken or foreign-firmware payloads arrive exactly as they were.

Pace: record k goes out at start + (ts_k - ts_first) / speed; `--speed 0`
sends as fast as the producer takes them. Only speed 1 keeps the rebased
times on the wall clock; a faster pace keeps the recorded spacing in the
timestamps (the record clock of the interlock sees the incident unchanged)
and so runs ahead of the wall clock.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import Callable

import msgspec
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from dataflows.kafka_io import LIBRDKAFKA_LOG, KafkaSettings, settings_from_pairs
from dataflows.recording import open_recording, read_recording
from interlock.config import DEFAULT_CONFIG, load_config
from interlock.site_time import site_day
from schemas.envelope import Record

MS = "ms"
"""An integer count of milliseconds since the epoch (JSON number)."""
SECONDS = "seconds"
"""Seconds since the epoch (JSON number, any decimals): Qubit `timestamp`."""
RFC3339 = "rfc3339"
"""An RFC 3339 time string: Anchorline `ts`."""
DATE = "date"
"""A calendar date string `YYYY-MM-DD` in the site calendar (§7)."""

ANY_ELEMENT = "*"
"""Path step that matches any element of an array."""

TIME_FIELDS: dict[str, dict[tuple[str, ...], str]] = {
    "rtls.position": {("ts",): RFC3339, (ANY_ELEMENT, "timestamp"): SECONDS},  # anchorline/4 object, qubit/2 array
    "gas.readings": {("ts",): MS, ("bump",): MS},  # gd4/2 has ts; gd4/3 adds bump
    "harness.status": {("ts",): MS},  # sh2/1 and sh2/2
    "plc.state": {("ts",): MS},
    "hr.qualifications": {
        ("medical_valid_until",): DATE,
        ("certs", ANY_ELEMENT, "issued"): DATE,
        ("certs", ANY_ELEMENT, "expires"): DATE,
        ("certs", ANY_ELEMENT, "review_due"): DATE,
    },
    "ptw.permits": {("valid_from",): MS, ("valid_to",): MS},
    "ptw.actions": {("ts",): MS},
}
"""Every time field of protocols §1-§9 by topic, as a JSON path from the payload's root. §5 and §6 have none."""


class TimeShift(msgspec.Struct, frozen=True):
    """How far a rebase moves a recording: every instant by `ms` (whole seconds), every calendar date by `days`."""

    ms: int
    days: int

    def __post_init__(self) -> None:
        if self.ms % 1000:
            raise ValueError(
                f"TimeShift.ms={self.ms}: use whole seconds, so that RFC 3339 and seconds fields keep their precision"
            )


NO_SHIFT = TimeShift(0, 0)


def time_shift(first_ts: int, now_ms: int, utc_offset_minutes: int = DEFAULT_CONFIG.utc_offset_minutes) -> TimeShift:
    """The shift that puts a recording's first record at `now_ms` (to the nearest second).

    Dates move by the days between the first record's site-calendar date and its date after the shift, so that at
    the start of the replay "today" relates to every certificate date exactly as it did in the recording.
    """
    ms = round((now_ms - first_ts) / 1000) * 1000
    return TimeShift(ms, site_day(first_ts + ms, utc_offset_minutes) - site_day(first_ts, utc_offset_minutes))


# ---------------------------------------------------------------------- rebasing payloads

_TOKEN = re.compile(
    r'[ \t\n\r]*(?:("(?:[^"\\]|\\.)*")|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)|(true|false|null)|([{}\[\],:]))'
)
_RFC3339 = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})([Tt ])([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_JSON = msgspec.json.Decoder()


def rebase_payload(topic: str, payload: str | bytes | None, shift: TimeShift) -> str | bytes | None:
    """The payload with every time field of its topic moved by `shift`, everything else byte for byte as it was.

    Tombstones, payloads that are not JSON and payloads of topics without time fields come back unchanged; so does a
    time field whose value is not of its kind (a string where a number belongs, a date that is not a date). Numbers
    keep their notation and decimals, except a time in exponent notation, which comes back in plain notation.
    """
    fields = TIME_FIELDS.get(topic)
    if payload is None or fields is None or shift == NO_SHIFT:
        return payload
    try:
        _JSON.decode(payload)  # only well-formed JSON is edited
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        spans: list[tuple[int, int, str]] = []
        _scan(text, 0, (), fields, spans)
    except (msgspec.DecodeError, ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
        return payload
    if not spans:
        return payload
    pieces = []
    done = 0
    for start, end, kind in spans:
        pieces.append(text[done:start])
        token = text[start:end]
        pieces.append(_shifted(token, kind, shift) or token)
        done = end
    pieces.append(text[done:])
    rebased = "".join(pieces)
    return rebased.encode("utf-8") if isinstance(payload, bytes) else rebased


def rebase_record(record: Record, shift: TimeShift) -> Record:
    """The record with its Kafka timestamp and payload times moved by `shift`."""
    return Record(
        record.topic, record.partition, record.offset, record.ts + shift.ms, record.key,
        rebase_payload(record.topic, record.payload, shift),
    )


def _scan(text: str, pos: int, path: tuple[str, ...], fields: dict[tuple[str, ...], str],
          spans: list[tuple[int, int, str]]) -> int:
    """Walk one JSON value of well-formed `text` from `pos`; note the spans of scalar values whose path is in `fields`.
    Returns the position after the value. Array elements are path step `*`."""
    token = _token(text, pos)
    string, number, literal, punctuation = token.groups()
    if punctuation == "{":
        pos = token.end()
        while True:
            key = _token(text, pos)
            if key.group(4) == "}":
                return key.end()
            if key.group(4) == ",":
                key = _token(text, key.end())
            raw = key.group(1)
            name = _JSON.decode(raw) if "\\" in raw else raw[1:-1]
            colon = _token(text, key.end())
            pos = _scan(text, colon.end(), path + (name,), fields, spans)
    if punctuation == "[":
        pos = token.end()
        element = path + (ANY_ELEMENT,)
        while True:
            after = _token(text, pos)
            if after.group(4) == "]":
                return after.end()
            if after.group(4) == ",":
                pos = after.end()
            pos = _scan(text, pos, element, fields, spans)
    kind = fields.get(path)
    if kind is not None:
        group = 1 if string is not None else 2 if number is not None else 3
        spans.append((token.start(group), token.end(group), kind))
    return token.end()


def _token(text: str, pos: int) -> re.Match[str]:
    token = _TOKEN.match(text, pos)
    if token is None:
        raise ValueError(f"no JSON token at {pos}: {text[pos:pos + 20]!r}")
    return token


def _shifted(token: str, kind: str, shift: TimeShift) -> str | None:
    """The JSON token moved by `shift` in the same notation, or None when it is not a value of `kind`."""
    if kind == MS or kind == SECONDS:
        if token.startswith('"') or token in ("true", "false", "null"):
            return None
        delta = shift.ms if kind == MS else shift.ms // 1000
        if "e" in token or "E" in token:
            return repr(float(token) + delta)
        if "." not in token:
            return str(int(token) + delta)
        try:
            return format(Decimal(token) + delta, "f")  # keeps the recorded number of decimals
        except InvalidOperation:
            return None
    if not token.startswith('"') or "\\" in token:
        return None
    text = token[1:-1]
    if kind == DATE:
        if _DATE.fullmatch(text) is None:
            return None
        try:
            moved = datetime.date.fromisoformat(text) + datetime.timedelta(days=shift.days)
        except ValueError:
            return None
        return f'"{moved.isoformat()}"'
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    day, separator, clock, fraction, zone = match.groups()
    try:
        moved = datetime.datetime.fromisoformat(f"{day}T{clock}") + datetime.timedelta(seconds=shift.ms // 1000)
    except ValueError:
        return None
    return f'"{moved:%Y-%m-%d}{separator}{moved:%H:%M:%S}{fraction or ""}{zone}"'


# ---------------------------------------------------------------------- publishing


def publish_recording(
    path: str,
    bootstrap: str,
    speed: float = 1.0,
    rebase: bool = True,
    on_progress: Callable[[int], None] | None = None,
    *,
    on_start: Callable[[int, TimeShift], None] | None = None,
    settings: KafkaSettings | None = None,
    utc_offset_minutes: int = DEFAULT_CONFIG.utc_offset_minutes,
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    flush_timeout_s: float = 30.0,
) -> int:
    """Send every record of the recording at `path` (`-`: standard input) to Kafka; returns how many were delivered.

    `speed` 1 is the recorded pace, 10 ten times faster, 0 as fast as possible. `on_progress(n)` is told of every n
    records handed to the producer (fits `tqdm.update`); `on_start(total, shift)` of the record count and the shift
    before the first is sent. Lines that are not kcat envelopes are skipped (they have no
    topic). Raises RuntimeError when records could not be delivered.
    """
    if speed < 0:
        raise ValueError(f"speed={speed}: use 1 for the recorded pace, a larger number to go faster, 0 for no pacing")
    with open_recording(path) as stream:
        records = [r for r in read_recording(stream) if isinstance(r, Record)]
    if not records:
        return 0
    first_ts = records[0].ts
    shift = time_shift(first_ts, now_ms(), utc_offset_minutes) if rebase else NO_SHIFT
    if on_start is not None:
        on_start(len(records), shift)
    failures: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(f"{message.topic()} key {message.key()!r}: {error.str()}")

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,  # keeps each partition in the recorded order through retries
        "linger.ms": 5,
        "delivery.report.only.error": True,
        "on_delivery": delivered,
        "client.id": "interlock-simulate",
        "logger": LIBRDKAFKA_LOG,
        **(settings or {}),
    })
    started = time.monotonic()
    unreported = 0
    for record in records:
        if speed > 0:
            due = started + (record.ts - first_ts) / 1000 / speed
            while (wait := due - time.monotonic()) > 0:
                if unreported and on_progress is not None:
                    on_progress(unreported)
                    unreported = 0
                producer.poll(min(wait, 0.1))
        payload = rebase_payload(record.topic, record.payload, shift)
        while True:
            try:
                producer.produce(record.topic, payload, record.key, timestamp=record.ts + shift.ms)
                break
            except BufferError:
                producer.poll(0.05)  # the local queue is full: let deliveries drain it
        unreported += 1
        if unreported >= 1000:
            producer.poll(0)
            if on_progress is not None:
                on_progress(unreported)
            unreported = 0
    if unreported and on_progress is not None:
        on_progress(unreported)
    waiting = producer.flush(flush_timeout_s)
    if waiting or failures:
        first = f"; first failure: {failures[0]}" if failures else ""
        raise RuntimeError(
            f"{waiting + len(failures)} of {len(records)} records were not delivered to Kafka at {bootstrap} within "
            f"{flush_timeout_s} s{first}; check that the brokers are up and the producer settings (-X) are right"
        )
    return len(records)


def add_simulate_command(commands: argparse._SubParsersAction) -> None:
    """Register `interlock simulate RECORDING --bootstrap SERVERS [--speed X] [--rebase/--no-rebase]`."""
    p = commands.add_parser("simulate", help="publish a kcat -J recording to Kafka as live traffic, times moved to now")
    p.add_argument("recording", help="recording file, or - for standard input")
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port[,host:port...]")
    p.add_argument("--speed", type=float, default=1.0, help="1 recorded pace (default), 10 ten times faster, 0 no pacing")
    p.add_argument(
        "--rebase", action=argparse.BooleanOptionalAction, default=True,
        help="move every time (Kafka timestamp and payload times) so the recording starts now (default: on)",
    )
    p.add_argument("--config", help="site settings (TOML) giving the site calendar for date fields; see docs/config.md")
    p.add_argument("-X", dest="settings", action="append", metavar="KEY=VALUE",
                   help="librdkafka producer setting, e.g. -X security.protocol=SASL_SSL (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=simulate)


def simulate(args: argparse.Namespace) -> int:
    """Publish the recording; print what was sent and how far its times moved."""
    from tqdm import tqdm

    try:
        settings = settings_from_pairs(args.settings)
        offset = DEFAULT_CONFIG.utc_offset_minutes
        if args.config is not None:
            with open(args.config, "rb") as handle:
                offset = load_config(handle.read()).utc_offset_minutes
    except (OSError, ValueError) as error:
        print(f"interlock simulate: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    shifts: list[TimeShift] = []
    try:
        with tqdm(unit="rec", unit_scale=True, desc="simulate", file=sys.stderr,
                  disable=not sys.stderr.isatty() or args.quiet, leave=False) as bar:

            def start(total: int, shift: TimeShift) -> None:
                bar.total = total
                shifts.append(shift)

            count = publish_recording(
                args.recording, args.bootstrap, args.speed, args.rebase, bar.update,
                on_start=start, settings=settings, utc_offset_minutes=offset,
            )
    except OSError as error:
        print(f"interlock simulate: cannot read recording {args.recording}: {error}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, KafkaException) as error:
        print(f"interlock simulate: {error}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    shift = shifts[0] if shifts else NO_SHIFT
    moved = (f"times moved by {shift.ms / 1000:+.0f} s, dates by {shift.days:+d} days" if args.rebase
             else "times as recorded")
    print(f"published {count} records from {args.recording} to {args.bootstrap} in {elapsed:.2f} s ({moved})",
          file=sys.stderr)
    return 0
