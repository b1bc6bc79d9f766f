"""The firmware compatibility check behind `interlock certify`: sample payloads of a (model, firmware) pair go through
named rules before anyone approves that firmware in the CMDB.

This is the pure core: it takes the sample lines as bytes and returns one `RuleResult` per rule, and a plain-text
table of them. Each rule is independent, counts what it looked at, and never raises: an unforeseen error inside a
rule is a failure of that rule, because a check that could not finish has not shown the firmware to be compatible.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from msgspec import inspect as shapes

from schemas import payloads as wire
from schemas.catalog import FIRMWARE_SCHEMAS, SCHEMA_FAMILY, VENDOR_SCHEMAS, firmware_major, schema_for_firmware
from schemas.decoding import (
    GAS_CHANNEL_RANGES,
    GAS_CHANNELS,
    GD4V2_SENSOR_FAULT,
    HARNESS_HEIGHT_RANGE_M,
    KNOWN_SCHEMAS,
    MAX_PAYLOAD_BYTES,
    decode_payload,
    describe,
)

# The sheets' facts and the limits this check holds samples to ----------------------------------------------------

WIRE_TYPES: dict[str, Any] = {
    "gd4/2": wire.GD4v2,
    "gd4/3": wire.GD4v3,
    "sh2/1": wire.SH2v1,
    "sh2/2": wire.SH2v2,
    "anchorline/4": wire.AnchorlineFix,
    "qubit/2": wire.QubitBatch,
}
"""The schemas this check has rules for, with the wire type the interlock decodes each into."""

CERTIFIABLE_SCHEMAS = frozenset(WIRE_TYPES)
GAS = frozenset({"gd4/2", "gd4/3"})
HARNESS = frozenset({"sh2/1", "sh2/2"})
SEQUENCED = GAS | HARNESS
"""Schemas whose payloads carry `dev`, `fw`, an integer ms `ts` and a uint16 `seq`."""

DEVICE_ID_FIELDS = {"gd4/2": "dev", "gd4/3": "dev", "sh2/1": "dev", "sh2/2": "dev", "anchorline/4": "tag", "qubit/2": "tagId"}
FAMILY_TOPICS = {"gas": "gas.readings", "harness": "harness.status", "uwb": "rtls.position", "plc": "plc.state"}
"""The topic each device family publishes on (protocols §0)."""

GAS_UNITS = {"o2": "% vol", "lel": "% LEL", "h2s": "ppm", "co": "ppm"}
GD4_STATUSES = ("ok", "warmup", "fault", "cal_due")
HOOK_STATES = ("clipped", "unclipped")
GD4V2_ALARM_BITS = 0b1001_1111
"""Bits 0-4 (low O2, high O2, LEL, H2S, CO) and bit 7 (sensor fault) of the gd4/2 `alm` mask."""

UINT16_MODULUS = 65536
SEQ_MAX = UINT16_MODULUS - 1
SKEW_LIMIT_MS = 5_000
BUMP_MAX_AGE_MS = 24 * 3600 * 1000
PLAUSIBLE_EPOCH_MS = (946_684_800_000, 4_102_444_800_000)
"""2000-01-01 and 2100-01-01 in ms: a device time outside is a clock or unit error, not a time."""

EPOCH_MS_MAGNITUDE = (1e12, 1e14)
"""An epoch in milliseconds lies in this band (2001 to 5138); seconds fall below it, microseconds above."""

EPOCH_S_MAGNITUDE = (1e8, 1e11)
"""An epoch in seconds lies in this band (1973 to 5138); milliseconds fall above it."""

ANCHORLINE_MAX_ABS_M = 10_000.0
"""Site coordinates in metres stay within 10 km of the site origin; millimetres exceed it as soon as a tag is 10 m out."""

QUBIT_METRES_BELOW_MM = 1_000.0
"""A Qubit fix whose three coordinates are all below 1000 and not whole numbers reads as metres, not millimetres."""

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(?:Z|[+-]\d{2}:\d{2})$")
_SIMPLE_KEY = re.compile(r"[A-Za-z_]\w*")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_ONE_MS = datetime.timedelta(milliseconds=1)


class _Nothing:
    """The marker for a value that is not there: a field the payload lacks, or a sample that is not JSON."""

    def __repr__(self) -> str:
        return "nothing"


NOTHING: Any = _Nothing()


# Results ----------------------------------------------------------------------------------------------------------


class RuleResult(msgspec.Struct, frozen=True):
    """One rule's outcome over the whole sample set."""

    rule: str
    passed: bool
    checked: int
    failures: int
    example: str
    """The first failure (sample line number, JSON path, expected, got); for a passed rule empty or a note on what was not checked."""


class Tally(msgspec.Struct):
    """What one rule has seen so far: how many samples or values it checked, how many failed, and the first failure."""

    rule: str
    checked: int = 0
    failures: int = 0
    example: str = ""

    def passes(self) -> None:
        """Count one checked sample or value that is fine."""
        self.checked += 1

    def fails(self, line: int, path: str, expected: str, got: str) -> None:
        """Count one checked sample or value that is not, keeping the first as the example."""
        self.checked += 1
        self.failures += 1
        if not self.example:
            self.example = printable(f"line {line}: {path}: expected {expected}, got {got}")

    def record(self, ok: bool, line: int, path: str, expected: str, got: Callable[[], str]) -> None:
        """Count one check; `got` is only described when the check failed."""
        if ok:
            self.passes()
        else:
            self.fails(line, path, expected, got())

    def result(self, note: str = "") -> RuleResult:
        """The rule's result; `note` stands in the example column of a rule that passed."""
        passed = self.failures == 0
        return RuleResult(self.rule, passed, self.checked, self.failures, printable(note) if passed else self.example)


