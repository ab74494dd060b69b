"""Discrete inputs beside readings: gateway online/offline, cut-off valve, interlock bypass, maintenance.

They arrive on `rw.gateway` (from `rw/v1/{site}/{gateway}/status` and `.../events`). `evaluate` applies
the events it is given before the batch's readings, in list order.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import numpy.typing as npt

from processors.engine.model import STALE, EngineModel
from processors.engine.sensors import GATEWAY_OFFLINE, Emits, advance, change
from processors.engine.state import EngineState

EventKind = Literal[
    "gateway_offline",
    "gateway_online",
    "valve_closed",  # the kiln's emergency cut-off valve confirmed closed
    "valve_opened",
    "interlock_bypassed",
    "interlock_restored",
    "maintenance_on",
    "maintenance_off",
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
_UNIT_FLAGS = {
    "interlock_bypassed": ("bypassed", 1),
    "interlock_restored": ("bypassed", 0),
    "maintenance_on": ("maintenance", 1),
    "maintenance_off": ("maintenance", 0),
}


class Event(NamedTuple):
    """`target` is a gateway id for gateway_* kinds and a unit (hazard source) id otherwise."""

    kind: EventKind
    target: str
    at: float  # epoch seconds, event time


class Reject(NamedTuple):
    """An input the engine could not use: readings by batch position, events by list position."""

    source: Literal["reading", "event"]
    position: int
    reason: str


def apply_event_list(
    model: EngineModel, state: EngineState, events: list[Event] | tuple[Event, ...], em: Emits
) -> tuple[list[int], list[Reject]]:
    """Apply events in order; returns the units they touch and the events rejected (with why)."""
    touched: list[int] = []
    rejects: list[Reject] = []
    s, u = state.sensor, state.unit
    for pos, ev in enumerate(events):
        if ev.kind not in EVENT_KINDS:
            rejects.append(
                Reject("event", pos, f"unknown event kind {ev.kind!r}; one of {', '.join(EVENT_KINDS)}")
            )
            continue
        if not np.isfinite(ev.at):
            rejects.append(Reject("event", pos, f"event time {ev.at!r} is not a finite epoch time"))
            continue
        if ev.kind.startswith("gateway_"):
            g = model.gateway_index.get(ev.target)
            if g is None:
                rejects.append(Reject("event", pos, f"unknown gateway {ev.target!r}"))
                continue
            state.gateway_offline[g] = ev.kind == "gateway_offline"
            if ev.kind == "gateway_offline":
                _gateway_offline(model, s, g, ev.at, em)
            continue
        unit = model.unit_index.get(ev.target)
        if unit is None:
            rejects.append(Reject("event", pos, f"unknown unit (hazard source) {ev.target!r}"))
            continue
        if ev.kind == "valve_closed":
            u["valve_closed_at"][unit] = min(u["valve_closed_at"][unit], ev.at)
        elif ev.kind == "valve_opened":
            u["valve_closed_at"][unit] = np.inf
        else:
            name, value = _UNIT_FLAGS[ev.kind]
            u[name][unit] = value
        u["event_at"][unit] = max(u["event_at"][unit], ev.at)
        touched.append(unit)
    return touched, rejects


def _gateway_offline(
    model: EngineModel, s: dict[str, npt.NDArray[Any]], g: int, at: float, em: Emits
) -> None:
    """Every sensor behind an offline gateway is stale from the event time (docs/domain.md, "Alarm engineering")."""
    idx = np.flatnonzero(model.sensor_gateway == g).astype(np.int32)
    idx = idx[s["code"][idx] != STALE]
    if idx.size == 0:
        return
    advance(model, s, idx, np.full(idx.size, at), em)
    idx = idx[s["code"][idx] != STALE]
    change(
        model,
        s,
        idx,
        np.full(idx.size, STALE, np.int8),
        np.full(idx.size, at),
        np.full(idx.size, GATEWAY_OFFLINE),
        em,
    )
