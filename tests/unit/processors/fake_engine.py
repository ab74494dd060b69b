"""A small stand-in warning engine with the real engine's API, for testing the worker's plumbing.

Rules (deliberately simple, not docs/domain.md's): value >= l2_high -> l2_high, >= l1_high -> l1_high, else
normal; no reading for `stale_after_s` -> stale (at = last seen + timeout, so replays give equal ids);
gateway "offline" -> its sensors stale. Site colour: any L2 -> yellow, any L1 or stale -> blue. It also
emits a region transition per site, which the worker must drop (regions are rolled up downstream).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from riskwatch.levels import AlarmState, Colour
from riskwatch.registry import Registry
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id


@dataclass(frozen=True)
class FakeModel:
    ids: tuple[str, ...]
    gateways: tuple[str, ...]
    site: str
    region: str
    l1: np.ndarray
    l2: np.ndarray
    stale_after: np.ndarray


def compile_model(registry: Registry) -> FakeModel:
    sensors = sorted(registry.sensor_list, key=lambda s: s.index)
    site = sensors[0].site
    return FakeModel(
        ids=tuple(s.id for s in sensors),
        gateways=tuple(s.gateway for s in sensors),
        site=site,
        region=registry.sites[site].region,
        l1=np.array([s.l1_high if s.l1_high is not None else np.inf for s in sensors]),
        l2=np.array([s.l2_high if s.l2_high is not None else np.inf for s in sensors]),
        stale_after=np.array([s.stale_after_s for s in sensors]),
    )


@dataclass
class EngineState:
    level: np.ndarray
    last_seen: np.ndarray
    value: np.ndarray
    colour: int

    @classmethod
    def initial(cls, model: FakeModel, now: float | None = None) -> EngineState:
        n = len(model.ids)
        return cls(np.zeros(n, np.int8), np.full(n, np.nan), np.full(n, np.nan), 0)

    def to_bytes(self) -> bytes:
        n = self.level.shape[0]
        return (
            struct.pack("<IB", n, self.colour)
            + self.level.tobytes()
            + self.last_seen.tobytes()
            + (self.value.tobytes())
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> EngineState:
        n, colour = struct.unpack_from("<IB", raw)
        off = 5
        level = np.frombuffer(raw, np.int8, n, off).copy()
        last = np.frombuffer(raw, np.float64, n, off + n).copy()
        value = np.frombuffer(raw, np.float64, n, off + 9 * n).copy()
        return cls(level, last, value, colour)


def _emit(model: FakeModel, state: EngineState, new: np.ndarray, at: np.ndarray) -> list[Transition]:
    out: list[Transition] = []
    for i in np.flatnonzero(new != state.level).tolist():
        old_s, new_s = AlarmState(int(state.level[i])).label, AlarmState(int(new[i])).label
        t_at = float(at[i])
        item = CauseItem(model.ids[i], "x", new_s, float(state.value[i]), float(model.l2[i]), "", t_at)
        out.append(
            Transition(
                transition_id("alarm", "sensor", model.ids[i], new_s, t_at),
                "alarm",
                "sensor",
                model.ids[i],
                old_s,
                new_s,
                t_at,
                Cause("threshold", (item,)),
                model.site,
                model.region,
            )
        )
    state.level = new
    colour = Colour.NORMAL
    if (new == AlarmState.L2_HIGH).any():
        colour = Colour.YELLOW
    elif new.any():
        colour = Colour.BLUE
    if colour != state.colour:
        t_at = max((t.at for t in out), default=0.0)
        for etype, entity in (("site", model.site), ("region", model.region)):
            out.append(
                Transition(
                    transition_id("warning", etype, entity, colour.label, t_at),
                    "warning",
                    etype,
                    entity,
                    Colour(state.colour).label,
                    colour.label,
                    t_at,
                    Cause("any_alarm"),
                    model.site,
                    model.region,
                )
            )
        state.colour = int(colour)
    return out


def evaluate(model: FakeModel, state: EngineState, batch: Readings, now: float) -> tuple[EngineState, list]:
    st = EngineState(state.level.copy(), state.last_seen.copy(), state.value.copy(), state.colour)
    at = np.full(len(model.ids), now)
    if len(batch):
        order = np.argsort(batch.ts, kind="stable")
        s, v, ts = batch.sensor[order], batch.value[order], batch.ts[order]
        newer = ~(ts <= st.last_seen[s])  # replays and out-of-order readings do not move state
        s, v, ts = s[newer], v[newer], ts[newer]
        st.last_seen[s] = ts
        st.value[s] = v
        at[s] = ts
    level = np.where(st.value >= model.l2, 3, np.where(st.value >= model.l1, 1, 0)).astype(np.int8)
    stale_at = st.last_seen + model.stale_after
    stale = stale_at <= now
    level[stale] = AlarmState.STALE
    at[stale] = stale_at[stale]
    return st, _emit(model, st, level, at)


def apply_gateway(model: FakeModel, state: EngineState, records: Sequence[Any], now: float) -> tuple:
    st = EngineState(state.level.copy(), state.last_seen.copy(), state.value.copy(), state.colour)
    level = st.level.copy()
    at = np.full(len(model.ids), now)
    for rec in records:
        if rec.type == "status" and rec.state == "offline":
            mask = np.array([g == rec.gw for g in model.gateways])
            level[mask] = AlarmState.STALE
            at[mask] = rec.t if rec.t is not None else rec.received
    return st, _emit(model, st, level, at)
