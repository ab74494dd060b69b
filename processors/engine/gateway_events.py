"""`rw.gateway` records (gateway status and events from the bridge) as engine events.

A status record becomes `gateway_online` / `gateway_offline` for its gateway; an event record keeps its
kind (the gateway protocol's kinds are the engine's) and targets its unit. A record without a device
time takes the time the bridge received it.
"""

from __future__ import annotations

from collections.abc import Sequence

from processors.engine.evaluation import evaluate
from processors.engine.events import Event
from processors.engine.model import EngineModel
from processors.engine.state import EngineState
from riskwatch.wire.gateway_protocol import GatewayRecord
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition


def events_from_gateway(model: EngineModel, records: Sequence[GatewayRecord]) -> list[Event]:
    """Engine events for `records`, in order (unknown kinds and targets are rejected by the engine)."""
    out = []
    for r in records:
        at = r.t if r.t is not None else r.received
        if r.type == "status":
            out.append(Event(f"gateway_{r.state}", r.gw, at))  # type: ignore[arg-type]
        else:
            out.append(Event(r.kind, r.target, at))  # type: ignore[arg-type]
    return out


def apply_events(
    model: EngineModel, state: EngineState, events: Sequence[Event], now: float
) -> tuple[EngineState, list[Transition]]:
    """Apply events alone (no readings) and evaluate timers and colours at `now`."""
    return evaluate(model, state, Readings.empty(), now, list(events))


def apply_gateway(
    model: EngineModel, state: EngineState, records: Sequence[GatewayRecord], now: float
) -> tuple[EngineState, list[Transition]]:
    """Apply `rw.gateway` records; rejected ones are counted in `state.rejected`."""
    return apply_events(model, state, events_from_gateway(model, records), now)
