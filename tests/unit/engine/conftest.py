"""A small test rig: registry from inline YAML, readings by sensor id, transitions by entity.

The specification tests (test_alarms.py, test_scenarios.py) take `make_rig`, which runs each of them
twice: against the vectorised engine (`Rig`) and against the per-reading reference engine
(`ReferenceRig`), which shares no code with it. A bug in one fails against the other's expectations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import numpy as np
import pytest
import yaml

from processors.engine import EngineState, Event, compile_model, evaluate_detailed
from processors.engine_reference import ReferenceEngine, state_of
from riskwatch.levels import AlarmState, Colour
from riskwatch.registry import Registry
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition


class EvaluationLike(Protocol):
    @property
    def transitions(self) -> list[Transition]: ...
    @property
    def rejects(self) -> list[Any]: ...
    @property
    def out_of_order(self) -> int: ...


class _RigBase:
    """What both rigs share: feeding readings by sensor id and reading the transition log."""

    def __init__(self, registry_yaml: str) -> None:
        self.registry = Registry.from_dict(yaml.safe_load(registry_yaml), source="<test>")
        self.log: list[Transition] = []

    def evaluate(
        self, batch: Readings, now: float, events: list[Event] | tuple[Event, ...] = ()
    ) -> EvaluationLike:
        raise NotImplementedError

    def index(self, sensor: str) -> int:
        return self.registry.sensors[sensor].index

    def feed(
        self,
        at: float,
        values: Mapping[str, float] | Iterable[tuple[str, float]] = (),
        now: float | None = None,
        quality: int = 0,
        events: list[Event] | tuple[Event, ...] = (),
    ) -> EvaluationLike:
        """Readings all stamped `at`, evaluated at `now` (default `at`)."""
        pairs = list(values.items()) if isinstance(values, Mapping) else list(values)
        n = len(pairs)
        batch = Readings.of([self.index(s) for s, _ in pairs], [v for _, v in pairs], [at] * n, [quality] * n)
        return self.evaluate(batch, at if now is None else now, events)

    def tick(self, now: float, events: list[Event] | tuple[Event, ...] = ()) -> EvaluationLike:
        return self.evaluate(Readings.empty(), now, events)

    def changes(self, entity: str, kind: str | None = None) -> list[tuple[str, str, float]]:
        mine = [t for t in self.log if t.entity == entity and (kind is None or t.kind == kind)]
        return [(t.old, t.new, t.at) for t in mine]


class Rig(_RigBase):
    """The vectorised engine (`processors/engine/`)."""

    def __init__(self, registry_yaml: str, start: float | None = 0.0) -> None:
        super().__init__(registry_yaml)
        self.model = compile_model(self.registry)
        self.state = EngineState.initial(self.model, now=start)

    def evaluate(
        self, batch: Readings, now: float, events: list[Event] | tuple[Event, ...] = ()
    ) -> EvaluationLike:
        out = evaluate_detailed(self.model, self.state, batch, now, events)
        self.log.extend(out.transitions)
        return out

    def colour(self, unit: str) -> str:
        return Colour(int(self.state.unit["colour"][self.model.unit_index[unit]])).label

    def alarm(self, sensor: str) -> str:
        idx = np.array([self.index(sensor)])
        return AlarmState(int(self.model.alarm_state(idx, self.state.sensor["ucode"][idx])[0])).label

    def last_reading_at(self, sensor: str) -> float:
        return float(self.state.sensor["last_ts"][self.index(sensor)])

    @property
    def out_of_order(self) -> int:
        return self.state.out_of_order

    @property
    def rejected(self) -> int:
        return self.state.rejected


class ReferenceRig(_RigBase):
    """The per-reading reference engine (`processors/engine_reference/`), in the benchmark's mode."""

    def __init__(self, registry_yaml: str, start: float | None = 0.0) -> None:
        super().__init__(registry_yaml)
        self.engine = ReferenceEngine(self.registry, now=start, all_units=False, timers="tracked")

    def evaluate(
        self, batch: Readings, now: float, events: list[Event] | tuple[Event, ...] = ()
    ) -> EvaluationLike:
        out = self.engine.evaluate_detailed(batch, now, events)
        self.log.extend(out.transitions)
        return out

    def colour(self, unit: str) -> str:
        return Colour(self.engine.unit_colour[unit]).label

    def alarm(self, sensor: str) -> str:
        rs = self.engine.sensors[self.index(sensor)]
        return state_of(rs.spec, rs.ucode).label

    def last_reading_at(self, sensor: str) -> float:
        return self.engine.sensors[self.index(sensor)].last_ts

    @property
    def out_of_order(self) -> int:
        return self.engine.out_of_order

    @property
    def rejected(self) -> int:
        return self.engine.rejected


MakeRig = Callable[..., Rig | ReferenceRig]


@pytest.fixture(params=["engine", "reference"])
def make_rig(request: pytest.FixtureRequest) -> MakeRig:
    """`make_rig(registry_yaml, start=0.0)`: a rig on the engine, then (second run) on the reference."""
    return Rig if request.param == "engine" else ReferenceRig


def site_yaml(industry: str, units: str, gateways: str = "[{id: G1}]", extra: str = "") -> str:
    """A one-site registry; `units` is the YAML list of units (indented 6 spaces)."""
    return f"""
version: 1
regions: [{{id: R1}}, {{id: R2}}]
{extra}
sites:
  - id: S1
    region: R1
    industry: {industry}
    gateways: {gateways}
    units:
{units}
"""
