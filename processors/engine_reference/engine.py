"""The plain per-reading reference engine: one Python object per sensor, one reading at a time.

It exists to be obviously right, not fast: the engine's specification tests run against both engines,
the property test checks that the vectorised engine gives exactly the same transitions on random
streams, and `riskwatch bench engine` measures the speed-up against it. It reads the registry records
directly and implements the semantics of docs/engine.md ("Sensor alarm states") in scalar code,
importing nothing from the engine it checks. Each call does per-reading work only: the readings it is
given, the sensors whose delay, chattering or stale time is due (kept in a heap, never found by scanning
every sensor), and the units those touch.
"""

from __future__ import annotations

import heapq
import math
from typing import Literal, NamedTuple, Protocol

from processors.engine_reference.rollup import RollUp
from processors.engine_reference.sensor import FAULT, STALE, RefSensor, state_of, thresholds
from riskwatch.levels import AlarmState
from riskwatch.registry import Registry
from riskwatch.wire.gateway_protocol import EVENT_KINDS as UNIT_EVENT_KINDS
from riskwatch.wire.gateway_protocol import STATUS_STATES
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id

WINDOW = 60.0  # chattering: the 3rd on/off change within a minute (ISA-18.2, docs/domain.md)
EVENT_KINDS = (*(f"gateway_{state}" for state in reversed(STATUS_STATES)), *UNIT_EVENT_KINDS)


