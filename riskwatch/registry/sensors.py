"""Resolve one sensor spec into a `Sensor`: apply per-type defaults, then check its set points.

Kept to plain attribute access and float compares: a 200k-sensor registry must load in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from riskwatch.registry.models import Sensor
from riskwatch.registry.schema import SensorSpec
from riskwatch.registry.types import (
    BAND_NAMES,
    DERIVED_ORANGE_FROM_RED,
    METHANE_BY_LOCATION,
    RAINFALL_BANDS,
    TYPES,
    QuantityType,
)

# Spellings accepted for a unit, mapped to the canonical one the registry stores.
UOM_ALIASES: dict[str, str] = {
    "mg/m³": "mg/m3",
    "℃": "degC",
    "°C": "degC",
    "m³/h": "m3/h",
    "%vol": "%VOL",
    "%lel": "%LEL",
    "LEL.m": "LEL·m",
    "LELm": "LEL·m",
}
KNOWN_UOMS: frozenset[str] = frozenset(t.uom for t in TYPES.values())

Report = Callable[[str, str], None]  # (path suffix like ".l2_high", reason)


Points = dict[str, float | None]  # l1_high, l2_high, l1_low, l2_low


class _Problems:
    """`report`, counting what it was told: a sensor with any problem is not built."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.count = 0

    def __call__(self, path: str, reason: str) -> None:
        self.count += 1
        self.report(path, reason)


def resolve_sensor(
    spec: SensorSpec, *, site: str, unit: str, gateway: str, index: int, report: Report
) -> Sensor | None:
    """The resolved sensor, or None after reporting every problem found through `report`.

    Each step below reports its own problems and carries on, so one run names them all; only a sensor
    without a type or a range stops early, since nothing after can be checked without them."""
    qt = TYPES.get(spec.type)
    if qt is None:
        report(".type", f"unknown sensor type {spec.type!r}; known types: {', '.join(sorted(TYPES))}")
        return None
    problems = _Problems(report)
    uom = _uom(spec, qt, problems)
    span = _range(spec, qt, problems)
    if span is None:
        return None
    lo, hi = span
    points, origins = _set_points(spec, qt, problems)
    bands: tuple[float | None, ...] | None = None
    if qt.band_side is not None:
        points, bands = _tailings_points(spec, qt, points, lo, hi, problems)
    elif spec.bands is not None:
        problems(".bands", f"bands apply to tailings types only, not {qt.name}; use l1_high/l2_high")
    elif qt.needs_setpoints and all(v is None for v in points.values()):
        problems(
            ".l1_high", f"type {qt.name} has no default set points; give l1_high/l2_high and/or l1_low/l2_low"
        )
    if qt.role == "gas_main_pressure" and points["l1_low"] is None:
        problems(".l1_low", "gas_main_pressure needs l1_low, the gas-main low-pressure alarm set point")
    if qt.band_side is None:
        _check_in_range(points, origins, lo, hi, problems)
    _check_order(points, problems)
    deadband, on_delay, off_delay, stale = _timing(spec, qt, points, lo, hi, problems)
    if problems.count:
        return None
    return Sensor(
        id=spec.id,
        site=site,
        unit=unit,
        gateway=gateway,
        quantity=qt.name,
        group=qt.group,
        uom=uom,
        index=index,
        range_low=float(lo),
        range_high=float(hi),
        l1_high=points["l1_high"],
        l2_high=points["l2_high"],
        l1_low=points["l1_low"],
        l2_low=points["l2_low"],
        deadband=float(deadband),
        on_delay_s=float(on_delay),
        off_delay_s=float(off_delay),
        stale_after_s=float(stale),
        role=spec.role or qt.role,
        location=spec.location,
        bands=bands,  # type: ignore[arg-type]
        band_side=qt.band_side,
        name=spec.name,
    )


def _uom(spec: SensorSpec, qt: QuantityType, report: Report) -> str:
    """The canonical unit: the type's, or the configured one if it is a spelling of the same unit."""
    if spec.uom is None:
        return qt.uom
    uom = UOM_ALIASES.get(spec.uom, spec.uom)
    if uom not in KNOWN_UOMS:
        report(".uom", f"unknown unit {spec.uom!r}; known units: {', '.join(sorted(KNOWN_UOMS))}")
    elif uom != qt.uom:
        report(".uom", f"unit {spec.uom!r} does not fit type {qt.name}, which is measured in {qt.uom}")
    return uom


def _range(spec: SensorSpec, qt: QuantityType, report: Report) -> tuple[float, float] | None:
    """The measuring range, configured or the type's; None (reported) if there is no usable one."""
    if spec.range is not None:
        lo, hi = spec.range
    elif qt.range_low is not None and qt.range_high is not None:
        lo, hi = qt.range_low, qt.range_high
    else:
        report(".range", f"type {qt.name} has no default range; give range: [low, high] in {qt.uom}")
        return None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        report(".range", f"range [{lo}, {hi}] must be finite with low < high")
        return None
    return lo, hi


def _set_points(spec: SensorSpec, qt: QuantityType, report: Report) -> tuple[Points, dict[str, str]]:
    """The four set points, each the configured value or the standard's default (methane: by location),
    and where each came from, for the messages."""
    l1h, l2h, l1l, l2l = qt.l1_high, qt.l2_high, qt.l1_low, qt.l2_low
    origin = f"default for {qt.name}"
    if qt.needs_location:
        if spec.location not in METHANE_BY_LOCATION:
            got = "missing" if spec.location is None else f"{spec.location!r} is unknown"
            report(
                ".location", f"{qt.name} needs a location ({got}); one of {', '.join(METHANE_BY_LOCATION)}"
            )
        else:
            l1h, l2h = METHANE_BY_LOCATION[spec.location]
            origin = f"default for {qt.name} at {spec.location}"
    points: Points = {"l1_high": l1h, "l2_high": l2h, "l1_low": l1l, "l2_low": l2l}
    origins = dict.fromkeys(points, origin)
    given = spec.model_fields_set
    for name in points:
        if name in given:
            points[name], origins[name] = getattr(spec, name), "configured"
    return points, origins


