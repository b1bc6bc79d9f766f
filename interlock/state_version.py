"""The version of the Site's and the shard router's state layout, so a snapshot is restored only by a release that
reads its layout.

A snapshot is the pickled Site (or router), and msgspec structs pickle their fields by position: a release that adds, removes
or moves a field of any struct the Site holds would restore an older snapshot into the wrong fields. The snapshot
carries `STATE_VERSION`; a test compares `state_layout()` with `STATE_LAYOUT`, so a change of layout cannot ship
without a new version.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil

import msgspec

STATE_VERSION = 5
"""1: releases before snapshots carried a version; 2: with a tag's stay box, zone input plans and crew grades;
3: decision shards (a permit's shard, faults kept but not raised, the shard router); 4: risk ticks (zones waiting
for their step), a tag's fields read by every fix first in its state; 5: a zone grade's air run (the grades' air
rule)."""

STATE_LAYOUT = "d309cdb0b30d337a"
"""`state_layout()` of this version."""

_PACKAGES = ("interlock", "schemas")


def state_layout() -> str:
    """A digest of every msgspec struct of the core's packages (name and fields in order) and of the attributes of a
    fresh Site, the plain objects it holds, and a fresh shard router."""
    from interlock.shard_plan import SINGLE
    from interlock.shard_routing import ShardRouter
    from interlock.site import Site

    lines = []
    for package in _PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.iter_modules(root.__path__):
            module = importlib.import_module(f"{package}.{info.name}")
            for name, value in sorted(vars(module).items()):
                if (isinstance(value, type) and issubclass(value, msgspec.Struct) and value.__module__ == module.__name__):
                    lines.append(f"{module.__name__}.{name}: {', '.join(value.__struct_fields__)}")
    site = Site()
    for owner, obj in (("Site", site), ("FaultBook", site.faults), ("EvidenceChain", site.chain),
                       ("ZoneOccupancy", site.occupancy), ("PermitIndex", site.index),
                       ("ShardRouter", ShardRouter(SINGLE))):
        lines.append(f"{owner}: {', '.join(sorted(vars(obj)))}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16]
