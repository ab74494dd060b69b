"""The compiled engine model: per-sensor parameter arrays, membership arrays and rules as arrays.

Built once from a Registry; read-only afterwards. Sensor *codes* (the engine's internal level) are:
0 normal, +1..+4 high levels, -1..-4 low levels, FAULT, STALE. For ordinary sensors level 1 is L1 and 2
is L2; for tailings points levels 1..4 are the blue/yellow/orange/red bands (GB 51108 §8.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskwatch.levels import AlarmState
from riskwatch.registry import Registry, Rule, Sensor
from riskwatch.registry.types import TYPES

FAULT = 8
STALE = 9
CODE_OFFSET = 4  # LUT index = code + CODE_OFFSET
CHATTER_WINDOW_S = 60.0  # docs/domain.md: chattering = >= 3 on/off in 1 min (ISA-18.2)
CHATTER_COUNT = 3

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
B = npt.NDArray[np.bool_]

# code -> AlarmState, row 0 ordinary sensors, row 1 banded (tailings) sensors.
_A = AlarmState
_ORDINARY = [_A.L2_LOW, _A.L2_LOW, _A.L2_LOW, _A.L1_LOW, _A.NORMAL, _A.L1_HIGH, _A.L2_HIGH, _A.L2_HIGH,
             _A.L2_HIGH, _A.NORMAL, _A.NORMAL, _A.NORMAL, _A.FAULT, _A.STALE]  # fmt: skip
_BANDED = [_A.L2_LOW, _A.L2_LOW, _A.L1_LOW, _A.L1_LOW, _A.NORMAL, _A.L1_HIGH, _A.L1_HIGH, _A.L2_HIGH,
           _A.L2_HIGH, _A.NORMAL, _A.NORMAL, _A.NORMAL, _A.FAULT, _A.STALE]  # fmt: skip
STATE_LUT: npt.NDArray[np.int8] = np.array([_ORDINARY, _BANDED], dtype=np.int8)
# code + CODE_OFFSET -> column of EngineModel.keep_lo/keep_hi: levels -4..4, then the empty band (FAULT, STALE)
KEEP_COLUMN = np.array([*range(9), 9, 9, 9, 9, 9], np.intp)

GROUPS: tuple[str, ...] = tuple(sorted({t.group for t in TYPES.values()}))
QUANTITIES: tuple[str, ...] = tuple(TYPES)  # < 64, so a uint64 bit mask counts distinct quantities
ROLES: tuple[str, ...] = ("measure", "gas_main_pressure", "cutoff_valve")
VALVE_GROUP = GROUPS.index("valve")

_STATE_CLASS = {
    "l1": (_A.L1_HIGH, _A.L1_LOW),
    "l2": (_A.L2_HIGH, _A.L2_LOW),
    "fault": (_A.FAULT,),
    "stale": (_A.STALE,),
}


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A Rule with its lookup tables: which AlarmStates and which quantity groups it counts."""

    index: int  # position in EngineModel.rules (global), used as the unit's `rule` code
    rule: Rule
    state_ok: B  # by AlarmState value
    group_ok: B  # by group code
    any_group_for_faults: bool  # a rule without groups counts faults/stale of every sensor, valves too


@dataclass(frozen=True, slots=True)
class CountRules:
    """A rule set's "count" rules as arrays, one row per rule, so a unit's count rules are decided at once."""

    position: npt.NDArray[np.intp]  # each rule's position in the set's order
    state_ok: B  # (rules, AlarmState)
    group_ok: B  # (rules, groups)
    any_group_for_faults: B
    min_sensors: npt.NDArray[np.int64]
    min_quantities: npt.NDArray[np.int64]
    min_duration: F64
    colour: npt.NDArray[np.int8]
    counted: B  # by AlarmState: counted by at least one of the rules (a unit with none fires none)
    timed: npt.NDArray[np.intp]  # rows with a minimum duration
    several: npt.NDArray[np.intp]  # rows that need more than one quantity

    @classmethod
    def of(cls, rules: tuple[CompiledRule, ...]) -> CountRules:
        mine = [(k, c) for k, c in enumerate(rules) if c.rule.kind == "count"]
        state_ok = np.array([c.state_ok for _, c in mine], bool).reshape(len(mine), len(AlarmState))
        return cls(
            position=np.array([k for k, _ in mine], np.intp),
            state_ok=state_ok,
            group_ok=np.array([c.group_ok for _, c in mine], bool).reshape(len(mine), len(GROUPS)),
            any_group_for_faults=np.array([c.any_group_for_faults for _, c in mine], bool),
            min_sensors=np.array([c.rule.min_sensors for _, c in mine], np.int64),
            min_quantities=np.array([c.rule.min_quantities for _, c in mine], np.int64),
            min_duration=np.array([c.rule.min_duration_s for _, c in mine], np.float64),
            colour=np.array([int(c.rule.colour) for _, c in mine], np.int8),
            counted=np.asarray(state_ok.any(axis=0), bool),
            timed=np.flatnonzero([c.rule.min_duration_s > 0 for _, c in mine]),
            several=np.flatnonzero([c.rule.min_quantities > 1 for _, c in mine]),
        )


