"""Sensor quantity types and their defaults, so a sensor needs only its type (and location) in the registry.

Every number here is sourced in docs/domain.md; the standard is cited beside it. Explicit values in
the registry override these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Group = Literal["flammable_gas", "toxic_gas", "oxygen", "methane", "process", "tailings", "gas_main", "valve"]
Role = Literal["measure", "gas_main_pressure", "cutoff_valve"]
BandSide = Literal["high", "low"]

# Gas groups for the DEFAULT rules "any flammable/toxic gas L2" and "gas L2 on >= 2 detectors".
GAS_GROUPS: frozenset[str] = frozenset({"flammable_gas", "toxic_gas"})


@dataclass(frozen=True, slots=True)
class QuantityType:
    """Defaults for one kind of sensor; `None` set points mean "none unless configured"."""

    name: str
    group: Group
    uom: str
    range_low: float | None = None
    range_high: float | None = None
    l1_high: float | None = None
    l2_high: float | None = None
    l1_low: float | None = None
    l2_low: float | None = None
    deadband_pct: float = 2.0  # percent of span
    on_delay_s: float = 0.0
    off_delay_s: float = 10.0
    stale_after_s: float = 120.0
    role: Role = "measure"
    band_side: BandSide | None = None  # tailings: per-point blue/yellow/orange/red thresholds
    needs_location: bool = False
    needs_setpoints: bool = False  # no standard default: the designer must give them


# Gas detectors alarm at once: GB/T 50493-2019 wants a prompt alarm and GB 50166-2019 4.13.2 a <=30 s
# response, so no on-delay; a short off-delay and 2 % deadband keep a clearing gas from chattering.
# Staleness: 120 s = four missed polls at the <=30 s polling of AQ 6201.
def _gas(name: str, group: Group, uom: str, hi: float, l1: float, l2: float) -> QuantityType:
    return QuantityType(name, group, uom, 0.0, hi, l1_high=l1, l2_high=l2)


def _process(name: str, uom: str, deadband_pct: float, delay_s: float) -> QuantityType:
    return QuantityType(
        name,
        "process",
        uom,
        deadband_pct=deadband_pct,
        on_delay_s=delay_s,
        off_delay_s=delay_s,
        needs_setpoints=True,
    )


# Tailings points go stale after 1 h (docs/domain.md); deadband 0.5 % of span unless given.
def _tailings(name: str, uom: str, hi: float, side: BandSide, deadband_pct: float = 0.5) -> QuantityType:
    return QuantityType(
        name, "tailings", uom, 0.0, hi, deadband_pct=deadband_pct, stale_after_s=3600.0, band_side=side
    )


TYPES: dict[str, QuantityType] = {
    t.name: t
    for t in (
        # GB/T 50493-2019 §5.5.2: flammable L1 <= 25 %LEL, L2 <= 50 %LEL; open path 1 / 2 LEL·m.
        _gas("flammable_gas", "flammable_gas", "%LEL", 100.0, 25.0, 50.0),
        _gas("open_path_flammable", "flammable_gas", "LEL·m", 5.0, 1.0, 2.0),
        # Toxic: 100 / 200 %OEL, and the common toxic table in mg/m³ (docs/domain.md "Default set points").
        _gas("toxic_gas", "toxic_gas", "%OEL", 500.0, 100.0, 200.0),
        _gas("h2s", "toxic_gas", "mg/m3", 150.0, 10.0, 20.0),
        _gas("co", "toxic_gas", "mg/m3", 1000.0, 20.0, 40.0),
        _gas("nh3", "toxic_gas", "mg/m3", 350.0, 20.0, 40.0),
        _gas("cl2", "toxic_gas", "mg/m3", 30.0, 1.0, 2.0),
        _gas("so2", "toxic_gas", "mg/m3", 60.0, 5.0, 10.0),
        _gas("benzene", "toxic_gas", "mg/m3", 100.0, 6.0, 12.0),
        _gas("hcn", "toxic_gas", "mg/m3", 30.0, 1.0, 2.0),
        _gas("phosgene", "toxic_gas", "mg/m3", 5.0, 0.5, 1.0),
        # Oxygen: low 19.5 %VOL, high 23.5 %VOL, both first-level alarms.
        QuantityType("oxygen", "oxygen", "%VOL", 0.0, 30.0, l1_high=23.5, l1_low=19.5),
        # Coal methane: alarm (L1) / power-off (L2) by location, see METHANE_BY_LOCATION. Power-off must
        # execute within 2 s (AQ 6201): no on-delay; "power restored < alarm value": no deadband.
        QuantityType(
            "methane", "methane", "%CH4", 0.0, 4.0, deadband_pct=0.0, stale_after_s=60.0, needs_location=True
        ),
        # Process quantities: ISA-18.2 starting points (deadband % of span / delay), docs/domain.md.
        _process("pressure", "kPa", 2.0, 15.0),
        _process("temperature", "degC", 1.0, 60.0),
        _process("level", "m", 5.0, 60.0),
        _process("flow", "m3/h", 5.0, 15.0),
        # Kiln (MEM Order No. 10, 2023, art. 6(5)): gas-main low-pressure alarm and the cut-off valve's
        # confirmation (1 = closed). The low set point is plant-specific.
        QuantityType(
            "gas_main_pressure",
            "gas_main",
            "kPa",
            0.0,
            20.0,
            deadband_pct=2.0,
            on_delay_s=0.0,
            off_delay_s=5.0,
            role="gas_main_pressure",
            needs_setpoints=True,
        ),
        QuantityType(
            "cutoff_valve",
            "valve",
            "state",
            0.0,
            1.0,
            l1_high=0.5,
            deadband_pct=0.0,
            off_delay_s=0.0,
            role="cutoff_valve",
        ),
        # Tailings (GB 51108-2015 §8.3, GB 50863 §5.5): blue < yellow < orange < red per point, set by
        # the designer; depth/freeboard/beach are worse when lower.
        _tailings("dam_displacement", "mm", 1000.0, "high"),
        _tailings("phreatic_depth", "m", 50.0, "low"),
        _tailings("dry_beach_length", "m", 500.0, "low"),
        _tailings("freeboard", "m", 20.0, "low"),
        _tailings("water_level", "m", 2000.0, "high", deadband_pct=0.1),
        _tailings("rainfall", "mm", 500.0, "high", deadband_pct=0.0),
        _tailings("landslide_displacement", "mm", 2000.0, "high"),
    )
}

# Coal mine methane (煤矿安全规程 sensor settings, %CH4): location -> (alarm, power-off).
METHANE_BY_LOCATION: dict[str, tuple[float, float]] = {
    "longwall_face": (1.0, 1.5),
    "return_corner": (1.0, 1.5),
    "face_return_airway": (1.0, 1.0),
    "heading_face": (1.0, 1.5),
    "heading_return": (1.0, 1.0),
    "shearer": (1.0, 1.5),
    "intake": (0.5, 0.5),
    "drainage_roadway": (2.5, 2.5),
}

# Tailings band defaults (docs/domain.md "Default set points"): rainfall yellow = rainstorm >= 50 mm/24 h and the
# national daily warnings' >= 100 mm band as orange; derived bands: orange phreatic depth = 1.1 x red,
# landslide orange = 80 % of red.
RAINFALL_BANDS: dict[str, float] = {"yellow": 50.0, "orange": 100.0}
DERIVED_ORANGE_FROM_RED: dict[str, float] = {"phreatic_depth": 1.1, "landslide_displacement": 0.8}

BAND_NAMES: tuple[str, ...] = ("blue", "yellow", "orange", "red")

INDUSTRIES: tuple[str, ...] = (
    "hazardous_chemicals",
    "coal_mine",
    "non_coal_mine",
    "tailings_pond",
    "gas_kiln",
)

UNIT_KINDS: tuple[str, ...] = (
    "tank_farm",
    "process_unit",
    "warehouse",
    "pipeline",
    "loading_station",
    "working_face",
    "heading_face",
    "roadway",
    "shaft",
    "dam",
    "pond",
    "kiln",
    "gas_station",
    "other",
)


def static_grade_from_score(score: float) -> Literal["blue", "yellow", "orange", "red"]:
    """Static risk grade from the 应急〔2018〕19号 score: >=90 blue, 75-<90 yellow, 60-<75 orange, <60 red."""
    if score >= 90:
        return "blue"
    if score >= 75:
        return "yellow"
    if score >= 60:
        return "orange"
    return "red"
