"""Hazard-source (unit) colours from the sensors' reported alarm states, for a set of units at once.

Rules are data (riskwatch.registry.rules); each kind is one vectorised block here. A unit's colour is
the highest colour of the rules that fire; the first rule in the set's order with that colour is named
as the cause. Units under maintenance are NORMAL (rule "maintenance"). Time-based rules (min duration,
kiln cut-off window) also return when they would next fire, so the engine re-evaluates the unit then.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from processors.engine.model import CODE_OFFSET, QUANTITIES, ROLES, STATE_LUT, EngineModel
from riskwatch.levels import AlarmState, Colour

MAINTENANCE_RULE = -2  # `rule` code of a unit held NORMAL by maintenance mode
_FEW_UNITS = 6  # up to this many units, `evaluate_units` decides them one by one (`evaluate_one`)
_FAULTY = np.zeros(len(AlarmState), bool)
_FAULTY[[AlarmState.FAULT, AlarmState.STALE]] = True
_ALARM = np.zeros(len(AlarmState), bool)
_ALARM[[AlarmState.L1_HIGH, AlarmState.L1_LOW, AlarmState.L2_HIGH, AlarmState.L2_LOW]] = True
_LOW_ALARM = np.zeros(len(AlarmState), bool)
_LOW_ALARM[[AlarmState.L1_LOW, AlarmState.L2_LOW]] = True
_GAS_MAIN = ROLES.index("gas_main_pressure")
_VALVE = ROLES.index("cutoff_valve")
_NQ = len(QUANTITIES)
_QUANTITY_BIT = np.left_shift(np.uint64(1), np.arange(_NQ, dtype=np.uint64))  # distinct quantities as bits

Arr = npt.NDArray[Any]


class UnitVerdict(NamedTuple):
    colour: npt.NDArray[np.int8]
    rule: npt.NDArray[np.int16]
    due: npt.NDArray[np.float64]  # next time a time-based rule may change the colour (+inf: never)
    at: npt.NDArray[np.float64]  # event time of the inputs behind the colour


class Members(NamedTuple):
    """The sensors of a set of units, flattened; `seg` is each sensor's position in the unit set."""

    sensor: Arr
    seg: Arr


def members_of(model: EngineModel, units: Arr) -> Members:
    if units.size == 1:  # the usual case: one unit touched, its sensors are one slice
        u = int(units[0])
        sensors = model.unit_members[model.unit_ptr[u] : model.unit_ptr[u + 1]]
        return Members(sensors, np.zeros(sensors.size, np.intp))
    starts = model.unit_ptr[units]
    lens = model.unit_ptr[units + 1] - starts
    total = int(lens.sum())
    seg = np.repeat(np.arange(units.size), lens)
    offs = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    return Members(model.unit_members[np.repeat(starts, lens) + offs], seg)


def _seg_min(n: int, seg: Arr, values: Arr, mask: Arr) -> Arr:
    out = np.full(n, np.inf)
    np.minimum.at(out, seg[mask], values[mask])
    return out


class _Segments(NamedTuple):
    """Where each unit's sensors start in a Members list, for reduceat (empty units left out)."""

    starts: Arr
    full: bool  # every unit has sensors: reduceat's output is the per-unit result as it is
    nonempty: Arr


def _segments(model: EngineModel, units: Arr) -> _Segments:
    if units.size == 1:  # the usual case: one unit
        u = int(units[0])
        return _ONE_UNIT if model.unit_ptr[u + 1] > model.unit_ptr[u] else _ONE_EMPTY_UNIT
    lens = model.unit_ptr[units + 1] - model.unit_ptr[units]
    starts = np.zeros(units.size, np.intp)
    np.cumsum(lens[:-1], out=starts[1:])
    nonempty = lens > 0
    full = bool(nonempty.all())
    return _Segments(starts if full else starts[nonempty], full, nonempty)


_ONE_UNIT = _Segments(np.zeros(1, np.intp), True, np.ones(1, bool))
_ONE_EMPTY_UNIT = _Segments(np.zeros(0, np.intp), False, np.zeros(1, bool))


def _reduce(ufunc: np.ufunc, values: Arr, seg: _Segments, identity: float, dtype: Any = None) -> Arr:
    """`ufunc` over each unit's sensors (the last axis of `values`); `identity` for a unit with none."""
    if seg.full:
        return ufunc.reduceat(values, seg.starts, axis=-1, dtype=dtype)
    shape = (*values.shape[:-1], seg.nonempty.size)
    out = np.full(shape, identity, dtype=dtype or values.dtype)
    if seg.starts.size:
        out[..., seg.nonempty] = ufunc.reduceat(values, seg.starts, axis=-1, dtype=dtype)
    return out


