"""Training data for the risk model: the Parquet columns, labels against the physics, determinism, the manifest and
the split."""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from simulators.gas_physics import volume_flow
from simulators.payloads import DeviceRow, ZoneRow
from simulators.scenario import AirSim, Exhaust, Leak, PlcSim, Scenario
from simulators.training_data import (
    SCHEMA,
    SPLITS,
    WARNING_HORIZON_S,
    TrainingSettings,
    add_training_data_command,
    make_training_set,
    read_manifest,
    scenario_rows,
    split_of,
)
from simulators.training_scenarios import HazardPlan, ScenarioShape, TrainingScenario, ZonePlan, training_scenario

DOCS = Path(__file__).resolve().parents[1] / "docs" / "training_data.md"
START = 1_798_761_600_000  # 2027-01-01T08:00:00+08:00: January, so the CO limit has no summer factor
SMALL = ScenarioShape(min_zones=2, max_zones=2, min_hours=1.0, max_hours=1.0, hazards_per_zone_hour=1.0)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """A training set of two short scenarios with many hazards."""
    out = tmp_path_factory.mktemp("training") / "set"
    make_training_set(TrainingSettings(4, seed=5, shape=SMALL), out)
    return out


def data_files(out: Path) -> list[Path]:
    return sorted(p for part in SPLITS for p in (out / part).glob("*.parquet"))


