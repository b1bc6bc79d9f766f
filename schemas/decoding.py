"""Strict payload decoding with a diagnosis: what does not fit, where (JSON path), expected and got, and which known schema it does fit.

`decode_payload` never raises, whatever the bytes: a payload either becomes a
normalised reading or a `Diagnosis`. The fast path is one msgspec decode into a
Struct; the diagnosis is only built for payloads that fail.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import msgspec

from schemas import payloads as wire
from schemas.catalog import FAMILY_SCHEMAS, PLC_SCHEMA, SCHEMA_FAMILY
from schemas.readings import GasSample, HarnessSample, PlcSnapshot, TagFix

MAX_PAYLOAD_BYTES = 65536
"""Larger payloads are refused before parsing: no field device sends more than a few hundred bytes."""

GAS_CHANNEL_RANGES: dict[str, tuple[float, float]] = {
    "o2": (0.0, 30.0),
    "lel": (0.0, 100.0),
    "h2s": (0.0, 500.0),
    "co": (0.0, 2000.0),
}
"""Plausible measuring ranges of a GD-4 channel; a value outside is corrupt data, not a gas level."""

GAS_CHANNELS = ("o2", "lel", "h2s", "co")
HARNESS_HEIGHT_RANGE_M = (-100.0, 1000.0)
GD4V2_SENSOR_FAULT = -1.0



class Diagnosis(msgspec.Struct, frozen=True):
    """Why a payload does not fit a schema: `kind` is json, encoding, size, shape or range."""

    schema: str
    kind: str
    path: str
    expected: str
    got: str
    message: str
    matches: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for a fault detail: path, expected, got, and the schema it matches if any."""
        text = f"{self.path}: expected {self.expected}, got {self.got}"
        if self.matches:
            text += f"; the payload matches {', '.join(self.matches)}"
        return text


Reading = Any
Outcome = tuple[Reading, None] | tuple[None, Diagnosis]


def _range_problem(schema: str, path: str, expected: str, value: object) -> tuple[None, Diagnosis]:
    return None, Diagnosis(schema, "range", path, expected, describe(value), f"value out of range at {path}")


def _gas_channel(schema: str, path: str, channel: str, value: float | None, sentinel: str) -> tuple[float | None, Diagnosis | None]:
    low, high = GAS_CHANNEL_RANGES[channel]
    if value is None:
        return None, None
    if low <= value <= high:
        return value, None
    _, problem = _range_problem(schema, path, f"{sentinel} (sensor fault) or {low:g}..{high:g}", value)
    return None, problem


_RANGES = tuple(GAS_CHANNEL_RANGES[channel] for channel in GAS_CHANNELS)


_O2, _LEL, _H2S, _CO = _RANGES


def _normalise_gd4v2(obj: wire.GD4v2) -> Outcome:
    o2, lel, h2s, co = obj.r
    if (_O2[0] <= o2 <= _O2[1] and _LEL[0] <= lel <= _LEL[1] and _H2S[0] <= h2s <= _H2S[1]
            and _CO[0] <= co <= _CO[1]):
        return GasSample(obj.dev, obj.fw, obj.ts, obj.seq, o2, lel, h2s, co, "ok", None, obj.alm), None
    values: list[float | None] = []
    for index, raw in enumerate(obj.r):
        low, high = _RANGES[index]
        if low <= raw <= high:
            values.append(raw)
        elif raw == GD4V2_SENSOR_FAULT:
            values.append(None)
        else:
            _, problem = _gas_channel("gd4/2", f"$.r[{index}]", GAS_CHANNELS[index], raw, "-1")
            return None, problem
    o2, lel, h2s, co = values
    return GasSample(obj.dev, obj.fw, obj.ts, obj.seq, o2, lel, h2s, co, "ok", None, obj.alm), None


def _normalise_gd4v3(obj: wire.GD4v3) -> Outcome:
    r = obj.r
    o2, lel, h2s, co = r.o2, r.lel, r.h2s, r.co
    if (o2 is not None and _O2[0] <= o2 <= _O2[1] and lel is not None and _LEL[0] <= lel <= _LEL[1]
            and h2s is not None and _H2S[0] <= h2s <= _H2S[1] and co is not None and _CO[0] <= co <= _CO[1]):
        return GasSample(obj.dev, obj.fw, obj.ts, obj.seq, o2, lel, h2s, co, obj.st, obj.bump, 0), None
    values: list[float | None] = []
    for channel in GAS_CHANNELS:
        value, problem = _gas_channel("gd4/3", f"$.r.{channel}", channel, getattr(obj.r, channel), "null")
        if problem is not None:
            return None, problem
        values.append(value)
    o2, lel, h2s, co = values
    return GasSample(obj.dev, obj.fw, obj.ts, obj.seq, o2, lel, h2s, co, obj.st, obj.bump, 0), None


