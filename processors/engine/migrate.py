"""Fit a restored state to the model in use: the registry may have been edited since it was saved.

`adopt(model, state, start)` keeps the state of every sensor, unit, site, region and gateway whose id is
still in the registry (moved to its new index), starts the new ones as `EngineState.initial` would (their
stale timers at `start`), and drops the removed ones. A sensor whose set points, delays or type changed
keeps its level and history; its keep band is recomputed from the new set points, so its next reading is
judged by them. Everything derived from the model (keep bands, timer bounds, the watch list) is rebuilt,
and every unit, site and region is rolled up again at the next evaluation (`resync`): a removed unit may
have held its site's colour, an edited rule set may decide a unit's colour otherwise (and the unit's
stored rule index means nothing to another rule list). With an unchanged registry this changes nothing:
the roll-up finds the colours the state already has.

Runs once per site per restore (a Python lookup per id), never on the evaluation path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from processors.engine.model import EngineModel, keep_bands
from processors.engine.state import EngineState, model_ids


def adopt(model: EngineModel, state: EngineState, start: float) -> EngineState:
    """`state` (restored from a snapshot) made fit for `model`; returns a new state or `state` itself.

    Raises ValueError if the state keeps no ids (a snapshot of an older build) and was made for
    another registry: it cannot be migrated, and the caller starts the site afresh.
    """
    new_ids = model_ids(model)
    old_ids = state.ids
    if old_ids is None:
        if state.fingerprint != model.fingerprint or not _lengths_match(model, state):
            raise ValueError("engine state was built for another registry and keeps no ids to migrate by")
        old_ids = new_ids
    same = all(tuple(old_ids[kind]) == new_ids[kind] for kind in new_ids)
    if same:
        out = state
    else:
        out = EngineState.initial(model, start if state.primed else None)
        for kind, group in (("sensor", "sensor"), ("unit", "unit"), ("site", "site"), ("region", "region")):
            new_at, old_at = _matches(old_ids[kind], new_ids[kind])
            for name, array in getattr(state, group).items():
                getattr(out, group)[name][new_at] = array[old_at]
        new_at, old_at = _matches(old_ids["gateway"], new_ids["gateway"])
        out.gateway_offline[new_at] = state.gateway_offline[old_at]
        for name in ("out_of_order", "rejected", "evaluations"):
            setattr(out, name, getattr(state, name))
        out.primed = state.primed
    _refresh(model, out)
    out.fingerprint = model.fingerprint
    out.ids = new_ids
    out.resync = True  # rule indices and colours are re-decided by the model in use
    return out


def _lengths_match(model: EngineModel, state: EngineState) -> bool:
    return (
        len(state.sensor["code"]) == model.n_sensors
        and len(state.unit["colour"]) == len(model.unit_ids)
        and len(state.site["colour"]) == len(model.site_ids)
        and len(state.region["colour"]) == len(model.region_ids)
        and len(state.gateway_offline) == len(model.gateway_ids)
    )


def _matches(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Positions in `new` and in `old` of the ids both have."""
    where = {entity: i for i, entity in enumerate(old)}
    pairs = [(i, where[entity]) for i, entity in enumerate(new) if entity in where]
    if not pairs:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    a = np.array(pairs, np.intp)
    return a[:, 0], a[:, 1]


def _refresh(model: EngineModel, state: EngineState) -> None:
    """Recompute what the state derives from the model: set points may have changed under the same ids."""
    s = state.sensor
    every = np.arange(model.n_sensors)
    s["keep_lo"][:], s["keep_hi"][:] = keep_bands(model, every, s["code"])
    busy: Any = np.flatnonzero((s["cand"] != s["code"]) | (s["chat"] != 0)).astype(np.int32)
    state.watch = busy
    state.watch_due = -np.inf if busy.size else np.inf  # scanned at the next evaluation
    state.stale_due = -np.inf
    state.unit_due = -np.inf