# Samples ----------------------------------------------------------------------------------------------------------


class Sample(msgspec.Struct, frozen=True):
    """One sample line: its number, the payload bytes, what its kcat envelope said (if it had one), and the payload parsed."""

    line: int
    payload: bytes
    record_ts: int | None = None
    record_topic: str | None = None
    record_key: str | None = None
    document: Any = NOTHING
    json_error: str = ""


class CertificationRun(msgspec.Struct, frozen=True):
    """What every rule looks at: the pair under test, the schema the catalog gives it, and the samples."""

    model: str
    firmware: str
    schema: str | None
    samples: tuple[Sample, ...]


def _as_bytes(line: object) -> bytes:
    if isinstance(line, str):
        return line.encode("utf-8", "surrogatepass")
    return bytes(line)  # type: ignore[call-overload]


def _envelope(line: bytes) -> dict[str, Any] | None:
    """The line as a kcat -J envelope (an object with a string `payload` and an integer `ts`), or None when it is a raw payload."""
    if b'"payload"' not in line:
        return None
    try:
        obj = json.loads(line.decode("utf-8"))
    except Exception:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("payload"), str) and type(obj.get("ts")) is int:
        return obj
    return None


def _parse_json(payload: bytes) -> tuple[Any, str]:
    """The payload parsed the way the interlock parses it (msgspec, last duplicate key wins), or NOTHING and why not."""
    try:
        return msgspec.json.decode(payload), ""
    except Exception as error:
        return NOTHING, f"{type(error).__name__}: {error}"


def read_sample(number: int, line: bytes) -> Sample:
    """One sample from one line: a kcat envelope gives its payload, record time, topic and key; any other line is the payload."""
    envelope = _envelope(line)
    if envelope is None:
        document, error = _parse_json(line)
        return Sample(number, line, document=document, json_error=error)
    payload = envelope["payload"].encode("utf-8", "surrogatepass")
    topic = envelope.get("topic")
    key = envelope.get("key")
    document, error = _parse_json(payload)
    return Sample(
        number,
        payload,
        record_ts=envelope["ts"],
        record_topic=topic if isinstance(topic, str) else None,
        record_key=key if isinstance(key, str) else None,
        document=document,
        json_error=error,
    )


def read_samples(lines: list[bytes]) -> tuple[Sample, ...]:
    """Every non-blank line as a sample, numbered by its position in `lines` (1-based); never raises."""
    samples = []
    for index, raw in enumerate(lines):
        number = index + 1
        try:
            line = _as_bytes(raw).rstrip(b"\r\n")
        except Exception as error:
            samples.append(Sample(number, b"", json_error=f"unreadable line: {type(error).__name__}"))
            continue
        if not line.strip():
            continue
        try:
            samples.append(read_sample(number, line))
        except Exception as error:
            samples.append(Sample(number, line, json_error=f"{type(error).__name__}: {error}"))
    return tuple(samples)


# Reading a payload leniently --------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """The text with control characters and lone surrogates escaped, so a result prints on one line in any terminal."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def got(value: Any) -> str:
    """A short description of a JSON value (or of its absence) as a failure's `got`."""
    if value is NOTHING:
        return "nothing"
    return describe(value)


def child(path: str, key: str) -> str:
    """The JSON path of an object member, in the form the decoder's diagnoses use."""
    return f"{path}.{key}" if _SIMPLE_KEY.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def field(record: Any, name: str) -> Any:
    """A member of a JSON object, or NOTHING when the record is not an object or lacks it."""
    if isinstance(record, dict) and name in record:
        return record[name]
    return NOTHING


def is_int(value: Any) -> bool:
    """A JSON integer (a boolean is not one)."""
    return type(value) is int


def is_number(value: Any) -> bool:
    """A finite JSON number (a boolean is not one)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def records(run: CertificationRun) -> Iterator[tuple[Sample, str, Any]]:
    """Every device record of every sample that parsed as JSON, with its path: the payload, or each element of a qubit/2 batch."""
    for sample in run.samples:
        if sample.document is NOTHING:
            continue
        if run.schema == "qubit/2" and isinstance(sample.document, list):
            for index, element in enumerate(sample.document):
                yield sample, f"$[{index}]", element
        else:
            yield sample, "$", sample.document


def gas_channels(schema: str, record: Any, prefix: str) -> Iterator[tuple[str, str, Any]]:
    """(channel, path, value) of each gas channel the record carries, read by position (gd4/2) or by name (gd4/3)."""
    r = field(record, "r")
    path = f"{prefix}.r"
    if schema == "gd4/2" and isinstance(r, list):
        for index, (channel, value) in enumerate(zip(GAS_CHANNELS, r)):
            yield channel, f"{path}[{index}]", value
    elif schema == "gd4/3" and isinstance(r, dict):
        for channel in GAS_CHANNELS:
            if channel in r:
                yield channel, f"{path}.{channel}", r[channel]


def parse_rfc3339(text: Any) -> datetime.datetime | None:
    """An RFC 3339 time with a zone, read leniently (any precision), or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def device_time(schema: str, record: Any, prefix: str) -> tuple[str, int | None]:
    """(path, ms since the epoch) of the time the device stamped on the record; None when it cannot be read."""
    if schema in SEQUENCED:
        ts = field(record, "ts")
        return f"{prefix}.ts", ts if is_int(ts) else None
    if schema == "anchorline/4":
        moment = parse_rfc3339(field(record, "ts"))
        return f"{prefix}.ts", None if moment is None else (moment - _EPOCH) // _ONE_MS
    if schema == "qubit/2":
        seconds = field(record, "timestamp")
        millis = seconds * 1000 if is_number(seconds) else math.nan
        return f"{prefix}.timestamp", round(millis) if math.isfinite(millis) else None
    return prefix, None


