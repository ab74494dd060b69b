"""Sensor alarm states over arrays: hysteresis, on/off delays, fault, stale and chattering.

Semantics (the reference engine in `processors/engine_reference/` does the same one reading at a time):
- A reading first *advances* its sensor to the reading's time, then is *applied*.
- Advance to time t, in this order: chattering ends if no alarm-state change for 60 s; a candidate
  level whose delay has elapsed is committed at `candidate start + delay` (the value is held between
  samples); the sensor turns stale at `last reading + stale_after`; chattering may end again.
- Apply: out-of-range, NaN or bad-quality -> FAULT at once. Otherwise the level is the number of set
  points crossed (high: value >= set point, low: value <= set point); a level already held stays until
  the value is past its set point by the deadband. A new level becomes the candidate; it is committed
  when it has lasted the on-delay (more severe) or off-delay (less severe).
- An alarm-state change is emitted unless the sensor is chattering: the 3rd on/off change (into or out
  of NORMAL; going stale and back is communication, not the process, and does not count) within 60 s
  is emitted with rule "chattering", later changes are held back until no on/off
  change happened for 60 s; then the settled state is emitted with rule "chattering_cleared".
Batches are processed in rounds (the k-th reading of each sensor in round k), so a sensor with several
readings in one batch is still processed in order, and every round is plain array code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from processors.engine.model import (
    CHATTER_WINDOW_S,
    CODE_OFFSET,
    FAULT,
    KEEP_COLUMN,
    STALE,
    STATE_LUT,
    EngineModel,
    keep_bands,
)
from riskwatch.levels import AlarmState

# Reasons recorded with a sensor transition (Cause.rule).
_STALE = int(AlarmState.STALE)
SET_POINT, FAULT_REASON, STALE_REASON, GATEWAY_OFFLINE, CHATTERING, CHATTERING_CLEARED = range(6)
REASON_NAMES = ("set_point", "fault", "stale", "gateway_offline", "chattering", "chattering_cleared")

Arr = npt.NDArray[Any]
Col = Arr | list[Any]


@dataclass
class Emits:
    """Alarm transitions found so far (one tuple of columns per call, concatenated at the end) and the
    units touched."""

    # (sensor, old state, new state, code, at, reason, value, quality) columns of each `add` (arrays) or
    # `add_one` (one-item lists), in the order they were found
    alarms: list[tuple[Col, Col, Col, Col, Col, Col, Col, Col]] = field(default_factory=list)
    units: list[Arr] = field(default_factory=list)
    chatter: list[Arr] = field(default_factory=list)  # sensors that started chattering (to be watched)

    def add(
        self, sensor: Arr, old: Arr, new: Arr, code: Arr, at: Arr, reason: Arr, value: Arr, q: Arr
    ) -> None:
        if sensor.size:
            self.alarms.append((sensor, old, new, code, at, reason, value, q))

    # Several sensors taken one by one (the *_one functions) find their transitions sensor by sensor;
    # the array path finds them step by step (every sensor's chattering end, then every commit, ...).
    # `phase` names the step; between `begin_one_by_one` and `end_one_by_one` rows are tagged with it
    # and then put in the array path's order (by step, then sensor), so both give the same list.
    phase: int = 0
    tags: list[int] | None = None

    def add_one(
        self, sensor: int, old: int, new: int, code: int, at: float, reason: int, value: float, q: int
    ) -> None:
        self.alarms.append(([sensor], [old], [new], [code], [at], [reason], [value], [q]))
        if self.tags is not None:
            self.tags.append(self.phase)

    def begin_one_by_one(self) -> int:
        self.tags = []
        return len(self.alarms)

    def end_one_by_one(self, start: int) -> None:
        tags, self.tags = self.tags, None
        assert tags is not None and len(tags) == len(self.alarms) - start
        order = sorted(range(len(tags)), key=tags.__getitem__)  # stable: sensor order within a step
        if order != list(range(len(tags))):
            rows = self.alarms[start:]
            self.alarms[start:] = [rows[k] for k in order]


def _delay_kind() -> npt.NDArray[np.intp]:
    """Column of EngineModel.delays (0 on-delay, 1 off-delay, 2 none) by [code, candidate] + CODE_OFFSET:
    on-delay when the candidate is more severe (or on the other side), off-delay when less severe, none
    leaving FAULT or STALE for normal and going FAULT."""
    codes = np.arange(-CODE_OFFSET, STALE + 1)
    code, cand = (a.ravel() for a in np.meshgrid(codes, codes, indexing="ij"))
    kind = np.where(cand == 0, 1, 0)
    faulty = (code == FAULT) | (code == STALE)
    calmer = (
        ~faulty & (cand != 0) & (code != 0) & (np.sign(cand) == np.sign(code)) & (np.abs(cand) < np.abs(code))
    )
    kind = np.where(calmer, 1, kind)
    kind = np.where((faulty & (cand == 0)) | (cand == FAULT), 2, kind)
    return kind.reshape(codes.size, codes.size).astype(np.intp)


DELAY_KIND = _delay_kind()
# [old, new] AlarmState: an on/off change of the process alarm (into or out of NORMAL), stale excluded
_ONOFF = np.array(
    [[(a == 0) != (b == 0) and _STALE not in (a, b) for b in AlarmState] for a in AlarmState], bool
)


def delay_for(model: EngineModel, idx: Arr, code: Arr, cand: Arr) -> Arr:
    """The delay before `cand` replaces `code` for sensors `idx` (see DELAY_KIND)."""
    delay: Arr = model.delays[idx, DELAY_KIND[code + CODE_OFFSET, cand + CODE_OFFSET]]
    return delay


def change(
    model: EngineModel,
    s: dict[str, Arr],
    idx: Arr,
    new: Arr,
    at: Arr,
    reason: Arr,
    em: Emits,
    q: Arr | None = None,
) -> None:
    """Set the debounced code of sensors `idx` (all with new != code) and emit alarm-state changes."""
    if idx.size == 0:
        return
    code = s["code"]
    banded = model.banded[idx]
    old_state = STATE_LUT[banded, code[idx] + CODE_OFFSET]
    new_state = STATE_LUT[banded, new + CODE_OFFSET]
    code[idx] = new
    s["cand"][idx] = new
    s["since"][idx] = at
    s["keep_lo"][idx], s["keep_hi"][idx] = keep_bands(model, idx, new)
    chat_before = s["chat"][idx] != 0
    label = old_state != new_state
    # Chattering counts on/off changes of the process alarm (into or out of NORMAL), not escalations such
    # as L1 -> L2, and not communication loss: a gateway dropping off and coming back turns its sensors
    # stale and normal again, which is not the process flapping (ISA-18.2 chattering is about alarms), and
    # counting it would hold back the next real alarm change of every sensor behind that gateway.
    onoff = _ONOFF[old_state, new_state]
    t1, t2 = s["t1"], s["t2"]
    starts = onoff & ~chat_before & (at - t2[idx] < CHATTER_WINDOW_S)
    lidx = idx[onoff]
    t2[lidx] = t1[lidx]
    t1[lidx] = at[onoff]
    if np.count_nonzero(starts):
        s["chat"][idx[starts]] = 1
        em.chatter.append(idx[starts])
    emit = label & ~chat_before
    if np.count_nonzero(emit):
        e = idx[emit]
        em.add(
            e,
            old_state[emit],
            new_state[emit],
            new[emit],
            at[emit],
            np.where(starts, CHATTERING, reason)[emit],
            s["last_value"][e],
            np.zeros(e.size, np.uint8) if q is None else q[emit],
        )
    follow = ~chat_before
    fidx = idx[follow]
    s["ucode"][fidx] = new[follow]
    s["usince"][fidx] = at[follow]
    em.units.append(model.sensor_unit[fidx])


def end_chatter(model: EngineModel, s: dict[str, Arr], idx: Arr, at: Arr, em: Emits) -> None:
    """Chattering is over: report the state the sensor settled in, if downstream has not seen it."""
    if idx.size == 0:
        return
    s["chat"][idx] = 0
    code, ucode = s["code"][idx], s["ucode"][idx]
    moved = code != ucode
    if not np.count_nonzero(moved):
        return
    m, at = idx[moved], at[moved]
    banded = model.banded[m]
    old_state = STATE_LUT[banded, ucode[moved].astype(np.intp) + CODE_OFFSET]
    new_state = STATE_LUT[banded, code[moved].astype(np.intp) + CODE_OFFSET]
    s["ucode"][m] = code[moved]
    s["usince"][m] = at
    em.units.append(model.sensor_unit[m])
    label = old_state != new_state
    em.add(
        m[label],
        old_state[label],
        new_state[label],
        code[moved][label],
        at[label],
        np.full(int(label.sum()), CHATTERING_CLEARED),
        s["last_value"][m[label]],
        np.zeros(int(label.sum()), np.uint8),
    )


def timer_due(model: EngineModel, s: dict[str, Arr], idx: Arr) -> Arr:
    """Per sensor: the earliest delayed commit or chattering end (+inf: none); staleness is tracked apart."""
    code, cand = s["code"][idx], s["cand"][idx]
    due = _chatter_end_time(s, idx)
    pending = cand != code
    if np.count_nonzero(pending):
        p = idx[pending]
        commit = s["cand_since"][p] + delay_for(model, p, code[pending], cand[pending])
        due[pending] = np.minimum(due[pending], commit)
    return due


def _chatter_end_time(s: dict[str, Arr], idx: Arr) -> Arr:
    return np.where(s["chat"][idx] != 0, s["t1"][idx] + CHATTER_WINDOW_S, np.inf)


def advance(model: EngineModel, s: dict[str, Arr], idx: Arr, t: Arr, em: Emits) -> None:
    """Bring sensors `idx` (unique) forward to times `t`: chatter end, delayed commit, stale."""
    code, cand = s["code"][idx], s["cand"][idx]
    pending = cand != code
    c = np.full(idx.size, np.inf)
    if np.count_nonzero(pending):
        c[pending] = s["cand_since"][idx[pending]] + delay_for(
            model, idx[pending], code[pending], cand[pending]
        )
    st = np.where(code != STALE, s["last_ts"][idx] + model.stale_after[idx], np.inf)
    chatty = np.count_nonzero(s["chat"][idx]) > 0
    if chatty:
        ch = _chatter_end_time(s, idx)
        first = (ch <= t) & (ch <= c) & (ch <= st)
        if np.count_nonzero(first):
            end_chatter(model, s, idx[first], ch[first], em)
    commit = (c <= t) & (c <= st)
    if np.count_nonzero(commit):
        ci = idx[commit]
        new = cand[commit]
        change(model, s, ci, new, c[commit], np.where(new == FAULT, FAULT_REASON, SET_POINT), em)
        # a stale sensor that just recovered can turn stale again
        st = np.where(s["code"][idx] != STALE, s["last_ts"][idx] + model.stale_after[idx], np.inf)
        chatty = chatty or np.count_nonzero(s["chat"][idx]) > 0
    if chatty:
        ch = _chatter_end_time(s, idx)
        mid = (ch <= t) & (ch <= st)
        if np.count_nonzero(mid):
            end_chatter(model, s, idx[mid], ch[mid], em)
    stale = st <= t
    if np.count_nonzero(stale):
        si = idx[stale]
        change(model, s, si, np.full(si.size, STALE, np.int8), st[stale], np.full(si.size, STALE_REASON), em)
        chatty = chatty or np.count_nonzero(s["chat"][idx]) > 0
    if chatty:
        ch = _chatter_end_time(s, idx)
        last = ch <= t
        if np.count_nonzero(last):
            end_chatter(model, s, idx[last], ch[last], em)


def target_codes(model: EngineModel, s: dict[str, Arr], idx: Arr, v: Arr, q: Arr, code: Arr) -> Arr:
    """The level each reading asks for (before delays), given the sensor's current debounced code.

    Returns `code` itself (not a copy) when every reading keeps its sensor's code."""
    # Fast path: a good reading inside its sensor's keep band leaves the code as it is; nearly all do.
    # (`take` gathers several times faster than fancy indexing; NaN is never inside a band.)
    keep = v > s["keep_lo"].take(idx)
    keep &= v < s["keep_hi"].take(idx)
    keep &= q == 0
    if keep.all():
        return code
    target = code.copy()
    rest = np.flatnonzero(~keep)
    if rest.size <= _FEW:  # a handful of readings: plain Python costs less than numpy's per-call overhead
        for r in rest.tolist():
            target[r] = _target_code(model, int(idx[r]), float(v[r]), int(q[r]), int(code[r]))
        return target
    i, vr, cr = idx[rest], v[rest], code[rest]
    k = rest.size
    # High and low sides at once: columns 0-3 are v >= high set points, 4-7 are -v >= -(low set points).
    x = vr[:, None] * _SIDES
    up = np.count_nonzero((x >= model.bounds[i]).reshape(k, 2, 4), axis=2)
    hold = np.count_nonzero((x >= model.holds[i]).reshape(k, 2, 4), axis=2)
    current = np.maximum(np.where(np.abs(cr) <= 4, cr, 0)[:, None] * _SIGNS, 0)
    level = np.maximum(up, np.minimum(current, hold))
    sub = np.where(level[:, 0] > 0, level[:, 0], -level[:, 1]).astype(np.int8)
    fault = (q[rest] != 0) | ~((vr >= model.range_low[i]) & (vr <= model.range_high[i]))
    sub[fault] = FAULT
    target[rest] = sub
    return target


