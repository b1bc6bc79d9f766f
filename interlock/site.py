"""The interlock of one site shard: takes input records in time order, keeps the evidence, decides, and says why.

Pure: no I/O and no clock. Time is the record timestamp (protocols §0): before
a record is handled, every timer due by its time fires at its own due time, so
a replay reproduces silences, absences and expiries exactly. A live run calls
`advance` with the wall clock between records.

Outputs are ready-to-send `Output`s for `interlock.commands`,
`interlock.faults` and `interlock.evidence`, in decision order: the faults a
record raised, then the commands that rest on them, each followed by its
evidence entry.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
import sys
from typing import Callable, Iterable

import msgspec

from interlock.commands import ALERT, ENABLE, HARD_STOP, CommandRecord, Reason, RiskNote
from interlock.config import DEFAULT_CONFIG, GasLimits, SiteConfig
from interlock.device_sequence import DUPLICATE, RESTART, check_sequence
from interlock.device_state import DeviceState
from interlock.evidence import EvidenceChain
from interlock.faults import Diagnostics, FaultBook, NO_DIAGNOSTICS, Origin, source_of
from interlock.findings import Findings
from interlock.gas_test import SAMPLE_CODES, GasTrack, assess_sample, check_gas, gas_summary, limits_for
from interlock.geometry import Area, ZoneView, zone_view
from interlock.guardian_presence import check_guardian, guardian_area
from interlock.occupancy import ZoneOccupancy, check_entrants
from interlock.permit_index import TERMINAL_STATES, PermitIndex
from interlock.plc_signals import PlcView, check_plc_signals
from interlock.harness_tieoff import HarnessTrack, check_harnesses, new_track
from interlock.permit_checks import RECORD_CODES, record_problems
from interlock.qualification import CrewHealth, check_crew
from interlock.risk_features import worst_fraction
from interlock.risk_grade import NONE, RED, YELLOW, grade_step
from interlock.risk_model import RiskModel, new_zone_state, njit_step
from interlock.shard_plan import SINGLE, DeviceHomes, ShardPlan
from interlock.site_time import DAY_MS, site_date, site_day
from interlock.zone_risk import (
    RISK_CODES, RISK_FAULT_CODES, RISK_GROUP_ZONES, ZoneInputsPlan, ZoneRisk, observe_occupancy, risk_detail, signal_any,
    tick_phase, zone_raw,
)
from interlock.risk_inputs import empty_raw
from schemas import payloads as wire
from schemas.catalog import PLC_SCHEMA, position_schema, schema_for_firmware, schema_for_vendor
from schemas.decoding import PAYLOAD_DECODERS, diagnose, fits, reported_field
from schemas.envelope import Record, UnreadableRecord
from schemas.readings import TagFix

PLC_LINK_TOPIC = "interlock.plc_link"
"""Internal input of a live run: the PLC writers' link state, `{"plc": id, "up": bool, "detail": text}` keyed by PLC."""
COMMANDS_TOPIC = "interlock.commands"
FAULTS_TOPIC = "interlock.faults"
EVIDENCE_TOPIC = "interlock.evidence"

DEVICE_CODES = (
    "DEVICE_UNKNOWN",
    "DEVICE_MODEL_UNSUPPORTED",
    "DEVICE_ID_MISMATCH",
    "PAYLOAD_UNPARSEABLE",
    "PAYLOAD_SCHEMA_MISMATCH",
    "PAYLOAD_VALUE_OUT_OF_RANGE",
    "FIRMWARE_UNAPPROVED",
    "DEVICE_CLOCK_SKEW",
    "RTLS_VENDOR_MISMATCH",
)
PERMIT_CODES = RECORD_CODES + (
    "GUARDIAN_ABSENT",
    "UNAUTHORISED_ENTRANT",
    "WORKER_NOT_QUALIFIED",
    "QUALIFICATION_EXPIRING",
    "EQUIPMENT_NOT_ON_PLC",
    "PLC_STATE_STALE",
    "INTERLOCK_RESTARTED",
    "ISOLATION_NOT_CONFIRMED",
    "VENTILATION_NOT_RUNNING",
    "GAS_DATA_STALE",
    "HARNESS_UNTIED_WARNING",
    "HARNESS_UNTIED",
    "HARNESS_DATA_STALE",
)
WARNING_CODES = frozenset({"QUALIFICATION_EXPIRING", "HARNESS_UNTIED_WARNING"})
_DIAGNOSIS_CODES = {
    "json": "PAYLOAD_UNPARSEABLE",
    "encoding": "PAYLOAD_UNPARSEABLE",
    "size": "PAYLOAD_UNPARSEABLE",
    "shape": "PAYLOAD_SCHEMA_MISMATCH",
    "range": "PAYLOAD_VALUE_OUT_OF_RANGE",
}
_ANY = msgspec.json.Decoder()
_DEVICE_ROW = msgspec.json.Decoder(wire.DeviceRow)
_ZONE_ROW = msgspec.json.Decoder(wire.ZoneRow)
_QUALIFICATION_ROW = msgspec.json.Decoder(wire.QualificationRow)
_PERMIT_ROW = msgspec.json.Decoder(wire.PermitRow)
_PERMIT_ACTION = msgspec.json.Decoder(wire.PermitAction)
_ENCODER = msgspec.json.Encoder()


class PlcLinkEvent(msgspec.Struct, frozen=True):
    """A PLC writer's link went down or came back."""

    plc: str
    up: bool
    detail: str = ""


_PLC_LINK = msgspec.json.Decoder(PlcLinkEvent)


class Output(msgspec.Struct, frozen=True, gc=False):
    """One message to send: topic, key and JSON value."""

    topic: str
    key: str | None
    value: bytes


class PermitRuntime(msgspec.Struct):
    """A permit record with its decision state: enable, latch, what the last stop and alert said, and its evidence tracks."""

    row: wire.PermitRow
    enabled: bool = False
    latched: bool = False
    stop_codes: tuple[str, ...] = ()
    stopped_for: tuple[str, ...] = ()
    """Every code that has stopped the permit since it was last enabled: a cause that comes back (a reading hovering
    at its limit) is not news to the control room, a new kind of cause is."""
    warning_codes: tuple[str, ...] = ()
    reset_alerted: bool = False
    reset_by: str | None = None
    gas: dict[str, GasTrack] = msgspec.field(default_factory=dict)
    guardian_seen: int | None = None
    guardian_area: Area | None = None
    """Where its guardian must stand, kept with the permit (refreshed when its record or zone changes)."""
    wake_at: int | None = None
    risk_alerted: int = NONE
    """The zone risk grade last alerted for this permit (lowered as the grade falls, so a new rise alerts again)."""
    risk_alert: str | None = None
    """Id of the yellow or red risk alert the guardian has to acknowledge, until acknowledged."""
    risk_alert_at: int = 0
    shard: int = 0
    """The decision shard that decides this permit (the first record's zone's, kept for the permit's life)."""