def evaluate_units(
    model: EngineModel, s: dict[str, Arr], u: dict[str, Arr], units: Arr, now: float
) -> UnitVerdict:
    """Colours of `units` (unique unit indices) at time `now`."""
    nd = units.size
    if not nd:
        return UnitVerdict(np.zeros(0, np.int8), np.zeros(0, np.int16), np.zeros(0), np.zeros(0))
    if nd <= _FEW_UNITS:  # a few units: one by one in Python (~50 us each; the array path costs ~300)
        one = [evaluate_one(model, s, u, unit, now) for unit in units.tolist()]
        return UnitVerdict(
            np.array([v[0] for v in one], np.int8),
            np.array([v[1] for v in one], np.int16),
            np.array([v[2] for v in one], np.float64),
            np.array([v[3] for v in one], np.float64),
        )
    rule_set = model.unit_rule_set[units]
    first = int(rule_set[0])
    if nd == 1 or np.count_nonzero(rule_set != first) == 0:  # the usual case: one rule set
        colour, rule, due, at = _evaluate_set(model, s, u, units, first, now)
    else:
        colour, rule = np.zeros(nd, np.int8), np.full(nd, -1, np.int16)
        due, at = np.full(nd, np.inf), np.full(nd, -np.inf)
        for set_index in np.unique(rule_set).tolist():
            pos = np.flatnonzero(rule_set == set_index)
            colour[pos], rule[pos], due[pos], at[pos] = _evaluate_set(model, s, u, units[pos], set_index, now)
    held = u["maintenance"][units] != 0
    if np.count_nonzero(held):
        colour = np.where(held, np.int8(Colour.NORMAL), colour)
        rule = np.where(held, np.int16(MAINTENANCE_RULE), rule)
        due = np.where(held, np.inf, due)
    return UnitVerdict(colour.astype(np.int8), rule.astype(np.int16), due, at)


_STATE_OF: tuple[tuple[int, ...], ...] = tuple(tuple(row) for row in STATE_LUT.tolist())
_FAULTY_STATES = frozenset((int(AlarmState.FAULT), int(AlarmState.STALE)))
_ALARM_STATES = frozenset(np.flatnonzero(_ALARM).tolist())
_LOW_ALARM_STATES = frozenset(np.flatnonzero(_LOW_ALARM).tolist())
_L1_HIGH = int(AlarmState.L1_HIGH)


