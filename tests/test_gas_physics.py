"""The well-mixed zone model: dilution by ventilation, purges, releases, sludge and temperature, in a GD-4's units."""

from __future__ import annotations

import math

import pytest

from simulators.gas_physics import (
    GasSource,
    Sludge,
    add_sludge,
    add_source,
    advance,
    detector_levels,
    evaporation_factor,
    gas_density,
    release,
    step_air,
    volume_flow,
    zone_air,
)

START = 1_000_000
NEVER = 10**15


def fan_running(_: str) -> bool:
    return True


def fan_stopped(_: str) -> bool:
    return False


def run(air, seconds: int, signal=fan_running, start: int = START) -> int:
    """Advance the air `seconds` one-second steps from `start`; the time it ends at."""
    now = start
    for _ in range(seconds):
        now += 1000
        advance(air, now, signal)
    return now


def test_a_leak_reaches_the_steady_state_of_source_over_ventilation_flow():
    air = zone_air("Z", volume=100.0, ach=6.0)
    q = 0.001  # m³/s of methane
    add_source(air, GasSource("methane", q, START, NEVER))
    run(air, 10 * 600)  # ten time constants (3600 / 6 = 600 s)
    ventilation = 6.0 * 100.0 / 3600.0
    assert air.fractions["methane"] == pytest.approx(q / ventilation, rel=0.01)  # S / Q
    assert air.fractions["methane"] == pytest.approx(q / (ventilation + q), rel=1e-4)  # exact at constant pressure
    assert air.levels["lel"] == pytest.approx(q / (ventilation + q) / 0.05 * 100, rel=1e-4)


def test_after_the_leak_stops_the_gas_decays_with_the_air_change_time_constant():
    air = zone_air("Z", volume=250.0, ach=4.0)
    add_source(air, GasSource("propane", 0.002, START, START + 1800_000))
    now = run(air, 1800)
    peak = air.fractions["propane"]
    tau = 3600.0 / 4.0
    run(air, round(tau), start=now)
    assert air.fractions["propane"] == pytest.approx(peak / math.e, rel=1e-6)


def test_a_nitrogen_purge_lowers_oxygen_by_the_displaced_fraction():
    air = zone_air("TANK", volume=400.0, ach=0.0)
    purge = 60.0  # m³ of nitrogen, blown in over 60 s
    add_source(air, GasSource("nitrogen", purge / 60.0, START, START + 60_000))
    run(air, 120)
    displaced = 1.0 - math.exp(-purge / 400.0)  # well mixed: each m³ in pushes out a m³ of the mixture
    assert air.levels["o2"] == pytest.approx(20.9 * (1.0 - displaced), rel=1e-9)
    assert 20.9 - air.levels["o2"] == pytest.approx(20.9 * purge / 400.0, rel=0.08)  # about V_purge / V when small


def test_a_ventilation_failure_makes_a_slow_leaks_lel_rise():
    air = zone_air("PH", volume=150.0, ach=10.0, ach_off=0.5, fan="FAN-1.running")
    add_source(air, GasSource("methane", volume_flow("methane", 20.0, kg_h=1.0), START, NEVER))
    now = run(air, 3600)
    ventilated = air.levels["lel"]
    assert ventilated < 10.0
    lel = [ventilated]
    for _ in range(30):  # half an hour with the fan stopped
        now = run(air, 60, fan_stopped, now)
        lel.append(air.levels["lel"])
    assert all(b > a for a, b in zip(lel, lel[1:]))
    assert lel[-1] > 10.0 > 3 * ventilated


def test_the_exact_step_does_not_depend_on_the_step_length():
    one, many = zone_air("A", 80.0, 3.0), zone_air("B", 80.0, 3.0)
    for air in (one, many):
        air.fractions["methane"] = 0.0
    flows = {"methane": 0.0005, "nitrogen": 0.01}
    step_air(one, flows, 3.0, 600.0)
    for _ in range(600):
        step_air(many, flows, 3.0, 1.0)
    for gas in one.fractions:
        assert one.fractions[gas] == pytest.approx(many.fractions[gas], rel=1e-9, abs=1e-15)