# The schema's shape, taken from the wire Structs the interlock decodes into ----------------------------------------


class ShapeIssue(msgspec.Struct, frozen=True):
    """One place where a payload's shape differs from the schema: a `missing`, `unknown` or wrongly `typed` field."""

    kind: str
    path: str
    expected: str
    got: str


def _type_fits(kind: Any, value: Any) -> bool:
    if isinstance(kind, shapes.UnionType):
        return any(_type_fits(member, value) for member in kind.types)
    if isinstance(kind, shapes.IntType):
        return is_int(value)
    if isinstance(kind, shapes.FloatType):
        return type(value) in (int, float)
    if isinstance(kind, (shapes.StrType, shapes.DateTimeType)):
        return isinstance(value, str)
    if isinstance(kind, shapes.BoolType):
        return isinstance(value, bool)
    if isinstance(kind, shapes.NoneType):
        return value is None
    if isinstance(kind, shapes.LiteralType):
        return type(value) in {type(option) for option in kind.values}
    if isinstance(kind, shapes.ListType):
        return isinstance(value, list)
    if isinstance(kind, (shapes.StructType, shapes.DictType)):
        return isinstance(value, dict)
    return True


def _type_name(kind: Any) -> str:
    if isinstance(kind, shapes.UnionType):
        return " or ".join(_type_name(member) for member in kind.types)
    if isinstance(kind, shapes.LiteralType):
        return "integer" if all(is_int(option) for option in kind.values) else "string"
    if isinstance(kind, shapes.DateTimeType):
        return "RFC 3339 date-time string"
    names = {
        shapes.IntType: "integer",
        shapes.FloatType: "number",
        shapes.StrType: "string",
        shapes.BoolType: "boolean",
        shapes.NoneType: "null",
        shapes.ListType: "array",
        shapes.StructType: "object",
        shapes.DictType: "object",
    }
    return names.get(type(kind), type(kind).__name__)


def _shape_walk(schema: str, kind: Any, value: Any, path: str, issues: list[ShapeIssue]) -> None:
    if isinstance(kind, shapes.UnionType):
        for member in kind.types:
            if _type_fits(member, value):
                _shape_walk(schema, member, value, path, issues)
                return
    if not _type_fits(kind, value):
        issues.append(ShapeIssue("typed", path, _type_name(kind), got(value)))
        return
    if isinstance(kind, shapes.StructType):
        names = {member.encode_name for member in kind.fields}
        for member in kind.fields:
            member_path = child(path, member.encode_name)
            if member.encode_name in value:
                _shape_walk(schema, member.type, value[member.encode_name], member_path, issues)
            elif member.required:
                issues.append(ShapeIssue("missing", member_path, f"required field `{member.encode_name}`", "nothing"))
        if kind.forbid_unknown_fields:
            for key in value:
                if key not in names:
                    issues.append(ShapeIssue("unknown", child(path, str(key)), f"no field `{key}` in {schema}", "unknown field"))
    elif isinstance(kind, shapes.ListType):
        for index, item in enumerate(value):
            _shape_walk(schema, kind.item_type, item, f"{path}[{index}]", issues)
    elif isinstance(kind, shapes.DictType):
        for key, item in value.items():
            _shape_walk(schema, kind.value_type, item, child(path, str(key)), issues)


_SHAPES = {schema: shapes.type_info(kind) for schema, kind in WIRE_TYPES.items()}


def shape_issues(schema: str, document: Any) -> list[ShapeIssue]:
    """Every missing, unknown and wrongly typed field of a parsed payload against the schema's wire Struct (limits aside)."""
    issues: list[ShapeIssue] = []
    _shape_walk(schema, _SHAPES[schema], document, "$", issues)
    return issues


def _shape_rule(run: CertificationRun, tally: Tally, kind: str) -> str:
    for sample in run.samples:
        if sample.document is NOTHING:
            continue
        issues = [issue for issue in shape_issues(run.schema or "", sample.document) if issue.kind == kind]
        if issues:
            first = issues[0]
            tally.fails(sample.line, first.path, first.expected, first.got)
        else:
            tally.passes()
    return ""


# The rules --------------------------------------------------------------------------------------------------------


def samples_present(run: CertificationRun, tally: Tally) -> str:
    """At least one sample: a certification over no payloads shows nothing about the firmware."""
    tally.checked = len(run.samples)
    if not run.samples:
        tally.failures = 1
        tally.example = "no samples: expected at least one payload line, got none"
    return ""


def catalog_schema(model: str, firmware: str) -> str | None:
    """The schema the protocol catalog gives a (model, firmware) pair; a UWB vendor name as model (`anchorline`, `qubit`)
    maps to its vendor schema when the firmware major is the schema's version (Anchorline 4.x, Qubit 2.x)."""
    schema = schema_for_firmware(model, firmware)
    if schema is not None:
        return schema
    vendor_schema = VENDOR_SCHEMAS.get(model if isinstance(model, str) else "")
    if vendor_schema is not None and isinstance(firmware, str) and firmware_major(firmware) == vendor_schema.rpartition("/")[2]:
        return vendor_schema
    return None