@dataclass(frozen=True, slots=True)
class PlainRule:
    """A rule as plain Python values: one unit is decided rule by rule in Python (rules.evaluate_one),
    which costs less than the ~50 numpy calls of the array path for a single unit."""

    kind: str
    colour: int
    index: int  # CompiledRule.index
    states: frozenset[int]  # AlarmState values counted (count rules)
    groups: frozenset[int]  # group codes counted
    any_group_for_faults: bool
    min_sensors: int
    min_quantities: int
    min_duration: float
    confirm_within: float

    @classmethod
    def of(cls, c: CompiledRule) -> PlainRule:
        r = c.rule
        return cls(
            kind=r.kind,
            colour=int(r.colour),
            index=c.index,
            states=frozenset(np.flatnonzero(c.state_ok).tolist()),
            groups=frozenset(np.flatnonzero(c.group_ok).tolist()),
            any_group_for_faults=c.any_group_for_faults,
            min_sensors=int(r.min_sensors),
            min_quantities=int(r.min_quantities),
            min_duration=float(r.min_duration_s),
            confirm_within=float(r.confirm_within_s),
        )


@dataclass(frozen=True, slots=True)
class RuleSet:
    name: str
    rules: tuple[CompiledRule, ...]
    index: npt.NDArray[np.int16]  # CompiledRule.index of each rule, in the set's order
    count: CountRules
    plain: tuple[PlainRule, ...]  # the rules again, in the set's order, as Python values
    counted: frozenset[int]  # AlarmState values counted by at least one count rule


@dataclass(frozen=True, eq=False)
class EngineModel:
    """Everything the engine needs from the registry, as arrays indexed by sensor/unit/site/region."""

    fingerprint: str
    sensor_ids: tuple[str, ...]
    unit_ids: tuple[str, ...]
    site_ids: tuple[str, ...]
    region_ids: tuple[str, ...]
    gateway_ids: tuple[str, ...]
    quantity_names: tuple[str, ...]  # per sensor
    uoms: tuple[str, ...]  # per sensor
    # per sensor
    high: F64  # (N, 4) thresholds of high levels 1..4, back-filled, +inf where none
    low: F64  # (N, 4) thresholds of low levels 1..4, back-filled, -inf where none
    deadband: F64
    on_delay: F64
    off_delay: F64
    stale_after: F64
    range_low: F64
    range_high: F64
    banded: npt.NDArray[np.int8]
    bounds: F64  # (N, 8): high set points 1..4, then minus the low set points 1..4 (one >= test for both)
    holds: F64  # (N, 8): the same a deadband closer (where a held level is kept)
    # (N, 10): keep band (see keep_band) of codes -4..4, then the empty band of FAULT and STALE, precomputed:
    # changes only look it up (column KEEP_COLUMN[code + CODE_OFFSET])
    keep_lo: F64
    keep_hi: F64
    delays: F64  # (N, 3): on-delay, off-delay, 0 (column by DELAY_KIND in sensors.py)
    group: npt.NDArray[np.int8]
    quantity: npt.NDArray[np.int8]
    role: npt.NDArray[np.int8]
    sensor_unit: I32
    sensor_gateway: I32
    # units -> sensors (CSR: sensors of unit u are unit_members[unit_ptr[u]:unit_ptr[u+1]])
    unit_ptr: npt.NDArray[np.int64]
    unit_members: I32
    unit_site: I32
    unit_rule_set: I32
    # sites -> units (units of a site are contiguous: site_ptr[s]:site_ptr[s+1])
    site_ptr: npt.NDArray[np.int64]
    site_region: I32
    rule_sets: tuple[RuleSet, ...]
    rules: tuple[CompiledRule, ...]  # every compiled rule, by CompiledRule.index
    unit_index: dict[str, int]
    gateway_index: dict[str, int]

    @property
    def n_sensors(self) -> int:
        return len(self.sensor_ids)

    def rules_of_set(self, index: int) -> tuple[CompiledRule, ...]:
        return self.rule_sets[index].rules

    def alarm_state(self, sensors: npt.NDArray[np.integer], codes: npt.NDArray[np.integer]) -> I8:
        """AlarmState values of `codes` for `sensors`."""
        states: I8 = STATE_LUT[self.banded[sensors], codes.astype(np.int64) + CODE_OFFSET]
        return states

    def setpoint(self, sensor: int, code: int) -> float | None:
        """The threshold a sensor crossed to reach `code` (None for normal, fault and stale)."""
        if 1 <= code <= 4:
            return float(self.high[sensor, code - 1])
        if -4 <= code <= -1:
            return float(self.low[sensor, -code - 1])
        return None


