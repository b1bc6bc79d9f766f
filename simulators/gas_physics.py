"""Gas physics of a zone: one well-mixed volume of air, its ventilation and its gas sources, read in a GD-4's units.

A zone's air is a single well-mixed volume V (m³) at atmospheric pressure. Ventilation brings in outside air at
Q = ACH·V/3600 m³/s, every active source brings in its pure gas at q m³/s, and as much mixed air leaves as comes in
(constant pressure). The volume fraction x of each gas therefore follows

    V·dx/dt = q_gas + Q·x_outside − (Q + Σq)·x

which for a source small against the ventilation is the familiar dC/dt = S/V − ACH/3600·(C − C_outside). With the
inflows held for one step the equation is linear with constant coefficients, so `step_air` applies its exact
solution: the result is deterministic, independent of how small the step is, and a strong purge cannot overshoot.
There is no randomness here; detectors add their own noise when they read the air.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal

from msgspec import Struct

GAS_CONSTANT = 8.314462618  # J/(mol·K)
ATMOSPHERE_PA = 101_325.0
KELVIN = 273.15
REFERENCE_TEMPERATURE_C = 20.0  # a liquid leak's evaporation rate is given at this temperature
OXYGEN = "oxygen"
HYDROGEN_SULFIDE = "hydrogen_sulfide"
CARBON_MONOXIDE = "carbon_monoxide"
OUTSIDE_O2_PERCENT = 20.9
PPM = 1e-6


class GasProperties(Struct, frozen=True):
    """What the physics needs of a gas: molar mass (g/mol), lower flammable limit (volume fraction, None when it does
    not burn), the detector channel that reads it as oxygen or a toxic, and for a liquid at ambient its heat of
    vaporisation (J/mol), which scales its evaporation with temperature."""

    molar_mass: float
    lfl: float | None = None
    channel: Literal["o2", "h2s", "co"] | None = None
    vaporisation_heat: float | None = None

    @property
    def tracked(self) -> bool:
        """Whether a detector sees this gas (it burns, or a channel reads it); others only dilute the air."""
        return self.lfl is not None or self.channel is not None

    @property
    def liquid(self) -> bool:
        """Whether the substance is a liquid at ambient conditions, so that a leak of it evaporates from a pool."""
        return self.vaporisation_heat is not None


# Lower flammable limits are the NIOSH / NFPA figures; a site whose detectors are calibrated to IEC 60079-20-1
# (methane 4.4 %) would change them here.
GASES: dict[str, GasProperties] = {
    "methane": GasProperties(16.04, lfl=0.050),
    "ethylene": GasProperties(28.05, lfl=0.027),
    "propane": GasProperties(44.10, lfl=0.021),
    "butane": GasProperties(58.12, lfl=0.018),
    "hydrogen": GasProperties(2.016, lfl=0.040),
    "hexane": GasProperties(86.18, lfl=0.011, vaporisation_heat=31_560.0),
    "benzene": GasProperties(78.11, lfl=0.012, vaporisation_heat=33_830.0),
    "toluene": GasProperties(92.14, lfl=0.011, vaporisation_heat=38_010.0),
    HYDROGEN_SULFIDE: GasProperties(34.08, lfl=0.040, channel="h2s"),
    CARBON_MONOXIDE: GasProperties(28.01, lfl=0.125, channel="co"),
    OXYGEN: GasProperties(32.00, channel="o2"),
    "nitrogen": GasProperties(28.01),
    "argon": GasProperties(39.95),
    "carbon_dioxide": GasProperties(44.01),
}
INERT_GASES = ("nitrogen", "argon", "carbon_dioxide")


def gas_named(name: str) -> GasProperties:
    """The properties of a gas by its name, or an error that lists the names the physics knows."""
    try:
        return GASES[name]
    except KeyError:
        raise ValueError(f"unknown gas {name!r}; use one of {', '.join(sorted(GASES))}") from None


def gas_density(gas: str, temperature_c: float) -> float:
    """Density of the pure gas (kg/m³) at atmospheric pressure, by the ideal gas law ρ = P·M/(R·T)."""
    return ATMOSPHERE_PA * gas_named(gas).molar_mass / 1000.0 / (GAS_CONSTANT * (temperature_c + KELVIN))


def evaporation_factor(gas: str, temperature_c: float) -> float:
    """How much faster a liquid evaporates at `temperature_c` than at 20 °C: the ratio of its vapour pressures by
    the Clausius–Clapeyron relation, exp(−ΔHvap/R·(1/T − 1/T_ref)). 1 for a gas."""
    heat = gas_named(gas).vaporisation_heat
    if heat is None:
        return 1.0
    t, t_ref = temperature_c + KELVIN, REFERENCE_TEMPERATURE_C + KELVIN
    return math.exp(-heat / GAS_CONSTANT * (1.0 / t - 1.0 / t_ref))


def volume_flow(gas: str, temperature_c: float, *, kg_h: float | None = None, g_h: float | None = None,
                l_min: float | None = None, m3_h: float | None = None) -> float:
    """A source's rate as m³/s of pure gas at the zone's temperature; mass rates of a liquid are its evaporation
    at 20 °C, scaled to the zone's temperature. Exactly one rate is given."""
    given = [r for r in (kg_h, g_h, l_min, m3_h) if r is not None]
    if len(given) != 1:
        raise ValueError(f"{gas}: give exactly one rate of kg_h, g_h, l_min or m3_h, not {len(given)}")
    if l_min is not None or m3_h is not None:
        if gas_named(gas).liquid:
            raise ValueError(f"{gas} is a liquid at ambient temperature; give its evaporation rate in kg_h or g_h")
        return l_min / 60_000.0 if l_min is not None else m3_h / 3600.0
    kg_per_s = (kg_h if kg_h is not None else g_h / 1000.0) / 3600.0
    return kg_per_s * evaporation_factor(gas, temperature_c) / gas_density(gas, temperature_c)


