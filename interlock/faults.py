"""The fault book: raises each fault once, counts its recurrences, escalates it when a stop rests on it, and clears it when it ends.

A fault is identified by (code, subject), where the subject is the device,
permit, worker or topic it is about. Records leave the book only through
`flush`, so a fault raised and cited within one input record is emitted once,
already at its final grade.
"""

from __future__ import annotations

import hashlib
import heapq
from typing import Callable

import msgspec

from interlock.fault_catalog import CATALOG, GRADE_RANK
from schemas.envelope import Record


class Source(msgspec.Struct, frozen=True, gc=False):
    """The input record a fault or command rests on."""

    topic: str
    partition: int
    offset: int


Origin = Record | Source | None
"""What callers pass as a fault's or command's source: the input record itself (made a `Source` only when a record
is written, which keeps the per-record path free of it), a `Source`, or None for a timer."""


def source_of(origin: Origin) -> Source | None:
    if origin is None or isinstance(origin, Source):
        return origin
    return Source(origin.topic, origin.partition, origin.offset)


class FaultRecord(msgspec.Struct, omit_defaults=True):
    """`interlock.faults` (protocols §10), with the diagnosis fields a 3 a.m. reader needs."""

    id: str
    ts: int
    grade: str
    code: str
    state: str
    count: int
    device: str | None
    detail: str
    permits: list[str]
    source: Source | None
    subject: str
    action: str
    firmware_reported: str | None = None
    firmware_approved: str | None = None
    schema_expected: str | None = None
    schema_matches: list[str] | None = None
    path: str | None = None
    expected: str | None = None
    got: str | None = None


class Diagnostics(msgspec.Struct, frozen=True, omit_defaults=True):
    """Optional what-exactly fields of a fault."""

    firmware_reported: str | None = None
    firmware_approved: str | None = None
    schema_expected: str | None = None
    schema_matches: list[str] | None = None
    path: str | None = None
    expected: str | None = None
    got: str | None = None


NO_DIAGNOSTICS = Diagnostics()


class OpenFault(msgspec.Struct):
    """A fault currently raised; `last_ts` is its latest recurrence."""

    id: str
    code: str
    subject: str
    grade: str
    count: int
    last_ts: int
    device: str | None
    detail: str
    permits: list[str]
    source: Source | None
    diagnostics: Diagnostics
    emitted: bool = True
    """False while the fault is kept without being raised (a sharded site's fault about another shard's subject)."""