def _tailings_points(
    spec: SensorSpec, qt: QuantityType, points: Points, lo: float, hi: float, report: Report
) -> tuple[Points, tuple[float | None, ...] | None]:
    """A tailings point's four bands, and the set points they imply (first two bands l1, last two l2)."""
    if any(name in spec.model_fields_set for name in points):
        report(".l1_high", f"{qt.name} is a tailings point: give bands (blue/yellow/orange/red), not l1/l2")
    bands = _bands(spec, qt.name, report)
    if bands is None:
        return points, None
    first = next((b for b in bands[:2] if b is not None), None)
    second = next((b for b in bands[2:] if b is not None), None)
    side = "high" if qt.band_side == "high" else "low"
    implied: Points = {"l1_high": None, "l2_high": None, "l1_low": None, "l2_low": None}
    implied[f"l1_{side}"], implied[f"l2_{side}"] = first, second
    _check_bands(bands, side, lo, hi, report)
    return implied, bands


def _check_in_range(points: Points, origins: dict[str, str], lo: float, hi: float, report: Report) -> None:
    for name, value in points.items():
        if value is not None and not (lo <= value <= hi):
            report(f".{name}", f"{name} {value} ({origins[name]}) is outside the sensor range {lo}..{hi}")


def _check_order(points: Points, report: Report) -> None:
    """l2 beyond l1 on each side, and every low set point below every high one."""
    l1h, l2h, l1l, l2l = points["l1_high"], points["l2_high"], points["l1_low"], points["l2_low"]
    if l1h is not None and l2h is not None and l2h < l1h:
        report(".l2_high", f"inverted set points: l2_high {l2h} is below l1_high {l1h}")
    if l1l is not None and l2l is not None and l2l > l1l:
        report(".l2_low", f"inverted set points: l2_low {l2l} is above l1_low {l1l}")
    low_top = l1l if l1l is not None else l2l
    high_bottom = l1h if l1h is not None else l2h
    if low_top is not None and high_bottom is not None and low_top >= high_bottom:
        report(".l1_low", f"low set point {low_top} is not below the high set point {high_bottom}")


def _timing(
    spec: SensorSpec, qt: QuantityType, points: Points, lo: float, hi: float, report: Report
) -> tuple[float, float, float, float]:
    """(deadband, on delay, off delay, stale after): configured, or the type's defaults."""
    deadband = (
        spec.deadband if spec.deadband is not None else _default_deadband(qt.deadband_pct, lo, hi, points)
    )
    on_delay = spec.on_delay_s if spec.on_delay_s is not None else qt.on_delay_s
    off_delay = spec.off_delay_s if spec.off_delay_s is not None else qt.off_delay_s
    stale = spec.stale_after_s if spec.stale_after_s is not None else qt.stale_after_s
    for name, value in (("deadband", deadband), ("on_delay_s", on_delay), ("off_delay_s", off_delay)):
        if not (math.isfinite(value) and value >= 0):
            report(f".{name}", f"{name} must be a finite number >= 0, got {value}")
    if not (math.isfinite(stale) and stale > 0):
        report(".stale_after_s", f"stale_after_s must be a finite number > 0, got {stale}")
    return deadband, on_delay, off_delay, stale


def _default_deadband(pct: float, lo: float, hi: float, points: Points) -> float:
    """pct of span (ISA-18.2 starting points), capped at 10 % of the smallest set point's distance from
    the range bottom: a CO detector ranging to 1000 mg/m³ must still clear below its 20 mg/m³ alarm."""
    span_part = pct / 100.0 * (hi - lo)
    gaps = [abs(p - lo) for p in points.values() if p is not None and p != lo]
    return min([span_part, *(0.1 * g for g in gaps)])


def _bands(spec: SensorSpec, quantity: str, report: Report) -> tuple[float | None, ...] | None:
    given = spec.bands
    values: dict[str, float | None] = dict.fromkeys(BAND_NAMES)
    if quantity == "rainfall":
        values.update(RAINFALL_BANDS)
    if given is not None:
        for name in BAND_NAMES:
            if name in given.model_fields_set:
                values[name] = getattr(given, name)
    factor = DERIVED_ORANGE_FROM_RED.get(quantity)
    if factor is not None and values["orange"] is None and values["red"] is not None:
        values["orange"] = values["red"] * factor
    if all(v is None for v in values.values()):
        report(".bands", f"{quantity} needs designer thresholds: bands: {{blue:, yellow:, orange:, red:}}")
        return None
    return tuple(values[name] for name in BAND_NAMES)


def _check_bands(bands: tuple[float | None, ...], side: str, lo: float, hi: float, report: Report) -> None:
    previous: tuple[str, float] | None = None
    for name, value in zip(BAND_NAMES, bands, strict=True):
        if value is None:
            continue
        if not (lo <= value <= hi):
            report(f".bands.{name}", f"{name} threshold {value} is outside the sensor range {lo}..{hi}")
        if previous is not None:
            worse = value > previous[1] if side == "high" else value < previous[1]
            if not worse:
                order = "above" if side == "high" else "below"
                report(
                    f".bands.{name}",
                    f"inverted bands: {name} {value} must be {order} {previous[0]} {previous[1]} "
                    f"({'higher' if side == 'high' else 'lower'} is worse for this item)",
                )
        previous = (name, value)
