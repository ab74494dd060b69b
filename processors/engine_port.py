"""The narrow seam between the Faust worker and the pure warning engine.

The worker needs these from an engine module: compile a model from a registry, make an initial state,
evaluate a columnar batch at `now`, apply gateway status/events, round-trip a state through bytes
(restoring fits the state to the model in use, migrating it by id after a registry edit), and read the
state's counts of ignored inputs and offline gateways for metrics. `load_engine` binds them from a module (default `processors.engine`), so the worker never reaches
into engine internals and tests can run it against a small stand-in engine.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from riskwatch.errors import RiskwatchError
from riskwatch.registry import Registry
from riskwatch.wire.gateway_protocol import GatewayRecord
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition

DEFAULT_ENGINE = "processors.engine"

Evaluate = Callable[[Any, Any, Readings, float], tuple[Any, list[Transition]]]
ApplyGateway = Callable[[Any, Any, Sequence[GatewayRecord], float], tuple[Any, list[Transition]]]


class EngineUnavailable(RiskwatchError):
    """The engine module cannot be imported or lacks a function the worker needs."""


class EngineApi(NamedTuple):
    """The engine functions the worker calls; `model` and `state` are opaque to the worker."""

    compile_model: Callable[[Registry], Any]
    initial: Callable[[Any, float], Any]  # (model, start): unseen sensors' stale timers start at `start`
    evaluate: Evaluate
    apply_gateway: ApplyGateway
    to_bytes: Callable[[Any], bytes]
    from_bytes: Callable[[bytes], Any]
    # (model, snapshot, start) -> state fit for `model`: migrated by id if the registry was edited, new
    # entities started at `start`. Raises ValueError if the snapshot cannot be used (start afresh).
    restore: Callable[[Any, bytes, float], Any]
    # state -> running totals by reason of the inputs the engine ignored: "out_of_order", "rejected"
    ignored: Callable[[Any], dict[str, int]]
    # state -> (gateways offline, gateways) of the site, for the fleet's online gauge
    gateways: Callable[[Any], tuple[int, int]] = lambda state: (0, 0)
    # state -> an independent copy (the engine updates states in place): a point to go back to
    copy_state: Callable[[Any], Any] = copy.deepcopy


def copy_arrays(state: Any) -> Any:
    """A copy of an engine state made of numpy arrays, dicts of arrays and immutable values (the ids:
    tuples): the arrays copied, the rest shared. Far cheaper than `copy.deepcopy`, which copies the ids."""
    if not dataclasses.is_dataclass(state) or isinstance(state, type):
        return copy.deepcopy(state)
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if isinstance(value, np.ndarray):
            changes[f.name] = value.copy()
        elif isinstance(value, dict):
            changes[f.name] = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in value.items()}
        elif isinstance(value, list | set | bytearray):
            changes[f.name] = copy.deepcopy(value)
    return dataclasses.replace(state, **changes)


def load_engine(module_name: str = DEFAULT_ENGINE) -> EngineApi:
    """Bind the engine API from `module_name`."""
    try:
        module = importlib.import_module(module_name)
        state_cls = module.EngineState
        return EngineApi(
            compile_model=module.compile_model,
            initial=lambda model, start: state_cls.initial(model, now=start),
            evaluate=module.evaluate,
            apply_gateway=_gateway_adapter(module),
            to_bytes=lambda state: state.to_bytes(),
            from_bytes=state_cls.from_bytes,
            restore=_restorer(module),
            ignored=_ignored,
            gateways=_gateways,
            copy_state=copy_arrays,
        )
    except (ImportError, AttributeError) as exc:
        raise EngineUnavailable(f"warning engine {module_name!r} is not usable: {exc}") from exc


def _restorer(module: Any) -> Callable[[Any, bytes, float], Any]:
    state_cls = module.EngineState
    adopt = getattr(module, "adopt", None)

    def restore(model: Any, raw: bytes, start: float) -> Any:
        state = state_cls.from_bytes(raw)
        return adopt(model, state, start) if adopt is not None else state

    return restore


def _ignored(state: Any) -> dict[str, int]:
    return {
        "out_of_order": int(getattr(state, "out_of_order", 0)),
        "rejected": int(getattr(state, "rejected", 0)),
    }


def _gateways(state: Any) -> tuple[int, int]:
    offline = getattr(state, "gateway_offline", None)
    return (0, 0) if offline is None else (int(offline.sum()), len(offline))


def gateway_events(records: Sequence[GatewayRecord]) -> list[tuple[str, str, float]]:
    """`rw.gateway` records as engine events (kind, target, at): a gateway status or a unit event."""
    out = []
    for rec in records:
        at = rec.t if rec.t is not None else rec.received
        if rec.type == "status":
            out.append((f"gateway_{rec.state}", rec.gw, at))
        else:
            out.append((rec.kind, rec.target, at))  # the engine takes the protocol's event kinds
    return out


def _gateway_adapter(module: Any) -> ApplyGateway:
    """Map `rw.gateway` records onto the engine's event input."""
    if hasattr(module, "apply_gateway"):  # an engine taking the wire records directly
        return module.apply_gateway
    event_cls = module.Event
    evaluate = module.evaluate
    empty = Readings.empty()

    def apply(model: Any, state: Any, records: Sequence[GatewayRecord], now: float) -> tuple[Any, list[Any]]:
        events = [event_cls(*e) for e in gateway_events(records)]
        return evaluate(model, state, empty, now, events=events)

    return apply