def test_a_sudden_release_mixes_at_constant_pressure():
    air = zone_air("Z", volume=1000.0, ach=2.0)
    release(air, "methane", kg=1.0)
    gas = 1.0 / gas_density("methane", 20.0)
    assert air.fractions["methane"] == pytest.approx(gas / (1000.0 + gas))
    assert air.levels["o2"] == pytest.approx(20.9 * 1000.0 / (1000.0 + gas))


def test_a_release_of_a_liquid_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="hexane is a liquid.*leak"):
        release(zone_air("Z", 100.0, 1.0), "hexane", kg=1.0)


def test_a_liquid_leak_evaporates_faster_when_warmer_by_clausius_clapeyron():
    assert evaporation_factor("hexane", 20.0) == pytest.approx(1.0)
    warm = evaporation_factor("hexane", 30.0)
    expected = math.exp(-31_560.0 / 8.314462618 * (1 / 303.15 - 1 / 293.15))
    assert warm == pytest.approx(expected) and 1.4 < warm < 1.6
    assert volume_flow("hexane", 30.0, kg_h=1.0) > volume_flow("hexane", 20.0, kg_h=1.0) * 1.4
    assert evaporation_factor("methane", 30.0) == 1.0


def test_a_liquid_given_by_volume_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="liquid.*kg_h"):
        volume_flow("toluene", 20.0, l_min=1.0)


def test_exactly_one_rate_is_required():
    with pytest.raises(ValueError, match="exactly one rate"):
        volume_flow("methane", 20.0, kg_h=1.0, l_min=2.0)


def test_an_unknown_gas_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown gas 'metane'.*methane"):
        gas_density("metane", 20.0)


def test_mass_and_volume_rates_agree_by_the_ideal_gas_law():
    density = gas_density("methane", 20.0)
    assert density == pytest.approx(0.667, rel=0.01)
    assert volume_flow("methane", 20.0, kg_h=density * 3.6) == pytest.approx(volume_flow("methane", 20.0, l_min=60.0))


def test_lel_adds_the_flammable_gases_by_le_chateliers_rule():
    levels = detector_levels({"oxygen": 0.2, "methane": 0.025, "propane": 0.0105})
    assert levels["lel"] == pytest.approx(100.0)
    assert levels["o2"] == pytest.approx(20.0)


def test_toxic_gases_read_in_ppm():
    levels = detector_levels({"hydrogen_sulfide": 10e-6, "carbon_monoxide": 35e-6})
    assert levels["h2s"] == pytest.approx(10.0) and levels["co"] == pytest.approx(35.0)


def test_disturbed_sludge_gives_up_all_its_h2s_and_then_the_air_clears():
    air = zone_air("TANK", volume=400.0, ach=12.0)
    sludge = Sludge(0.020, 300.0, START, NEVER)
    add_sludge(air, sludge)
    now = run(air, 300)
    early = air.levels["h2s"]
    now = run(air, 5000, start=now)
    assert early > 1.0
    assert sludge.kg < 0.020 * 1e-6
    assert air.levels["h2s"] < 0.01


def test_sources_flow_only_while_their_signal_is_true():
    air = zone_air("WS", volume=500.0, ach=3.0)
    add_source(air, GasSource("carbon_monoxide", 0.0001, START, NEVER, while_on="GEN-7.running"))
    run(air, 600, fan_stopped)
    assert air.levels["co"] == 0.0
    run(air, 600, fan_running)
    assert air.levels["co"] > 10.0


def test_sources_flow_only_inside_their_window():
    air = zone_air("Z", volume=100.0, ach=6.0)
    add_source(air, GasSource("methane", 0.001, START + 10_000, START + 20_000))
    run(air, 10)
    assert air.fractions["methane"] == 0.0
    run(air, 10, start=START + 10_000)
    assert air.fractions["methane"] == pytest.approx(0.001 * 10 / 100, rel=0.02)


def test_the_physics_has_no_randomness():
    def play():
        air = zone_air("Z", volume=321.0, ach=5.0, ach_off=0.3, fan="F.running")
        add_source(air, GasSource("methane", 0.002, START, NEVER))
        add_sludge(air, Sludge(0.01, 200.0, START, NEVER))
        for i in range(600):
            advance(air, START + (i + 1) * 1000, lambda _, i=i: i < 300)
        return dict(air.fractions)

    assert play() == play()


def test_a_zone_needs_a_positive_volume():
    with pytest.raises(ValueError, match="volume 0"):
        zone_air("Z", volume=0.0, ach=1.0)