class GasSource(Struct):
    """Pure gas flowing into the zone at `m3_s` from `start` until `end` (ms), while the PLC signal `while_on` is
    true if one is named (e.g. CO from an engine while `PUMP-4.running`)."""

    gas: str
    m3_s: float
    start: int
    end: int
    while_on: str | None = None


class Sludge(Struct):
    """H2S held in sludge (`kg`), released while work disturbs it from `start` until `end` (ms) and while `while_on`:
    first-order, dM/dt = −M/τ, so the emission falls as the sludge is worked out."""

    kg: float
    tau_s: float
    start: int
    end: int
    while_on: str | None = None


class ZoneAir(Struct):
    """The air of one zone: volume (m³), ventilation (air changes per hour while its fan runs, or always without a
    fan; `ach_off` while the fan is stopped), temperature (°C), outside air and the air now (volume fractions by gas),
    its sources, and the four channels a GD-4 in it would read at the last step."""

    zone: str
    volume: float
    ach: float
    ach_off: float
    fan: str | None
    temperature: float
    outside: dict[str, float]
    fractions: dict[str, float]
    sources: list[GasSource]
    sludges: list[Sludge]
    levels: dict[str, float]


def outside_air(o2: float = OUTSIDE_O2_PERCENT, h2s: float = 0.0, co: float = 0.0) -> dict[str, float]:
    """Outside air as volume fractions, from the units a detector reads (O2 %vol, H2S and CO ppm)."""
    return {OXYGEN: o2 / 100.0, HYDROGEN_SULFIDE: h2s * PPM, CARBON_MONOXIDE: co * PPM}


def zone_air(zone: str, volume: float, ach: float, *, ach_off: float = 0.0, fan: str | None = None,
             temperature: float = REFERENCE_TEMPERATURE_C, outside: dict[str, float] | None = None) -> ZoneAir:
    """A zone full of outside air, with no sources yet."""
    if volume <= 0:
        raise ValueError(f"zone {zone}: volume {volume} m³ must be positive")
    outside = outside_air() if outside is None else dict(outside)
    air = ZoneAir(zone, volume, ach, ach_off, fan, temperature, outside, dict(outside), [], [], {})
    air.levels = detector_levels(air.fractions)
    return air


def detector_levels(fractions: Mapping[str, float]) -> dict[str, float]:
    """What a GD-4 reads in this air: O2 %vol; LEL % by Le Chatelier's rule, Σ x/LFL·100 over the flammable gases
    (as if the sensor were calibrated for each); H2S and CO in ppm."""
    lel = 0.0
    for gas, x in fractions.items():
        lfl = GASES[gas].lfl
        if lfl is not None:
            lel += x / lfl
    return {
        "o2": fractions.get(OXYGEN, 0.0) * 100.0,
        "lel": lel * 100.0,
        "h2s": fractions.get(HYDROGEN_SULFIDE, 0.0) / PPM,
        "co": fractions.get(CARBON_MONOXIDE, 0.0) / PPM,
    }


