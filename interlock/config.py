"""Site settings: every threshold the decision core applies, with the defaults of GB 30871-2022 and the site sheet.

One struct, loaded from TOML (`interlock replay --config FILE`); unknown keys are
an error so a misspelt setting never silently keeps its default. Documented
in docs/config.md.
"""

from __future__ import annotations

import msgspec


class GasLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Acceptable gas levels: O2 within [o2_min, o2_max] %vol; LEL, H2S and CO strictly below their maxima."""

    o2_min: float = 19.5
    o2_max: float = 23.5
    lel_max: float = 10.0
    h2s_max: float = 7.0
    co_max: float = 26.0


class SeasonalProfile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Scales the maxima in the given months (site calendar), e.g. summer CO 15 % lower: `{co_max = 0.85}`."""

    name: str
    months: list[int]
    factors: dict[str, float]


def _default_profiles() -> list[SeasonalProfile]:
    return [SeasonalProfile("summer", [6, 7, 8], {"co_max": 0.85})]


class SiteConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """All site settings; times in milliseconds, lengths in millimetres."""

    utc_offset_minutes: int = 480
    clock_skew_max_ms: int = 5_000
    fix_quality_min: float = 0.5
    guardian_absence_max_ms: int = 30_000
    plc_state_max_age_ms: int = 15_000
    gas_work_types: list[str] = msgspec.field(default_factory=lambda: ["hot_work", "confined_space"])
    gas_pretest_readings: int = 5
    gas_pretest_window_ms: int = 180_000
    gas_reading_max_age_ms: int = 10_000
    bump_test_max_age_ms: int = 24 * 3_600_000
    gas_limits: GasLimits = GasLimits()
    gas_limit_overrides: dict[str, dict[str, float]] = msgspec.field(
        default_factory=lambda: {"confined_space": {"o2_max": 21.0}}
    )
    seasonal_profiles: list[SeasonalProfile] = msgspec.field(default_factory=_default_profiles)
    harness_height_min_mm: int = 2_000
    harness_untied_alert_ms: int = 10_000
    harness_untied_stop_ms: int = 30_000
    harness_stale_ms: int = 10_000
    qualification_yellow_days: int = 90
    qualification_red_days: int = 15
    certificate_types: dict[str, list[str]] = msgspec.field(
        default_factory=lambda: {
            "hot_work": ["welding"],
            "height": ["height"],
            "temp_electric": ["electrical"],
            "confined_space": ["confined", "hazchem"],
        }
    )
    max_window_hours: dict[str, dict[str, float]] = msgspec.field(
        default_factory=lambda: {"hot_work": {"special": 8, "0": 8, "特级": 8, "1": 8, "2": 72}}
    )
    fault_quiet_clear_ms: int = 60_000
    risk_step_ms: int = 1000
    """The risk ticks' period: a zone with a trusted reading since its last tick steps its model once per period, at
    the phase of its group of zones (the model was trained on one step a second)."""
    risk_ack_timeout_ms: int = 120_000
    """A yellow or red risk alert not acknowledged by the guardian within this time raises RISK_ALERT_UNACKNOWLEDGED."""

    def __post_init__(self) -> None:
        if self.risk_step_ms <= 0:
            raise ValueError(f"risk_step_ms: {self.risk_step_ms} is no period; give the risk tick in milliseconds (1000)")
        known = set(GasLimits.__struct_fields__)
        for work_type, overrides in self.gas_limit_overrides.items():
            for name in overrides:
                if name not in known:
                    raise ValueError(f"gas_limit_overrides.{work_type}.{name}: unknown limit; use one of {sorted(known)}")
        for profile in self.seasonal_profiles:
            for name in profile.factors:
                if name not in known:
                    raise ValueError(f"seasonal_profiles[{profile.name}].factors.{name}: unknown limit; use one of {sorted(known)}")
            for month in profile.months:
                if not 1 <= month <= 12:
                    raise ValueError(f"seasonal_profiles[{profile.name}].months: {month} is not a month 1..12")


DEFAULT_CONFIG = SiteConfig()


MERGED_TABLES = ("gas_limit_overrides", "certificate_types", "max_window_hours")
"""Per-work-type tables: a file that names one work type keeps the defaults of the others."""


def load_config(text: bytes | str) -> SiteConfig:
    """Parse TOML site settings; raises msgspec.ValidationError naming the bad key and value."""
    raw = msgspec.toml.decode(text)
    for name in MERGED_TABLES:
        given = raw.get(name)
        if isinstance(given, dict):
            raw[name] = {**getattr(DEFAULT_CONFIG, name), **given}
    return msgspec.convert(raw, SiteConfig)
