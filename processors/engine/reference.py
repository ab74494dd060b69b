"""The plain per-reading reference engine: one Python object per sensor, one reading at a time.

It exists to be obviously right, not fast: the property test checks that the vectorised engine gives
exactly the same transitions on random streams, and `riskwatch bench engine` measures the speed-up
against it. It reads the registry records directly (not the compiled arrays) and re-implements the
semantics documented in `sensors.py` and `rules.py` in scalar code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from processors.engine.events import Event
from riskwatch.levels import AlarmState, Colour
from riskwatch.registry import Registry, Sensor
from riskwatch.registry.rules import Rule
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id

FAULT, STALE = 8, 9
WINDOW = 60.0
MAX_ITEMS = 20
_GAS = ("flammable_gas", "toxic_gas")
_STATES = {"l1": ("l1_high", "l1_low"), "l2": ("l2_high", "l2_low"), "fault": ("fault",), "stale": ("stale",)}


def state_of(sensor: Sensor, code: int) -> AlarmState:
    if code == FAULT:
        return AlarmState.FAULT
    if code == STALE:
        return AlarmState.STALE
    if code == 0:
        return AlarmState.NORMAL
    level = abs(code)
    second = level >= 3 if sensor.bands is not None else level >= 2
    if code > 0:
        return AlarmState.L2_HIGH if second else AlarmState.L1_HIGH
    return AlarmState.L2_LOW if second else AlarmState.L1_LOW


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
    since: float = math.nan
    last_ts: float = math.nan
    last_value: float = math.nan
    ucode: int = 0
    usince: float = math.nan
    chat: bool = False
    t1: float = -math.inf
    t2: float = -math.inf

    def setpoint(self, code: int) -> float | None:
        if 1 <= code <= 4:
            return next(t for t in self.high[code - 1 :] if t is not None)
        if -4 <= code <= -1:
            return next(t for t in self.low[-code - 1 :] if t is not None)
        return None


class ReferenceEngine:
    """Same inputs and outputs as `evaluate`, computed reading by reading."""

    def __init__(
        self, registry: Registry, now: float | None = None, all_units: bool = True, timers: str = "all"
    ) -> None:
        """`all_units`/`timers="all"` re-check every unit and sensor on each call (the property test);
        `all_units=False, timers="tracked"` re-check only what changed or is due (the benchmark)."""
        self.registry = registry
        self.sensors = [RefSensor(s, *thresholds(s)) for s in registry.sensor_list]
        for rs in self.sensors:
            rs.last_ts = rs.since = rs.usince = math.nan if now is None else now
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
        if (old_state == AlarmState.NORMAL) != (new_state == AlarmState.NORMAL):
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
        if ts < rs.last_ts:
            self.out_of_order += 1
            return
        self.advance(rs, ts)
        rs.last_ts, rs.last_value = ts, v
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
                rs.last_ts = rs.since = rs.usince = now
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
        elif ev.kind == "valve_open":
            f["valve"] = math.inf
        else:
            name = "bypassed" if "interlock" in ev.kind else "maintenance"
            f[name] = int(ev.kind in ("interlock_bypassed", "maintenance_on"))
        f["event_at"] = max(f["event_at"], ev.at)
        self.dirty.add(ev.target)

    # ----- units, sites, regions
    def unit_colour_now(self, unit: str, now: float) -> tuple[int, str, float, float]:
        """(colour, rule name, next due time, event time) of one unit, rule by rule."""
        members = self.members[unit]
        site = self.registry.sites[self.registry.units[unit].site]
        flags = self.flags[unit]
        states = [(rs, state_of(rs.spec, rs.ucode)) for rs in members]
        colour, rule_name, due, fire = 0, "normal", math.inf, -math.inf
        for rule in self.registry.rule_sets[site.rule_set]:
            when: float | None = None
            value = int(rule.colour)
            if rule.kind == "count":
                fired, when, rule_due = self.count_rule(rule, states, now)
                due = min(due, rule_due)
            elif rule.kind == "kiln_cutoff":
                low = [
                    rs.usince
                    for rs, st in states
                    if rs.spec.role == "gas_main_pressure" and st in (AlarmState.L1_LOW, AlarmState.L2_LOW)
                ]
                closed = [
                    rs.usince
                    for rs, st in states
                    if rs.spec.role == "cutoff_valve" and st == AlarmState.L1_HIGH
                ]
                alarm_since = min(low, default=math.inf)
                deadline = alarm_since + rule.confirm_within_s
                confirm = min(min(closed, default=math.inf), flags["valve"])
                open_alarm = math.isfinite(alarm_since) and not confirm <= deadline
                fired = open_alarm and deadline <= now
                if open_alarm and deadline > now:
                    due = min(due, deadline)
                when = deadline
            elif rule.kind == "interlock_bypass":
                fired = bool(flags["bypassed"]) and any(
                    (st.is_l1 or st.is_l2) and rs.spec.role != "cutoff_valve" for rs, st in states
                )
            else:
                value = min(self.tailings(members), int(rule.colour))
                fired = value > 0
            if fired and value > colour:
                colour, rule_name = value, rule.name
                fire = when if when is not None else -math.inf
        at = max(max((rs.usince for rs in members), default=-math.inf), flags["event_at"], fire)
        if flags["maintenance"]:
            return 0, "maintenance", math.inf, at
        return colour, rule_name, due, at

    def count_rule(
        self, rule: Rule, states: list[tuple[RefSensor, AlarmState]], now: float
    ) -> tuple[bool, float | None, float]:
        wanted = {AlarmState.parse(name) for cls in rule.states for name in _STATES[cls]}
        matched = []
        due = math.inf
        for rs, st in states:
            if st not in wanted:
                continue
            group = rs.spec.group
            faulty = st in (AlarmState.FAULT, AlarmState.STALE)
            if rule.groups:
                if group not in rule.groups:
                    continue
            elif group == "valve" and not faulty:
                continue
            if rule.min_duration_s > 0 and not rs.usince + rule.min_duration_s <= now:
                due = min(due, rs.usince + rule.min_duration_s)
                continue
            matched.append(rs)
        fired = (
            len(matched) >= rule.min_sensors
            and len({rs.spec.quantity for rs in matched}) >= rule.min_quantities
        )
        when = (
            min((rs.usince + rule.min_duration_s for rs in matched), default=math.inf)
            if rule.min_duration_s > 0
            else None
        )
        return fired, when, due

    def tailings(self, members: list[RefSensor]) -> int:
        items: dict[str, list[int]] = {}
        for rs in members:
            if rs.spec.bands is not None and 1 <= abs(rs.ucode) <= 4:
                items.setdefault(rs.spec.quantity, []).append(abs(rs.ucode))
        colours = []
        for points in items.values():
            c = max(points)
            if sum(p >= 1 for p in points) >= 4:
                c = max(c, 2)
            if sum(p >= 2 for p in points) >= 3:
                c = max(c, 3)
            if sum(p >= 3 for p in points) >= 2:
                c = max(c, 4)
            colours.append(c)
        pond = max(colours, default=0)
        if sum(c >= 1 for c in colours) >= 4:
            pond = max(pond, 2)
        return pond

    def unit_items(self, unit: str) -> tuple[tuple[CauseItem, ...], int]:
        shown = [rs for rs in self.members[unit] if rs.ucode != 0]
        items = tuple(
            CauseItem(
                rs.spec.id,
                rs.spec.quantity,
                state_of(rs.spec, rs.ucode).label,
                rs.last_value if math.isfinite(rs.last_value) else None,
                rs.setpoint(rs.ucode),
                rs.spec.uom,
                rs.usince,
            )
            for rs in shown[:MAX_ITEMS]
        )
        return items, max(0, len(shown) - MAX_ITEMS)

    def roll_up(self, now: float) -> None:
        due_units = {u for u, d in self.unit_due.items() if d <= now}
        units = (
            self.registry.units
            if self.all_units
            else [u for u in self.registry.units if u in self.dirty | due_units]
        )
        changed_sites: list[str] = []
        for unit in units:
            colour, rule, due, at = self.unit_colour_now(unit, now)
            self.unit_due[unit] = due
            self.unit_rule[unit] = rule
            old = self.unit_colour[unit]
            if colour == old:
                continue
            self.unit_colour[unit], self.unit_at[unit] = colour, at
            items, more = self.unit_items(unit)
            text = "unit in maintenance mode" if rule == "maintenance" else ""
            if more:
                text = f"{text}; {more} more sensors not normal".lstrip("; ")
            site = self.registry.units[unit].site
            self.out.append(self.warning("unit", unit, old, colour, at, Cause(rule, items, text), site, unit))
            if site not in changed_sites:
                changed_sites.append(site)
        changed_regions: list[str] = []
        for site in sorted(changed_sites, key=list(self.registry.sites).index):
            units_of = [u for u, spec in self.registry.units.items() if spec.site == site]
            colour = max((self.unit_colour[u] for u in units_of), default=0)
            old = self.site_colour[site]
            if colour == old:
                continue
            at = max(self.unit_at[u] for u in units_of)
            label = Colour(colour).label
            if colour:
                top = max(units_of, key=lambda u: (self.unit_colour[u], -units_of.index(u)))
                items, _ = self.unit_items(top)
                rule = self.unit_rule[top]
                cause = Cause(rule, items, f"highest hazard source {top} is {label} ({rule})")
            else:
                cause = Cause("highest_unit", (), "every hazard source is normal")
            self.site_colour[site], self.site_at[site] = colour, at
            self.out.append(self.warning("site", site, old, colour, at, cause, site, ""))
            region = self.registry.sites[site].region
            if region not in changed_regions:
                changed_regions.append(region)
        for region in changed_regions:
            sites = [s for s, spec in self.registry.sites.items() if spec.region == region]
            colour = max(self.site_colour[s] for s in sites)
            old = self.region_colour[region]
            if colour == old:
                continue
            at = max(self.site_at[s] for s in sites)
            counts = {c.label: sum(self.site_colour[s] == c for s in sites) for c in Colour}
            top = max(sites, key=lambda s: (self.site_colour[s], -sites.index(s)))
            label = Colour(colour).label
            text = f"highest site {top} is {label}" if colour else "every site is normal"
            self.region_colour[region] = colour
            self.out.append(
                Transition(
                    transition_id("warning", "region", region, label, at),
                    "warning",
                    "region",
                    region,
                    Colour(old).label,
                    label,
                    at,
                    Cause("highest_site", (), text),
                    region=region,
                    counts=counts,
                )
            )

    def warning(
        self, kind: str, entity: str, old: int, new: int, at: float, cause: Cause, site: str, unit: str
    ) -> Transition:
        label = Colour(new).label
        region = self.registry.sites[site].region
        return Transition(
            transition_id("warning", kind, entity, label, at),
            "warning",
            kind,
            entity,  # type: ignore[arg-type]
            Colour(old).label,
            label,
            at,
            cause,
            site=site,
            region=region,
            unit=unit,
        )
