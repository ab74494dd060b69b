"""The scenarios shipped under simulators/scenarios/ are valid, cover every industry, and their
injections name things that exist in the registry they run against."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskwatch.errors import ConfigError
from riskwatch.registry import load_registry
from simulators.scenarios.model import load_scenario, parse_scenario
from simulators.scenarios.runner import validate_targets
from simulators.simulation import Simulation

SCENARIOS = sorted((Path(__file__).parents[3] / "simulators" / "scenarios").glob("*.yaml"))
SCENARIOS = [p for p in SCENARIOS if p.name != "registry.yaml"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_is_valid_against_its_registry(path: Path) -> None:
    scenario = load_scenario(path)
    registry = load_registry(scenario.registry_path())
    sim = Simulation.from_registry(registry, seed=scenario.seed, speed=scenario.speed)
    validate_targets(sim, scenario)
    entities = set(registry.units) | set(registry.sites) | set(registry.regions) | {"*"}
    named = {e.entity for e in scenario.expect} | {f.entity for f in scenario.forbid}
    assert named <= entities, f"unknown entities {named - entities}"
    assert scenario.expect or scenario.forbid


def test_at_least_six_scenarios_cover_every_industry() -> None:
    industries = set()
    for path in SCENARIOS:
        scenario = load_scenario(path)
        registry = load_registry(scenario.registry_path())
        sites = {i.site for i in scenario.injections if i.site}
        sites |= {
            registry.sensors[i.target].site for i in scenario.injections if i.target in registry.sensors
        }
        sites |= {
            registry.gateways[i.target].site for i in scenario.injections if i.target in registry.gateways
        }
        industries |= {registry.sites[s].industry for s in sites}
    assert len(SCENARIOS) >= 6
    assert industries >= {"hazardous_chemicals", "coal_mine", "tailings_pond", "gas_kiln"}


def test_injection_naming_nothing_real_is_refused_before_running() -> None:
    doc = {
        "name": "typos",
        "registry": "registry.yaml",
        "duration_s": 60,
        "injections": [
            {"at": 1, "site": "CHEM-09", "incident": "leak"},
            {"at": 2, "site": "COAL-01", "incident": "leak"},
            {"at": 3, "fault": "stuck", "target": "NO-SUCH-SENSOR"},
            {"at": 4, "fault": "disconnect", "target": "GW-NOPE"},
        ],
    }
    scenario = parse_scenario(doc, str(SCENARIOS[0].parent / "typos.yaml"))
    sim = Simulation.from_registry(load_registry(scenario.registry_path()))
    with pytest.raises(ConfigError) as err:
        validate_targets(sim, scenario)
    assert err.value.path == "injections"
    assert err.value.reason == (
        "injections[0]: unknown site 'CHEM-09'; "
        "injections[1]: COAL-01 (coal_mine) has no incident 'leak'; known: ventilation_failure, "
        "ventilation_restore, outburst, outburst_stop; "
        "injections[2]: unknown sensor 'NO-SUCH-SENSOR'; injections[3]: unknown gateway 'GW-NOPE'"
    )