def evaluate_one(
    model: EngineModel, s: dict[str, Arr], u: dict[str, Arr], unit: int, now: float
) -> tuple[int, int, float, float]:
    """(colour, rule, due, at) of one unit, maintenance included: `evaluate_units` for a single unit,
    value for value, rule by rule in Python over the unit's sensors that are not NORMAL (no rule
    counts a NORMAL sensor), so it costs a few numpy calls instead of ~50."""
    members = model.unit_members[int(model.unit_ptr[unit]) : int(model.unit_ptr[unit + 1])]
    # Python lists from here: a unit has a few dozen sensors, and a numpy call costs microseconds
    all_codes = s["ucode"].take(members).tolist()
    all_since = s["usince"].take(members).tolist()
    latest = max(all_since, default=-np.inf)
    # NORMAL is code 0 (codes 5..7, also NORMAL, are never used)
    moved = [(int(members[k]), k) for k, c in enumerate(all_codes) if c]
    codes = [all_codes[k] for _, k in moved]
    since = [all_since[k] for _, k in moved]
    banded = [model.banded.item(i) for i, _ in moved]
    group = [model.group.item(i) for i, _ in moved]
    role = [model.role.item(i) for i, _ in moved]
    quantity = [model.quantity.item(i) for i, _ in moved]
    st = [_STATE_OF[b][c + CODE_OFFSET] for b, c in zip(banded, codes, strict=True)]
    rule_set = model.rule_sets[int(model.unit_rule_set[unit])]
    counting = any(x in rule_set.counted for x in st)  # as the array path: count rules only then
    present = frozenset(st)
    colour, rule, fire, due = 0, -1, -np.inf, np.inf
    for r in rule_set.plain:
        value = r.colour
        when = -np.inf
        if r.kind == "count":
            if not counting or (r.min_sensors > 0 and r.states.isdisjoint(present)):
                continue  # (a rule that counts none of the states present cannot fire nor fall due)
            matched: list[int] = []
            ripe_min = np.inf
            for k, x in enumerate(st):
                if x not in r.states:
                    continue
                if group[k] not in r.groups and not (r.any_group_for_faults and x in _FAULTY_STATES):
                    continue
                if r.min_duration > 0:
                    ripe = since[k] + r.min_duration
                    if not ripe <= now:
                        due = min(due, ripe)
                        continue
                    ripe_min = min(ripe_min, ripe)
                matched.append(k)
            if r.min_duration > 0:
                when = ripe_min
            fired = len(matched) >= r.min_sensors
            if fired and r.min_quantities > 1:
                fired = len({quantity[k] for k in matched}) >= r.min_quantities
        elif r.kind == "kiln_cutoff":
            if not any(x in _LOW_ALARM_STATES for x in st):
                continue
            alarm_since = min(
                (since[k] for k, x in enumerate(st) if role[k] == _GAS_MAIN and x in _LOW_ALARM_STATES),
                default=np.inf,
            )
            closed = min(
                (since[k] for k, x in enumerate(st) if role[k] == _VALVE and x == _L1_HIGH), default=np.inf
            )
            confirm_at = min(closed, float(u["valve_closed_at"][unit]))
            deadline = alarm_since + r.confirm_within
            open_alarm = math.isfinite(alarm_since) and not confirm_at <= deadline
            fired = open_alarm and deadline <= now
            if open_alarm and deadline > now:
                due = min(due, deadline)
            when = deadline
        elif r.kind == "interlock_bypass":
            if u["bypassed"][unit] == 0:
                continue
            fired = any(x in _ALARM_STATES and role[k] != _VALVE for k, x in enumerate(st))
        else:  # tailings_rollup
            value = min(_tailings_one(banded, codes, quantity), r.colour)
            fired = value > 0
        if fired and value > colour:  # the first rule in the set's order with the highest colour
            colour, rule, fire = value, r.index, when
    # as the array path: the firing rule's time counts even under maintenance
    at = max(latest, float(u["event_at"][unit]), fire)
    if u["maintenance"][unit] != 0:
        return int(Colour.NORMAL), MAINTENANCE_RULE, np.inf, at
    return colour, rule, due, at


def _tailings_one(banded: list[int], codes: list[int], quantity: list[int]) -> int:
    """`_tailings` for one unit's sensors."""
    items: dict[int, list[int]] = {}
    for b, c, q in zip(banded, codes, quantity, strict=True):
        if b and 1 <= abs(c) <= 4:
            items.setdefault(q, []).append(abs(c))
    pond, blue = 0, 0
    for points in items.values():
        c = max(points)
        for at_least, count, colour in ((1, 4, Colour.YELLOW), (2, 3, Colour.ORANGE), (3, 2, Colour.RED)):
            if sum(p >= at_least for p in points) >= count:
                c = max(c, int(colour))
        pond = max(pond, c)
        blue += c >= Colour.BLUE
    return max(pond, int(Colour.YELLOW)) if blue >= 4 else pond


