"""Unit and site colours of the per-reading reference engine, in plain Python.

Written from the rules' definitions (riskwatch/registry/rules.py, docs/domain.md), not from the
vectorised engine's code, so a mistake in one is not repeated in the other. Region colours come from the
kernel's roll-up (riskwatch/regions.py), the one the worker's region stage runs: it is checked on its own
(tests/unit/test_regions.py), and both engines feed it their site warnings in the same order.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from processors.engine_reference.sensor import RefSensor, state_of
from riskwatch.levels import AlarmState, Colour
from riskwatch.regions import RegionState, roll_up
from riskwatch.registry import Registry
from riskwatch.registry.rules import Rule
from riskwatch.wire.transitions import Cause, CauseItem, EntityType, Transition, transition_id

MAX_ITEMS = 20
_STATES = {"l1": ("l1_high", "l1_low"), "l2": ("l2_high", "l2_low"), "fault": ("fault",), "stale": ("stale",)}


class RollUp:
    """Mixed into ReferenceEngine: needs registry, members, flags and the unit/site/region dicts."""

    registry: Registry
    members: dict[str, list[RefSensor]]
    units_of_site: dict[str, list[str]]
    sites_of_region: dict[str, list[str]]
    unit_order: dict[str, int]
    site_order: dict[str, int]
    due_heap: list[tuple[float, str]]  # (due, unit); entries whose due has changed since are skipped
    flags: dict[str, dict[str, Any]]
    unit_colour: dict[str, int]
    unit_at: dict[str, float]
    unit_rule: dict[str, str]
    unit_due: dict[str, float]
    site_colour: dict[str, int]
    site_at: dict[str, float]
    region_colour: dict[str, int]
    out: list[Transition]
    dirty: set[str]
    all_units: bool

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

    def set_due(self, unit: str, due: float) -> None:
        self.unit_due[unit] = due
        if math.isfinite(due):
            heapq.heappush(self.due_heap, (due, unit))

    def due_units(self, now: float) -> set[str]:
        """Units a time-based rule may change by `now`: popped from the heap, not found by a scan."""
        due: set[str] = set()
        while self.due_heap and self.due_heap[0][0] <= now:
            t, unit = heapq.heappop(self.due_heap)
            if self.unit_due[unit] == t:
                due.add(unit)
        return due

    def roll_up(self, now: float) -> None:
        due = self.due_units(now)
        if self.all_units:
            units: list[str] = list(self.registry.units)
        else:
            units = sorted(self.dirty | due, key=self.unit_order.__getitem__)
        changed_sites: list[str] = []
        for unit in units:
            colour, rule, unit_due, at = self.unit_colour_now(unit, now)
            self.set_due(unit, unit_due)
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
        regions: dict[str, RegionState] = {}  # the regions touched by this call, as the roll-up sees them
        for site in sorted(changed_sites, key=self.site_order.__getitem__):
            units_of = self.units_of_site[site]
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
            site_warning = self.warning("site", site, old, colour, at, cause, site, "")
            self.out.append(site_warning)
            region = self.registry.sites[site].region
            if region not in regions:
                regions[region] = self.region_state(region)
            region_warning = roll_up(regions[region], site_warning)
            if region_warning is not None:
                self.region_colour[region] = Colour.parse(region_warning.new)
                self.out.append(region_warning)

    def region_state(self, region: str) -> RegionState:
        """One region's state for the roll-up (riskwatch/regions.py), from this engine's colours."""
        sites = {
            s: Colour(self.site_colour[s]).label for s in self.sites_of_region[region] if self.site_colour[s]
        }
        return RegionState(sites, Colour(self.region_colour[region]).label)

    def warning(
        self, kind: EntityType, entity: str, old: int, new: int, at: float, cause: Cause, site: str, unit: str
    ) -> Transition:
        label = Colour(new).label
        region = self.registry.sites[site].region
        return Transition(
            transition_id("warning", kind, entity, label, at),
            "warning",
            kind,
            entity,
            Colour(old).label,
            label,
            at,
            cause,
            site=site,
            region=region,
            unit=unit,
        )
