"""Every shipped scenario (and the demo script) meets its expectations when played through the pure
warning engine offline, with a 1 s pipeline delay: physics, set points and rules agree. The same
scenarios are then checked against the real pipeline in tests/integration/simulators/."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.scenarios.checker import check, timeline
from simulators.scenarios.model import load_scenario
from tests.unit.simulators.offline import play

engine = pytest.importorskip("processors.engine", reason="the warning engine is not in this build")

HERE = Path(__file__).parents[3] / "simulators"
FILES = [p for p in sorted((HERE / "scenarios").glob("*.yaml")) if p.name != "registry.yaml"]
FILES.append(HERE / "demo_script.yaml")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_scenario_meets_its_expectations_through_the_engine(path: Path) -> None:
    scenario = load_scenario(path)
    seen, scope = play(scenario, engine, pipeline_delay_s=1.0)
    failed = [o.text for o in check(scenario, seen, scope) if not o.ok]
    assert not failed, "\n".join(failed + timeline([], seen, scope))