def _harness_height(schema: str, h: float) -> tuple[int | None, Diagnosis | None]:
    low, high = HARNESS_HEIGHT_RANGE_M
    if low <= h <= high:
        return round(h * 1000), None
    _, problem = _range_problem(schema, "$.h", f"height {low:g}..{high:g} m", h)
    return None, problem


def _normalise_sh2v1(obj: wire.SH2v1) -> Outcome:
    height, problem = _harness_height("sh2/1", obj.h)
    if problem is not None:
        return None, problem
    return HarnessSample(obj.dev, obj.fw, obj.ts, obj.seq, height, obj.hook == "clipped", obj.bat), None


def _normalise_sh2v2(obj: wire.SH2v2) -> Outcome:
    height, problem = _harness_height("sh2/2", obj.h)
    if problem is not None:
        return None, problem
    return HarnessSample(obj.dev, obj.fw, obj.ts, obj.seq, height, 1 in obj.hooks, obj.bat), None


def _normalise_anchorline(obj: wire.AnchorlineFix) -> Outcome:
    x, y, z = obj.pos
    return [TagFix(obj.tag, round(obj.ts.timestamp() * 1000), x * 1000.0, y * 1000.0, z * 1000.0, obj.q, True)], None


def _normalise_qubit(batch: list[wire.QubitTag]) -> Outcome:
    fixes = []
    for index, item in enumerate(batch):
        ts = round(item.timestamp * 1000)
        if item.success:
            if item.data is None:
                return None, Diagnosis(
                    "qubit/2", "shape", f"$[{index}].data", "object (success is true)", "missing", "located tag without data"
                )
            c = item.data.coordinates
            fixes.append(TagFix(item.tagId, ts, c.x, c.y, c.z, 1.0, True))
        else:
            if item.data is not None:
                return None, Diagnosis(
                    "qubit/2", "shape", f"$[{index}].data", "absent (success is false)", "object", "unlocated tag with data"
                )
            fixes.append(TagFix(item.tagId, ts, 0, 0, 0, 0.0, False))
    return fixes, None


def _normalise_plc(obj: wire.PlcState) -> Outcome:
    return PlcSnapshot(obj.plc, obj.ts, obj.seq, obj.tags), None


_SCHEMAS: dict[str, tuple[msgspec.json.Decoder, Callable[[Any], Outcome]]] = {
    "gd4/2": (msgspec.json.Decoder(wire.GD4v2), _normalise_gd4v2),
    "gd4/3": (msgspec.json.Decoder(wire.GD4v3), _normalise_gd4v3),
    "sh2/1": (msgspec.json.Decoder(wire.SH2v1), _normalise_sh2v1),
    "sh2/2": (msgspec.json.Decoder(wire.SH2v2), _normalise_sh2v2),
    "anchorline/4": (msgspec.json.Decoder(wire.AnchorlineFix), _normalise_anchorline),
    "qubit/2": (msgspec.json.Decoder(wire.QubitBatch), _normalise_qubit),
    PLC_SCHEMA: (msgspec.json.Decoder(wire.PlcState), _normalise_plc),
}

KNOWN_SCHEMAS = tuple(_SCHEMAS)

_ANY = msgspec.json.Decoder()


def _is_utf8(data: bytes | bytearray | memoryview) -> bool:
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def fits(schema: str, data: bytes | str) -> bool:
    """Whether the payload decodes cleanly against `schema`."""
    decoder, normalise = _SCHEMAS[schema]
    try:
        return normalise(decoder.decode(data))[1] is None
    except Exception:
        return False


def decode_payload(schema: str, data: bytes | str) -> Outcome:
    """Decode `data` against `schema` into a normalised reading, or say precisely why it does not fit."""
    try:
        if len(data) > MAX_PAYLOAD_BYTES:
            return None, Diagnosis(
                schema, "size", "$", f"at most {MAX_PAYLOAD_BYTES} bytes", f"{len(data)} bytes", "payload too large"
            )
        decoder, normalise = _SCHEMAS[schema]
        try:
            obj = decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            if isinstance(data, (bytes, bytearray, memoryview)) and not _is_utf8(data):
                return None, Diagnosis(schema, "encoding", "$", "UTF-8 text", "bytes that are not UTF-8", "payload is not UTF-8")
            return None, diagnose(schema, data, error)
        reading, problem = normalise(obj)
        if problem is not None:
            return None, _with_matches(problem, data)
        return reading, None
    except Exception as error:  # the decoder never raises: anything unforeseen is still a diagnosis
        return None, Diagnosis(schema, "shape", "$", f"a {schema} payload", type(error).__name__, str(error))