_SIDES = np.array([1.0] * 4 + [-1.0] * 4)
_SIGNS = np.array([1, -1], np.int64)
_FEW = 4  # up to this many readings out of their keep band, `target_codes` decides them one by one


def _target_code(model: EngineModel, i: int, v: float, q: int, code: int) -> int:
    """`target_codes` for one reading, in plain Python (the same arithmetic, value for value)."""
    if q != 0 or not (v >= model.range_low[i] and v <= model.range_high[i]):  # NaN fails both
        return FAULT
    bounds: list[float] = model.bounds[i].tolist()
    holds: list[float] = model.holds[i].tolist()
    levels: list[int] = []
    for side, x in ((0, v), (1, v * -1.0)):
        up = sum(x >= b for b in bounds[4 * side : 4 * side + 4])
        hold = sum(x >= h for h in holds[4 * side : 4 * side + 4])
        current = max((code if -4 <= code <= 4 else 0) * (1, -1)[side], 0)
        levels.append(max(up, min(current, hold)))
    return levels[0] if levels[0] > 0 else -levels[1]


def apply_round(
    model: EngineModel, s: dict[str, Arr], idx: Arr, v: Arr, ts: Arr, q: Arr, em: Emits, stale_at: Arr
) -> Arr:
    """Process one reading per sensor of `idx` (unique); returns the sensors left pending or chattering.

    `stale_at`: each sensor's last_ts + stale_after before this reading (the caller has both at hand)."""
    cand, codes = s["cand"], s["code"]
    code = codes.take(idx)
    # a sensor needs advancing first if it has a delay running, is chattering or is due to turn stale
    need = ts >= stale_at
    need |= cand.take(idx) != code
    need |= s["chat"].take(idx) != 0
    n_need = np.count_nonzero(need)
    if n_need:
        advance(model, s, idx[need], ts[need], em)
        code = codes.take(idx)
    s["last_ts"][idx] = ts
    s["seen"][idx] = 1
    s["last_value"][idx] = v
    target = target_codes(model, s, idx, v, q, code)
    if target is code and not n_need:  # the common case: nothing moves and nothing was busy
        return _NONE
    moving = target != code
    busy: list[Arr] = []
    if n_need:  # only a sensor that was busy can hold a candidate this reading withdraws
        busy.append(idx[need])
        reset = need & ~moving
        cand[idx[reset]] = code[reset]
    if np.count_nonzero(moving):
        sub, tgt, tsub = idx[moving], target[moving], ts[moving]
        busy.append(sub)
        fresh = tgt != cand[sub]
        cand[sub[fresh]] = tgt[fresh]
        s["cand_since"][sub[fresh]] = tsub[fresh]
        due = s["cand_since"][sub] + delay_for(model, sub, code[moving], tgt)
        commit = due <= tsub
        if np.count_nonzero(commit):
            new = tgt[commit]
            reason = np.where(new == FAULT, FAULT_REASON, SET_POINT)
            change(model, s, sub[commit], new, due[commit], reason, em, q=q[moving][commit])
    if not busy:
        return _NONE
    w = np.concatenate(busy) if len(busy) > 1 else busy[0]
    still: Arr = w[(cand[w] != s["code"][w]) | (s["chat"][w] != 0)]
    return still


