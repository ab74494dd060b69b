"""The four-colour warning engine: pure numpy, no I/O, no broker imports.

    model = compile_model(registry)
    state = EngineState.initial(model)
    state, transitions = evaluate(model, state, readings, now, events=[Event("valve_closed", "K1", t)])

`rw.gateway` records go through `apply_gateway(model, state, records, now)` (or pass `Event`s to
`evaluate`). `evaluate` updates `state` in place and returns it with the alarm/warning transitions (changes only).
Use `evaluate_detailed` to also get rejected readings/events and the out-of-order count. Call it with
`Readings.empty()` on a timer so stale sensors and delays are evaluated on `now`. A state restored from
a snapshot goes through `adopt(model, state, start)`, which migrates it by id if the registry was
edited. See docs/engine.md.
"""

from processors.engine.evaluation import Evaluation, evaluate, evaluate_detailed
from processors.engine.events import EVENT_KINDS, Event, EventKind, Reject
from processors.engine.gateway_events import apply_events, apply_gateway, events_from_gateway
from processors.engine.migrate import adopt
from processors.engine.model import EngineModel, compile_model
from processors.engine.state import EngineState

__all__ = [
    "EVENT_KINDS",
    "EngineModel",
    "EngineState",
    "Evaluation",
    "Event",
    "EventKind",
    "Reject",
    "adopt",
    "apply_events",
    "apply_gateway",
    "compile_model",
    "evaluate",
    "evaluate_detailed",
    "events_from_gateway",
]
