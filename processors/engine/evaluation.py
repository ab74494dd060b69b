"""`evaluate(model, state, batch, now)`: one batch of readings (and events) in, only the changes out.

Order inside one call: events (in list order), then the readings (each sensor's readings in batch
order), then every timer due at `now` (on/off delays, stale, chattering end, time-based unit rules),
then unit -> site -> region colours for the units whose inputs changed. Call it with an empty batch
on a timer: stale and delays are evaluated on `now` alone.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from processors.engine.events import Event, Reject, apply_event_list
from processors.engine.model import STALE, EngineModel
from processors.engine.rules import evaluate_one, evaluate_units
from processors.engine.sensors import (
    Emits,
    advance,
    advance_one,
    apply_one,
    apply_round,
    timer_due,
    timer_due_one,
)
from processors.engine.state import EngineState
from processors.engine.warnings import sensor_alarms, site_warning, unit_warning
from riskwatch.levels import Colour
from riskwatch.regions import RegionState, roll_up
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition

Arr = npt.NDArray[Any]


class Evaluation(NamedTuple):
    """Everything one evaluation produced. `evaluate` returns only (state, transitions)."""

    state: EngineState
    transitions: list[Transition]
    rejects: list[Reject]
    out_of_order: int  # readings older than their sensor's last reading in this call (not applied)


def evaluate(
    model: EngineModel,
    state: EngineState,
    batch: Readings,
    now: float,
    events: tuple[Event, ...] | list[Event] = (),
) -> tuple[EngineState, list[Transition]]:
    """Evaluate a batch; the state is updated in place and returned. Rejects are counted in the state."""
    outcome = evaluate_detailed(model, state, batch, now, events)
    return outcome.state, outcome.transitions


def evaluate_detailed(
    model: EngineModel,
    state: EngineState,
    batch: Readings,
    now: float,
    events: tuple[Event, ...] | list[Event] = (),
) -> Evaluation:
    """Like `evaluate`, also returning rejected readings/events with their reasons."""
    if state.fingerprint != model.fingerprint:
        raise ValueError("engine state was built for another registry (fingerprint mismatch)")
    if state.sensor["code"].shape[0] != model.n_sensors or state.unit["colour"].shape[0] != len(
        model.unit_ids
    ):
        raise ValueError("engine state was built for another registry (sizes differ; migrate it with adopt)")
    s, u = state.sensor, state.unit
    if not state.primed:
        s["last_ts"][np.isnan(s["last_ts"])] = now
        state.primed = True
    em = Emits()
    touched_units, rejects = apply_event_list(model, state, events, em) if events else ([], [])
    out_of_order = _readings(model, state, batch, em, rejects) if len(batch) else 0
    _timers(model, state, now, em)
    if em.chatter:  # chattering that started outside a reading (stale, gateway offline) must end on time
        started = np.concatenate(em.chatter)
        state.watch = np.concatenate([state.watch, started.astype(np.int32)])
        state.watch_due = min(state.watch_due, float(timer_due(model, s, started).min()))
    transitions = sensor_alarms(model, em)
    units = [a.astype(np.int64) for a in em.units if a.size]
    if touched_units:
        units.append(np.asarray(touched_units, np.int64))
    if now >= state.unit_due:
        units.append(np.flatnonzero(u["due"] <= now))
    if state.resync:  # after a migration (migrate.adopt): every unit, site and region is decided anew
        units.append(np.arange(len(model.unit_ids), dtype=np.int64))
    if len(units) == 1 and units[0].size == 1:  # the usual busy batch: one unit touched
        dirty = units[0]
    else:
        dirty = np.unique(np.concatenate(units)) if units else _NO_UNITS
    if dirty.size or state.resync:
        transitions.extend(_roll_up(model, state, dirty, now, every_site=state.resync))
        state.resync = False
    if now >= state.unit_due:
        state.unit_due = float(u["due"].min()) if u["due"].size else np.inf
    state.out_of_order += out_of_order
    state.rejected += len(rejects)
    state.evaluations += 1
    return Evaluation(state, transitions, rejects, out_of_order)


_NO_UNITS = np.zeros(0, np.int64)


def _readings(
    model: EngineModel, state: EngineState, batch: Readings, em: Emits, rejects: list[Reject]
) -> int:
    sensor, value, ts, quality = batch
    if not sensor.shape[0] == value.shape[0] == ts.shape[0] == quality.shape[0]:
        raise ValueError("malformed Readings: sensor, value, ts and quality must have the same length")
    idx = sensor.astype(np.intp)
    # One reduction checks both ends: a negative index is huge as unsigned.
    if idx.view(np.uintp).max() >= model.n_sensors:
        return _readings_in_rounds(model, state, idx, value, ts, quality, em, rejects)
    # Each sensor's position in the batch, in a per-sensor work array: a sensor read twice does not get
    # its own position back (cheaper than sorting the batch), and the watched sensors find their readings.
    at = _positions(idx.size)
    where = state.work()
    where[idx] = at
    if np.count_nonzero(where.take(idx) != at):
        return _readings_in_rounds(model, state, idx, value, ts, quality, em, rejects)
    s = state.sensor
    quiet = _quiet(model, state, idx, value, ts, quality, where)
    n_quiet = np.count_nonzero(quiet)
    if n_quiet == idx.size:  # the usual batch: nothing but the sensors' newest value and time changes
        s["last_ts"][idx] = ts
        s["last_value"][idx] = value
        return 0
    if n_quiet == 0:
        return _readings_in_rounds(model, state, idx, value, ts, quality, em, rejects, unique=True)
    # One reading per sensor, so the quiet ones and the rest touch different sensors: the rest (the few
    # readings that move something) go through the full path, with their batch positions for rejects.
    rest = np.flatnonzero(~quiet)
    ri = idx[rest]
    # every reading written, then the few others put back: cheaper than selecting the quiet ones
    last_ts, last_value = s["last_ts"], s["last_value"]
    kept_ts, kept_value = last_ts[ri], last_value[ri]
    last_ts[idx] = ts
    last_value[idx] = value
    last_ts[ri] = kept_ts
    last_value[ri] = kept_value
    return _readings_in_rounds(
        model, state, ri, value[rest], ts[rest], quality[rest], em, rejects, rest, unique=True
    )


_POSITIONS: dict[int, Arr] = {}


def _positions(n: int) -> Arr:
    """0..n-1 as int32, kept per size (batches come in a few sizes), read-only."""
    at = _POSITIONS.get(n)
    if at is None:
        at = np.arange(n, dtype=np.int32)
        at.flags.writeable = False
        if len(_POSITIONS) < 64:
            _POSITIONS[n] = at
    return at


def _repeats(sensor: Arr) -> bool:
    """Whether any sensor has several readings in the batch."""
    ss = np.sort(sensor)
    return bool(np.count_nonzero(ss[1:] == ss[:-1]))


def _quiet(
    model: EngineModel, state: EngineState, idx: Arr, value: Arr, ts: Arr, quality: Arr, where: Arr
) -> Arr:
    """Readings that change nothing but their sensor's newest value and time (`idx` valid and unique,
    `where[idx[k]] == k`).

    Such a reading is on time (not older than the sensor's newest, so its time is finite), before the
    sensor's stale moment, good, inside its keep band (which is empty for FAULT and STALE), and its
    sensor is not watched (every sensor with a delay running or chattering is in `state.watch`; one
    watched for nothing goes the full way, which gives the same). Its stale moment moves later, so
    `stale_due`, a lower bound over the live sensors, stays as it is; a never-seen sensor's first
    reading is never quiet (it sets `seen`)."""
    s = state.sensor
    last = s["last_ts"].take(idx)
    quiet = ts >= last
    last += model.stale_after.take(idx)
    quiet &= ts < last
    quiet &= value > s["keep_lo"].take(idx)
    quiet &= value < s["keep_hi"].take(idx)
    if np.count_nonzero(quality):  # bad quality is rare: one cheap count usually spares two passes
        quiet &= quality == 0
    if not state.every_sensor_seen():
        quiet &= s["seen"].take(idx) != 0
    watch = state.watch
    if watch.size:  # a few dozen sensors: look their readings up rather than gather 3 columns per reading
        pos = where.take(watch)  # a watched sensor's reading's position, or anything if it has none
        read = idx.take(pos, mode="clip") == watch
        if np.count_nonzero(read):  # most batches hold none of them
            quiet[pos[read]] = False
    return quiet


def _readings_in_rounds(
    model: EngineModel,
    state: EngineState,
    sensor: Arr,
    value: Arr,
    ts: Arr,
    quality: Arr,
    em: Emits,
    rejects: list[Reject],
    positions: Arr | None = None,
    unique: bool = False,
) -> int:
    """Every reading, checked and applied one round per reading of a sensor; `positions`: the readings'
    places in the batch (None: the whole batch, in order); `unique`: the caller found every sensor index
    valid and no sensor twice."""
    s = state.sensor
    n = model.n_sensors
    if unique and sensor.size <= _FEW and _ONE_BY_ONE:  # the usual busy batch: one reading moves something
        start = em.begin_one_by_one()
        late = 0
        columns = zip(sensor.tolist(), value.tolist(), ts.tolist(), quality.tolist(), strict=True)
        for k, (i, v, t, q) in enumerate(columns):
            place = k if positions is None else int(positions[k])
            late += _reading_one(model, state, i, v, t, q, em, rejects, place)
        em.end_one_by_one(start)
        return late
    if unique:  # the caller checked the indices already
        bad = not np.isfinite(ts).all()
    else:
        bad = bool(sensor.size) and not (sensor.min() >= 0 and sensor.max() < n and np.isfinite(ts).all())
    if bad:
        valid = (sensor >= 0) & (sensor < n) & np.isfinite(ts)
        for pos in np.flatnonzero(~valid).tolist():
            place = pos if positions is None else int(positions[pos])
            if not 0 <= sensor[pos] < n:
                reason = f"unknown sensor index {int(sensor[pos])} (registry has {n} sensors)"
            else:
                reason = f"timestamp {float(ts[pos])!r} is not a finite epoch time"
            rejects.append(Reject("reading", place, reason))
        keep = np.flatnonzero(valid)
        sensor, value, ts, quality = sensor[keep], value[keep], ts[keep], quality[keep]
    if sensor.size == 0:
        return 0
    if unique or not _repeats(sensor):  # the common case: one reading per sensor, batch order
        rounds: list[Arr | None] = [None]
    else:  # the k-th reading of every sensor goes in round k, keeping each sensor's batch order
        order = np.argsort(sensor, kind="stable")
        ss = sensor[order]
        at = np.arange(ss.size)
        first = np.empty(ss.size, bool)
        first[0] = True
        np.not_equal(ss[1:], ss[:-1], out=first[1:])
        rank = at - np.maximum.accumulate(np.where(first, at, 0))
        rounds = [order[rank == k] for k in range(int(rank.max()) + 1)]
    out_of_order = 0
    watch = [state.watch]
    for r in rounds:
        if r is None:
            idx, rts, rv, rq = sensor.astype(np.intp), ts, value, quality
        else:
            idx, rts, rv, rq = sensor[r].astype(np.intp), ts[r], value[r], quality[r]
        last = s["last_ts"].take(idx)
        # Older than the sensor's newest reading, or than the moment it went stale (a reading sent before
        # its gateway's last will, arriving after it on another topic, does not bring the gateway back)
        late = (rts < last) | ((s["code"].take(idx) == STALE) & (rts < s["since"].take(idx)))
        if late.any():
            # a never-seen sensor's last_ts is only its stale timer start: its first reading is taken
            late &= s["seen"][idx] != 0
            n_late = int(np.count_nonzero(late))
            if n_late:
                out_of_order += n_late
                on_time = ~late
                idx, rts, rv, rq, last = idx[on_time], rts[on_time], rv[on_time], rq[on_time], last[on_time]
        stale_after = model.stale_after.take(idx)
        left = apply_round(model, s, idx, rv, rts, rq, em, last + stale_after)
        if left.size:
            watch.append(left.astype(np.int32))
            state.watch_due = min(state.watch_due, float(timer_due(model, s, left).min()))
        if idx.size:  # a reading never leaves its sensor stale
            state.stale_due = min(state.stale_due, float((rts + stale_after).min()))
    state.watch = np.concatenate(watch) if len(watch) > 1 else state.watch
    return out_of_order


# Up to this many readings of distinct sensors (or watched sensors due), one by one in scalars
# (sensors.apply_one, advance_one) rather than ~100 numpy calls on arrays of a few items; tests switch
# `_ONE_BY_ONE` off to compare both paths.
_FEW = 4
_FEW_TIMERS = 32
_ONE_BY_ONE = True


def _reading_one(
    model: EngineModel,
    state: EngineState,
    i: int,
    v: float,
    t: float,
    q: int,
    em: Emits,
    rejects: list[Reject],
    place: int,
) -> int:
    """`_readings_in_rounds` for one reading of a valid sensor, in scalars (sensors.apply_one); returns
    1 if it is out of order."""
    s = state.sensor
    if not math.isfinite(t):
        rejects.append(Reject("reading", place, f"timestamp {t!r} is not a finite epoch time"))
        return 0
    last = s["last_ts"].item(i)
    if (t < last or (s["code"].item(i) == STALE and t < s["since"].item(i))) and s["seen"].item(i) != 0:
        return 1  # out of order (see _readings_in_rounds)
    stale_after = model.stale_after.item(i)
    if apply_one(model, s, i, v, t, q, em, last + stale_after):
        state.watch = np.append(state.watch, np.int32(i))
        state.watch_due = min(state.watch_due, timer_due_one(model, s, i))
    state.stale_due = min(state.stale_due, t + stale_after)
    return 0


def _timers(model: EngineModel, state: EngineState, now: float, em: Emits) -> None:
    s = state.sensor
    if state.watch.size and now >= state.watch_due:
        w = np.unique(state.watch).astype(np.intp)
        w = w[(s["cand"][w] != s["code"][w]) | (s["chat"][w] != 0)]
        if w.size and w.size <= _FEW_TIMERS and _ONE_BY_ONE:
            begin = em.begin_one_by_one()
            for i in w.tolist():
                advance_one(model, s, i, now, em)
            em.end_one_by_one(begin)
        elif w.size:
            advance(model, s, w, np.full(w.size, now), em)
        if w.size:
            # a stale sensor whose pending level was just committed is live again: it can go stale anew
            live = w[s["code"][w] != STALE]
            if live.size:
                state.stale_due = min(
                    state.stale_due, float((s["last_ts"][live] + model.stale_after[live]).min())
                )
            w = w[(s["cand"][w] != s["code"][w]) | (s["chat"][w] != 0)]
        state.watch = w.astype(np.int32)
        state.watch_due = float(timer_due(model, s, w).min()) if w.size else np.inf
    elif state.watch.size > 4 * 4096:  # keep the list short when nothing is due for a long time
        state.watch = np.unique(state.watch)
    if now >= state.stale_due:
        live = s["code"] != STALE
        deadline = np.where(live, s["last_ts"] + model.stale_after, np.inf)
        due = np.flatnonzero(deadline <= now)
        if due.size:
            advance(model, s, due, np.full(due.size, now), em)
            deadline[due] = np.where(
                s["code"][due] != STALE, s["last_ts"][due] + model.stale_after[due], np.inf
            )
        state.stale_due = float(deadline.min()) if deadline.size else np.inf


def _roll_up(
    model: EngineModel, state: EngineState, units: Arr, now: float, every_site: bool = False
) -> list[Transition]:
    s, u = state.sensor, state.unit
    out: list[Transition] = []
    sites: list[int]
    if units.size == 1 and not every_site:  # the usual case: one unit, in scalars (no array round trips)
        unit = int(units[0])
        colour, rule, due, at = evaluate_one(model, s, u, unit, now)
        u["due"][unit] = due
        state.unit_due = min(state.unit_due, due)
        old_colour = int(u["colour"][unit])
        u["rule"][unit] = rule
        if colour == old_colour:
            return out
        u["colour"][unit] = colour
        u["colour_at"][unit] = at
        out.append(unit_warning(model, s, unit, old_colour, colour, rule, at))
        sites = [int(model.unit_site[unit])]
    else:
        verdict = evaluate_units(model, s, u, units, now)
        u["due"][units] = verdict.due
        if verdict.due.size:
            state.unit_due = min(state.unit_due, float(verdict.due.min()))
        old = u["colour"][units]
        u["rule"][units] = verdict.rule
        changed = np.flatnonzero(verdict.colour != old)
        if changed.size == 0 and not every_site:
            return out
        cu = units[changed]
        u["colour"][cu] = verdict.colour[changed]
        u["colour_at"][cu] = verdict.at[changed]
        for k in changed.tolist():
            unit = int(units[k])
            out.append(
                unit_warning(
                    model,
                    s,
                    unit,
                    int(old[k]),
                    int(verdict.colour[k]),
                    int(verdict.rule[k]),
                    float(verdict.at[k]),
                )
            )
        sites = list(range(len(model.site_ids))) if every_site else np.unique(model.unit_site[cu]).tolist()
    site_colour = state.site["colour"]
    regions: dict[int, RegionState] = {}  # the regions touched by this call, as the roll-up sees them
    for site in sites:
        lo, hi = int(model.site_ptr[site]), int(model.site_ptr[site + 1])
        colour = int(u["colour"][lo:hi].max()) if hi > lo else 0
        if colour == site_colour[site]:
            continue
        at = float(u["colour_at"][lo:hi].max()) if hi > lo else float(state.site["colour_at"][site])
        warning = site_warning(model, s, u, site, int(site_colour[site]), colour, at)
        out.append(warning)
        site_colour[site] = colour
        state.site["colour_at"][site] = at
        region = int(model.site_region[site])
        # The region's colour is its highest site colour: the kernel's roll-up (which builds the region's
        # site table) is only needed when that changes, which is rare next to site changes.
        if int(site_colour[model.site_region == region].max()) == state.region["colour"][region]:
            continue
        if region not in regions:
            regions[region] = _region_state(model, site_colour, state.region["colour"], region)
        region_warning = roll_up(regions[region], warning)
        if region_warning is not None:
            out.append(region_warning)
            state.region["colour"][region] = Colour.parse(region_warning.new)
            state.region["colour_at"][region] = region_warning.at
    return out


def _region_state(model: EngineModel, site_colour: Arr, region_colour: Arr, region: int) -> RegionState:
    """One region's state for the roll-up, from the engine's site and region colours."""
    mine = np.flatnonzero((model.site_region == region) & (site_colour != 0))
    sites = {model.site_ids[x]: Colour(int(site_colour[x])).label for x in mine.tolist()}
    return RegionState(sites, Colour(int(region_colour[region])).label)