def keep_bands(
    model: EngineModel, idx: npt.NDArray[np.integer], codes: npt.NDArray[np.integer]
) -> tuple[F64, F64]:
    """Precomputed keep bands of `codes` for sensors `idx` (empty for FAULT and STALE)."""
    col = KEEP_COLUMN[codes + CODE_OFFSET]
    return model.keep_lo[idx, col], model.keep_hi[idx, col]


def keep_band(
    model: EngineModel, idx: npt.NDArray[np.integer], codes: npt.NDArray[np.integer]
) -> tuple[F64, F64]:
    """Open interval (lo, hi) of good readings that leave each sensor at `codes`: inside it nothing moves.

    Exactly the values for which the level rule (set points crossed, deadband hold) gives the same code
    and the value is in range; inclusive ends are turned into open ones with nextafter. FAULT and STALE
    have an empty band (any good reading moves them).
    """
    codes = codes.astype(np.int64)
    k = np.clip(np.abs(codes), 1, 4) - 1  # column of the current level (0 for normal, unused)
    nxt = np.minimum(k + 1, 3)
    rows = np.asarray(idx)
    h, lo_pts = model.high[rows], model.low[rows]
    held_hi = model.holds[rows, k]  # H_k - deadband
    held_lo = -model.holds[rows, 4 + k]  # L_k + deadband
    above_h = np.where(k + 1 <= 3, h[np.arange(rows.size), nxt], np.inf)
    below_l = np.where(k + 1 <= 3, lo_pts[np.arange(rows.size), nxt], -np.inf)
    rl = np.nextafter(model.range_low[rows], -np.inf)
    rh = np.nextafter(model.range_high[rows], np.inf)
    first_h, first_l = h[:, 0], lo_pts[:, 0]
    lo = np.where(codes == 0, first_l, np.where(codes > 0, np.nextafter(held_hi, -np.inf), below_l))
    hi = np.where(
        codes == 0, first_h, np.where(codes > 0, above_h, np.minimum(np.nextafter(held_lo, np.inf), first_h))
    )
    lo, hi = np.maximum(lo, rl), np.minimum(hi, rh)
    faulty = np.abs(codes) > 4
    return np.where(faulty, np.inf, lo), np.where(faulty, -np.inf, hi)


def _backfill(values: list[float | None], fill: float) -> list[float]:
    """Undefined lower levels take the next defined threshold, so 'levels crossed' is a plain count."""
    out = [fill] * 4
    nxt = fill
    for k in range(3, -1, -1):
        value = values[k]
        if value is not None:
            nxt = float(value)
        out[k] = nxt
    return out


def _thresholds(s: Sensor) -> tuple[list[float], list[float]]:
    hi: list[float | None]
    lo: list[float | None]
    if s.bands is not None:
        bands: list[float | None] = list(s.bands)
        none: list[float | None] = [None] * 4
        hi, lo = (bands, none) if s.band_side == "high" else (none, bands)
    else:
        hi = [s.l1_high, s.l2_high, None, None]
        lo = [s.l1_low, s.l2_low, None, None]
    return _backfill(hi, np.inf), _backfill(lo, -np.inf)


def _compile_rules(
    registry: Registry,
) -> tuple[tuple[RuleSet, ...], tuple[CompiledRule, ...], dict[str, int]]:
    sets: list[RuleSet] = []
    flat: list[CompiledRule] = []
    by_name: dict[str, int] = {}
    for name, rules in registry.rule_sets.items():
        compiled = []
        for rule in rules:
            state_ok = np.zeros(len(AlarmState), dtype=bool)
            for cls in rule.states:
                for st in _STATE_CLASS[cls]:
                    state_ok[st] = True
            group_ok = np.zeros(len(GROUPS), dtype=bool)
            if rule.groups:
                for g in rule.groups:
                    group_ok[GROUPS.index(g)] = True
            else:
                group_ok[:] = True
                group_ok[VALVE_GROUP] = False  # a closed valve is a confirmation, not an alarm
            c = CompiledRule(len(flat), rule, state_ok, group_ok, not rule.groups)
            flat.append(c)
            compiled.append(c)
        by_name[name] = len(sets)
        rule_index = np.array([c.index for c in compiled], np.int16)
        count = CountRules.of(tuple(compiled))
        plain = tuple(PlainRule.of(c) for c in compiled)
        counted = frozenset(np.flatnonzero(count.counted).tolist())
        sets.append(RuleSet(name, tuple(compiled), rule_index, count, plain, counted))
    return tuple(sets), tuple(flat), by_name