class EventLike(Protocol):
    """A discrete input: `target` is a gateway id for gateway_* kinds and a unit id otherwise."""

    @property
    def kind(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def at(self) -> float: ...


class RefReject(NamedTuple):
    source: Literal["reading", "event"]
    position: int
    reason: str


class RefEvaluation(NamedTuple):
    transitions: list[Transition]
    rejects: list[RefReject]
    out_of_order: int  # readings of this call older than their sensor's newest (not applied)


class ReferenceEngine(RollUp):
    """Same inputs and outputs as `evaluate`, computed reading by reading."""

    def __init__(
        self, registry: Registry, now: float | None = None, all_units: bool = True, timers: str = "all"
    ) -> None:
        """`all_units`/`timers="all"` re-check every unit and sensor on each call (the property test:
        nothing depends on tracking what is due); `all_units=False, timers="tracked"` re-check only the
        readings' sensors and units and what is due (the benchmark)."""
        self.registry = registry
        self.sensors = [RefSensor(s, *thresholds(s)) for s in registry.sensor_list]
        for rs in self.sensors:
            rs.last_ts = math.nan if now is None else now
        self.primed = now is not None  # stale timers started (at `now`, or at the first evaluation)
        self.all_units = all_units
        self.tracked = timers == "tracked"
        self.pending: set[int] = set()  # sensors with a delay running or chattering (tracked timers)
        self.stale_heap: list[tuple[float, int]] = []  # (stale time, sensor); superseded ones skipped
        self.members: dict[str, list[RefSensor]] = {u: [] for u in registry.units}
        for rs in self.sensors:
            self.members[rs.spec.unit].append(rs)
        self.units_of_site: dict[str, list[str]] = {site: [] for site in registry.sites}
        for unit, spec in registry.units.items():
            self.units_of_site[spec.site].append(unit)
        self.sites_of_region: dict[str, list[str]] = {region: [] for region in registry.regions}
        for site, site_spec in registry.sites.items():
            self.sites_of_region[site_spec.region].append(site)
        self.unit_order = {unit: k for k, unit in enumerate(registry.units)}
        self.site_order = {site: k for k, site in enumerate(registry.sites)}
        self.unit_colour = dict.fromkeys(registry.units, 0)
        self.unit_at = dict.fromkeys(registry.units, -math.inf)
        self.unit_rule = dict.fromkeys(registry.units, "normal")
        self.unit_due = dict.fromkeys(registry.units, math.inf)
        self.due_heap: list[tuple[float, str]] = []
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
        self.rejected = 0
        if self.primed:
            self.restart_stale_heap()

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
        if rs.seen and (ts < rs.last_ts or (rs.code == STALE and ts < rs.since)):
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
        self, batch: Readings, now: float, events: tuple[EventLike, ...] | list[EventLike] = ()
    ) -> list[Transition]:
        return self.evaluate_detailed(batch, now, events).transitions

    def evaluate_detailed(
        self, batch: Readings, now: float, events: tuple[EventLike, ...] | list[EventLike] = ()
    ) -> RefEvaluation:
        """Events in order, then the readings in batch order, then timers at `now`, then colours."""
        self.out, self.dirty = [], set()
        if not self.primed:  # once: sensors that never report turn stale from the first evaluation
            for rs in self.sensors:
                if math.isnan(rs.last_ts):
                    rs.last_ts = now
            self.restart_stale_heap()
        rejects = [RefReject("event", pos, why) for pos, ev in enumerate(events) if (why := self.event(ev))]
        n = len(self.sensors)
        out_of_order = self.out_of_order
        for pos, (s, v, ts, q) in enumerate(
            zip(
                batch.sensor.tolist(),
                batch.value.tolist(),
                batch.ts.tolist(),
                batch.quality.tolist(),
                strict=True,
            )
        ):
            if not 0 <= s < n:
                why = f"unknown sensor index {s} (registry has {n} sensors)"
                rejects.append(RefReject("reading", pos, why))
            elif not math.isfinite(ts):
                rejects.append(RefReject("reading", pos, f"timestamp {ts!r} is not a finite epoch time"))
            else:
                self.reading(s, v, ts, q)
                if self.tracked:
                    self.track(s, self.sensors[s])
        if self.tracked:
            self.tracked_timers(now)
        else:
            for rs in self.sensors:
                self.advance(rs, now)
        self.roll_up(now)
        self.rejected += len(rejects)
        return RefEvaluation(self.out, rejects, self.out_of_order - out_of_order)

    def load(
        self,
        sensors: dict[str, list[float]],
        units: dict[str, dict[str, float | str]],
        sites: dict[str, tuple[int, float]],
        regions: dict[str, int],
    ) -> None:
        """Take over another engine's state, given as plain values: `sensors` holds one column per
        RefSensor field in registry order; `units` maps a unit id to its colour, colour_at, rule (name),
        due, maintenance, bypassed, valve (closed at) and event_at; `sites` to (colour, colour_at)."""
        names: tuple[str, ...] = ("code", "cand", "cand_since", "since", "last_ts", "last_value")
        names += ("ucode", "usince", "t1", "t2")
        int_fields = ("code", "cand", "ucode")
        for i, rs in enumerate(self.sensors):
            for name in names:
                value = sensors[name][i]
                setattr(rs, name, int(value) if name in int_fields else float(value))
            rs.chat, rs.seen = bool(sensors["chat"][i]), bool(sensors["seen"][i])
        self.due_heap = []
        for unit, f in units.items():
            self.unit_colour[unit] = int(f["colour"])
            self.unit_at[unit] = float(f["colour_at"])
            self.unit_rule[unit] = str(f["rule"])
            self.set_due(unit, float(f["due"]))
            self.flags[unit] = {
                "maintenance": int(f["maintenance"]),
                "bypassed": int(f["bypassed"]),
                "valve": float(f["valve"]),
                "event_at": float(f["event_at"]),
            }
        for site, (colour, at) in sites.items():
            self.site_colour[site], self.site_at[site] = colour, at
        self.region_colour.update(regions)
        self.pending = {i for i, rs in enumerate(self.sensors) if rs.cand != rs.code or rs.chat}
        self.restart_stale_heap()

    def restart_stale_heap(self) -> None:
        """Once, when the stale timers start (or another engine's state is loaded)."""
        self.stale_heap = [(rs.stale_at, i) for i, rs in enumerate(self.sensors)]
        heapq.heapify(self.stale_heap)
        self.primed = True

    def track(self, i: int, rs: RefSensor) -> None:
        """After a sensor's state moved: watch its delay or chattering, and its next stale time."""
        if rs.cand != rs.code or rs.chat:
            self.pending.add(i)
        if math.isfinite(rs.stale_at):
            heapq.heappush(self.stale_heap, (rs.stale_at, i))

    def tracked_timers(self, now: float) -> None:
        due = set(self.pending)
        while self.stale_heap and self.stale_heap[0][0] <= now:
            t, i = heapq.heappop(self.stale_heap)
            if self.sensors[i].stale_at == t:
                due.add(i)
        for i in sorted(due):
            self.advance(self.sensors[i], now)
        self.pending = set()
        for i in due:
            self.track(i, self.sensors[i])

    def event(self, ev: EventLike) -> str:
        """Apply one event; the reason it cannot be used, or ''."""
        if ev.kind not in EVENT_KINDS:
            return f"unknown event kind {ev.kind!r}; one of {', '.join(EVENT_KINDS)}"
        if not math.isfinite(ev.at):
            return f"event time {ev.at!r} is not a finite epoch time"
        if ev.kind in ("gateway_offline", "gateway_online"):
            if ev.target not in self.registry.gateways:
                return f"unknown gateway {ev.target!r}"
            if ev.kind == "gateway_offline":
                for i, rs in enumerate(self.sensors):
                    if rs.spec.gateway == ev.target and rs.code != STALE:
                        self.advance(rs, ev.at)
                        if rs.code != STALE:
                            self.change(rs, STALE, ev.at, "gateway_offline")
                        self.track(i, rs)
            return ""
        if ev.target not in self.flags:
            return f"unknown unit (hazard source) {ev.target!r}"
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
        return ""
