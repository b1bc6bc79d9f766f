"""What an incident's replay must show, stated beside its scenario as `<name>.outcome.toml`, and the check of a replay.

An outcome lists the commands and faults the interlock must send (each a pattern: kind or code, permit or subject,
first reason, latch, trigger, a time window in seconds from the scenario's start, how many), the things that must
not happen (`[[never_command]]`, `[[never_fault]]`), and whether anything else may be sent at all. The check works on
the decoded `interlock.commands` and `interlock.faults` records of a replay (protocols §10) and returns one sentence
per problem, so a test can show every one at once. simulators/README.md describes the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

Seconds = Annotated[float, Meta(ge=0)]
Count = Annotated[int, Meta(ge=0)]
TIMER = "timer"
"""The `trigger` of a decision that time alone made (its record's `trigger`/`source` is null)."""


class CommandPattern(Struct, forbid_unknown_fields=True):
    """Which `interlock.commands` records match: every field given must hold. `reason` is the first reason's code,
    `reasons` all codes in order, `has_reason` one code among them; `trigger` is an input topic or "timer";
    `after`/`before` bound the command's time in s from the scenario's start (inclusive)."""

    kind: Literal["ENABLE", "HARD_STOP", "ALERT"] | None = None
    permit: str | None = None
    reason: str | None = None
    reasons: list[str] | None = None
    has_reason: str | None = None
    latched: bool | None = None
    targets: list[str] | None = None
    trigger: str | None = None
    detail_contains: str | None = None
    after: Seconds | None = None
    before: Seconds | None = None

    def matches(self, command: dict, start_ms: int) -> bool:
        """Whether the command fits the pattern."""
        codes = [reason["code"] for reason in command["reasons"]]
        checks = (
            self.kind is None or command["kind"] == self.kind,
            self.permit is None or command["permit"] == self.permit,
            self.reason is None or (bool(codes) and codes[0] == self.reason),
            self.reasons is None or codes == self.reasons,
            self.has_reason is None or self.has_reason in codes,
            self.latched is None or command.get("latched") == self.latched,
            self.targets is None or command["targets"] == self.targets,
            self.trigger is None or trigger_of(command["trigger"]) == self.trigger,
            self.detail_contains is None or any(self.detail_contains in r["detail"] for r in command["reasons"]),
            within(command["ts"], start_ms, self.after, self.before),
        )
        return all(checks)


class FaultPattern(Struct, forbid_unknown_fields=True):
    """Which `interlock.faults` records match: every field given must hold. `subject` is the device, permit or topic
    the fault is about; `count` the record's count exactly, `count_min` at least; `trigger` the input topic of its
    `source` or "timer"; `state` "raised" or "cleared" (default: either)."""

    code: str | None = None
    grade: Literal["CRITICAL", "MAJOR", "MINOR", "INFO"] | None = None
    state: Literal["raised", "cleared"] | None = None
    subject: str | None = None
    device: str | None = None
    permits: list[str] | None = None
    count: Count | None = None
    count_min: Count | None = None
    trigger: str | None = None
    detail_contains: str | None = None
    firmware_reported: str | None = None
    firmware_approved: str | None = None
    schema_expected: str | None = None
    schema_matches: list[str] | None = None
    path: str | None = None
    after: Seconds | None = None
    before: Seconds | None = None

    def matches(self, fault: dict, start_ms: int) -> bool:
        """Whether the fault record fits the pattern."""
        same = ("code", "grade", "state", "subject", "device", "permits", "firmware_reported", "firmware_approved",
                "schema_expected", "schema_matches", "path")
        checks = (
            all(getattr(self, name) is None or fault.get(name) == getattr(self, name) for name in same),
            self.count is None or fault["count"] == self.count,
            self.count_min is None or fault["count"] >= self.count_min,
            self.trigger is None or trigger_of(fault["source"]) == self.trigger,
            self.detail_contains is None or self.detail_contains in fault["detail"],
            within(fault["ts"], start_ms, self.after, self.before),
        )
        return all(checks)


class ExpectCommand(CommandPattern, forbid_unknown_fields=True):
    """A command the replay must send: `occurrences` exactly that many matching commands, otherwise at least
    `at_least` (default 1; 0 tolerates commands that are neither required nor forbidden). `why` says what it shows."""

    occurrences: Count | None = None
    at_least: Count = 1
    why: str = ""


class ExpectFault(FaultPattern, forbid_unknown_fields=True):
    """A fault record the replay must send: `occurrences` exactly that many matching records, otherwise at least
    `at_least` (default 1; 0 tolerates records that are neither required nor forbidden). `why` says what it shows."""

    occurrences: Count | None = None
    at_least: Count = 1
    why: str = ""


class NeverCommand(CommandPattern, forbid_unknown_fields=True):
    """No command may match; `why` says why it must not happen."""

    why: str = ""


class NeverFault(FaultPattern, forbid_unknown_fields=True):
    """No fault record may match; `why` says why it must not happen."""

    why: str = ""


class Outcome(Struct, forbid_unknown_fields=True):
    """What the replay of one incident must show. With `only_listed_commands` every command must match one of
    `commands`; with `only_listed_faults` every fault record must match one of `faults` by code and subject (any
    state, time or count), so no other fault may be raised."""

    summary: str
    commands: list[ExpectCommand] = []
    faults: list[ExpectFault] = []
    never_command: list[NeverCommand] = []
    never_fault: list[NeverFault] = []
    only_listed_commands: bool = True
    only_listed_faults: bool = True


def load_outcome(path: Path) -> Outcome:
    """Read an outcome TOML file; unknown keys are errors, so a misspelt expectation cannot silently pass."""
    return msgspec.toml.decode(Path(path).read_bytes(), type=Outcome)


def trigger_of(source: dict | None) -> str:
    """The input topic a decision rests on, or "timer" for a decision time alone made."""
    return TIMER if source is None else source["topic"]


def within(ts: int, start_ms: int, after: float | None, before: float | None) -> bool:
    """Whether `ts` lies in [after, before] seconds from the start (an open side is unbounded)."""
    seconds = (ts - start_ms) / 1000
    return (after is None or seconds >= after) and (before is None or seconds <= before)


def describe(pattern: Struct) -> str:
    """The fields a pattern sets, for a problem's sentence."""
    skip = {"why", "at_least"}
    given = {name: value for name in pattern.__struct_fields__ if name not in skip
             and (value := getattr(pattern, name)) is not None}
    return ", ".join(f"{name}={value!r}" for name, value in given.items())


def moment(record: dict, start_ms: int) -> str:
    """A record's time in s from the start, with what it is, for a problem's sentence."""
    what = record.get("kind") or f"{record['code']} {record['state']} ({record['grade']}, {record['subject']})"
    reasons = [r["code"] for r in record.get("reasons", [])]
    return f"{(record['ts'] - start_ms) / 1000:.3f} s {what} {record.get('permit', '')} {reasons or ''}".rstrip()


def count_problems(expected: list[ExpectCommand] | list[ExpectFault], records: list[dict], start_ms: int,
                   noun: str) -> list[str]:
    """Each expected command or fault matched the wanted number of times."""
    problems = []
    for expectation in expected:
        found = [r for r in records if expectation.matches(r, start_ms)]
        if expectation.occurrences is not None and len(found) != expectation.occurrences:
            problems.append(f"expected exactly {expectation.occurrences} {noun}(s) {describe(expectation)}; "
                            f"found {len(found)}: {[moment(r, start_ms) for r in found]}")
        elif expectation.occurrences is None and len(found) < expectation.at_least:
            problems.append(f"expected at least {expectation.at_least} {noun}(s) {describe(expectation)}; "
                            f"found {len(found)}")
    return problems


def command_problems(outcome: Outcome, commands: list[dict], start_ms: int) -> list[str]:
    """Where the commands differ from the expected ones."""
    return count_problems(outcome.commands, commands, start_ms, "command")


def fault_problems(outcome: Outcome, faults: list[dict], start_ms: int) -> list[str]:
    """Where the fault records differ from the expected ones."""
    return count_problems(outcome.faults, faults, start_ms, "fault record")


def forbidden_problems(outcome: Outcome, commands: list[dict], faults: list[dict], start_ms: int) -> list[str]:
    """Commands and faults that must not happen but did."""
    problems = [f"forbidden command ({describe(never)}): {moment(c, start_ms)}"
                for never in outcome.never_command for c in commands if never.matches(c, start_ms)]
    problems += [f"forbidden fault ({describe(never)}): {moment(f, start_ms)}"
                 for never in outcome.never_fault for f in faults if never.matches(f, start_ms)]
    return problems


def unlisted_commands(outcome: Outcome, commands: list[dict], start_ms: int) -> list[str]:
    """Commands no expectation accounts for, when only the listed ones may be sent."""
    if not outcome.only_listed_commands:
        return []
    return [f"unexpected command: {moment(c, start_ms)}" for c in commands
            if not any(e.matches(c, start_ms) for e in outcome.commands)]


def unlisted_faults(outcome: Outcome, faults: list[dict], start_ms: int) -> list[str]:
    """Fault records whose code and subject no expectation names, when only the listed faults may be raised."""
    if not outcome.only_listed_faults:
        return []
    listed = [(e.code, e.subject) for e in outcome.faults]
    return [f"unexpected fault: {moment(f, start_ms)}" for f in faults
            if not any(code in (None, f["code"]) and subject in (None, f["subject"]) for code, subject in listed)]


def outcome_problems(outcome: Outcome, commands: list[dict], faults: list[dict], start_ms: int) -> list[str]:
    """Every way the replay differs from the outcome; empty when it shows exactly what the outcome states."""
    return (command_problems(outcome, commands, start_ms) + fault_problems(outcome, faults, start_ms)
            + forbidden_problems(outcome, commands, faults, start_ms) + unlisted_commands(outcome, commands, start_ms)
            + unlisted_faults(outcome, faults, start_ms))