def _catalog_gap(model: str, firmware: str) -> str:
    majors = FIRMWARE_SCHEMAS.get(model)
    if majors is None and model not in VENDOR_SCHEMAS:
        known = ", ".join([*FIRMWARE_SCHEMAS, *VENDOR_SCHEMAS])
        return f"model {model!r}, which the catalog does not know (it knows {known})"
    major = firmware_major(firmware) if isinstance(firmware, str) else None
    if major is None:
        return f"firmware {firmware!r}, which is not a dotted version"
    if majors is None:
        return f"{model} firmware {major}.x; the catalog has {VENDOR_SCHEMAS[model]} only"
    return f"{model} firmware {major}.x; the catalog has {', '.join(f'{m}.x' for m in majors)}"


def catalog_known(run: CertificationRun, tally: Tally) -> str:
    """The (model, firmware) pair maps to a schema in the protocol catalog that this check has rules for."""
    pair = f"{run.model} {run.firmware}"
    tally.checked = 1
    if run.schema is None:
        tally.failures = 1
        tally.example = printable(f"{pair}: expected a pair the protocol catalog maps to a schema, got "
                                  f"{_catalog_gap(run.model, run.firmware)}")
    elif run.schema not in CERTIFIABLE_SCHEMAS:
        tally.failures = 1
        tally.example = printable(f"{pair}: expected a schema the certification rules cover, got {run.schema}")
    return ""


def utf8(run: CertificationRun, tally: Tally) -> str:
    """Every payload is valid UTF-8, as JSON on the wire must be."""
    for sample in run.samples:
        try:
            sample.payload.decode("utf-8")
        except UnicodeDecodeError as error:
            tally.fails(sample.line, "$", "UTF-8 text", f"byte 0x{sample.payload[error.start]:02x} at offset {error.start}")
        else:
            tally.passes()
    return ""


def json_wellformed(run: CertificationRun, tally: Tally) -> str:
    """Every payload parses as JSON with the parser the interlock uses (no NaN, no trailing garbage)."""
    for sample in run.samples:
        if sample.document is NOTHING:
            tally.fails(sample.line, "$", "well-formed JSON", sample.json_error or "not JSON")
        else:
            tally.passes()
    return ""


def payload_size(run: CertificationRun, tally: Tally) -> str:
    """Every payload fits the size the interlock accepts before parsing."""
    for sample in run.samples:
        size = len(sample.payload)
        tally.record(size <= MAX_PAYLOAD_BYTES, sample.line, "$", f"at most {MAX_PAYLOAD_BYTES} bytes", lambda: f"{size} bytes")
    return ""


class _ObjectWithPairs(dict):  # type: ignore[type-arg]
    """A JSON object built by json.loads that remembers the keys it saw more than once."""

    duplicates: tuple[str, ...] = ()


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> _ObjectWithPairs:
    obj = _ObjectWithPairs(pairs)
    seen: set[str] = set()
    repeated = []
    for key, _ in pairs:
        if key in seen:
            repeated.append(key)
        seen.add(key)
    obj.duplicates = tuple(repeated)
    return obj