def _evaluate_set(
    model: EngineModel, s: dict[str, Arr], u: dict[str, Arr], units: Arr, set_index: int, now: float
) -> tuple[Arr, Arr, Arr, Arr]:
    """(colour, rule, due, at) of `units`, all of rule set `set_index`, before maintenance."""
    nd = units.size
    rule_set = model.rule_sets[set_index]
    mem = members_of(model, units)
    sensor, seg = mem.sensor, mem.seg
    segs = _segments(model, units)
    st = STATE_LUT[model.banded[sensor], s["ucode"][sensor] + CODE_OFFSET]
    usince = s["usince"][sensor]
    role = model.role[sensor]
    due = np.full(nd, np.inf)
    # One row per rule of the set, in its order: the colour the rule gives each unit (0: does not fire)
    # and, for time-based rules, the event time of its inputs.
    values = np.zeros((len(rule_set.rules), nd), np.int8)
    whens = np.full((len(rule_set.rules), nd), -np.inf)
    cr = rule_set.count
    if cr.position.size and np.count_nonzero(cr.counted[st]):  # rules on states nobody is in cannot fire
        faults = cr.any_group_for_faults[:, None] & _FAULTY[st]
        m = cr.state_ok[:, st] & (cr.group_ok[:, model.group[sensor]] | faults)
        timed = cr.timed
        if timed.size:
            ripe = usince + cr.min_duration[timed, None]
            young = m[timed] & ~(ripe <= now)
            due = np.minimum(
                due, _reduce(np.minimum, np.where(young, ripe, np.inf).min(axis=0), segs, np.inf)
            )
            ripe_m = m[timed] & ~young
            m[timed] = ripe_m
            whens[cr.position[timed]] = _reduce(np.minimum, np.where(ripe_m, ripe, np.inf), segs, np.inf)
        enough = _reduce(np.add, m, segs, 0, dtype=np.int64) >= cr.min_sensors[:, None]
        several = cr.several
        if several.size:
            bits = np.where(m[several], _QUANTITY_BIT[model.quantity[sensor]], np.uint64(0))
            kinds = np.bitwise_count(_reduce(np.bitwise_or, bits, segs, 0))
            enough[several] &= kinds >= cr.min_quantities[several, None]
        values[cr.position] = np.where(enough, cr.colour[:, None], np.int8(0))
    for k, c in enumerate(rule_set.rules):
        r = c.rule
        if r.kind == "count":
            continue
        fired: Arr
        value: Arr | int = int(r.colour)
        if r.kind == "kiln_cutoff":
            low_alarm = _LOW_ALARM[st]
            if not np.count_nonzero(low_alarm):
                continue
            low = (role == _GAS_MAIN) & low_alarm
            alarm_since = _seg_min(nd, seg, usince, low)
            closed = (role == _VALVE) & (st == AlarmState.L1_HIGH)
            confirm_at = np.minimum(_seg_min(nd, seg, usince, closed), u["valve_closed_at"][units])
            deadline = alarm_since + r.confirm_within_s
            open_alarm = np.isfinite(alarm_since) & ~(confirm_at <= deadline)
            fired = open_alarm & (deadline <= now)
            due = np.minimum(due, np.where(open_alarm & (deadline > now), deadline, np.inf))
            whens[k] = deadline
        elif r.kind == "interlock_bypass":
            bypassed = u["bypassed"][units] != 0
            if not np.count_nonzero(bypassed):
                continue
            alarm = _ALARM[st] & (role != _VALVE)
            fired = bypassed & (np.bincount(seg[alarm], minlength=nd) > 0)
        else:  # tailings_rollup, GB 50863 §5.5.4
            value = _tailings(model, s, sensor, seg, nd)
            fired = value > 0
            if not np.count_nonzero(fired):
                continue
        values[k] = np.where(fired, np.minimum(value, int(r.colour)), 0)
    # the highest colour wins; among rules giving it, the first in the set's order is named
    best = values.argmax(axis=0)
    pick = (best, np.arange(nd))
    colour = values[pick]
    chosen = colour > 0
    rule = np.where(chosen, rule_set.index[best], np.int16(-1))
    fire = np.where(chosen, whens[pick], -np.inf)
    latest = _reduce(np.maximum, usince, segs, -np.inf)
    at = np.maximum(np.maximum(latest, u["event_at"][units]), fire)
    return colour, rule, due, at


def _tailings(model: EngineModel, s: dict[str, Arr], sensor: Arr, seg: Arr, nd: int) -> Arr:
    """Point colour = band level; item colour by the 4-blue/3-yellow/2-orange roll-up; pond = highest."""
    ucode = s["ucode"][sensor].astype(np.int64)
    point = np.where(np.abs(ucode) <= 4, np.abs(ucode), 0)
    pts = (model.banded[sensor] != 0) & (point > 0)
    if not np.count_nonzero(pts):  # every banded point normal (or faulty): nothing to roll up
        return np.zeros(nd, np.int8)
    key = seg[pts].astype(np.int64) * _NQ + model.quantity[sensor[pts]]
    pc = point[pts]
    size = nd * _NQ
    item = np.zeros(size, np.int64)
    np.maximum.at(item, key, pc)
    for at_least, count, colour in ((1, 4, Colour.YELLOW), (2, 3, Colour.ORANGE), (3, 2, Colour.RED)):
        n = np.bincount(key[pc >= at_least], minlength=size)
        item = np.where(n >= count, np.maximum(item, int(colour)), item)
    by_item = item.reshape(nd, _NQ)
    pond = by_item.max(axis=1) if nd else np.zeros(0, np.int64)
    blue_items = np.count_nonzero(by_item >= Colour.BLUE, axis=1)
    pond = np.where(blue_items >= 4, np.maximum(pond, int(Colour.YELLOW)), pond)
    return pond.astype(np.int8)
