"""The gas test of a permit: which readings qualify, the pre-start run of consecutive qualified readings, and freshness while working."""

from __future__ import annotations

from typing import Sequence

import msgspec

from interlock.config import GasLimits, SiteConfig
from interlock.findings import Findings
from schemas.readings import GasSample

ALARM_BITS = ((0, "low O2"), (1, "high O2"), (2, "LEL"), (3, "H2S"), (4, "CO"), (7, "sensor fault"))

SAMPLE_CODES = (
    "GAS_DETECTOR_NOT_READY",
    "GAS_SENSOR_FAULT",
    "GAS_DETECTOR_ALARM",
    "GAS_BUMP_TEST_OVERDUE",
    "GAS_LIMIT_EXCEEDED",
)


def limits_for(config: SiteConfig, work_type: str, month: int) -> GasLimits:
    """The site's limits for a work type in a month: base limits, the work type's overrides, then seasonal factors."""
    values = msgspec.structs.asdict(config.gas_limits)
    values.update(config.gas_limit_overrides.get(work_type, {}))
    for profile in config.seasonal_profiles:
        if month in profile.months:
            for name, factor in profile.factors.items():
                values[name] = values[name] * factor
    return GasLimits(**values)


_QUALIFIED: tuple[tuple[str, str], ...] = ()


def assess_sample(sample: GasSample, limits: GasLimits, now: int, config: SiteConfig) -> Sequence[tuple[str, str]]:
    """Why a reading is not qualified, as (code, detail) pairs; empty when it qualifies."""
    o2, lel, h2s, co = sample.o2, sample.lel, sample.h2s, sample.co
    if (
        sample.status == "ok" and not sample.alarm
        and o2 is not None and lel is not None and h2s is not None and co is not None
        and limits.o2_min <= o2 <= limits.o2_max and lel < limits.lel_max and h2s < limits.h2s_max and co < limits.co_max
        and (sample.bump is None or now - sample.bump <= config.bump_test_max_age_ms)
    ):
        return _QUALIFIED
    problems: list[tuple[str, str]] = []
    dev = sample.device
    if sample.status != "ok":
        problems.append(("GAS_DETECTOR_NOT_READY", f"{dev} status is {sample.status!r}, not 'ok'"))
    faulted = [name for name, value in (("O2", sample.o2), ("LEL", sample.lel), ("H2S", sample.h2s), ("CO", sample.co)) if value is None]
    if faulted:
        problems.append(("GAS_SENSOR_FAULT", f"{dev} channel {', '.join(faulted)} in sensor fault"))
    if sample.alarm:
        names = [name for bit, name in ALARM_BITS if sample.alarm & (1 << bit)] or [f"bits {sample.alarm:#04x}"]
        problems.append(("GAS_DETECTOR_ALARM", f"{dev} alarm: {', '.join(names)}"))
    if sample.bump is not None and now - sample.bump > config.bump_test_max_age_ms:
        hours = (now - sample.bump) / 3_600_000
        problems.append(("GAS_BUMP_TEST_OVERDUE", f"{dev} last bump test {hours:.1f} h ago (limit {config.bump_test_max_age_ms / 3_600_000:g} h)"))
    if sample.status != "ok":
        return problems  # values of a detector that is not ready (warming up, in fault) are no measurement
    exceeded = []
    if sample.o2 is not None and not (limits.o2_min <= sample.o2 <= limits.o2_max):
        exceeded.append(f"O2 {sample.o2:g} %vol outside {limits.o2_min:g}-{limits.o2_max:g}")
    for name, value, limit, unit in (
        ("LEL", sample.lel, limits.lel_max, "%LEL"),
        ("H2S", sample.h2s, limits.h2s_max, "ppm"),
        ("CO", sample.co, limits.co_max, "ppm"),
    ):
        if value is not None and value >= limit:
            exceeded.append(f"{name} {value:g} {unit} >= {limit:g}")
    if exceeded:
        problems.append(("GAS_LIMIT_EXCEEDED", f"{dev} " + "; ".join(exceeded)))
    return problems


