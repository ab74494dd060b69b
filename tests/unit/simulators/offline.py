"""Play a scenario through the pure warning engine, offline: no broker, simulated time, 1 s ticks.

Fast feedback that a scenario's physics and expectations agree with the engine's rules (the real
check is `--check` against the running pipeline). Gateway disconnects become the engine's
gateway_offline/online events, plant events (valve closed/opened) its valve events.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from riskwatch.registry import load_registry
from riskwatch.wire.gateway_protocol import EVENT_KINDS
from riskwatch.wire.readings import Readings
from simulators.scenarios.checker import Scope, Seen
from simulators.scenarios.model import Scenario
from simulators.scenarios.runner import apply_injection, scope_of, validate_targets
from simulators.simulation import Simulation

T0 = 1_790_000_000.0


def play(scenario: Scenario, engine: Any, pipeline_delay_s: float = 0.0) -> tuple[list[Seen], Scope]:
    registry = load_registry(scenario.registry_path())
    sim = Simulation.from_registry(registry, seed=scenario.seed, speed=scenario.speed)
    validate_targets(sim, scenario)
    index = {s.id: s.index for s in sim.sensors}
    model = engine.compile_model(registry)
    state = engine.EngineState.initial(model)
    pending = scenario.schedule()
    seen: list[Seen] = []
    steps = int(scenario.duration_s / scenario.tick_s)
    for k in range(steps + 1):
        offset = k * scenario.tick_s
        now = T0 + offset
        events = []
        while pending and pending[0].at <= offset:
            inj = pending.pop(0)
            apply_injection(sim, inj, now)
            if inj.fault == "disconnect" or inj.fault_stop == "disconnect":
                kind = "gateway_offline" if inj.fault else "gateway_online"
                events.append(engine.Event(kind, inj.target, now))
        tick = sim.tick(now, scenario.tick_s)
        # The engine takes the gateway protocol's event kinds unchanged, as it does from `rw.gateway`.
        events += [engine.Event(e.kind, e.unit, e.t) for e in tick.events if e.kind in EVENT_KINDS]
        if tick.batches:
            ids = [sid for b in tick.batches for sid in b.sensor_ids]
            batch = Readings.of(
                [index[i] for i in ids],
                np.concatenate([b.values for b in tick.batches]),
                np.concatenate([b.ts for b in tick.batches]),
            )
        else:
            batch = Readings.empty()
        state, transitions = engine.evaluate(model, state, batch, now, events=events)
        seen += [Seen(offset + pipeline_delay_s, t) for t in transitions]
        # A scenario's inputs are all legitimate: an input the engine refuses is a harness bug.
        assert getattr(state, "rejected", 0) == 0, f"the engine refused an input at {offset} s"
    return seen, scope_of(sim, {s.id: s.region for s in registry.sites.values()})
