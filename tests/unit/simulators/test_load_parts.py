"""The load generator's pure parts: the synthetic registry loads as a real registry and agrees with
the simulators' view of it; gateways are dealt whole to publisher processes; CLI errors are clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskwatch.cli import main
from riskwatch.registry import load_registry
from simulators import synthetic
from simulators.load import schedule, split_by_gateway, split_whole
from simulators.sensors import from_registry


def test_synthetic_registry_loads_and_matches_the_simulated_sensors(tmp_path: Path) -> None:
    doc = synthetic.registry_doc(1_234, sensors_per_gateway=500)
    registry = load_registry(synthetic.write_registry(doc, tmp_path / "load.json"))
    mine, industries = synthetic.sim_sensors(doc)
    theirs = from_registry(registry)
    assert len(registry.sensors) == 1_234 and len(registry.gateways) == 3 == len(industries)
    assert [(s.id, s.index, s.gateway, s.l1_high, s.l2_high) for s in mine] == [
        (s.id, s.index, s.gateway, s.l1_high, s.l2_high) for s in theirs
    ]
    assert {s.kind for s in theirs} == {"flammable", "toxic", "pressure", "temperature", "level"}


def test_gateways_are_dealt_whole_and_round_robin() -> None:
    sensors, _ = synthetic.sim_sensors(synthetic.registry_doc(1_000, sensors_per_gateway=100))
    parts = split_by_gateway(sensors, 3)
    assert [len(p) for p in parts] == [400, 300, 300]
    gateways = [{s.gateway for s in p} for p in parts]
    assert not (gateways[0] & gateways[1]) and not (gateways[1] & gateways[2])
    assert len(split_by_gateway(sensors[:150], 8)) == 2  # never more processes than gateways


def test_sites_are_spread_whole_over_the_phases_of_a_period() -> None:
    sensors, _ = synthetic.sim_sensors(synthetic.registry_doc(2_000, sensors_per_gateway=100))
    phases = split_whole(sensors, 4, lambda s: s.site)
    assert [len(p) for p in phases] == [500] * 4
    assert sum(len({s.site for s in p}) for p in phases) == 20  # no site in two phases
    moments = list(schedule(100.0, 1.0, 4, 102.0))
    assert moments == [(100.0 + k + j / 4, j) for k in range(2) for j in range(4)]
    assert list(schedule(100.0, 0.5, 2, 100.6)) == [(100.0, 0), (100.25, 1), (100.5, 0)]


def test_simulate_with_a_broken_scenario_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nduration_s: 10\nexpect:\n  - {entity: U, colour: purple, by: 5}\n")
    assert main(["simulate", "--scenario", str(bad), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: expect[0]: " in err and "unknown colour 'purple'" in err