def track(air: ZoneAir, gas: str) -> None:
    """Start following a gas the detectors see (at its outside fraction, 0 unless given); inert gases only dilute."""
    if gas_named(gas).tracked and gas not in air.fractions:
        air.fractions[gas] = air.outside.get(gas, 0.0)


def add_source(air: ZoneAir, source: GasSource) -> None:
    """A gas starts (or will start) flowing into the zone."""
    track(air, source.gas)
    air.sources.append(source)


def add_sludge(air: ZoneAir, sludge: Sludge) -> None:
    """Sludge holding H2S that work will disturb."""
    track(air, HYDROGEN_SULFIDE)
    air.sludges.append(sludge)


def release(air: ZoneAir, gas: str, kg: float | None = None, m3: float | None = None) -> None:
    """A sudden release of `kg` (or `m3` at the zone's temperature) of a gas, mixed at once at constant pressure:
    the zone's air and the gas share the volume V, so x ← (x·V + v_gas)/(V + v)."""
    if (kg is None) == (m3 is None):
        raise ValueError(f"release of {gas}: give exactly one of kg or m3")
    if gas_named(gas).liquid:
        raise ValueError(f"{gas} is a liquid at ambient temperature; model a spill as a leak with its evaporation rate")
    added = m3 if m3 is not None else kg / gas_density(gas, air.temperature)
    track(air, gas)
    keep = air.volume / (air.volume + added)
    for name in air.fractions:
        air.fractions[name] *= keep
    if gas in air.fractions:
        air.fractions[gas] += added / (air.volume + added)
    air.levels = detector_levels(air.fractions)


def ventilation_rate(air: ZoneAir, signal: Callable[[str], bool]) -> float:
    """Air changes per hour now: `ach` while the fan runs (or with no fan), `ach_off` while it is stopped."""
    return air.ach if air.fan is None or signal(air.fan) else air.ach_off


def active(start: int, end: int, while_on: str | None, now: int, signal: Callable[[str], bool]) -> bool:
    """Whether a source flows at `now`: inside its window, and its PLC signal (if any) is true."""
    return start <= now < end and (while_on is None or signal(while_on))


def inflows(air: ZoneAir, now: int, seconds: float, signal: Callable[[str], bool]) -> dict[str, float]:
    """The m³/s of each gas flowing in over the next `seconds`; disturbed sludge gives up (and loses)
    M·(1 − e^(−dt/τ)) of its H2S."""
    flows: dict[str, float] = {}
    for source in air.sources:
        if active(source.start, source.end, source.while_on, now, signal):
            flows[source.gas] = flows.get(source.gas, 0.0) + source.m3_s
    for sludge in air.sludges:
        if sludge.kg > 0 and active(sludge.start, sludge.end, sludge.while_on, now, signal):
            released = sludge.kg * -math.expm1(-seconds / sludge.tau_s)
            sludge.kg -= released
            m3_s = released / gas_density(HYDROGEN_SULFIDE, air.temperature) / seconds
            flows[HYDROGEN_SULFIDE] = flows.get(HYDROGEN_SULFIDE, 0.0) + m3_s
    return flows


def step_air(air: ZoneAir, flows: Mapping[str, float], ach: float, seconds: float) -> None:
    """Advance the air by `seconds` with constant inflows, by the exact solution of V·dx/dt = a − b·x:
    x ← a/b + (x − a/b)·e^(−b·dt), with a = (q_gas + Q·x_outside)/V and b = (Q + Σq)/V."""
    ventilation = ach * air.volume / 3600.0
    rate = (ventilation + sum(flows.values())) / air.volume
    decay = math.exp(-rate * seconds)
    for gas, x in air.fractions.items():
        gain = (flows.get(gas, 0.0) + ventilation * air.outside.get(gas, 0.0)) / air.volume
        if rate > 0:
            steady = gain / rate
            air.fractions[gas] = steady + (x - steady) * decay
        else:
            air.fractions[gas] = x + gain * seconds


def advance(air: ZoneAir, now: int, signal: Callable[[str], bool], seconds: float = 1.0) -> None:
    """One step of the zone ending at `now` (ms): sources are judged at the middle of the step, the fan as it is now."""
    middle = now - round(seconds * 500)
    step_air(air, inflows(air, middle, seconds, signal), ventilation_rate(air, signal), seconds)
    air.levels = detector_levels(air.fractions)
