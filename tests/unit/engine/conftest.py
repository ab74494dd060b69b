"""A small test rig: registry from inline YAML, readings by sensor id, transitions by entity."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import yaml

from processors.engine import EngineState, Event, Outcome, compile_model, evaluate_detailed
from riskwatch.levels import AlarmState, Colour
from riskwatch.registry import Registry
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition


class Rig:
    def __init__(self, registry_yaml: str, start: float = 0.0) -> None:
        self.registry = Registry.from_dict(yaml.safe_load(registry_yaml), source="<test>")
        self.model = compile_model(self.registry)
        self.state = EngineState.initial(self.model, now=start)
        self.log: list[Transition] = []

    def index(self, sensor: str) -> int:
        return self.registry.sensors[sensor].index

    def feed(
        self,
        at: float,
        values: Mapping[str, float] | Iterable[tuple[str, float]] = (),
        now: float | None = None,
        quality: int = 0,
        events: list[Event] | tuple[Event, ...] = (),
    ) -> Outcome:
        """Readings all stamped `at`, evaluated at `now` (default `at`)."""
        pairs = list(values.items()) if isinstance(values, Mapping) else list(values)
        n = len(pairs)
        batch = Readings.of([self.index(s) for s, _ in pairs], [v for _, v in pairs], [at] * n, [quality] * n)
        out = evaluate_detailed(self.model, self.state, batch, at if now is None else now, events)
        self.log.extend(out.transitions)
        return out

    def tick(self, now: float, events: list[Event] | tuple[Event, ...] = ()) -> Outcome:
        out = evaluate_detailed(self.model, self.state, Readings.empty(), now, events)
        self.log.extend(out.transitions)
        return out

    def changes(self, entity: str, kind: str | None = None) -> list[tuple[str, str, float]]:
        mine = [t for t in self.log if t.entity == entity and (kind is None or t.kind == kind)]
        return [(t.old, t.new, t.at) for t in mine]

    def colour(self, unit: str) -> str:
        return Colour(int(self.state.unit["colour"][self.model.unit_index[unit]])).label

    def alarm(self, sensor: str) -> str:
        idx = np.array([self.index(sensor)])
        return AlarmState(int(self.model.alarm_state(idx, self.state.sensor["ucode"][idx])[0])).label


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
