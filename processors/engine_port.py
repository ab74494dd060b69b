"""The narrow seam between the Faust worker and the pure warning engine.

The worker needs five things from an engine module: compile a model from a registry, make an initial
state, evaluate a columnar batch at `now`, apply gateway status/events, and round-trip a state through
bytes. `load_engine` binds them from a module (default `processors.engine`), so the worker never reaches
into engine internals and tests can run it against a small stand-in engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from riskwatch.errors import RiskwatchError
from riskwatch.registry import Registry
from riskwatch.wire.gateway import GatewayRecord
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
    initial: Callable[[Any], Any]
    evaluate: Evaluate
    apply_gateway: ApplyGateway
    to_bytes: Callable[[Any], bytes]
    from_bytes: Callable[[bytes], Any]


def load_engine(module_name: str = DEFAULT_ENGINE) -> EngineApi:
    """Bind the engine API from `module_name`."""
    try:
        module = importlib.import_module(module_name)
        state_cls = module.EngineState
        return EngineApi(
            compile_model=module.compile_model,
            initial=state_cls.initial,
            evaluate=module.evaluate,
            apply_gateway=_gateway_adapter(module),
            to_bytes=lambda state: state.to_bytes(),
            from_bytes=state_cls.from_bytes,
        )
    except (ImportError, AttributeError) as exc:
        raise EngineUnavailable(f"warning engine {module_name!r} is not usable: {exc}") from exc


def _gateway_adapter(module: Any) -> ApplyGateway:
    """Map `rw.gateway` records onto the engine's event input."""
    if hasattr(module, "apply_gateway"):  # an engine taking the wire records directly
        return module.apply_gateway  # type: ignore[no-any-return]
    to_events = module.events_from_gateway
    apply_events = module.apply_events

    def apply(model: Any, state: Any, records: Sequence[GatewayRecord], now: float) -> tuple[Any, list[Any]]:
        return apply_events(model, state, to_events(model, records), now)  # type: ignore[no-any-return]

    return apply
