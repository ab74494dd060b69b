"""Resolved site registry records: defaults applied, every reference checked. Immutable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from riskwatch.registry.rules import Rule


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Gateway:
    id: str
    site: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Unit:
    """A hazard source (tank farm, process unit, working face, dam, kiln)."""

    id: str
    site: str
    kind: str
    name: str = ""
    hazard_grade: int | None = None  # GB 18218-2018 major hazard source grade 1..4


@dataclass(frozen=True, slots=True)
class Site:
    """An enterprise, mine, tailings pond or kiln plant."""

    id: str
    region: str
    name: str
    industry: str
    static_grade: str | None  # Colour label of the static risk grade; a baseline, never mixed in
    static_score: float | None
    rule_set: str  # name of the rule set its units use
    lat: float | None = None  # WGS-84 degrees, for the board's map
    lon: float | None = None


class Sensor(NamedTuple):
    """One monitoring point with its resolved set points (None = no such set point).

    A NamedTuple rather than a frozen dataclass: it is built 200k times when a province loads.
    """

    id: str
    site: str
    unit: str  # hazard source id
    gateway: str
    quantity: str  # type name, e.g. "flammable_gas", "co", "methane"
    group: str  # quantity group: flammable_gas, toxic_gas, oxygen, methane, process, tailings, ...
    uom: str
    index: int  # type: ignore[assignment]  # dense 0..N-1 in file order (shadows tuple.index on purpose)
    range_low: float
    range_high: float
    l1_high: float | None
    l2_high: float | None
    l1_low: float | None
    l2_low: float | None
    deadband: float
    on_delay_s: float
    off_delay_s: float
    stale_after_s: float
    role: str = "measure"  # "gas_main_pressure" / "cutoff_valve" for the kiln rule
    location: str | None = None  # coal methane location
    # Tailings points: thresholds (blue, yellow, orange, red), None where the designer set none; on the
    # "low" side a lower value is worse. l1_* then mirrors blue/yellow and l2_* orange/red.
    bands: tuple[float | None, float | None, float | None, float | None] | None = None
    band_side: str | None = None
    name: str = ""


RuleSets = dict[str, tuple[Rule, ...]]
