"""The per-reading reference engine: the same specification as `processors/engine/`, written in plain
Python one reading at a time, importing only the shared kernel (`riskwatch/`). Tests and the engine
benchmark check the vectorised engine against it; it never runs in the worker."""

from processors.engine_reference.engine import EVENT_KINDS, ReferenceEngine, RefEvaluation, RefReject
from processors.engine_reference.sensor import state_of

__all__ = ["EVENT_KINDS", "RefEvaluation", "RefReject", "ReferenceEngine", "state_of"]