_NONE = np.zeros(0, np.intp)


# One reading, in scalars: the usual busy batch has a single reading that moves its sensor, and the
# array path above costs ~100 numpy calls on one-item arrays for it. The functions below do what
# apply_round (advance, change, end_chatter, timer_due) does for one sensor, step for step.
_STATE_OF: list[list[int]] = STATE_LUT.tolist()
_DELAY_OF: list[list[int]] = DELAY_KIND.tolist()
_ONOFF_OF: list[list[bool]] = _ONOFF.tolist()
_KEEP_OF: list[int] = KEEP_COLUMN.tolist()


def _delay_one(model: EngineModel, i: int, code: int, cand: int) -> float:
    delay: float = model.delays.item(i, _DELAY_OF[code + CODE_OFFSET][cand + CODE_OFFSET])
    return delay


def change_one(
    model: EngineModel, s: dict[str, Arr], i: int, new: int, at: float, reason: int, em: Emits, q: int = 0
) -> None:
    """`change` for one sensor (new != its code)."""
    banded = model.banded.item(i)
    old_state = _STATE_OF[banded][s["code"].item(i) + CODE_OFFSET]
    new_state = _STATE_OF[banded][new + CODE_OFFSET]
    s["code"][i] = new
    s["cand"][i] = new
    s["since"][i] = at
    column = _KEEP_OF[new + CODE_OFFSET]
    s["keep_lo"][i] = model.keep_lo.item(i, column)
    s["keep_hi"][i] = model.keep_hi.item(i, column)
    chat_before = s["chat"].item(i) != 0
    starts = False
    if _ONOFF_OF[old_state][new_state]:
        t1, t2 = s["t1"], s["t2"]
        starts = not chat_before and at - t2.item(i) < CHATTER_WINDOW_S
        t2[i] = t1.item(i)
        t1[i] = at
    if starts:
        s["chat"][i] = 1
        em.chatter.append(np.array([i], np.intp))
    if chat_before:
        return
    if old_state != new_state:
        em.add_one(
            i, old_state, new_state, new, at, CHATTERING if starts else reason, s["last_value"].item(i), q
        )
    s["ucode"][i] = new
    s["usince"][i] = at
    em.units.append(model.sensor_unit[i : i + 1])


