"""The protocol catalog: which payload schema a device speaks, from its model and firmware or its RTLS vendor.

The CMDB names a device's approved firmware; only this catalog knows which
wire shape that firmware sends (protocols §5).
"""

from __future__ import annotations

FIRMWARE_SCHEMAS: dict[str, dict[str, str]] = {
    "GD-4": {"2": "gd4/2", "3": "gd4/3"},
    "SH-2": {"1": "sh2/1", "2": "sh2/2"},
}
"""model -> firmware major version -> schema id."""

VENDOR_SCHEMAS: dict[str, str] = {"anchorline": "anchorline/4", "qubit": "qubit/2"}
"""UWB gateway vendor -> schema id (Anchorline 4.x, Qubit 2.x)."""

_ARRAY_OPENERS = ("[", b"[")


def position_schema(payload: bytes | str) -> str:
    """The schema an `rtls.position` payload is in by its shape: a JSON array is a Qubit batch, anything else an
    Anchorline fix (the decoder then says what does not fit)."""
    head = payload[:1]
    if head.isspace():
        head = payload.lstrip()[:1]
    return "qubit/2" if head in _ARRAY_OPENERS else "anchorline/4"


PLC_SCHEMA = "plc/1"

FAMILY_SCHEMAS: dict[str, tuple[str, ...]] = {
    "gas": ("gd4/2", "gd4/3"),
    "harness": ("sh2/1", "sh2/2"),
    "uwb": ("anchorline/4", "qubit/2"),
    "plc": (PLC_SCHEMA,),
}
"""The schemas a payload of a family may be tried against to say which one it does match."""

SCHEMA_FAMILY: dict[str, str] = {schema: family for family, schemas in FAMILY_SCHEMAS.items() for schema in schemas}


def firmware_major(firmware: str) -> str | None:
    """The major version of a dotted firmware string (`2.3.1` -> `2`), or None when it is not one."""
    major, _, _ = firmware.partition(".")
    return major if major.isdigit() else None


def schema_for_firmware(model: str | None, firmware: str | None) -> str | None:
    """The schema a (model, firmware) pair speaks, or None when the catalog does not know the pair."""
    if model is None or firmware is None:
        return None
    majors = FIRMWARE_SCHEMAS.get(model)
    major = firmware_major(firmware)
    if majors is None or major is None:
        return None
    return majors.get(major)


def schema_for_vendor(vendor: str | None) -> str | None:
    """The schema a UWB vendor's gateways speak, or None for an unknown vendor."""
    return VENDOR_SCHEMAS.get(vendor or "")
