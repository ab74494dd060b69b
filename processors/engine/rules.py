"""Hazard-source (unit) colours from the sensors' reported alarm states, for a set of units at once.

Rules are data (riskwatch.registry.rules); each kind is one vectorised block here. A unit's colour is
the highest colour of the rules that fire; the first rule in the set's order with that colour is named
as the cause. Units under maintenance are NORMAL (rule "maintenance"). Time-based rules (min duration,
kiln cut-off window) also return when they would next fire, so the engine re-evaluates the unit then.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from processors.engine.model import CODE_OFFSET, QUANTITIES, ROLES, STATE_LUT, EngineModel
from riskwatch.levels import AlarmState, Colour

MAINTENANCE_RULE = -2  # `rule` code of a unit held NORMAL by maintenance mode
_FAULTY = np.zeros(len(AlarmState), bool)
_FAULTY[[AlarmState.FAULT, AlarmState.STALE]] = True
_ALARM = np.zeros(len(AlarmState), bool)
_ALARM[[AlarmState.L1_HIGH, AlarmState.L1_LOW, AlarmState.L2_HIGH, AlarmState.L2_LOW]] = True
_LOW_ALARM = np.zeros(len(AlarmState), bool)
_LOW_ALARM[[AlarmState.L1_LOW, AlarmState.L2_LOW]] = True
_GAS_MAIN = ROLES.index("gas_main_pressure")
_VALVE = ROLES.index("cutoff_valve")
_NQ = len(QUANTITIES)

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


def evaluate_units(
    model: EngineModel, s: dict[str, Arr], u: dict[str, Arr], units: Arr, now: float
) -> UnitVerdict:
    """Colours of `units` (unique unit indices) at time `now`."""
    nd = units.size
    mem = members_of(model, units)
    sensor, seg = mem.sensor, mem.seg
    st = STATE_LUT[model.banded[sensor], s["ucode"][sensor].astype(np.intp) + CODE_OFFSET]
    usince = s["usince"][sensor]
    group, role = model.group[sensor], model.role[sensor]
    faulty = _FAULTY[st]
    colour = np.zeros(nd, np.int8)
    rule = np.full(nd, -1, np.int16)
    due = np.full(nd, np.inf)
    fire = np.full(nd, -np.inf)  # event time of the deciding rule when it is time-based
    present = np.zeros(len(AlarmState), bool)
    present[st] = True  # rules on states nobody is in cannot fire: skip them (most calls see few states)
    bypass_any = bool(u["bypassed"][units].any())
    rule_set = model.unit_rule_set[units]
    for set_index in np.unique(rule_set):
        in_set = rule_set == set_index
        member_in = in_set[seg]
        for cr in model.rules_of_set(int(set_index)):
            r = cr.rule
            fired: Arr
            when: Arr | None = None
            value = int(r.colour)
            if r.kind == "count":
                if not (cr.state_ok & present).any():
                    continue
                m = member_in & cr.state_ok[st] & (cr.group_ok[group] | (cr.any_group_for_faults & faulty))
                if r.min_duration_s > 0:
                    ripe = usince + r.min_duration_s
                    old_enough = ripe <= now
                    due = np.minimum(due, _seg_min(nd, seg, ripe, m & ~old_enough))
                    m = m & old_enough
                    when = _seg_min(nd, seg, ripe, m)
                fired = np.bincount(seg[m], minlength=nd) >= r.min_sensors
                if r.min_quantities > 1:
                    pairs = np.unique(seg[m].astype(np.int64) * _NQ + model.quantity[sensor[m]])
                    fired &= np.bincount(pairs // _NQ, minlength=nd) >= r.min_quantities
            elif r.kind == "kiln_cutoff":
                if not (_LOW_ALARM & present).any():
                    continue
                low = member_in & (role == _GAS_MAIN) & _LOW_ALARM[st]
                alarm_since = _seg_min(nd, seg, usince, low)
                closed = member_in & (role == _VALVE) & (st == AlarmState.L1_HIGH)
                confirm_at = np.minimum(_seg_min(nd, seg, usince, closed), u["valve_closed_at"][units])
                deadline = alarm_since + r.confirm_within_s
                open_alarm = np.isfinite(alarm_since) & ~(confirm_at <= deadline)
                fired = open_alarm & (deadline <= now)
                due = np.minimum(due, np.where(open_alarm & (deadline > now), deadline, np.inf))
                when = deadline
            elif r.kind == "interlock_bypass":
                if not bypass_any:
                    continue
                alarm = member_in & _ALARM[st] & (role != _VALVE)
                fired = (u["bypassed"][units] != 0) & (np.bincount(seg[alarm], minlength=nd) > 0)
            else:  # tailings_rollup, GB 50863 §5.5.4
                value_by_unit = _tailings(model, s, sensor, seg, member_in, nd)
                fired = value_by_unit > 0
                value = 0
            fired &= in_set
            new_value = value_by_unit if r.kind == "tailings_rollup" else np.full(nd, value, np.int8)
            new_value = np.minimum(new_value, int(r.colour)).astype(np.int8)
            better = fired & (new_value > colour)
            colour = np.where(better, new_value, colour)
            rule = np.where(better, np.int16(cr.index), rule)
            if when is not None:
                fire = np.where(better, when, fire)
            elif np.count_nonzero(better):
                fire = np.where(better, -np.inf, fire)
    latest = np.full(nd, -np.inf)
    np.maximum.at(latest, seg, usince)
    at = np.maximum(np.maximum(latest, u["event_at"][units]), fire)
    held = u["maintenance"][units] != 0
    colour = np.where(held, np.int8(Colour.NORMAL), colour)
    rule = np.where(held, np.int16(MAINTENANCE_RULE), rule)
    due = np.where(held, np.inf, due)
    return UnitVerdict(colour.astype(np.int8), rule.astype(np.int16), due, at)


def _tailings(model: EngineModel, s: dict[str, Arr], sensor: Arr, seg: Arr, member_in: Arr, nd: int) -> Arr:
    """Point colour = band level; item colour by the 4-blue/3-yellow/2-orange roll-up; pond = highest."""
    ucode = s["ucode"][sensor].astype(np.int64)
    point = np.where(np.abs(ucode) <= 4, np.abs(ucode), 0)
    pts = member_in & (model.banded[sensor] != 0) & (point > 0)
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