def digests(out: Path) -> dict[str, str]:
    """sha256 of every file of a set but its timing."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "timing.json"}


METHANE_LFL = 0.05
LEAK_AT_S = 1200
VOLUME, ACH = 100.0, 6.0


def leak_scenario() -> TrainingScenario:
    """One 100 m³ vessel at 6 air changes/h, one GD-4, and a methane leak from 1200 s whose steady level is twice the
    10 %LEL limit."""
    ventilation = ACH * VOLUME / 3600.0
    steady = 2 * 0.10 * METHANE_LFL
    q = steady * ventilation / (1 - steady)  # exact at constant pressure: x = q / (Q + q)
    kg_h = q / volume_flow("methane", 20.0, kg_h=1.0)
    scenario = Scenario(
        seed=1, start=START, duration=3600.0, name="leak",
        zones=[ZoneRow("TK-1", "tank", [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)], (0.0, 10.0), "II", [])],
        devices=[DeviceRow("GAS-1", "gas", model="GD-4", firmware="3.0.0", zone="TK-1")],
        air={"TK-1": AirSim(volume=VOLUME, ach=ACH)},
        timeline=[Leak(at=float(LEAK_AT_S), zone="TK-1", gas="methane", kg_h=kg_h)],
    )
    hazard = HazardPlan("TK-1/H1", "flammable_leak", "TK-1", ("lel",), float(LEAK_AT_S), None, 2.0, "methane leak")
    plan = ZonePlan("TK-1", "confined_space", "confined_space", ("GAS-1",), None, None, (), (hazard,), ACH)
    return TrainingScenario("leak-test", 1, scenario, (plan,))


def crossing_second_from_physics() -> int:
    """The first whole second at which the well-mixed solution x = xs·(1 − e^(−b·n)) reaches the limit."""
    ventilation = ACH * VOLUME / 3600.0
    steady = 2 * 0.10 * METHANE_LFL
    q = steady * ventilation / (1 - steady)
    rate = (ventilation + q) / VOLUME
    return LEAK_AT_S + math.ceil(-math.log(1 - 0.10 * METHANE_LFL / steady) / rate)


def test_the_parquet_files_have_the_documented_columns(small_set):
    documented = DOCS.read_text(encoding="utf-8")
    for path in data_files(small_set):
        assert pq.read_schema(path).remove_metadata().equals(SCHEMA), path
    for name in SCHEMA.names:
        assert f"| `{name}` |" in documented, f"column {name} is not in docs/training_data.md"


def test_rows_in_the_12_minutes_before_a_known_leak_crossing_are_labelled_true():
    zones, _ = scenario_rows(leak_scenario(), "test")
    (zone,) = zones
    crossing = crossing_second_from_physics()
    assert [(c.t_s, c.channel, c.hazard_kind, c.lead_s) for c in zone.crossings] == [
        (crossing, "lel", "flammable_leak", crossing - LEAK_AT_S)]
    rows = zone.table.to_pydict()
    within, seconds = rows["crossing_within_12min"], rows["seconds_to_crossing"]
    for t in range(len(within)):
        ahead = 0 < crossing - t <= WARNING_HORIZON_S
        assert within[t] == ahead, t
        assert seconds[t] == (crossing - t if t < crossing else None), t
    assert rows["true_lel"][crossing - 1] < 10.0 <= rows["true_lel"][crossing]
    assert rows["hazard_kind"][crossing - 1] == "flammable_leak" and rows["hazard_kind"][crossing] is None
    # The GD-4's one-step noise (0.1 %LEL) shows 10 %LEL once the truth is about 9.85, some 9 s early at this slope.
    assert -10 <= zone.crossings[0].reported_lag_s <= 2


FUMES_PLANNED_S, TOOL_ON_S = 1200, 1500


def fumes_scenario() -> TrainingScenario:
    """The vessel of `leak_scenario` with cutting fumes (CO, steady at about twice the 26 ppm limit) set from 1200 s,
    but only while the cutting tool runs, which it first does at 1500 s."""
    scenario = Scenario(
        seed=1, start=START, duration=3600.0, name="fumes",
        zones=[ZoneRow("TK-1", "tank", [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)], (0.0, 10.0), "II", [])],
        devices=[DeviceRow("GAS-1", "gas", model="GD-4", firmware="3.0.0", zone="TK-1"),
                 DeviceRow("PLC-1", "plc", equipment=["EQ-1"])],
        plc={"PLC-1": PlcSim(tags={"EQ-1.power": False}, schedule={"EQ-1.power": [(float(TOOL_ON_S), 3600.0)]})},
        air={"TK-1": AirSim(volume=VOLUME, ach=ACH)},
        timeline=[Exhaust(at=float(FUMES_PLANNED_S), zone="TK-1", l_min=0.6, while_on="EQ-1.power")],
    )
    hazard = HazardPlan("TK-1/H1", "co_exhaust", "TK-1", ("co",), float(FUMES_PLANNED_S), None, 2.0, "cutting fumes",
                        "EQ-1.power")
    plan = ZonePlan("TK-1", "confined_space", "confined_space", ("GAS-1",), None, "EQ-1.power", (), (hazard,), ACH)
    return TrainingScenario("fumes-test", 1, scenario, (plan,))


def test_a_hazard_that_runs_on_its_equipment_starts_when_the_equipment_first_runs():
    zones, _ = scenario_rows(fumes_scenario(), "test")
    (zone,) = zones
    (hazard,) = zone.hazards
    assert TOOL_ON_S * 1000 <= hazard.start_ms - START <= (TOOL_ON_S + 1) * 1000
    assert hazard.crossed and hazard.lead_s == (hazard.first_crossing_ms - hazard.start_ms) // 1000
    rows = zone.table.to_pydict()
    assert rows["hazard_active"][TOOL_ON_S - 2] is None and rows["hazard_active"][TOOL_ON_S + 2] == "co_exhaust"


def test_benign_zones_have_no_crossing():
    benign = ScenarioShape(min_zones=3, max_zones=3, min_hours=1.0, max_hours=1.0, hazards_per_zone_hour=0.0)
    for seed in (1, 2):
        zones, undecodable = scenario_rows(training_scenario(f"benign-{seed}", seed, benign), "train")
        assert undecodable == 0
        for zone in zones:
            assert zone.crossings == [] and zone.hazards == []
            rows = zone.table.to_pydict()
            assert not any(rows["true_over_limit"]) and not any(rows["crossing_within_12min"])
            assert set(rows["hazard_active"]) == {None}


def test_the_same_seed_gives_identical_files_whatever_the_workers(small_set, tmp_path):
    again = tmp_path / "again"
    make_training_set(TrainingSettings(4, seed=5, workers=2, shape=SMALL), again)
    assert digests(again) == digests(small_set)


def test_the_manifest_counts_match_the_files(small_set):
    manifest = read_manifest(small_set)
    assert sorted(small_set / f.path for f in manifest.files) == data_files(small_set)
    for entry in manifest.files:
        path = small_set / entry.path
        assert pq.ParquetFile(path).metadata.num_rows == entry.rows == entry.zone_hours * 3600
        assert path.stat().st_size == entry.bytes
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
    assert manifest.rows == sum(f.rows for f in manifest.files)
    assert manifest.zone_hours == sum(f.zone_hours for f in manifest.files) >= 4
    hazards = pq.read_table(small_set / "hazards.parquet").to_pydict()
    crossings = pq.read_table(small_set / "crossings.parquet").to_pydict()
    assert {k: c.injected for k, c in manifest.hazards.items() if c.injected} == {
        k: hazards["kind"].count(k) for k in set(hazards["kind"])}
    assert sum(c.crossings for c in manifest.hazards.values()) == len(crossings["t_s"]) > 0
    assert manifest.tables["crossings"].rows == len(crossings["t_s"])
    labelled = sum(sum(pq.read_table(p, columns=["crossing_within_12min"])["crossing_within_12min"].to_pylist())
                   for p in data_files(small_set))
    assert manifest.rows_crossing_within_12min == labelled


def test_the_split_puts_each_scenario_in_exactly_one_part(small_set):
    manifest = read_manifest(small_set)
    seen: dict[str, str] = {}
    for path in data_files(small_set):
        table = pq.read_table(path, columns=["scenario_id", "split"]).to_pydict()
        (scenario,), (split,) = set(table["scenario_id"]), set(table["split"])
        assert scenario not in seen and path.parent.name == split == split_of(scenario, manifest.split_rule)
        seen[scenario] = split
    assert seen == {f.scenario_id: f.split for f in manifest.files}
    assert len({f.seed for f in manifest.files}) == len(manifest.files)


def test_the_command_refuses_a_folder_that_holds_something_else(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    parser = argparse.ArgumentParser()
    add_training_data_command(parser.add_subparsers())
    args = parser.parse_args(["training-data", "--zone-hours", "1", "--out", str(tmp_path)])
    assert args.run(args) == 2
    assert "holds no training set" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"