class Site:
    """All evidence and decisions of one shard of the site.

    A site of several decision shards (`plan`) runs one Site per shard, each fed by `interlock.shard_routing`: every
    Site keeps the whole tables, but decides only its own permits (`PermitRuntime.shard`), steps the risk of and
    watches only the zones they are in, and raises a fault found while handling a record only when the fault's
    subject is its own (a device's home, a permit's or zone's shard); a fault cited by one of its stops is raised
    there too. One shard (the default) decides everything."""

    def __init__(self, config: SiteConfig = DEFAULT_CONFIG, risk_model: RiskModel | None = None, shard: int = 0,
                 plan: ShardPlan = SINGLE) -> None:
        if not 0 <= shard < plan.shards:
            raise ValueError(f"shard {shard} is not one of the plan's {plan.shards} shards (0 to {plan.shards - 1})")
        self.config = config
        self.shard = shard
        self.plan = plan
        self._zones_here: dict[str, bool] = {}
        """Zone -> whether this shard steps its risk and watches it (its own zone, or one of its permits is there)."""
        self.device_homes = DeviceHomes()
        """The first permit shard that read each device: where the faults about a zone-less device are raised."""
        self.risk_model = risk_model
        self.risk_on = risk_model is not None
        """The zone risk model (None: risk grading off); its grades stop and alert as docs/risk_model.md says."""
        self.zone_risk: dict[str, ZoneRisk] = {}
        self.zone_detectors: dict[str, list[str]] = {}
        """Zone -> the gas detectors the CMDB places there: what the zone's risk step reads."""
        self._risk_due: dict[int, dict[str, Origin]] = {}
        """Risk tick -> the zones stepping at it, each with its latest trusted reading since its last step."""
        self._risk_ticks: list[int] = []
        """The ticks of `_risk_due`, a heap."""
        self._risk_plans: dict[str, ZoneInputsPlan] = {}
        """Zone -> what its risk step reads, resolved from the tables; emptied whenever a table row changes."""
        self.now = 0
        self.devices: dict[str, wire.DeviceRow] = {}
        self.zones: dict[str, ZoneView] = {}
        self.qualifications: dict[str, wire.QualificationRow] = {}
        self.crew_health = CrewHealth()
        """Workers' qualification grades of the day, emptied by any HR row."""
        self.permits: dict[str, PermitRuntime] = {}
        self.device_state: dict[str, DeviceState] = {}
        """Every device id with a CMDB row or a located fix: row, schema, sequence, track, tag fix and place."""
        self.harness: dict[str, HarnessTrack] = {}
        self.plc: dict[str, PlcView] = {}
        self.untrusted: dict[str, str] = {}
        self.faults = FaultBook(config.fault_quiet_clear_ms)
        self.chain = EvidenceChain()
        self.commands_issued = 0
        self.timers: list[tuple[int, int, str]] = []
        self.timer_count = 0
        self.closed_with_entrants: dict[str, str] = {}
        # indexes derived from the tables
        self.tag_worker: dict[str, str] = {}
        self.worker_tags: dict[str, list[str]] = {}
        self.equipment_plc: dict[str, str] = {}
        self.enable_plc: dict[str, str] = {}
        """Equipment -> the PLC holding its enable (a Modbus coil or an OPC UA node in the PLC's CMDB row)."""
        self.plc_down: dict[str, str] = {}
        """PLCs the live run's writers cannot reach, with why."""
        self.index = PermitIndex()
        self.occupancy = ZoneOccupancy()
        self._limits: dict[tuple[str, int], GasLimits] = {}
        self._limits_day = -1
        self._limits_from = self._limits_until = 0
        self._limits_month = 0
        self._commands: list[CommandRecord] = []
        self._out: list[Output] = []
        self._handlers: dict[str, Callable[[Record, Origin, int], Iterable[str]]] = {
            "rtls.position": self._on_position,
            "gas.readings": self._on_gas,
            "harness.status": self._on_harness,
            "plc.state": self._on_plc,
            "cmdb.devices": self._on_device_row,
            "gis.zones": self._on_zone_row,
            "hr.qualifications": self._on_qualification_row,
            "ptw.permits": self._on_permit_row,
            "ptw.actions": self._on_permit_action,
            PLC_LINK_TOPIC: self._on_plc_link,
        }
        if plan.shards > 1:
            self._handlers = {topic: functools.partial(self._as_shard, handler)
                              for topic, handler in self._handlers.items()}

    # ------------------------------------------------------------------ public

    def process(self, record: Record | UnreadableRecord) -> list[Output]:
        """Handle one input record (timers due by its time fire first); returns what to send."""
        return self.process_batch((record,))

    def process_batch(self, records: Iterable[Record | UnreadableRecord]) -> list[Output]:
        """Handle records in order, each after the timers and the risk tick due by its time; returns what to send for
        all of them, in decision order. This loop runs once per record, so what it reads is held in locals."""
        handlers = self._handlers
        evaluate = self._evaluate
        timers = self.timers
        faults = self.faults
        quiet = faults.quiet
        commands = self._commands
        risk_ticks = self._risk_ticks
        for record in records:
            ts = record.ts
            if (timers and timers[0][0] <= ts) or (quiet and quiet[0][0] <= ts) or (risk_ticks and risk_ticks[0] <= ts):
                self._advance_to(ts)
            if ts > self.now:
                self.now = ts
            now = self.now
            handler = handlers.get(record.topic) if record.__class__ is not UnreadableRecord else None
            if handler is None:
                self._unhandled(record, now)
            else:
                touched = handler(record, record, now)
                if touched:
                    for permit in dict.fromkeys(touched):
                        evaluate(permit, now, record)
            if commands or faults.pending:
                self._flush()
        return self._take()

    def _unhandled(self, record: Record | UnreadableRecord, now: int) -> None:
        """A line that is no record, or a record of a topic the interlock does not read: a fault, nothing decided."""
        if isinstance(record, UnreadableRecord):
            self.faults.raise_("ENVELOPE_UNREADABLE", "recording", now, None, f"line {record.line}: {record.problem}")
        else:
            self.faults.raise_("TOPIC_UNKNOWN", record.topic, now, record, f"records on {record.topic} are not read")

    def _as_shard(self, work: Callable[..., Iterable[str]], *args) -> Iterable[str]:
        """A record's handler or a zone's risk step on a sharded site: faults about subjects of other shards are kept,
        not raised."""
        self.faults.silenced = self._not_mine
        try:
            return work(*args)
        finally:
            self.faults.silenced = None

    def subject_shard(self, subject: str) -> int:
        """The shard that speaks for a fault's subject: a permit's, a device's home, a zone's, else by its id."""
        runtime = self.permits.get(subject)
        if runtime is not None:
            return runtime.shard
        row = self.devices.get(subject)
        return self.plan.device_home(subject, row.zone if row is not None else None, self.device_homes)

    def _not_mine(self, subject: str) -> bool:
        return self.subject_shard(subject) != self.shard

    def _zone_here(self, zone: str) -> bool:
        """Whether this shard steps the zone's risk and keeps its occupancy."""
        here = self._zones_here.get(zone)
        if here is None:
            shard = self.shard
            permits = self.permits
            here = self._zones_here[zone] = self.plan.of_zone(zone) == shard or any(
                permits[pid].shard == shard for pid in self.index.zone.get(zone, ()))
        return here

    def resume(self, now: int) -> list[Output]:
        """After a restart from a snapshot: the PLC watchdogs dropped every enable this site held, so each enabled permit
        is stopped and latched (INTERLOCK_RESTARTED), to be reset by its approver once the evidence is fresh."""
        self.now = max(self.now, now)
        enabled = [runtime for runtime in self.permits.values() if runtime.enabled]
        if enabled:
            fault = self.faults.raise_(
                "INTERLOCK_RESTARTED", "interlock", self.now, None,
                f"restarted from a snapshot with {len(enabled)} permit(s) enabled: "
                f"{', '.join(r.row.permit for r in enabled)}",
                permits=[r.row.permit for r in enabled],
            )
            self.faults.cite(fault, self.now, True)
            for runtime in enabled:
                reason = Reason("INTERLOCK_RESTARTED", "the interlock restarted; the PLC watchdogs dropped the enables", fault)
                self._command(HARD_STOP, runtime, [reason], None, self.now, latched=True)
                runtime.enabled = False
                runtime.latched = True
                runtime.stop_codes = ("INTERLOCK_RESTARTED",)
                runtime.reset_alerted = False
        self._flush()
        return self._take()

    def advance(self, now: int) -> list[Output]:
        """Fire every timer and risk tick due by `now` (a live run's wall clock); returns what to send."""
        self._advance_to(now)
        self.now = max(self.now, now)
        return self._take()

    def next_wake(self) -> int | None:
        """When the next timer or risk tick is due, for a live run to sleep until."""
        self._drop_stale_timers()
        times = [t for t in (self.timers[0][0] if self.timers else None, self.faults.next_expiry(),
                             self._risk_ticks[0] if self._risk_ticks else None) if t is not None]
        return min(times) if times else None

    # ------------------------------------------------------------------ time

    def _drop_stale_timers(self) -> None:
        while self.timers:
            due, _, permit = self.timers[0]
            runtime = self.permits.get(permit)
            if runtime is not None and runtime.wake_at == due:
                return
            heapq.heappop(self.timers)

    def _advance_to(self, ts: int) -> None:
        while True:
            self._drop_stale_timers()
            timer = self.timers[0][0] if self.timers else None
            expiry = self.faults.next_expiry()
            tick = self._risk_ticks[0] if self._risk_ticks else None
            due = min((t for t in (timer, expiry, tick) if t is not None), default=None)
            if due is None or due > ts:
                return
            self.now = max(self.now, due)
            if expiry is not None and expiry == due:
                self.faults.expire_events(due)
            elif tick == due:
                heapq.heappop(self._risk_ticks)
                self._risk_steps(due, self._risk_due.pop(due))
            else:
                _, _, permit = heapq.heappop(self.timers)
                self.permits[permit].wake_at = None
                self._evaluate(permit, due, None)
            self._flush()

    def _schedule(self, runtime: PermitRuntime, wake: int | None) -> None:
        if wake == runtime.wake_at:
            return
        runtime.wake_at = wake
        if wake is not None:
            self.timer_count += 1
            heapq.heappush(self.timers, (wake, self.timer_count, runtime.row.permit))

    # ------------------------------------------------------------------ outputs

    def _take(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def _flush(self) -> None:
        for fault in self.faults.flush():
            self._out.append(Output(FAULTS_TOPIC, fault.id, _ENCODER.encode(fault)))
            self._out.append(Output(EVIDENCE_TOPIC, None, self.chain.append("fault", fault)))
        for command in self._commands:
            self._out.append(Output(COMMANDS_TOPIC, command.permit, _ENCODER.encode(command)))
            self._out.append(Output(EVIDENCE_TOPIC, None, self.chain.append("command", command)))
        self._commands.clear()

    def _command(
        self, kind: str, runtime: PermitRuntime, reasons: list[Reason], trigger: Origin, now: int,
        latched: bool | None = None, targets: list[str] | None = None, risk: RiskNote | None = None,
    ) -> None:
        if runtime.shard != self.shard:
            return
        self.commands_issued += 1
        row = runtime.row
        digest = hashlib.sha256(f"{row.permit}|{kind}|{now}|{self.commands_issued}".encode()).hexdigest()[:16]
        self._commands.append(
            CommandRecord(
                f"C-{digest}", now, kind, row.permit, list(row.equipment) if targets is None else targets,
                reasons, source_of(trigger), row.zone, latched, risk,
            )
        )

    # ------------------------------------------------------------------ devices

    def _dependents(self, device: str) -> list[str]:
        """Permits whose evidence comes from the device (detector, harness, PLC, or a tag of their people)."""
        index = self.index
        permits = index.detector.get(device, []) + index.harness.get(device, []) + self._plc_permits(device)
        worker = self.tag_worker.get(device)
        if worker is not None:
            permits += index.person.get(worker, [])
        return list(dict.fromkeys(permits))

    def _served(self, state: DeviceState) -> list[str]:
        """The permits a harness's or a PLC's readings re-decide, cached on its state."""
        served = state.served
        if served is None:
            device = state.tag
            served = state.served = (
                self._plc_permits(device) if state.family == "plc" else list(self.index.harness.get(device, ()))
            )
        return served

    def _forget_served(self, devices: Iterable[str]) -> None:
        for device in devices:
            if (state := self.device_state.get(device)) is not None:
                state.feeds = state.served = None

    def _plc_permits(self, plc: str) -> list[str]:
        """Permits whose isolations or ventilation are confirmed by this PLC."""
        row = self.devices.get(plc)
        if row is None or row.family != "plc":
            return []
        equipment = self.index.equipment
        return list(dict.fromkeys(
            pid for item in row.equipment if self.equipment_plc.get(item) == plc for pid in equipment.get(item, ())
        ))

    def _device_fault(
        self, code: str, device: str, now: int, source: Origin, detail: str, diagnostics: Diagnostics = NO_DIAGNOSTICS
    ) -> list[str]:
        """Raise a fault about a device's data; gas tracks of the permits it serves see a reading that is not evidence."""
        permits = self._dependents(device)
        self.faults.raise_(code, device, now, source, detail, device=device, permits=permits, diagnostics=diagnostics)
        self.untrusted[device] = code
        for pid in self.index.detector.get(device, ()):
            self.permits[pid].gas[device].observe_bad(code, device)
        return [pid for pid in permits if self.permits[pid].row.state == "active"] if permits else []

    def _trusted_reading(self, record: Record, source: Origin, now: int, family: str, id_field: str):
        """(the normalised reading, its device's state) when the reading is evidence, else (None, permits to re-decide)
        after raising the fault."""
        payload = record.payload
        device = record.key or (reported_field(payload, id_field) if payload is not None else None) or "?"
        state = self.device_state.get(device)
        if payload is None:
            return None, self._device_fault("PAYLOAD_UNPARSEABLE", device, now, source, f"{device}: empty (null) payload on {record.topic}")
        if state is None or state.family != family:
            row = state.row if state is not None else None
            why = "has no CMDB row" if row is None else f"is a {row.family} in the CMDB, not {family}"
            return None, self._device_fault("DEVICE_UNKNOWN", device, now, source, f"{device} on {record.topic} {why}")
        schema = state.schema
        if schema is None:
            row = state.row
            return None, self._device_fault(
                "DEVICE_MODEL_UNSUPPORTED", device, now, source,
                f"{device}: the protocol catalog has no schema for model {row.model} firmware {row.firmware}",
            )
        reading, diagnosis = PAYLOAD_DECODERS[schema](payload)
        if diagnosis is not None:
            state.seq = None
            row = state.row
            reported = reported_field(payload, "fw")
            detail = (
                f"{device} ({row.model or family}, approved firmware {row.firmware or 'n/a'}, reports "
                f"{reported or 'no firmware'}) sent a payload that does not fit {schema}: {diagnosis.summary()}"
            )
            return None, self._device_fault(
                _DIAGNOSIS_CODES[diagnosis.kind], device, now, source, detail,
                Diagnostics(reported, row.firmware, schema, list(diagnosis.matches) or None, diagnosis.path,
                            diagnosis.expected, diagnosis.got),
            )
        reported_id = reading.device
        if reported_id != device:
            state.seq = None  # a reading refused after decoding starts the sequence afresh, as one that did not decode
            return None, self._device_fault(
                "DEVICE_ID_MISMATCH", device, now, source, f"record key {device} but the payload says {reported_id}"
            )
        if family != "plc" and reading.firmware != state.firmware:
            state.seq = None
            row = state.row
            other = schema_for_firmware(row.model, reading.firmware)
            return None, self._device_fault(
                "FIRMWARE_UNAPPROVED", device, now, source,
                f"{device} reports firmware {reading.firmware}, approved is {row.firmware}",
                Diagnostics(reading.firmware, row.firmware, schema, [other] if other and fits(other, payload) else None),
            )
        skew = reading.ts - record.ts
        if abs(skew) > self.config.clock_skew_max_ms:
            state.seq = None
            return None, self._device_fault(
                "DEVICE_CLOCK_SKEW", device, now, source,
                f"{device} clock is {abs(skew) / 1000:.1f} s {'ahead of' if skew > 0 else 'behind'} the record time "
                f"(limit {self.config.clock_skew_max_ms / 1000:g} s)",
            )
        seq = reading.seq
        last_seq = state.seq
        if last_seq is None or seq != last_seq + 1:
            verdict, lost = check_sequence(last_seq, state.device_ts, seq, reading.ts)
            if verdict == DUPLICATE:
                self.faults.raise_("SEQ_DUPLICATE", device, now, source, f"{device} seq {seq} again: dropped", device=device)
                return None, []
            if verdict == RESTART:
                self.faults.raise_("SEQ_RESET", device, now, source, f"{device} seq went back to {seq}", device=device)
            elif lost:
                self.faults.raise_("SEQ_GAP", device, now, source, f"{device} lost {lost} message(s) before seq {seq}",
                                   device=device, times=lost)
        state.seq, state.device_ts = seq, reading.ts
        if device in self.untrusted:
            del self.untrusted[device]
        if device in self.faults.open_per_subject:
            self.faults.reconcile(DEVICE_CODES, device, _NONE, now, source)
        return reading, state

    def _on_gas(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        sample, state = self._trusted_reading(record, source, now, "gas", "dev")
        if sample is None:
            return state
        device = sample.device
        if self.risk_on:
            self._risk_reading(state, sample, now, source)
        feeds = state.feeds
        if feeds is None:
            feeds = state.feeds = [(rt, rt.gas[device]) for rt in map(self.permits.__getitem__, self.index.detector.get(device, ()))]
        present: dict[str, str] = {}
        affected: dict[str, list[str]] = {}
        config = self.config
        keep = config.gas_pretest_readings
        decide: list[str] = []
        for runtime, track in feeds:
            row = runtime.row
            pid = row.permit
            problems = assess_sample(sample, self._limits_for(row.type, now), now, config)
            if problems:
                for code, detail in problems:
                    present.setdefault(code, detail)
                    affected.setdefault(code, []).append(pid)
                track.observe_bad(problems[0][0], device)
                decide.append(pid)
            else:
                was_good = track.problem is None and track.last_good is not None
                track.observe_good(now, keep)
                # An enabled permit whose detector stays good needs no new decision: its freshness timer re-decides.
                if not (was_good and runtime.enabled):
                    decide.append(pid)
        if not feeds:
            for code, detail in assess_sample(sample, self._limits_for("", now), now, self.config):
                present.setdefault(code, detail)
        for code, detail in present.items():
            self.faults.raise_(code, device, now, source, detail, device=device, permits=affected.get(code))
        if device in self.faults.open_per_subject:
            self.faults.reconcile(SAMPLE_CODES, device, present.keys(), now, source)
        return self._active(decide) if decide else decide

    # ------------------------------------------------------------------ zone risk

    def _risk_reading(self, state: DeviceState, sample, now: int, source: Origin) -> None:
        """Keep a detector's trusted reading for its zone's risk step, which comes at the zone's next risk tick."""
        state.gas_sample, state.gas_at = sample, now
        zone = state.row.zone
        if not zone or (self.plan.shards > 1 and not self._zone_here(zone)):
            return
        period = self.config.risk_step_ms
        risk = self.zone_risk.get(zone)
        if risk is None:
            model_state = new_zone_state(self.risk_model) if self.risk_model is not None else None
            phase = tick_phase(len(self.zone_risk) // RISK_GROUP_ZONES, period)
            risk = self.zone_risk[zone] = ZoneRisk(zone, model_state, raw=empty_raw(), phase_ms=phase)
        tick = now - (now - risk.phase_ms) % period + period
        due = self._risk_due.get(tick)
        if due is None:
            due = self._risk_due[tick] = {}
            heapq.heappush(self._risk_ticks, tick)
        due[zone] = source

    def _risk_steps(self, tick: int, due: dict[str, Origin]) -> None:
        """A risk tick: the zones due at it step one after the other (the model's weights stay in the core's caches),
        and the active permits of a zone whose grade changed are decided again, with the zone's latest reading as
        their trigger."""
        zone_risk = self.zone_risk
        step = self._risk_step
        sharded = self.plan.shards > 1
        for zone, source in due.items():
            risk = zone_risk[zone]
            changed = self._as_shard(step, risk, tick, source) if sharded else step(risk, tick, source)
            if changed:
                for pid in self._active(changed):
                    self._evaluate(pid, tick, source)

    def _risk_step(self, risk: ZoneRisk, now: int, source: Origin) -> list[str]:
        """One model step of the zone from what the site holds now; raises or clears its RISK_ fault on a new grade."""
        zone = risk.zone
        plan = self._zone_plan(zone)
        raw = self._risk_inputs(risk, plan, now)
        active = plan.active
        model = self.risk_model
        risk.score = score = njit_step(model.weights, model.packed, risk.state, raw)
        risk.last_step = now
        risk.steps += 1
        before = risk.grade.grade
        thresholds = model.thresholds
        grade = grade_step(risk.grade, score, thresholds,
                           worst_fraction(risk.state) if thresholds.air_yellow > 0.0 else math.nan)
        if active:
            self._risk_unacknowledged(active, now, source)
        if grade == before:
            return []
        if grade != NONE:
            threshold = {1: thresholds.blue, 2: thresholds.yellow, 3: thresholds.red}[grade]
            by_air = grade == YELLOW and score < thresholds.yellow
            self.faults.raise_(RISK_CODES[grade], zone, now, source,
                               risk_detail(risk, threshold, thresholds if by_air else None), permits=list(active))
        self.faults.reconcile(RISK_FAULT_CODES, zone, {RISK_CODES[grade]} if grade != NONE else _NONE, now, source)
        return list(active)

    def _risk_inputs(self, risk: ZoneRisk, plan: ZoneInputsPlan, now: int):
        """The zone's raw input vector now (interlock.risk_inputs), written into `risk.raw`."""
        config = self.config
        untrusted = self.untrusted
        if plan.active:
            occupancy = len(self.occupancy.inside(risk.zone))
            since_first, occupied = observe_occupancy(risk, occupancy, now)
        else:
            occupancy = since_first = occupied = math.nan
        plc_max_age = config.plc_state_max_age_ms
        return zone_raw(
            risk.raw, (now - risk.last_step) / 1000 if risk.last_step is not None else 1.0, plan.detectors, now,
            config.gas_reading_max_age_ms, untrusted, self._limits_for(plan.work_type, now),
            signal_any(plan.fans, self.plc, untrusted, now, plc_max_age) if plan.fans else math.nan,
            signal_any(plan.equipment, self.plc, untrusted, now, plc_max_age) if plan.equipment else math.nan,
            occupancy, since_first, occupied,
        )

    def _zone_plan(self, zone: str) -> ZoneInputsPlan:
        """The zone's risk inputs plan, resolved when a table row has emptied the plans since it was last used."""
        plan = self._risk_plans.get(zone)
        if plan is None:
            plan = self._risk_plans[zone] = self._risk_plan(zone)
        return plan

    def _risk_plan(self, zone: str) -> ZoneInputsPlan:
        """What the zone's risk step reads, from the tables as they are (kept until a table row changes)."""
        active = list(self.index.active_in_zone.get(zone, ()))
        rows = [self.permits[pid].row for pid in active]
        work_type = next((row.type for row in rows if row.type == "confined_space"), rows[0].type if rows else "")
        equipment_plc = self.equipment_plc

        def tags(items: Iterable[str], signal: str) -> list[tuple[str, str]]:
            return [(plc, f"{item}.{signal}") for item in items if (plc := equipment_plc.get(item)) is not None]

        return ZoneInputsPlan(
            [self.device_state[device] for device in self.zone_detectors.get(zone, ())], active, work_type,
            tags((item for row in rows for item in row.ventilation), "running"),
            tags((item for row in rows for item in row.equipment), "power"),
        )

    def _risk_alert(self, runtime: PermitRuntime, now: int, trigger: Origin) -> None:
        """ALERT an active permit's people when its zone's risk grade rises: BLUE the team leader, YELLOW the guardian
        (who must acknowledge), RED everyone on the permit to evacuate (the stop itself rests on RISK_RED)."""
        risk = self.zone_risk.get(runtime.row.zone)
        grade = risk.grade.grade if risk is not None else NONE
        if grade <= runtime.risk_alerted:
            if grade < YELLOW and runtime.risk_alert is not None:
                runtime.risk_alert = None
                self.faults.clear("RISK_ALERT_UNACKNOWLEDGED", runtime.row.permit, now, trigger)
            runtime.risk_alerted = grade
            return
        runtime.risk_alerted = grade
        row = runtime.row
        code = RISK_CODES[grade]
        fault_id = self.faults.fault_id(code, row.zone)
        fault = self.faults.by_id.get(fault_id) if fault_id else None
        detail = fault.detail if fault is not None else f"{row.zone}: risk {risk.score:.2f} is {risk.grade_name}"
        leader = row.signatures.applicant or (row.workers[0] if row.workers else row.guardian)
        if grade == RED:
            detail = f"EVACUATE {row.zone}: {detail}"
            targets = list(dict.fromkeys([row.guardian, *row.workers, leader]))
            code = "RISK_RED"
        elif grade == YELLOW:
            targets = [row.guardian]
        else:
            targets = [leader]
        self._command(ALERT, runtime, [Reason(code, detail, fault_id)], trigger, now, targets=targets,
                      risk=risk.note(ack_required=grade >= YELLOW))
        if grade >= YELLOW:
            runtime.risk_alert = self._commands[-1].id
            runtime.risk_alert_at = now

    def _risk_unacknowledged(self, permits: Iterable[str], now: int, source: Origin) -> None:
        """RISK_ALERT_UNACKNOWLEDGED for permits whose guardian has not acknowledged a yellow or red risk alert in time."""
        timeout = self.config.risk_ack_timeout_ms
        for pid in permits:
            runtime = self.permits[pid]
            if runtime.risk_alert is not None and now - runtime.risk_alert_at >= timeout:
                self.faults.raise_(
                    "RISK_ALERT_UNACKNOWLEDGED", pid, now, source,
                    f"{runtime.row.guardian} has not acknowledged risk alert {runtime.risk_alert} on {pid} "
                    f"({(now - runtime.risk_alert_at) // 1000} s)", permits=[pid],
                )

    def _on_harness(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        sample, state = self._trusted_reading(record, source, now, "harness", "dev")
        if sample is None:
            return state
        track = state.track
        if track is None:
            self.harness[sample.device] = state.track = new_track(now, sample.height_mm, sample.tied, self.config)
            return self._active(self._served(state))
        config = self.config
        unchanged = track.untied_since is None and now - track.last_ts <= config.harness_stale_ms
        track.observe(now, sample.height_mm, sample.tied, config)
        # Tied off (or below the height) before and after: enabled permits need no new decision.
        return self._decide_unless_enabled(self._served(state), unchanged and track.untied_since is None)

    def _on_plc(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        state, device_state = self._trusted_reading(record, source, now, "plc", "plc")
        if state is None:
            return device_state
        view = device_state.track
        if view is None:
            self.plc[state.device] = device_state.track = PlcView(now, dict(state.tags))
            return self._active(self._served(device_state))
        tags = view.tags
        unchanged = now - view.ts <= self.config.plc_state_max_age_ms and all(
            tags.get(name) is value for name, value in state.tags.items()
        )
        view.ts = now
        tags.update(state.tags)
        return self._decide_unless_enabled(self._served(device_state), unchanged)

    def _on_plc_link(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        try:
            event = _PLC_LINK.decode(record.payload)
        except (msgspec.ValidationError, msgspec.DecodeError, TypeError) as error:
            self.faults.raise_("TABLE_ROW_INVALID", f"{PLC_LINK_TOPIC}/{record.key}", now, source,
                               f"PLC link event {record.payload!r}: {error}")
            return []
        permits = self._enable_permits(event.plc)
        if event.up:
            if self.plc_down.pop(event.plc, None) is not None:
                self.faults.clear("PLC_UNREACHABLE", event.plc, now, source)
        else:
            self.plc_down[event.plc] = event.detail
            self.faults.raise_("PLC_UNREACHABLE", event.plc, now, source, f"{event.plc}: {event.detail}",
                               device=event.plc, permits=permits)
        return self._active(permits)

    def _enable_permits(self, plc: str) -> list[str]:
        """Permits (not closed or cancelled) with equipment whose enable is on the PLC; a scan, for rare link events."""
        enable_plc = self.enable_plc
        return [pid for pid, runtime in self.permits.items()
                if runtime.row.state not in TERMINAL_STATES and any(enable_plc.get(item) == plc for item in runtime.row.equipment)]

    def _on_position(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        payload = record.payload
        subject = record.key or "rtls.position"
        if payload is None:
            return self._device_fault("PAYLOAD_UNPARSEABLE", subject, now, source, f"{subject}: empty (null) payload on rtls.position")
        schema = position_schema(payload)
        fixes, diagnosis = PAYLOAD_DECODERS[schema](payload)
        if diagnosis is not None:
            detail = f"{subject} sent a position payload that does not fit {schema}: {diagnosis.summary()}"
            return self._device_fault(
                _DIAGNOSIS_CODES[diagnosis.kind], subject, now, source, detail,
                Diagnostics(None, None, schema, list(diagnosis.matches) or None, diagnosis.path, diagnosis.expected,
                            diagnosis.got),
            )
        touched: list[str] = []
        skew_max = self.config.clock_skew_max_ms
        quality_min = self.config.fix_quality_min
        occupancy = self.occupancy
        states = self.device_state
        record_ts = record.ts
        active_in_zone = self.index.active_in_zone
        open_subjects = self.faults.open_per_subject
        for fix in fixes:
            tag = fix.tag
            state = states.get(tag)
            if state is not None and state.vendor_schema == schema:
                registered = True  # a vendor schema is set for registered tags only
            elif state is None or not state.is_tag:
                registered = False
                if fix.located:
                    self.faults.raise_("DEVICE_UNKNOWN", tag, now, source, f"UWB tag {tag} has no CMDB row", device=tag)
            elif state.vendor_schema is None:
                touched += self._device_fault(
                    "DEVICE_MODEL_UNSUPPORTED", tag, now, source,
                    f"tag {tag}: the protocol catalog knows no UWB vendor {self.devices[tag].vendor!r}",
                )
                continue
            else:
                touched += self._device_fault(
                    "RTLS_VENDOR_MISMATCH", tag, now, source,
                    f"tag {tag} is a {self.devices[tag].vendor} tag in the CMDB but reported in {schema} format",
                )
                continue
            ts = fix.ts
            if abs(ts - record_ts) > skew_max:
                touched += self._device_fault(
                    "DEVICE_CLOCK_SKEW", tag, now, source,
                    f"tag {tag} fix time is {abs(ts - record_ts) / 1000:.1f} s from the record time",
                )
                continue
            if not fix.located or fix.quality < quality_min:
                continue
            if state is None:
                state = states[tag] = DeviceState(tag)
            else:
                last = state.fix
                if last is not None and ts <= last.ts:
                    self.faults.raise_("SEQ_DUPLICATE", tag, now, source, f"tag {tag} fix not newer than the last: dropped", device=tag)
                    continue
            if registered and tag in open_subjects:
                self.faults.reconcile(DEVICE_CODES, tag, _NONE, now, source)
            stay = state.stay
            if stay is not None and stay[0] < fix.x < stay[1] and stay[2] < fix.y < stay[3] and stay[4] < fix.z < stay[5]:
                state.fix = fix  # occupancy.move's first test, without the call: no zone's answer can change here
            else:
                moved = occupancy.move(state, fix)
                if moved:
                    for zone in moved:
                        touched += active_in_zone.get(zone, ())
            guarding = state.guarding
            if guarding:
                touched += self._guardian_located(guarding, fix, now)
        if self.closed_with_entrants:
            self._recheck_entrants(now)
        return touched

    def _guardian_located(self, permits: list[str], fix: TagFix, now: int) -> list[str]:
        """Guardian presence from a guardian's new fix; returns the active permits whose guardian has just come back."""
        back = []
        for pid in permits:
            runtime = self.permits[pid]
            area = runtime.guardian_area
            if area is not None and area.contains(fix.x, fix.y, fix.z):
                seen = runtime.guardian_seen
                runtime.guardian_seen = now
                if (seen is None or now - seen > self.config.guardian_absence_max_ms) and runtime.row.state == "active":
                    back.append(pid)
        return back

    # ------------------------------------------------------------------ tables

    def _table_row(self, decoder: msgspec.json.Decoder, record: Record, source: Origin, now: int):
        try:
            return decoder.decode(record.payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            found = diagnose(record.topic, record.payload, error)
            self.faults.raise_(
                "TABLE_ROW_INVALID", f"{record.topic}/{record.key}", now, source,
                f"{record.topic} row for {record.key}: {found.summary()}",
                diagnostics=Diagnostics(path=found.path, expected=found.expected, got=found.got),
            )
            return None

    def _tombstone_key(self, record: Record, source: Origin, now: int) -> str | None:
        if record.key is None:
            self.faults.raise_("TOMBSTONE_WITHOUT_KEY", record.topic, now, source, f"tombstone on {record.topic} has no key")
        return record.key

    def _apply_row(self, record: Record, source: Origin, now: int, decoder: msgspec.json.Decoder, table: dict,
                   entry: Callable) -> tuple[str, object] | None:
        """Apply a table row or tombstone, the latest row winning; returns the key changed and the value it had, or None
        when nothing changed."""
        if record.payload is None:
            key = self._tombstone_key(record, source, now)
            old = table.pop(key, None) if key is not None else None
            return (key, old) if old is not None else None
        row = self._table_row(decoder, record, source, now)
        if row is None:
            return None
        key, value = entry(row)
        old = table.get(key)
        table[key] = value
        return key, old

    def _on_device_row(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        applied = self._apply_row(record, source, now, _DEVICE_ROW, self.devices, lambda row: (row.device, row))
        if applied is None:
            return []
        device, old = applied
        self._risk_plans.clear()
        new = self.devices.get(device)
        before = self._row_permits(old) if old is not None else []
        self._unindex_device(old)
        if new is not None:
            self._index_device(new)
        if (old is not None and old.family == "plc") or (new is not None and new.family == "plc"):
            self._forget_served(list(self.plc))  # only PLCs that have reported have a cache
        after = self._row_permits(new) if new is not None else []
        for pid in dict.fromkeys(before + after):
            self._refresh_guardian(self.permits[pid])
        return self._active(dict.fromkeys(before + after))

    def _on_zone_row(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        applied = self._apply_row(record, source, now, _ZONE_ROW, self.zones, lambda row: (row.zone, zone_view(row)))
        if applied is None:
            return []
        zone, _ = applied
        self._watch_zone(zone)
        permits = self.index.zone.get(zone, [])
        for pid in permits:
            self._refresh_guardian(self.permits[pid])
        return self._active(permits)

    def _on_qualification_row(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        applied = self._apply_row(
            record, source, now, _QUALIFICATION_ROW, self.qualifications, lambda row: (row.worker, row)
        )
        if applied is None:
            return []
        self.crew_health.forget()
        return self._active(self.index.person.get(applied[0], ()))

    def _on_permit_row(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        if record.payload is None:
            key = self._tombstone_key(record, source, now)
            runtime = self.permits.get(key) if key is not None else None
            if runtime is None:
                return []
            row = msgspec.structs.replace(runtime.row, state="cancelled")
        else:
            row = self._table_row(_PERMIT_ROW, record, source, now)
            if row is None:
                return []
            runtime = self.permits.get(row.permit)
            if runtime is not None and row.rev <= runtime.row.rev:
                self.faults.raise_(
                    "PERMIT_STALE_REV", row.permit, now, source,
                    f"{row.permit} rev {row.rev} is not newer than rev {runtime.row.rev} held: ignored",
                )
                return []
        previous = runtime.row if runtime is not None else None
        self._risk_plans.clear()
        self._zones_here.clear()
        if runtime is None:
            runtime = self.permits[row.permit] = PermitRuntime(row, shard=self.plan.of_zone(row.zone))
        elif (previous.guardian, previous.zone, previous.type) != (row.guardian, row.zone, row.type):
            runtime.guardian_seen = None
        runtime.row = row
        runtime.gas = {device: runtime.gas.get(device) or GasTrack() for device in row.detectors}
        self.device_homes.note_permit(row, runtime.shard, lambda worker: self.worker_tags.get(worker, ()))
        rows = (previous, row) if previous is not None else (row,)
        equipment_plc = self.equipment_plc
        self._forget_served(
            device for r in rows
            for device in (*r.detectors, *r.harnesses, *(equipment_plc.get(item) for item in (*r.isolations, *r.ventilation)))
            if device is not None
        )
        self.index.replace(row.permit, previous, row)
        for guardian in {row.guardian, previous.guardian} if previous is not None else (row.guardian,):
            self._refresh_guarding(guardian)
        zones = [row.zone] if previous is None or previous.zone == row.zone else [previous.zone, row.zone]
        for zone in zones:
            self._watch_zone(zone)
        self._refresh_guardian(runtime)
        if row.type == "confined_space" and row.state == "closed" and (previous is None or previous.state != "closed"):
            self._check_entrants_at_close(runtime, now, source)
        return [row.permit] + [pid for zone in zones for pid in self.index.active_in_zone.get(zone, [])]

    def _on_permit_action(self, record: Record, source: Origin, now: int) -> Iterable[str]:
        action = self._table_row(_PERMIT_ACTION, record, source, now) if record.payload is not None else None
        if action is None:
            return []
        runtime = self.permits.get(action.permit)
        if runtime is None:
            self.faults.raise_("PERMIT_UNKNOWN", action.permit, now, source, f"{action.action} for unknown permit {action.permit}")
            return []
        if action.action == "ack":
            if action.alert is not None and action.alert == runtime.risk_alert:
                runtime.risk_alert = None
                self.faults.clear("RISK_ALERT_UNACKNOWLEDGED", action.permit, now, source)
            return []
        if action.action != "reset":
            self.faults.raise_("ACTION_UNKNOWN", action.permit, now, source, f"action {action.action!r} by {action.by}")
            return []
        if action.by != runtime.row.approver:
            self.faults.raise_(
                "RESET_UNAUTHORISED", action.permit, now, source,
                f"{action.by} tried to reset {action.permit}; only its approver {runtime.row.approver} may: refused",
                permits=[action.permit],
            )
            return []
        if not runtime.latched:
            return []
        stops, _, _ = self._preconditions(runtime, now, source)
        if stops:
            self.faults.raise_(
                "RESET_REFUSED_CAUSES_PRESENT", action.permit, now, source,
                f"reset by {action.by} refused: {', '.join(dict.fromkeys(r.code for r in stops))} still present",
                permits=[action.permit],
            )
            return []
        runtime.latched = False
        runtime.reset_by = action.by
        return [action.permit]

    # ------------------------------------------------------------------ indexes

    def _index_device(self, row: wire.DeviceRow) -> None:
        """Add a CMDB row to the device indexes: its schema, a tag's wearer and vendor, a PLC's equipment."""
        device = row.device
        state = self.device_state.get(device)
        if state is None:
            state = self.device_state[device] = DeviceState(device)
        state.row = row
        state.family = sys.intern(row.family)
        state.firmware = sys.intern(row.firmware) if row.firmware is not None else None
        state.schema = PLC_SCHEMA if row.family == "plc" else schema_for_firmware(row.model, row.firmware)
        state.is_tag = row.family == "uwb_tag"
        if state.is_tag:
            state.vendor_schema = schema_for_vendor(row.vendor)
            state.worker = row.worker or None
            state.guarding = self.index.guardian.get(row.worker, ()) if row.worker else ()
            if row.worker:
                self.tag_worker[device] = row.worker
                self.worker_tags.setdefault(row.worker, []).append(device)
        elif row.family == "gas" and row.zone:
            self.zone_detectors.setdefault(row.zone, []).append(device)
        elif row.family == "plc":
            for item in row.equipment:
                self.equipment_plc.setdefault(item, device)
            for item in _enable_items(row):
                self.enable_plc.setdefault(item, device)

    def _unindex_device(self, row: wire.DeviceRow | None) -> None:
        """Remove a CMDB row's entries; equipment it held passes to another PLC that lists it, if any."""
        if row is None:
            return
        device = row.device
        state = self.device_state[device]
        state.row = state.family = state.firmware = state.schema = state.vendor_schema = state.worker = None
        state.is_tag = False
        state.guarding = ()
        worker = self.tag_worker.pop(device, None)
        if worker is not None:
            tags = self.worker_tags[worker]
            tags.remove(device)
            if not tags:
                del self.worker_tags[worker]
        if row.family == "gas" and row.zone and device in self.zone_detectors.get(row.zone, ()):
            self.zone_detectors[row.zone].remove(device)
        if row.family == "plc":
            for item in _enable_items(row):
                if self.enable_plc.get(item) == device:
                    del self.enable_plc[item]
                    other = next((d.device for d in self.devices.values()
                                  if d.family == "plc" and d.device != device and item in _enable_items(d)), None)
                    if other is not None:
                        self.enable_plc[item] = other
            for item in row.equipment:
                if self.equipment_plc.get(item) == device:
                    del self.equipment_plc[item]
                    other = next((d.device for d in self.devices.values()
                                  if d.family == "plc" and d.device != device and item in d.equipment), None)
                    if other is not None:
                        self.equipment_plc[item] = other

    def _row_permits(self, row: wire.DeviceRow) -> list[str]:
        """Permits a CMDB row matters to."""
        index = self.index
        if row.family == "uwb_tag":
            wearer = list(index.person.get(row.worker, ())) if row.worker else []
            around = [pid for zone in self.occupancy.zones_of(row.device) for pid in index.active_in_zone.get(zone, ())]
            return list(dict.fromkeys(wearer + around))
        if row.family == "plc":
            return list(dict.fromkeys(pid for item in row.equipment for pid in index.equipment.get(item, ())))
        return index.detector.get(row.device, []) + index.harness.get(row.device, [])

    def _refresh_guarding(self, worker: str) -> None:
        """The worker's tags point at the permit index's list of the permits the worker guards."""
        guarding = self.index.guardian.get(worker, ())
        for tag in self.worker_tags.get(worker, ()):
            self.device_state[tag].guarding = guarding

    def _watch_zone(self, zone: str) -> None:
        """Occupancy is kept for the zones with active permits."""
        view = self.zones.get(zone)
        if zone in self.index.active_in_zone and view is not None and (self.plan.shards == 1 or self._zone_here(zone)):
            self.occupancy.watch(zone, view.area)
        else:
            self.occupancy.unwatch(zone)

    def _refresh_guardian(self, runtime: PermitRuntime) -> None:
        """The area the guardian must stand in, and guardian presence from the guardian's latest fixes for a permit
        that has not seen its guardian yet."""
        area = runtime.guardian_area = guardian_area(runtime.row, self.zones.get(runtime.row.zone))
        if runtime.guardian_seen is not None or runtime.row.state in TERMINAL_STATES:
            return
        if area is None:
            return
        states = self.device_state
        seen = [
            p.ts for tag in self.worker_tags.get(runtime.row.guardian, ())
            if (p := states[tag].fix) is not None and area.contains(p.x, p.y, p.z)
        ]
        if seen:
            runtime.guardian_seen = max(seen)

    def _decide_unless_enabled(self, permits: Iterable[str], unchanged: bool) -> list[str]:
        """The active permits to re-decide after an input: when the evidence kept its meaning, enabled permits are left to
        their timers (a refresh only moves a deadline later)."""
        if not permits:
            return []
        if not unchanged:
            return self._active(permits)
        return [pid for pid in permits if (rt := self.permits[pid]).row.state == "active" and not rt.enabled]

    def _active(self, permits: Iterable[str]) -> list[str]:
        return [pid for pid in permits if self.permits[pid].row.state == "active"]

    def _limits_for(self, work_type: str, now: int) -> GasLimits:
        if self._limits_from <= now < self._limits_until:
            limits = self._limits.get((work_type, self._limits_month))
            if limits is not None:
                return limits
        day = site_day(now, self.config.utc_offset_minutes)
        self._limits_from = day * DAY_MS - self.config.utc_offset_minutes * 60_000
        self._limits_until = self._limits_from + DAY_MS
        if day != self._limits_day:
            self._limits_day = day
            self._limits_month = site_date(now, self.config.utc_offset_minutes).month
        key = (work_type, self._limits_month)
        limits = self._limits.get(key)
        if limits is None:
            limits = self._limits[key] = limits_for(self.config, work_type, self._limits_month)
        return limits

    # ------------------------------------------------------------------ confined-space close

    def _entrants(self, zone: str) -> list[str]:
        view = self.zones.get(zone)
        if view is None:
            return []
        return [self.tag_worker.get(tag, f"unregistered tag {tag}") for tag in self.occupancy.tags_within(view.area)]

    def _check_entrants_at_close(self, runtime: PermitRuntime, now: int, source: Origin) -> None:
        row = runtime.row
        inside = self._entrants(row.zone)
        if not inside:
            return
        fault = self.faults.raise_(
            "ENTRANT_LEFT_INSIDE", row.permit, now, source,
            f"{row.permit} closed with {', '.join(inside)} last located inside {row.zone}", permits=[row.permit],
        )
        self.faults.cite(fault, now, True)
        self.closed_with_entrants[row.permit] = row.zone
        reasons = [Reason("ENTRANT_LEFT_INSIDE", f"{', '.join(inside)} last located inside {row.zone}", fault)]
        self._command(HARD_STOP, runtime, reasons, source, now, latched=False)
        runtime.enabled = False

    def _recheck_entrants(self, now: int) -> None:
        for pid, zone in list(self.closed_with_entrants.items()):
            if not self._entrants(zone):
                del self.closed_with_entrants[pid]
                self.faults.clear("ENTRANT_LEFT_INSIDE", pid, now, None)

    # ------------------------------------------------------------------ decisions

    def _evaluate(self, pid: str, now: int, trigger: Origin) -> None:
        """Decide one permit at `now`: ENABLE, HARD_STOP (a trip latches), ALERT, or nothing new."""
        runtime = self.permits[pid]
        if runtime.shard != self.shard:
            return
        row = runtime.row
        if row.state != "active":
            if runtime.enabled:
                reason = Reason("PERMIT_NOT_ACTIVE", f"{pid} is {row.state}", None)
                self._command(HARD_STOP, runtime, [reason], trigger, now, latched=False)
                runtime.enabled = False
            runtime.stop_codes = runtime.warning_codes = ()
            self.faults.reconcile(PERMIT_CODES, pid, _NONE, now, trigger)
            self._schedule(runtime, None)
            return
        stops, warnings, wake = self._preconditions(runtime, now, trigger)
        if stops:
            for reason in stops:
                self.faults.cite(reason.fault, now, True)
            codes = tuple(dict.fromkeys(r.code for r in stops))
            # Once stopped, only a new kind of fault is news; a stop that only waits (pre-test running) is not repeated.
            news = [
                r for r in stops
                if r.code not in runtime.stopped_for and (r.fault is not None or not runtime.stop_codes)
            ]
            if runtime.enabled or news:
                latched = runtime.enabled or runtime.latched
                risk = self.zone_risk[row.zone].note() if "RISK_RED" in codes else None
                self._command(HARD_STOP, runtime, stops, trigger, now, latched=latched, risk=risk)
                runtime.latched = latched
                runtime.enabled = False
            runtime.stop_codes = codes
            runtime.stopped_for = tuple(dict.fromkeys(runtime.stopped_for + codes))
            runtime.reset_alerted = False
        else:
            runtime.stop_codes = ()
            if runtime.latched:
                if not runtime.reset_alerted:
                    reason = Reason(
                        "TRIP_RESET_REQUIRED",
                        f"causes of the stop are gone{self._gas_summary(runtime)}; {row.approver} may reset {pid}", None,
                    )
                    self._command(ALERT, runtime, [reason], trigger, now, targets=[row.approver])
                    runtime.reset_alerted = True
            elif not runtime.enabled:
                reasons = []
                if runtime.reset_by is not None:
                    reasons.append(Reason("RESET_ACCEPTED", f"reset by approver {runtime.reset_by}", None))
                    runtime.reset_by = None
                reasons.append(Reason(
                    "ALL_PRECONDITIONS_MET",
                    f"{pid} {row.type} in {row.zone}: every precondition holds{self._gas_summary(runtime)}", None,
                ))
                self._command(ENABLE, runtime, reasons, trigger, now)
                runtime.enabled = True
                runtime.stopped_for = ()
        warning_codes = tuple(r.code for r in warnings)
        if any(code not in runtime.warning_codes for code in warning_codes):
            self._command(ALERT, runtime, warnings, trigger, now, targets=[row.guardian])
        runtime.warning_codes = warning_codes
        if self.zone_risk:
            self._risk_alert(runtime, now, trigger)
        self._schedule(runtime, wake)

    def _preconditions(self, runtime: PermitRuntime, now: int, source: Origin) -> tuple[list[Reason], list[Reason], int | None]:
        """What stops the permit and what only warns, each resting on its fault, and when time alone changes the answer."""
        config = self.config
        row = runtime.row
        findings = Findings()
        view = self.zones.get(row.zone)
        problems, wake = record_problems(row, view.row if view else None, now, config)
        findings.problems += problems
        findings.wake(wake)
        check_guardian(findings, row, view, runtime.guardian_seen, now, config)
        inside = check_entrants(findings, row.zone, self.occupancy.inside(row.zone), self.tag_worker, self._authorised(row.zone))
        check_crew(findings, row, inside, self.qualifications, now, config, self.crew_health)
        check_plc_signals(findings, row, self.equipment_plc, self.plc, self.untrusted, now, config)
        if row.type in config.gas_work_types:
            check_gas(findings, runtime.gas, runtime.enabled, now, config)
        check_harnesses(findings, row.harnesses, self.harness, self.untrusted, runtime.enabled, now, config)
        if self.plc_down:
            for plc in dict.fromkeys(self.enable_plc.get(item) for item in row.equipment):
                if plc in self.plc_down:
                    findings.device_fault("PLC_UNREACHABLE", plc)
        if self.zone_risk and (risk := self.zone_risk.get(row.zone)) is not None and risk.grade.grade == RED:
            findings.device_fault("RISK_RED", row.zone)
        stops = (
            self._permit_reasons(row.permit, findings.problems, now, source)
            + [self._device_reason(code, device) for code, device in findings.device_faults]
            + [Reason(code, detail, None) for code, detail in findings.waiting]
        )
        alerts = self._permit_reasons(row.permit, findings.warnings, now, source)
        present = {r.code for r in stops} | {r.code for r in alerts}
        self.faults.reconcile(PERMIT_CODES, row.permit, present, now, source)
        return stops, alerts, findings.next_wake(now)

    def _gas_summary(self, runtime: PermitRuntime) -> str:
        return gas_summary(runtime.gas, self.now) if runtime.row.type in self.config.gas_work_types else ""

    def _authorised(self, zone: str) -> set[str]:
        """Everyone on an active permit of the zone, workers and guardians."""
        people: set[str] = set()
        for pid in self.index.active_in_zone.get(zone, ()):
            row = self.permits[pid].row
            people.update(row.workers)
            people.add(row.guardian)
        return people

    def _device_reason(self, code: str, device: str) -> Reason:
        """A reason resting on the open fault `code` about `device`."""
        fault_id = self.faults.fault_id(code, device)
        fault = self.faults.by_id.get(fault_id) if fault_id else None
        return Reason(code, fault.detail if fault is not None else f"latest data from {device} is not trusted", fault_id)

    def _permit_reasons(self, pid: str, problems: list[tuple[str, str]], now: int, source: Origin) -> list[Reason]:
        """One reason per code (details joined), each resting on the permit's open fault for that code."""
        merged: dict[str, list[str]] = {}
        for code, detail in problems:
            merged.setdefault(code, []).append(detail)
        reasons = []
        for code, details in merged.items():
            detail = "; ".join(details)
            fault_id = self.faults.fault_id(code, pid)
            if fault_id is None:
                fault_id = self.faults.raise_(code, pid, now, source, detail, permits=[pid])
            reasons.append(Reason(code, detail, fault_id))
        return reasons


_NONE: frozenset[str] = frozenset()


def _enable_items(row: wire.DeviceRow) -> set[str]:
    """Equipment whose enable the PLC row addresses, on either protocol."""
    items: set[str] = set()
    if row.modbus is not None:
        items.update(row.modbus.enable_coils)
    if row.opcua is not None:
        items.update(row.opcua.enable_nodes)
    return items
