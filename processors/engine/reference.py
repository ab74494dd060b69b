"""The plain per-reading reference engine: one Python object per sensor, one reading at a time.

It exists to be obviously right, not fast: the property test checks that the vectorised engine gives
exactly the same transitions on random streams, and `riskwatch bench engine` measures the speed-up
against it. It reads the registry records directly (not the compiled arrays) and re-implements the
semantics documented in `sensors.py` and `rules.py` in scalar code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from processors.engine.causes import rule_name
from processors.engine.events import Event
from processors.engine.model import EngineModel
from processors.engine.reference_rollup import RollUp, state_of
from riskwatch.levels import AlarmState
from riskwatch.registry import Registry, Sensor
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id

if TYPE_CHECKING:
    from processors.engine.state import EngineState

FAULT, STALE = 8, 9
WINDOW = 60.0
MAX_ITEMS = 20
_GAS = ("flammable_gas", "toxic_gas")
_STATES = {"l1": ("l1_high", "l1_low"), "l2": ("l2_high", "l2_low"), "fault": ("fault",), "stale": ("stale",)}


def thresholds(sensor: Sensor) -> tuple[list[float | None], list[float | None]]:
    if sensor.bands is not None:
        none: list[float | None] = [None] * 4
        return (list(sensor.bands), none) if sensor.band_side == "high" else (none, list(sensor.bands))
    return [sensor.l1_high, sensor.l2_high, None, None], [sensor.l1_low, sensor.l2_low, None, None]


@dataclass
class RefSensor:
    spec: Sensor
    high: list[float | None]
    low: list[float | None]
    code: int = 0
    cand: int = 0
    cand_since: float = 0.0
    since: float = -math.inf  # never changed
    last_ts: float = math.nan  # stale timer start: newest taken reading, or the engine's start if none
    seen: bool = False  # a reading was taken: older ones are out of order from now on
    last_value: float = math.nan
    ucode: int = 0
    usince: float = -math.inf  # never changed: no report time for the unit's `at`
    chat: bool = False
    t1: float = -math.inf
    t2: float = -math.inf

    def setpoint(self, code: int) -> float | None:
        if 1 <= code <= 4:
            return next(t for t in self.high[code - 1 :] if t is not None)
        if -4 <= code <= -1:
            return next(t for t in self.low[-code - 1 :] if t is not None)
        return None


class ReferenceEngine(RollUp):
    """Same inputs and outputs as `evaluate`, computed reading by reading."""

    def __init__(
        self, registry: Registry, now: float | None = None, all_units: bool = True, timers: str = "all"
    ) -> None:
        """`all_units`/`timers="all"` re-check every unit and sensor on each call (the property test);
        `all_units=False, timers="tracked"` re-check only what changed or is due (the benchmark)."""
        self.registry = registry
        self.sensors = [RefSensor(s, *thresholds(s)) for s in registry.sensor_list]
        for rs in self.sensors:
            rs.last_ts = math.nan if now is None else now
        self.all_units = all_units
        self.tracked = timers == "tracked"
        self.pending: set[int] = set()  # sensors with a delay running or chattering (tracked timers)
        self.stale_due = -math.inf
        self.members: dict[str, list[RefSensor]] = {u: [] for u in registry.units}
        for rs in self.sensors:
            self.members[rs.spec.unit].append(rs)
        self.rule_index: dict[int, int] = {}
        flat = 0
        for rules in registry.rule_sets.values():
            for rule in rules:
                self.rule_index[id(rule)] = flat
                flat += 1
        self.unit_colour = dict.fromkeys(registry.units, 0)
        self.unit_at = dict.fromkeys(registry.units, -math.inf)
        self.unit_rule = dict.fromkeys(registry.units, "normal")
        self.unit_due = dict.fromkeys(registry.units, math.inf)
        self.flags = {
            u: {"maintenance": 0, "bypassed": 0, "valve": math.inf, "event_at": -math.inf}
            for u in registry.units
        }
        self.site_colour = dict.fromkeys(registry.sites, 0)
        self.site_at = dict.fromkeys(registry.sites, -math.inf)
        self.region_colour = dict.fromkeys(registry.regions, 0)
        self.out: list[Transition] = []
        self.dirty: set[str] = set()
        self.out_of_order = 0

    # ----- sensors
    def delay(self, rs: RefSensor, code: int, cand: int) -> float:
        if cand == FAULT or (code in (FAULT, STALE) and cand == 0):
            return 0.0
        if code in (FAULT, STALE) or code == 0:
            return rs.spec.on_delay_s if cand != 0 else rs.spec.off_delay_s
        if cand == 0:
            return rs.spec.off_delay_s
        if (cand > 0) == (code > 0) and abs(cand) < abs(code):
            return rs.spec.off_delay_s
        return rs.spec.on_delay_s

    def change(self, rs: RefSensor, new: int, at: float, reason: str, quality: int = 0) -> None:
        old_state, new_state = state_of(rs.spec, rs.code), state_of(rs.spec, new)
        rs.code = rs.cand = new
        rs.since = at
        was_chattering = rs.chat
        starts = False
        stale = AlarmState.STALE in (old_state, new_state)  # communication loss is not chattering
        if (old_state == AlarmState.NORMAL) != (new_state == AlarmState.NORMAL) and not stale:
            starts = not rs.chat and at - rs.t2 < WINDOW
            rs.t2, rs.t1 = rs.t1, at
            rs.chat = rs.chat or starts
        if old_state != new_state and not was_chattering:
            self.sensor_out(rs, old_state, new_state, new, at, "chattering" if starts else reason, quality)
        if not was_chattering:
            rs.ucode, rs.usince = new, at
            self.dirty.add(rs.spec.unit)

    def end_chatter(self, rs: RefSensor, at: float) -> None:
        rs.chat = False
        if rs.code == rs.ucode:
            return
        old_state, new_state = state_of(rs.spec, rs.ucode), state_of(rs.spec, rs.code)
        rs.ucode, rs.usince = rs.code, at
        self.dirty.add(rs.spec.unit)
        if old_state != new_state:
            self.sensor_out(rs, old_state, new_state, rs.code, at, "chattering_cleared", 0)

    def advance(self, rs: RefSensor, t: float) -> None:
        def chatter_end() -> float:
            return rs.t1 + WINDOW if rs.chat else math.inf

        c = rs.cand_since + self.delay(rs, rs.code, rs.cand) if rs.cand != rs.code else math.inf
        st = rs.last_ts + rs.spec.stale_after_s if rs.code != STALE else math.inf
        cand = rs.cand
        ch = chatter_end()
        if ch <= t and ch <= c and ch <= st:
            self.end_chatter(rs, ch)
        if c <= t and c <= st:
            self.change(rs, cand, c, "fault" if cand == FAULT else "set_point")
            st = rs.last_ts + rs.spec.stale_after_s if rs.code != STALE else math.inf
        ch = chatter_end()
        if ch <= t and ch <= st:
            self.end_chatter(rs, ch)
        if st <= t:
            self.change(rs, STALE, st, "stale")
        ch = chatter_end()
        if ch <= t:
            self.end_chatter(rs, ch)

    def level(self, rs: RefSensor, v: float) -> int:
        current = rs.code if abs(rs.code) <= 4 else 0
        db = rs.spec.deadband

        def side(points: list[float | None], held: int, high: bool) -> int:
            up = hold = 0
            for k, p in enumerate(points, 1):
                if p is None:
                    continue
                if (v >= p) if high else (v <= p):
                    up = k
                if (v >= p - db) if high else (v <= p + db):
                    hold = k
            return max(up, min(held, hold))

        hi = side(rs.high, max(current, 0), True)
        lo = side(rs.low, max(-current, 0), False)
        return hi if hi > 0 else -lo

    def reading(self, index: int, v: float, ts: float, q: int) -> None:
        rs = self.sensors[index]
        if rs.seen and ts < rs.last_ts:
            self.out_of_order += 1
            return
        self.advance(rs, ts)
        rs.last_ts, rs.last_value, rs.seen = ts, v, True
        fault = q != 0 or not (rs.spec.range_low <= v <= rs.spec.range_high)
        target = FAULT if fault else self.level(rs, v)
        if target == rs.code:
            rs.cand = rs.code
            return
        if target != rs.cand:
            rs.cand, rs.cand_since = target, ts
        due = rs.cand_since + self.delay(rs, rs.code, target)
        if due <= ts:
            self.change(rs, target, due, "fault" if target == FAULT else "set_point", q)

    def sensor_out(
        self, rs: RefSensor, old: AlarmState, new: AlarmState, code: int, at: float, reason: str, q: int
    ) -> None:
        s = rs.spec
        text = ""
        if reason == "fault":
            if q:
                text = f"bad quality flag {q} from the gateway"
            elif math.isnan(rs.last_value):
                text = "value is not a number"
            else:
                text = f"value {rs.last_value:g} outside the sensor range {s.range_low:g}..{s.range_high:g}"
        value = rs.last_value if math.isfinite(rs.last_value) else None
        item = CauseItem(s.id, s.quantity, new.label, value, rs.setpoint(code), s.uom, at)
        self.out.append(
            Transition(
                transition_id("alarm", "sensor", s.id, new.label, at),
                "alarm",
                "sensor",
                s.id,
                old.label,
                new.label,
                at,
                Cause(reason, (item,), text),
                site=s.site,
                region=self.registry.sites[s.site].region,
                unit=s.unit,
            )
        )

    # ----- one call
    def evaluate(
        self, batch: Readings, now: float, events: list[Event] | tuple[Event, ...] = ()
    ) -> list[Transition]:
        self.out, self.dirty = [], set()
        for rs in self.sensors:
            if math.isnan(rs.last_ts):
                rs.last_ts = now
        for ev in events:
            self.event(ev)
        n = len(self.sensors)
        for s, v, ts, q in zip(
            batch.sensor.tolist(),
            batch.value.tolist(),
            batch.ts.tolist(),
            batch.quality.tolist(),
            strict=True,
        ):
            if 0 <= s < n and math.isfinite(ts):
                self.reading(s, v, ts, q)
                rs = self.sensors[s]
                if self.tracked and (rs.cand != rs.code or rs.chat):
                    self.pending.add(s)
        if self.tracked:
            self.tracked_timers(now)
        else:
            for rs in self.sensors:
                self.advance(rs, now)
        self.roll_up(now)
        return self.out

    def adopt(self, model: EngineModel, state: EngineState) -> None:
        """Take over a vectorised engine's state (the benchmark skips the reference's slow warm-up)."""
        sa, ua = state.sensor, state.unit
        fields = (
            "code",
            "cand",
            "cand_since",
            "since",
            "last_ts",
            "last_value",
            "ucode",
            "usince",
            "t1",
            "t2",
        )
        columns = {name: sa[name].tolist() for name in fields}
        chat, seen = sa["chat"].tolist(), sa["seen"].tolist()
        for i, rs in enumerate(self.sensors):
            for name in fields:
                setattr(rs, name, columns[name][i])
            rs.chat, rs.seen = bool(chat[i]), bool(seen[i])
        for u, unit in enumerate(model.unit_ids):
            self.unit_colour[unit] = int(ua["colour"][u])
            self.unit_at[unit] = float(ua["colour_at"][u])
            self.unit_rule[unit] = rule_name(model, int(ua["rule"][u]))
            self.unit_due[unit] = float(ua["due"][u])
            self.flags[unit] = {
                "maintenance": int(ua["maintenance"][u]),
                "bypassed": int(ua["bypassed"][u]),
                "valve": float(ua["valve_closed_at"][u]),
                "event_at": float(ua["event_at"][u]),
            }
        for k, site in enumerate(model.site_ids):
            self.site_colour[site] = int(state.site["colour"][k])
            self.site_at[site] = float(state.site["colour_at"][k])
        for k, region in enumerate(model.region_ids):
            self.region_colour[region] = int(state.region["colour"][k])
        self.pending = {i for i, rs in enumerate(self.sensors) if rs.cand != rs.code or rs.chat}
        live = [rs.last_ts + rs.spec.stale_after_s for rs in self.sensors if rs.code != STALE]
        self.stale_due = min(live, default=math.inf)

    def tracked_timers(self, now: float) -> None:
        for i in sorted(self.pending):
            self.advance(self.sensors[i], now)
        self.pending = {
            i for i in self.pending if self.sensors[i].cand != self.sensors[i].code or self.sensors[i].chat
        }
        if now >= self.stale_due:
            for rs in self.sensors:
                self.advance(rs, now)
            self.stale_due = min(
                (rs.last_ts + rs.spec.stale_after_s for rs in self.sensors if rs.code != STALE),
                default=math.inf,
            )

    def event(self, ev: Event) -> None:
        if ev.kind in ("gateway_offline", "gateway_online"):
            if ev.kind == "gateway_offline" and ev.target in self.registry.gateways:
                for rs in self.sensors:
                    if rs.spec.gateway == ev.target and rs.code != STALE:
                        self.advance(rs, ev.at)
                        if rs.code != STALE:
                            self.change(rs, STALE, ev.at, "gateway_offline")
            return
        if ev.target not in self.flags:
            return
        f = self.flags[ev.target]
        if ev.kind == "valve_closed":
            f["valve"] = min(f["valve"], ev.at)
        elif ev.kind == "valve_opened":
            f["valve"] = math.inf
        else:
            name = "bypassed" if "interlock" in ev.kind else "maintenance"
            f[name] = int(ev.kind in ("interlock_bypassed", "maintenance_on"))
        f["event_at"] = max(f["event_at"], ev.at)
        self.dirty.add(ev.target)