def end_chatter_one(model: EngineModel, s: dict[str, Arr], i: int, at: float, em: Emits) -> None:
    """`end_chatter` for one sensor."""
    s["chat"][i] = 0
    code, ucode = s["code"].item(i), s["ucode"].item(i)
    if code == ucode:
        return
    banded = model.banded.item(i)
    old_state = _STATE_OF[banded][ucode + CODE_OFFSET]
    new_state = _STATE_OF[banded][code + CODE_OFFSET]
    s["ucode"][i] = code
    s["usince"][i] = at
    em.units.append(model.sensor_unit[i : i + 1])
    if old_state != new_state:
        em.add_one(i, old_state, new_state, code, at, CHATTERING_CLEARED, s["last_value"].item(i), 0)


def _chatter_end_one(s: dict[str, Arr], i: int) -> float:
    return s["t1"].item(i) + CHATTER_WINDOW_S if s["chat"].item(i) != 0 else np.inf


def _stale_one(model: EngineModel, s: dict[str, Arr], i: int) -> float:
    if s["code"].item(i) == STALE:
        return np.inf
    at: float = s["last_ts"].item(i) + model.stale_after.item(i)
    return at


def timer_due_one(model: EngineModel, s: dict[str, Arr], i: int) -> float:
    """`timer_due` for one sensor."""
    due = _chatter_end_one(s, i)
    code, cand = s["code"].item(i), s["cand"].item(i)
    if cand != code:
        due = min(due, s["cand_since"].item(i) + _delay_one(model, i, code, cand))
    return due