def first_duplicate_key(document: Any) -> str | None:
    """The path of the first key repeated within one object of a document parsed with `_object_from_pairs`, or None."""
    stack: list[tuple[str, Any]] = [("$", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _ObjectWithPairs):
            if value.duplicates:
                return child(path, value.duplicates[0])
            stack.extend(reversed([(child(path, key), item) for key, item in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{index}]", item) for index, item in enumerate(value)]))
    return None


def duplicate_keys(run: CertificationRun, tally: Tally) -> str:
    """No object repeats a key: the decoder keeps the last one silently, so a repeated key hides a value the device sent."""
    for sample in run.samples:
        try:
            document = json.loads(sample.payload.decode("utf-8"), object_pairs_hook=_object_from_pairs)
        except Exception:
            continue  # not JSON: json_wellformed and utf8 say so
        path = first_duplicate_key(document)
        if path is None:
            tally.passes()
        else:
            tally.fails(sample.line, path, "each key once per object", "the key repeated")
    return ""


def record_topic(run: CertificationRun, tally: Tally) -> str:
    """Envelope samples come from the topic the schema's device family publishes on, so they are the stream the interlock reads."""
    expected = FAMILY_TOPICS.get(SCHEMA_FAMILY.get(run.schema or "", ""), "")
    for sample in run.samples:
        if sample.record_topic is None:
            continue
        topic = sample.record_topic
        tally.record(topic == expected, sample.line, "envelope topic", f'"{expected}"', lambda: f'"{topic}"')
    return "" if tally.checked else "no kcat envelopes with a topic among the samples: nothing to check"


def required_fields(run: CertificationRun, tally: Tally) -> str:
    """Every field the schema requires is present."""
    return _shape_rule(run, tally, "missing")


def unknown_fields(run: CertificationRun, tally: Tally) -> str:
    """No field the schema does not define: a field the approved firmware does not send means the payload has changed meaning."""
    return _shape_rule(run, tally, "unknown")


def field_types(run: CertificationRun, tally: Tally) -> str:
    """Every field has the schema's JSON type (integer, number, string, boolean, array, object or null)."""
    return _shape_rule(run, tally, "typed")


def _numbers(value: Any, count: int) -> bool:
    return isinstance(value, list) and len(value) == count and all(is_number(item) for item in value)


def array_layout(run: CertificationRun, tally: Tally) -> str:
    """Arrays and channel maps have the sheet's layout: gd4/2 `r` four numbers O2, LEL, H2S, CO; gd4/3 `r` exactly the four
    channel keys; Anchorline `pos` three numbers; sh2/2 `hooks` at least one 0/1; a Qubit batch at least one tag."""
    schema = run.schema
    if schema == "qubit/2":
        for sample in run.samples:
            batch = sample.document
            if batch is NOTHING:
                continue
            ok = isinstance(batch, list) and len(batch) > 0
            tally.record(ok, sample.line, "$", "non-empty array, one element per tag", lambda: got(batch))
        return ""
    layouts: dict[str, tuple[str, str, Callable[[Any], bool]]] = {
        "gd4/2": ("r", "array of exactly 4 numbers [O2, LEL, H2S, CO]", lambda value: _numbers(value, 4)),
        "gd4/3": ("r", "object with exactly the keys o2, lel, h2s, co",
                  lambda value: isinstance(value, dict) and set(value) == set(GAS_CHANNELS)),
        "anchorline/4": ("pos", "array of exactly 3 numbers [x, y, z]", lambda value: _numbers(value, 3)),
        "sh2/2": ("hooks", "non-empty array of 0/1, one per lanyard hook",
                  lambda value: isinstance(value, list) and len(value) > 0 and all(is_int(h) and h in (0, 1) for h in value)),
    }
    name, expected, fits = layouts[schema or ""]
    for sample, prefix, record in records(run):
        value = field(record, name)
        if value is NOTHING:
            continue  # required_fields says so
        tally.record(fits(value), sample.line, f"{prefix}.{name}", expected, lambda: got(value))
    return ""


def status_values(run: CertificationRun, tally: Tally) -> str:
    """Status words are the sheet's: gd4/3 `st` one of ok, warmup, fault, cal_due; sh2/1 `hook` clipped or unclipped."""
    name, allowed = ("st", GD4_STATUSES) if run.schema == "gd4/3" else ("hook", HOOK_STATES)
    expected = "one of " + ", ".join(f'"{word}"' for word in allowed)
    for sample, prefix, record in records(run):
        value = field(record, name)
        if value is NOTHING:
            continue
        tally.record(isinstance(value, str) and value in allowed, sample.line, f"{prefix}.{name}", expected, lambda: got(value))
    return ""


def _rfc3339_ms(value: Any) -> bool:
    return isinstance(value, str) and RFC3339_MS.match(value) is not None and parse_rfc3339(value) is not None


def timestamp_form(run: CertificationRun, tally: Tally) -> str:
    """Device times have the sheet's form: an integer ms epoch (gd4 `ts` and `bump`, sh2 `ts`), RFC 3339 with a zone and
    milliseconds (Anchorline), a number of seconds (Qubit)."""
    schema = run.schema or ""
    if schema in SEQUENCED:
        names = ("ts", "bump") if schema == "gd4/3" else ("ts",)
        expected, fits = "integer ms since the epoch", lambda value: is_int(value) and value >= 0
    elif schema == "anchorline/4":
        names = ("ts",)
        expected, fits = "RFC 3339 time with milliseconds and Z or an offset", _rfc3339_ms
    else:
        names = ("timestamp",)
        expected, fits = "number of seconds since the epoch", lambda value: is_number(value) and value >= 0
    for sample, prefix, record in records(run):
        for name in names:
            value = field(record, name)
            if value is NOTHING:
                continue
            tally.record(fits(value), sample.line, f"{prefix}.{name}", expected, lambda: got(value))
    return ""


def _o2_units(tally: Tally, line: int, path: str, o2: Any) -> None:
    if not is_number(o2) or o2 == GD4V2_SENSOR_FAULT or o2 < 0:
        return
    if 0 < o2 <= 1:
        tally.fails(line, path, "O2 in % vol (20.9 in clean air)", f"number {o2}, a fraction of 1 rather than % vol")
    elif o2 > 100:
        tally.fails(line, path, "O2 in % vol (20.9 in clean air)", f"number {o2}, more than 100 %: ppm?")
    else:
        tally.passes()


def _epoch_ms_units(tally: Tally, line: int, path: str, value: Any) -> None:
    if not is_number(value):
        return
    low, high = EPOCH_MS_MAGNITUDE
    hint = "seconds?" if abs(value) < low else "microseconds?"
    tally.record(low <= value < high, line, path, "ms since the epoch (about 1.8e12)", lambda: f"number {value}, {hint}")


def _metres_units(tally: Tally, line: int, path: str, value: Any) -> None:
    if not is_number(value):
        return
    tally.record(abs(value) <= ANCHORLINE_MAX_ABS_M, line, path, f"metres (|value| <= {ANCHORLINE_MAX_ABS_M:g})",
                 lambda: f"number {value}, millimetres?")


def _qubit_units(tally: Tally, line: int, prefix: str, record: Any) -> None:
    seconds = field(record, "timestamp")
    if is_number(seconds):
        low, high = EPOCH_S_MAGNITUDE
        hint = "milliseconds?" if seconds >= high else "not an epoch in seconds"
        tally.record(low <= seconds < high, line, f"{prefix}.timestamp", "seconds since the epoch (about 1.8e9)",
                     lambda: f"number {seconds}, {hint}")
    coordinates = field(field(record, "data"), "coordinates")
    values = [field(coordinates, axis) for axis in ("x", "y", "z")]
    if all(is_number(value) for value in values):
        in_metres = all(abs(v) < QUBIT_METRES_BELOW_MM for v in values) and any(v != int(v) for v in values)
        tally.record(not in_metres, line, f"{prefix}.data.coordinates", "whole millimetres",
                     lambda: "x={}, y={}, z={}: metres?".format(*values))


def units(run: CertificationRun, tally: Tally) -> str:
    """Values are in the sheet's units: O2 % vol (not a fraction or ppm), gd4/sh2 times in ms, Anchorline metres and a 0..1
    quality, Qubit seconds and millimetres. Counts values."""
    schema = run.schema or ""
    for sample, prefix, record in records(run):
        line = sample.line
        if schema in GAS:
            for channel, path, value in gas_channels(schema, record, prefix):
                if channel == "o2":
                    _o2_units(tally, line, path, value)
        if schema in SEQUENCED:
            _epoch_ms_units(tally, line, f"{prefix}.ts", field(record, "ts"))
        if schema == "gd4/3":
            _epoch_ms_units(tally, line, f"{prefix}.bump", field(record, "bump"))
        if schema == "anchorline/4":
            pos = field(record, "pos")
            if isinstance(pos, list):
                for index, value in enumerate(pos):
                    _metres_units(tally, line, f"{prefix}.pos[{index}]", value)
            q = field(record, "q")
            if is_number(q):
                tally.record(q <= 1, line, f"{prefix}.q", "fix quality as a fraction 0..1", lambda: f"number {q}, a percentage?")
        if schema == "qubit/2":
            _qubit_units(tally, line, prefix, record)
    return ""


def _in_range(tally: Tally, line: int, path: str, value: Any, low: float, high: float, unit: str) -> None:
    if not is_number(value):
        return
    tally.record(low <= value <= high, line, path, f"{low:g}..{high:g} {unit}".rstrip(), lambda: got(value))


def value_ranges(run: CertificationRun, tally: Tally) -> str:
    """Values lie in the ranges the interlock accepts: gas channels (fault markers aside), harness height, battery 0..100,
    fix quality 0..1. Counts values."""
    schema = run.schema or ""
    for sample, prefix, record in records(run):
        line = sample.line
        for channel, path, value in gas_channels(schema, record, prefix):
            if schema == "gd4/2" and value == GD4V2_SENSOR_FAULT:
                continue
            low, high = GAS_CHANNEL_RANGES[channel]
            _in_range(tally, line, path, value, low, high, GAS_UNITS[channel])
        if schema in HARNESS:
            low, high = HARNESS_HEIGHT_RANGE_M
            _in_range(tally, line, f"{prefix}.h", field(record, "h"), low, high, "m")
            _in_range(tally, line, f"{prefix}.bat", field(record, "bat"), 0, 100, "%")
        if schema == "anchorline/4":
            _in_range(tally, line, f"{prefix}.q", field(record, "q"), 0, 1, "")
    return ""


def fault_sentinels(run: CertificationRun, tally: Tally) -> str:
    """A channel in sensor fault is marked the sheet's way: exactly -1 in gd4/2 (no other negative, no null), null in gd4/3
    (no negative). Counts channel values."""
    schema = run.schema or ""
    for sample, prefix, record in records(run):
        for _, path, value in gas_channels(schema, record, prefix):
            if schema == "gd4/2":
                if value is None:
                    tally.fails(sample.line, path, "-1 for a channel in sensor fault (null is gd4/3's marker)", "null")
                elif is_number(value):
                    tally.record(value >= 0 or value == GD4V2_SENSOR_FAULT, sample.line, path,
                                 "a reading >= 0, or exactly -1 for sensor fault", lambda: got(value))
            elif value is None or is_number(value):
                tally.record(value is None or value >= 0, sample.line, path,
                             "a reading >= 0, or null for sensor fault (gd4/3 has no -1)", lambda: got(value))
    return ""


def _undocumented_bits(alm: int) -> str:
    if alm < 0:
        return f"{alm}, a negative mask"
    extra = alm & ~GD4V2_ALARM_BITS
    bits = [str(bit) for bit in range(extra.bit_length()) if (extra >> bit) & 1]
    return f"{alm}, with undocumented bit{'s' if len(bits) > 1 else ''} {', '.join(bits)}"


def alarm_bits(run: CertificationRun, tally: Tally) -> str:
    """The gd4/2 `alm` mask uses only the documented bits 0-4 (low O2, high O2, LEL, H2S, CO) and 7 (sensor fault)."""
    for sample, prefix, record in records(run):
        alm = field(record, "alm")
        if not is_int(alm):
            continue
        tally.record(alm >= 0 and alm & ~GD4V2_ALARM_BITS == 0, sample.line, f"{prefix}.alm",
                     "only bits 0-4 and 7 (mask 0x9f)", lambda: _undocumented_bits(alm))
    return ""


def located_data(run: CertificationRun, tally: Tally) -> str:
    """A Qubit tag carries `data` exactly when `success` is true: an unlocated tag has no position, a located one must have it."""
    for sample, prefix, record in records(run):
        success = field(record, "success")
        if not isinstance(success, bool):
            continue
        data = field(record, "data")
        has_data = data is not NOTHING and data is not None
        expected = "an object (success is true)" if success else "no data (success is false)"
        tally.record(has_data == success, sample.line, f"{prefix}.data", expected, lambda: got(data))
    return ""


def device_id(run: CertificationRun, tally: Tally) -> str:
    """Each record names its device (`dev`, `tag` or `tagId`) with a non-empty, trimmed string that, for gas and harness
    envelopes, is the record's Kafka key: the id is what the CMDB row and the stream are keyed by."""
    name = DEVICE_ID_FIELDS[run.schema or ""]
    for sample, prefix, record in records(run):
        value = field(record, name)
        path = f"{prefix}.{name}"
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            tally.fails(sample.line, path, "a non-empty device id without surrounding spaces", got(value))
        elif run.schema in SEQUENCED and sample.record_key is not None and value != sample.record_key:
            tally.fails(sample.line, path, f'the record key "{sample.record_key}"', got(value))
        else:
            tally.passes()
    return ""


def firmware_self_report(run: CertificationRun, tally: Tally) -> str:
    """The firmware the device reports in `fw` is the one under certification, so the samples are of that firmware."""
    for sample, prefix, record in records(run):
        value = field(record, "fw")
        tally.record(value == run.firmware, sample.line, f"{prefix}.fw", f'"{run.firmware}" (--firmware)', lambda: got(value))
    return ""


def timestamp_skew(run: CertificationRun, tally: Tally) -> str:
    """The device clock agrees with the record time within 5 s where an envelope gives it; without one, the device time is a
    plausible epoch (2000 to 2100). Counts device times read."""
    schema = run.schema or ""
    enveloped = False
    for sample, prefix, record in records(run):
        path, device_ms = device_time(schema, record, prefix)
        if device_ms is None:
            continue
        if sample.record_ts is not None:
            enveloped = True
            skew = device_ms - sample.record_ts
            tally.record(abs(skew) <= SKEW_LIMIT_MS, sample.line, path,
                         f"within {SKEW_LIMIT_MS} ms of the record ts {sample.record_ts}",
                         lambda: f"{abs(skew)} ms {'ahead' if skew > 0 else 'behind'}")
        else:
            low, high = PLAUSIBLE_EPOCH_MS
            tally.record(low <= device_ms < high, sample.line, path, "a time between 2000-01-01 and 2100-01-01",
                         lambda: f"{device_ms} ms since the epoch")
    if tally.checked and not enveloped:
        return "no kcat envelopes: checked only that device times lie between 2000 and 2100"
    return ""


def _sequences(run: CertificationRun) -> dict[str, list[tuple[int, str, int]]]:
    """(line, path, seq) of every record with an integer `seq`, per device id, in sample order."""
    streams: dict[str, list[tuple[int, str, int]]] = {}
    for sample, prefix, record in records(run):
        seq = field(record, "seq")
        if is_int(seq):
            dev = field(record, "dev")
            streams.setdefault(dev if isinstance(dev, str) else repr(dev), []).append((sample.line, f"{prefix}.seq", seq))
    return streams


def _is_wrap(previous: int, current: int) -> bool:
    """A drop of more than half the uint16 ring reads as the counter wrapping; a smaller one as going backwards."""
    return previous - current > UINT16_MODULUS // 2


def sequence_monotonic(run: CertificationRun, tally: Tally) -> str:
    """`seq` strictly increases from sample to sample per device, the uint16 wrap 65535 -> 0 aside. Counts consecutive pairs."""
    for stream in _sequences(run).values():
        for (previous_line, _, previous), (line, path, current) in zip(stream, stream[1:]):
            ok = current > previous or _is_wrap(previous, current)
            expected = f"more than {previous} (line {previous_line}) or the wrap 65535 -> 0"
            tally.record(ok, line, path, expected, lambda: str(current))
    return "" if tally.checked else "no device with two samples carrying an integer seq: nothing to check"


def sequence_wrap(run: CertificationRun, tally: Tally) -> str:
    """`seq` stays within 0..65535 and, where the samples cross the wrap, goes exactly 65535 -> 0. Counts wraps and
    out-of-range values; none in the samples means nothing to check."""
    for stream in _sequences(run).values():
        for line, path, seq in stream:
            if not 0 <= seq <= SEQ_MAX:
                tally.fails(line, path, f"0..{SEQ_MAX} (uint16)", str(seq))
        for (previous_line, _, previous), (line, path, current) in zip(stream, stream[1:]):
            if _is_wrap(previous, current):
                tally.record(previous == SEQ_MAX and current == 0, line, path, f"the wrap {SEQ_MAX} -> 0",
                             lambda: f"{previous} (line {previous_line}) -> {current}")
    return "" if tally.checked else f"no wrap {SEQ_MAX} -> 0 in the samples, all seq within 0..{SEQ_MAX}: nothing to check"


def bump_recency(run: CertificationRun, tally: Tally) -> str:
    """A gd4/3 `bump` is not after the reading's `ts`. Whether it is within 24 h is only noted: an old bump test is a
    field condition the interlock handles, not a firmware incompatibility."""
    stale: list[int] = []
    for sample, prefix, record in records(run):
        bump, ts = field(record, "bump"), field(record, "ts")
        if not (is_int(bump) and is_int(ts)):
            continue
        tally.record(bump <= ts, sample.line, f"{prefix}.bump", f"no later than ts {ts}",
                     lambda: f"{bump}, {bump - ts} ms after it")
        if ts - bump > BUMP_MAX_AGE_MS:
            stale.append(sample.line)
    if stale:
        return f"informational: {len(stale)} of {tally.checked} samples have a bump test older than 24 h (first at line {stale[0]})"
    return ""


def strict_decode(run: CertificationRun, tally: Tally) -> str:
    """The whole payload decodes with `decode_payload`, the exact path the interlock takes; a failure gives the decoder's
    own diagnosis (path, expected, got, and the schema the payload matches instead)."""
    schema = run.schema or ""
    for sample in run.samples:
        _, problem = decode_payload(schema, sample.payload)
        if problem is None:
            tally.passes()
        else:
            tally.checked += 1
            tally.failures += 1
            if not tally.example:
                tally.example = printable(f"line {sample.line}: {problem.summary()}")
    return ""


# The rule table ---------------------------------------------------------------------------------------------------

RuleCheck = Callable[[CertificationRun, Tally], str]


class Rule(msgspec.Struct, frozen=True):
    """A named rule: its check, whether it needs the catalog's schema, and the schemas it applies to (None: all of them)."""

    name: str
    check: RuleCheck
    needs_schema: bool = True
    applies_to: frozenset[str] | None = None


RULES: tuple[Rule, ...] = (
    Rule("samples_present", samples_present, needs_schema=False),
    Rule("catalog_known", catalog_known, needs_schema=False),
    Rule("utf8", utf8, needs_schema=False),
    Rule("json_wellformed", json_wellformed, needs_schema=False),
    Rule("payload_size", payload_size, needs_schema=False),
    Rule("duplicate_keys", duplicate_keys, needs_schema=False),
    Rule("record_topic", record_topic, applies_to=CERTIFIABLE_SCHEMAS),
    Rule("required_fields", required_fields, applies_to=CERTIFIABLE_SCHEMAS),
    Rule("unknown_fields", unknown_fields, applies_to=CERTIFIABLE_SCHEMAS),
    Rule("field_types", field_types, applies_to=CERTIFIABLE_SCHEMAS),
    Rule("array_layout", array_layout, applies_to=frozenset({"gd4/2", "gd4/3", "sh2/2", "anchorline/4", "qubit/2"})),
    Rule("status_values", status_values, applies_to=frozenset({"gd4/3", "sh2/1"})),
    Rule("timestamp_form", timestamp_form, applies_to=CERTIFIABLE_SCHEMAS),
    Rule("units", units, applies_to=CERTIFIABLE_SCHEMAS),
    Rule("value_ranges", value_ranges, applies_to=GAS | HARNESS | {"anchorline/4"}),
    Rule("fault_sentinels", fault_sentinels, applies_to=GAS),
    Rule("alarm_bits", alarm_bits, applies_to=frozenset({"gd4/2"})),
    Rule("located_data", located_data, applies_to=frozenset({"qubit/2"})),
    Rule("device_id", device_id, applies_to=CERTIFIABLE_SCHEMAS),
    Rule("firmware_self_report", firmware_self_report, applies_to=SEQUENCED),
    Rule("timestamp_skew", timestamp_skew, applies_to=CERTIFIABLE_SCHEMAS),
    Rule("sequence_monotonic", sequence_monotonic, applies_to=SEQUENCED),
    Rule("sequence_wrap", sequence_wrap, applies_to=SEQUENCED),
    Rule("bump_recency", bump_recency, applies_to=frozenset({"gd4/3"})),
    Rule("strict_decode", strict_decode, applies_to=frozenset(KNOWN_SCHEMAS)),
)
"""Every rule, in the order the table lists them: the sample file first, then shape, then values, then the stream."""


def run_rule(rule: Rule, run: CertificationRun) -> RuleResult:
    """One rule over the run; a rule that does not apply passes with nothing checked, and one that raises has failed."""
    if rule.needs_schema and run.schema is None:
        return RuleResult(rule.name, True, 0, 0, f"not checked: the catalog maps no schema to {run.model} {run.firmware}")
    if rule.applies_to is not None and run.schema not in rule.applies_to:
        return RuleResult(rule.name, True, 0, 0, f"not applicable to {run.schema}")
    tally = Tally(rule.name)
    try:
        note = rule.check(run, tally)
    except Exception as error:
        tally.checked += 1
        tally.failures += 1
        tally.example = tally.example or printable(f"the rule could not finish: {type(error).__name__}: {error}")
        note = ""
    return tally.result(note)


def certify(lines: list[bytes], model: str, firmware: str) -> tuple[str | None, list[RuleResult]]:
    """Schema id the (model, firmware) pair maps to (None when the catalog does not know it) and one result per rule."""
    try:
        schema = catalog_schema(model, firmware)
    except Exception:
        schema = None
    run = CertificationRun(str(model), str(firmware), schema, read_samples(lines))
    return schema, [run_rule(rule, run) for rule in RULES]


# The table a release engineer reads -------------------------------------------------------------------------------

_COLUMNS = ("rule", "result", "checked", "failures", "first failure / note")


def format_table(schema: str | None, model: str, firmware: str, results: list[RuleResult]) -> str:
    """A plain-text pass/fail table a release engineer reads (rule, PASS/FAIL, checked, failures, first failure), and a verdict line."""
    target = f"schema {schema}" if schema is not None else "no schema (unknown to the protocol catalog)"
    rows = [(r.rule, "PASS" if r.passed else "FAIL", str(r.checked), str(r.failures), printable(r.example)) for r in results]
    widths = [max([len(_COLUMNS[i])] + [len(row[i]) for row in rows]) for i in range(4)]

    def line(cells: tuple[str, ...]) -> str:
        name, result, checked, failures, note = cells
        return "  ".join(
            [name.ljust(widths[0]), result.ljust(widths[1]), checked.rjust(widths[2]), failures.rjust(widths[3]), note]
        ).rstrip()

    out = [f"Firmware certification: {model} {firmware} -> {target}", ""]
    out.append(line(_COLUMNS))
    out.append(line(tuple("-" * len(c) if i == 4 else "-" * widths[i] for i, c in enumerate(_COLUMNS))))
    out.extend(line(row) for row in rows)
    out.append("")
    failed = [r.rule for r in results if not r.passed]
    if not results:
        out.append(f"VERDICT: FAIL - no rules ran; do not approve {model} {firmware}")
    elif failed:
        out.append(f"VERDICT: FAIL - {len(failed)} of {len(results)} rules failed ({', '.join(failed)}); "
                   f"do not approve {model} {firmware} in the CMDB")
    else:
        out.append(f"VERDICT: PASS - all {len(results)} rules passed; {model} {firmware} speaks {schema} "
                   "and may be approved in the CMDB")
    return "\n".join(out)