def _with_matches(problem: Diagnosis, data: bytes | str) -> Diagnosis:
    family = SCHEMA_FAMILY.get(problem.schema)
    others = [s for s in FAMILY_SCHEMAS.get(family or "", ()) if s != problem.schema and fits(s, data)]
    if not others:
        return problem
    return msgspec.structs.replace(problem, matches=tuple(others))


_AT = re.compile(r" - at `(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`")
_EXPECTED = re.compile(r"^Expected `(?P<type>[^`]*)`(?P<rest>[^,]*?)(?:, got `(?P<got>[^`]*)`)?$")


def diagnose(schema: str, data: bytes | str, error: Exception) -> Diagnosis:
    """Turn a msgspec error into path, expected and got, and name the other known schemas the payload fits."""
    message = str(error)
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        kind = "encoding" if "UTF-8" in message or "utf-8" in message else "json"
        expected = "UTF-8 text" if kind == "encoding" else "well-formed JSON"
        return Diagnosis(schema, kind, "$", expected, message, message)
    path = "$"
    body = message
    at = _AT.search(message)
    if at:
        path = at.group("path")
        body = message[: at.start()]
    document = _parse_any(data)
    missing = _MISSING.match(body)
    unknown = _UNKNOWN.match(body)
    expected_match = _EXPECTED.match(body)
    if missing:
        path = _child(path, missing.group("field"))
        expected, got = f"required field `{missing.group('field')}`", "missing"
    elif unknown:
        path = _child(path, unknown.group("field"))
        expected, got = f"no field `{unknown.group('field')}` in {schema}", "unknown field"
    elif expected_match:
        expected = expected_match.group("type") + expected_match.group("rest")
        got = describe(value_at(document, path), fallback=expected_match.group("got"))
    else:
        expected = body
        got = describe(value_at(document, path))
    return _with_matches(Diagnosis(schema, "shape", path, expected, got, message), data)


def _child(path: str, field: str) -> str:
    return f"{path}.{field}" if re.fullmatch(r"[A-Za-z_]\w*", field) else f'{path}["{field}"]'


def _parse_any(data: bytes | str) -> object:
    try:
        return _ANY.decode(data)
    except Exception:
        return _MISSING_VALUE


_MISSING_VALUE = object()
_PATH_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]|\[\"((?:[^\"\\]|\\.)*)\"\]")


def value_at(document: object, path: str) -> object:
    """The value at a msgspec JSON path (`$.r[2]`) in a generic document, or a marker when there is none."""
    if not path.startswith("$"):
        return _MISSING_VALUE
    value = document
    position = 1
    while position < len(path):
        step = _PATH_STEP.match(path, position)
        if step is None:
            return _MISSING_VALUE
        name, index, quoted = step.groups()
        key = name if name is not None else quoted
        if key is not None:
            if not isinstance(value, dict) or key not in value:
                return _MISSING_VALUE
            value = value[key]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return _MISSING_VALUE
            value = value[int(index)]
        position = step.end()
    return value


def describe(value: object, fallback: str | None = None) -> str:
    """A short human description of a JSON value, as a fault's `got`."""
    if value is _MISSING_VALUE:
        return fallback or "nothing"
    if isinstance(value, dict):
        keys = list(value)
        shown = ", ".join(str(k) for k in keys[:8]) + (", ..." if len(keys) > 8 else "")
        return f"object with keys {shown}" if keys else "empty object"
    if isinstance(value, list):
        return f"array of length {len(value)}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{text}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return f"number {value}"


def reported_field(data: bytes | str, field: str) -> str | None:
    """A string field read leniently from a payload that may not fit its schema (e.g. the firmware it reports)."""
    document = _parse_any(data)
    if isinstance(document, dict):
        value = document.get(field)
        if isinstance(value, str):
            return value
    return None


def payload_decoder(schema: str) -> Callable[[bytes | str], Outcome]:
    """`decode_payload` bound to one schema, built once: the fast path without the lookups; any failure takes the full
    diagnosing path."""
    decoder, normalise = _SCHEMAS[schema]
    decode = decoder.decode

    def decode_one(data: bytes | str) -> Outcome:
        if len(data) <= MAX_PAYLOAD_BYTES:
            try:
                return normalise(decode(data))
            except Exception:
                pass
        return decode_payload(schema, data)

    return decode_one


PAYLOAD_DECODERS: dict[str, Callable[[bytes | str], Outcome]] = {schema: payload_decoder(schema) for schema in _SCHEMAS}
"""One bound decoder per known schema."""