def advance_one(model: EngineModel, s: dict[str, Arr], i: int, t: float, em: Emits) -> None:
    """`advance` for one sensor: chatter end, delayed commit, stale, in the same order (`em.phase` 0-4)."""
    code, cand = s["code"].item(i), s["cand"].item(i)
    c = s["cand_since"].item(i) + _delay_one(model, i, code, cand) if cand != code else np.inf
    st = _stale_one(model, s, i)
    chatty = s["chat"].item(i) != 0
    if chatty:
        ch = _chatter_end_one(s, i)
        if ch <= t and ch <= c and ch <= st:
            em.phase = 0
            end_chatter_one(model, s, i, ch, em)
    if c <= t and c <= st:
        em.phase = 1
        change_one(model, s, i, cand, c, FAULT_REASON if cand == FAULT else SET_POINT, em)
        st = _stale_one(model, s, i)  # a stale sensor that just recovered can turn stale again
        chatty = chatty or s["chat"].item(i) != 0
    if chatty:
        ch = _chatter_end_one(s, i)
        if ch <= t and ch <= st:
            em.phase = 2
            end_chatter_one(model, s, i, ch, em)
    if st <= t:
        em.phase = 3
        change_one(model, s, i, STALE, st, STALE_REASON, em)
        chatty = chatty or s["chat"].item(i) != 0
    if chatty:
        ch = _chatter_end_one(s, i)
        if ch <= t:
            em.phase = 4
            end_chatter_one(model, s, i, ch, em)


