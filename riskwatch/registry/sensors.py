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


def resolve_sensor(
    spec: SensorSpec, *, site: str, unit: str, gateway: str, index: int, report: Report
) -> Sensor | None:
    """The resolved sensor, or None after reporting every problem found through `report`."""
    qt = TYPES.get(spec.type)
    if qt is None:
        report(".type", f"unknown sensor type {spec.type!r}; known types: {', '.join(sorted(TYPES))}")
        return None
    ok = True
    given = spec.model_fields_set

    uom = qt.uom
    if spec.uom is not None:
        uom = UOM_ALIASES.get(spec.uom, spec.uom)
        if uom not in KNOWN_UOMS:
            report(".uom", f"unknown unit {spec.uom!r}; known units: {', '.join(sorted(KNOWN_UOMS))}")
            ok = False
        elif uom != qt.uom:
            report(".uom", f"unit {spec.uom!r} does not fit type {qt.name}, which is measured in {qt.uom}")
            ok = False

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

    l1h, l2h, l1l, l2l = qt.l1_high, qt.l2_high, qt.l1_low, qt.l2_low
    origin = f"default for {qt.name}"
    if qt.needs_location:
        if spec.location not in METHANE_BY_LOCATION:
            got = "missing" if spec.location is None else f"{spec.location!r} is unknown"
            report(
                ".location", f"{qt.name} needs a location ({got}); one of {', '.join(METHANE_BY_LOCATION)}"
            )
            ok = False
        else:
            l1h, l2h = METHANE_BY_LOCATION[spec.location]
            origin = f"default for {qt.name} at {spec.location}"
    points = {"l1_high": l1h, "l2_high": l2h, "l1_low": l1l, "l2_low": l2l}
    origins = dict.fromkeys(points, origin)
    for name in points:
        if name in given:
            points[name], origins[name] = getattr(spec, name), "configured"

    bands: tuple[float | None, ...] | None = None
    if qt.band_side is not None:
        if any(name in given for name in points):
            report(
                ".l1_high", f"{qt.name} is a tailings point: give bands (blue/yellow/orange/red), not l1/l2"
            )
            ok = False
        bands = _bands(spec, qt.name, report)
        if bands is None:
            ok = False
        else:
            first = next((b for b in bands[:2] if b is not None), None)
            second = next((b for b in bands[2:] if b is not None), None)
            side = "high" if qt.band_side == "high" else "low"
            points = {"l1_high": None, "l2_high": None, "l1_low": None, "l2_low": None}
            points[f"l1_{side}"], points[f"l2_{side}"] = first, second
            if not _check_bands(bands, qt.band_side, lo, hi, report):
                ok = False
    elif spec.bands is not None:
        report(".bands", f"bands apply to tailings types only, not {qt.name}; use l1_high/l2_high")
        ok = False
    elif qt.needs_setpoints and all(v is None for v in points.values()):
        report(
            ".l1_high", f"type {qt.name} has no default set points; give l1_high/l2_high and/or l1_low/l2_low"
        )
        ok = False
    if qt.role == "gas_main_pressure" and points["l1_low"] is None:
        report(".l1_low", "gas_main_pressure needs l1_low, the gas-main low-pressure alarm set point")
        ok = False

    if qt.band_side is None:
        for name, value in points.items():
            if value is not None and not (lo <= value <= hi):
                report(f".{name}", f"{name} {value} ({origins[name]}) is outside the sensor range {lo}..{hi}")
                ok = False
    if (
        points["l1_high"] is not None
        and points["l2_high"] is not None
        and points["l2_high"] < points["l1_high"]
    ):
        report(
            ".l2_high",
            f"inverted set points: l2_high {points['l2_high']} is below l1_high {points['l1_high']}",
        )
        ok = False
    if points["l1_low"] is not None and points["l2_low"] is not None and points["l2_low"] > points["l1_low"]:
        report(
            ".l2_low", f"inverted set points: l2_low {points['l2_low']} is above l1_low {points['l1_low']}"
        )
        ok = False
    low_top = points["l1_low"] if points["l1_low"] is not None else points["l2_low"]
    high_bottom = points["l1_high"] if points["l1_high"] is not None else points["l2_high"]
    if low_top is not None and high_bottom is not None and low_top >= high_bottom:
        report(".l1_low", f"low set point {low_top} is not below the high set point {high_bottom}")
        ok = False

    deadband = (
        spec.deadband if spec.deadband is not None else _default_deadband(qt.deadband_pct, lo, hi, points)
    )
    on_delay = spec.on_delay_s if spec.on_delay_s is not None else qt.on_delay_s
    off_delay = spec.off_delay_s if spec.off_delay_s is not None else qt.off_delay_s
    stale = spec.stale_after_s if spec.stale_after_s is not None else qt.stale_after_s
    for name, value in (("deadband", deadband), ("on_delay_s", on_delay), ("off_delay_s", off_delay)):
        if not (math.isfinite(value) and value >= 0):
            report(f".{name}", f"{name} must be a finite number >= 0, got {value}")
            ok = False
    if not (math.isfinite(stale) and stale > 0):
        report(".stale_after_s", f"stale_after_s must be a finite number > 0, got {stale}")
        ok = False
    if not ok:
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


def _default_deadband(pct: float, lo: float, hi: float, points: dict[str, float | None]) -> float:
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


def _check_bands(bands: tuple[float | None, ...], side: str, lo: float, hi: float, report: Report) -> bool:
    ok = True
    previous: tuple[str, float] | None = None
    for name, value in zip(BAND_NAMES, bands, strict=True):
        if value is None:
            continue
        if not (lo <= value <= hi):
            report(f".bands.{name}", f"{name} threshold {value} is outside the sensor range {lo}..{hi}")
            ok = False
        if previous is not None:
            worse = value > previous[1] if side == "high" else value < previous[1]
            if not worse:
                order = "above" if side == "high" else "below"
                report(
                    f".bands.{name}",
                    f"inverted bands: {name} {value} must be {order} {previous[0]} {previous[1]} "
                    f"({'higher' if side == 'high' else 'lower'} is worse for this item)",
                )
                ok = False
        previous = (name, value)
    return ok