def compile_model(registry: Registry) -> EngineModel:
    """Compile a registry into the engine's arrays (O(sensors), once per registry load)."""
    sensors = registry.sensor_list
    n = len(sensors)
    unit_index = {u: i for i, u in enumerate(registry.units)}
    site_index = {s: i for i, s in enumerate(registry.sites)}
    region_index = {r: i for i, r in enumerate(registry.regions)}
    gateway_index = {g: i for i, g in enumerate(registry.gateways)}
    group_index = {g: i for i, g in enumerate(GROUPS)}
    quantity_index = {q: i for i, q in enumerate(QUANTITIES)}
    role_index = {r: i for i, r in enumerate(ROLES)}
    high = np.empty((n, 4), np.float64)
    low = np.empty((n, 4), np.float64)
    for i, s in enumerate(sensors):
        high[i], low[i] = _thresholds(s)

    def col(name: str, dtype: type) -> npt.NDArray:  # type: ignore[type-arg]
        return np.fromiter((getattr(s, name) for s in sensors), dtype=dtype, count=n)

    deadband = col("deadband", np.float64)
    sensor_unit = np.fromiter((unit_index[s.unit] for s in sensors), np.int32, count=n)
    order = np.argsort(sensor_unit, kind="stable").astype(np.int32)
    unit_ptr = np.zeros(len(unit_index) + 1, np.int64)
    np.cumsum(np.bincount(sensor_unit, minlength=len(unit_index)), out=unit_ptr[1:])
    unit_site = np.fromiter((site_index[u.site] for u in registry.units.values()), np.int32)
    site_ptr = np.zeros(len(site_index) + 1, np.int64)
    np.cumsum(np.bincount(unit_site, minlength=len(site_index)), out=site_ptr[1:])
    if unit_site.size and np.any(np.diff(unit_site) < 0):
        raise ValueError("units must be grouped by site (registry order)")
    rule_sets, flat, set_by_name = _compile_rules(registry)
    unit_rule_set = np.fromiter(
        (set_by_name[registry.sites[u.site].rule_set] for u in registry.units.values()), np.int32
    )
    model = EngineModel(
        fingerprint=registry.fingerprint,
        sensor_ids=registry.sensor_ids,
        unit_ids=tuple(registry.units),
        site_ids=tuple(registry.sites),
        region_ids=tuple(registry.regions),
        gateway_ids=tuple(registry.gateways),
        quantity_names=tuple(s.quantity for s in sensors),
        uoms=tuple(s.uom for s in sensors),
        high=high,
        low=low,
        deadband=deadband,
        on_delay=col("on_delay_s", np.float64),
        off_delay=col("off_delay_s", np.float64),
        stale_after=col("stale_after_s", np.float64),
        range_low=col("range_low", np.float64),
        range_high=col("range_high", np.float64),
        bounds=np.hstack([high, -low]),
        holds=np.hstack([high - deadband[:, None], -(low + deadband[:, None])]),
        keep_lo=np.zeros((0, 10)),  # filled below, keep_band needs the other arrays
        keep_hi=np.zeros((0, 10)),
        delays=np.zeros((0, 3)),
        banded=np.fromiter((s.bands is not None for s in sensors), np.int8, count=n),
        group=np.fromiter((group_index[s.group] for s in sensors), np.int8, count=n),
        quantity=np.fromiter((quantity_index[s.quantity] for s in sensors), np.int8, count=n),
        role=np.fromiter((role_index[s.role] for s in sensors), np.int8, count=n),
        sensor_unit=sensor_unit,
        sensor_gateway=np.fromiter((gateway_index[s.gateway] for s in sensors), np.int32, count=n),
        unit_ptr=unit_ptr,
        unit_members=order,
        unit_site=unit_site,
        unit_rule_set=unit_rule_set,
        site_ptr=site_ptr,
        site_region=np.fromiter((region_index[s.region] for s in registry.sites.values()), np.int32),
        rule_sets=rule_sets,
        rules=flat,
        unit_index=unit_index,
        gateway_index=gateway_index,
    )
    every = np.arange(n)
    bands = [keep_band(model, every, np.full(n, code)) for code in (*range(-4, 5), FAULT)]
    object.__setattr__(model, "keep_lo", np.stack([b[0] for b in bands], axis=1))
    object.__setattr__(model, "keep_hi", np.stack([b[1] for b in bands], axis=1))
    object.__setattr__(model, "delays", np.stack([model.on_delay, model.off_delay, np.zeros(n)], axis=1))
    return model