def apply_one(
    model: EngineModel, s: dict[str, Arr], i: int, v: float, ts: float, q: int, em: Emits, stale_at: float
) -> bool:
    """`apply_round` for one reading; returns whether its sensor is left pending or chattering."""
    codes, cand = s["code"], s["cand"]
    code = codes.item(i)
    need = ts >= stale_at or cand.item(i) != code or s["chat"].item(i) != 0
    if need:
        advance_one(model, s, i, ts, em)
        code = codes.item(i)
    s["last_ts"][i] = ts
    s["seen"][i] = 1
    s["last_value"][i] = v
    if q == 0 and s["keep_lo"].item(i) < v < s["keep_hi"].item(i):
        target = code
    else:
        target = _target_code(model, i, v, q, code)
    if target == code:
        if not need:
            return False
        cand[i] = code  # the reading withdraws a candidate the sensor held
    else:
        if target != cand.item(i):
            cand[i] = target
            s["cand_since"][i] = ts
        due = s["cand_since"].item(i) + _delay_one(model, i, code, target)
        if due <= ts:
            em.phase = 5  # after every sensor's advance (apply_round)
            change_one(model, s, i, target, due, FAULT_REASON if target == FAULT else SET_POINT, em, q)
    return bool(cand.item(i) != codes.item(i) or s["chat"].item(i) != 0)