class GasTrack(msgspec.Struct, gc=False):
    """One detector as evidence for one permit: times of the current run of qualified readings, and the latest verdict."""

    run: list[int] = msgspec.field(default_factory=list)
    last_good: int | None = None
    problem: str | None = None
    problem_subject: str | None = None

    def observe_good(self, now: int, keep: int) -> None:
        self.run.append(now)
        if len(self.run) > keep:
            del self.run[0]
        self.last_good = now
        self.problem = self.problem_subject = None

    def observe_bad(self, code: str, subject: str) -> None:
        """A reading that is not qualified (or not evidence) resets the run."""
        self.run.clear()
        self.problem = code
        self.problem_subject = subject


def pretest_deadline(track: GasTrack, config: SiteConfig) -> int | None:
    """Until when the pre-start test holds, or None when it does not hold at all."""
    needed = config.gas_pretest_readings
    if track.problem is not None or len(track.run) < needed or track.last_good is None:
        return None
    return min(track.run[-needed] + config.gas_pretest_window_ms, track.last_good + config.gas_reading_max_age_ms)


def fresh_deadline(track: GasTrack, config: SiteConfig) -> int | None:
    """Until when the latest qualified reading is fresh enough to keep working, or None when the latest reading was bad."""
    if track.problem is not None or track.last_good is None:
        return None
    return track.last_good + config.gas_reading_max_age_ms


def pretest_detail(device: str, track: GasTrack, now: int, config: SiteConfig) -> str:
    """How far the pre-start test of one detector has come."""
    if track.last_good is None:
        return f"{device}: no qualified reading yet"
    if now - track.last_good > config.gas_reading_max_age_ms:
        return f"{device}: latest qualified reading {(now - track.last_good) / 1000:.0f} s old"
    recent = [t for t in track.run if now - t <= config.gas_pretest_window_ms]
    return (f"{device}: {len(recent)} of {config.gas_pretest_readings} consecutive qualified readings "
            f"within {config.gas_pretest_window_ms / 1000:g} s")


def gas_summary(tracks: dict[str, GasTrack], now: int) -> str:
    """`(gas test: GAS-07 5 qualified readings over 4 s)`, or empty when no detector has a run."""
    parts = [f"{device} {len(track.run)} qualified readings over {(now - track.run[0]) / 1000:.0f} s"
             for device, track in tracks.items() if track.run]
    return f" (gas test: {', '.join(parts)})" if parts else ""


def check_gas(findings: Findings, tracks: dict[str, GasTrack], enabled: bool, now: int, config: SiteConfig) -> None:
    """Each listed detector: its latest reading qualified; fresh while working; the pre-test passed to start."""
    for device, track in tracks.items():
        if track.problem is not None:
            findings.device_fault(track.problem, track.problem_subject or device)
        elif enabled:
            deadline = fresh_deadline(track, config)
            if deadline is None or now > deadline:
                age = "none yet" if track.last_good is None else f"{(now - track.last_good) / 1000:.0f} s old"
                findings.stop("GAS_DATA_STALE", f"{device}: latest qualified reading {age} "
                                                f"(limit {config.gas_reading_max_age_ms / 1000:g} s)")
            else:
                findings.wake(deadline + 1)
        elif track.last_good is not None and now - track.last_good > config.gas_reading_max_age_ms:
            # A detector that reported and went silent stays a fault while it is silent, not only a test to redo.
            findings.stop("GAS_DATA_STALE", f"{device}: latest qualified reading {(now - track.last_good) / 1000:.0f} s "
                                            f"old (limit {config.gas_reading_max_age_ms / 1000:g} s)")
        else:
            deadline = pretest_deadline(track, config)
            if deadline is None or now > deadline:
                findings.wait("GAS_PRETEST_INCOMPLETE", pretest_detail(device, track, now, config))
            else:
                findings.wake(deadline + 1)