class FaultBook:
    """Open faults and the records waiting to be emitted."""

    def __init__(self, quiet_clear_ms: int) -> None:
        self.quiet_clear_ms = quiet_clear_ms
        self.open: dict[tuple[str, str], OpenFault] = {}
        self.by_id: dict[str, OpenFault] = {}
        self.open_per_subject: dict[str, int] = {}
        self.issued = 0
        self.pending: list[FaultRecord] = []
        self._raised_unsent: dict[str, FaultRecord] = {}
        self.quiet: list[tuple[int, str, str]] = []
        """Heap of (clear-for-quiet time, code, subject) of event faults; stale entries are dropped lazily."""
        self.silenced: Callable[[str], bool] | None = None
        """While set, a new fault whose subject it answers True for is kept, counted and cleared, but not emitted
        (unless a stop comes to rest on it): another shard of the site raises it."""

    def raise_(
        self,
        code: str,
        subject: str,
        ts: int,
        source: Origin,
        detail: str,
        *,
        device: str | None = None,
        permits: list[str] | None = None,
        diagnostics: Diagnostics = NO_DIAGNOSTICS,
        times: int = 1,
    ) -> str:
        """Raise a fault, or count `times` recurrences of the open one; returns the fault id."""
        key = (code, subject)
        fault = self.open.get(key)
        lasting = CATALOG[code].lasting
        if not lasting:
            heapq.heappush(self.quiet, (ts + self.quiet_clear_ms, code, subject))
        if fault is not None:
            fault.count += times
            fault.last_ts = ts
            if permits:
                for permit in permits:
                    if permit not in fault.permits:
                        fault.permits.append(permit)
            return fault.id
        self.issued += 1
        digest = hashlib.sha256(f"{code}|{subject}|{ts}|{self.issued}".encode()).hexdigest()[:16]
        fault = OpenFault(
            f"F-{digest}", code, subject, CATALOG[code].grade, times, ts, device, detail,
            list(permits or ()), source_of(source), diagnostics,
        )
        self.open[key] = fault
        self.by_id[fault.id] = fault
        self.open_per_subject[subject] = self.open_per_subject.get(subject, 0) + 1
        if self.silenced is not None and self.silenced(subject):
            fault.emitted = False
            return fault.id
        record = self._record(fault, ts, "raised")
        self.pending.append(record)
        self._raised_unsent[fault.id] = record
        return fault.id

    def clear(self, code: str, subject: str, ts: int, source: Origin) -> None:
        """Clear the fault if it is open."""
        fault = self.open.pop((code, subject), None)
        if fault is None:
            return
        del self.by_id[fault.id]
        remaining = self.open_per_subject[subject] - 1
        if remaining:
            self.open_per_subject[subject] = remaining
        else:
            del self.open_per_subject[subject]
        self._raised_unsent.pop(fault.id, None)
        if not fault.emitted:
            return
        record = self._record(fault, ts, "cleared")
        record.source = source_of(source)
        self.pending.append(record)

    def reconcile(self, codes: tuple[str, ...], subject: str, present: set[str], ts: int, source: Origin) -> None:
        """Clear those of `codes` about `subject` that are no longer `present`."""
        if subject not in self.open_per_subject:
            return
        for code in codes:
            if code not in present and (code, subject) in self.open:
                self.clear(code, subject, ts, source)

    def fault_id(self, code: str, subject: str) -> str | None:
        fault = self.open.get((code, subject))
        return fault.id if fault is not None else None

    def cite(self, fault_id: str | None, ts: int, by_stop: bool) -> None:
        """A command rests on this fault: a stop or refusal makes it CRITICAL (re-sent if it was already out)."""
        if fault_id is None or not by_stop:
            return
        fault = self.by_id.get(fault_id)
        if fault is None:
            return
        if not fault.emitted:
            fault.emitted = True  # this shard's stop rests on it: raised here too, at CRITICAL
        elif GRADE_RANK[fault.grade] == 0:
            return
        fault.grade = "CRITICAL"
        pending = self._raised_unsent.get(fault_id)
        if pending is not None:
            pending.grade = "CRITICAL"
            return
        self.pending.append(self._record(fault, ts, "raised"))

    def expire_events(self, now: int, source: Origin = None) -> None:
        """Clear event faults that have not recurred for the quiet period."""
        while (due := self.next_expiry()) is not None and due <= now:
            _, code, subject = heapq.heappop(self.quiet)
            self.clear(code, subject, due, source)

    def next_expiry(self) -> int | None:
        """When the earliest open event fault clears for quiet, if any."""
        while self.quiet:
            due, code, subject = self.quiet[0]
            fault = self.open.get((code, subject))
            if fault is not None and fault.last_ts + self.quiet_clear_ms == due:
                return due
            heapq.heappop(self.quiet)
        return None

    def flush(self) -> list[FaultRecord]:
        """The records to emit, in the order they happened."""
        records, self.pending = self.pending, []
        self._raised_unsent.clear()
        return records

    def _record(self, fault: OpenFault, ts: int, state: str) -> FaultRecord:
        d = fault.diagnostics
        return FaultRecord(
            fault.id, ts, fault.grade, fault.code, state, fault.count, fault.device, fault.detail,
            list(fault.permits), fault.source, fault.subject, CATALOG[fault.code].action,
            d.firmware_reported, d.firmware_approved, d.schema_expected, d.schema_matches, d.path, d.expected, d.got,
        )
