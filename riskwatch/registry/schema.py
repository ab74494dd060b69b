"""The site registry document schema (what a YAML file may say), validated by pydantic.

This is the *schema*; `models.py` holds the resolved runtime records (defaults applied, references
checked). Fields left out here take the per-type defaults of `types.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Ids appear in MQTT topics (site, gateway) and Kafka keys: no '/', '+', '#', spaces.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$", max_length=120)]
ColourName = Literal["blue", "yellow", "orange", "red"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BandsSpec(_Spec):
    """Tailings per-point thresholds (GB 51108 §8.3): blue < yellow < orange < red in severity."""

    blue: float | None = None
    yellow: float | None = None
    orange: float | None = None
    red: float | None = None


class SensorSpec(_Spec):
    id: Id
    type: str
    name: str = ""
    uom: str | None = None
    unit: Id | None = None  # hazard source id: only for sensors listed at site level
    gateway: Id | None = None
    location: str | None = None  # coal methane: longwall_face, return_corner, ...
    role: Literal["measure", "gas_main_pressure", "cutoff_valve"] | None = None
    range: tuple[float, float] | None = None
    l1_high: float | None = None
    l2_high: float | None = None
    l1_low: float | None = None
    l2_low: float | None = None
    bands: BandsSpec | None = None
    deadband: float | None = None
    on_delay_s: float | None = None
    off_delay_s: float | None = None
    stale_after_s: float | None = None


class UnitSpec(_Spec):
    id: Id
    kind: str
    name: str = ""
    hazard_grade: Annotated[int, Field(ge=1, le=4)] | None = None  # GB 18218-2018 grade 1..4
    gateway: Id | None = None  # default gateway of its sensors
    sensors: list[SensorSpec] = []


class GatewaySpec(_Spec):
    id: Id
    name: str = ""


class SiteSpec(_Spec):
    id: Id
    region: Id
    name: str = ""
    industry: str
    static_grade: ColourName | None = None
    static_score: Annotated[float, Field(ge=0, le=100)] | None = None  # 应急〔2018〕19号 score
    # WGS-84 degrees of the site's main gate, for the board's map; given together or not at all.
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    rules: str | None = None  # a rule set name; default: the set of its industry
    gateways: list[GatewaySpec] = []
    units: list[UnitSpec] = []
    sensors: list[SensorSpec] = []  # flat layout: each names its `unit`


class RegionSpec(_Spec):
    id: Id
    name: str = ""


class RuleSpec(_Spec):
    name: str
    colour: ColourName
    kind: Literal["count", "kiln_cutoff", "interlock_bypass", "tailings_rollup"] = "count"
    states: list[Literal["l1", "l2", "fault", "stale"]] = []
    groups: list[str] = []
    min_sensors: Annotated[int, Field(ge=1)] = 1
    min_quantities: Annotated[int, Field(ge=1)] = 1
    min_duration_s: Annotated[float, Field(ge=0)] = 0.0
    confirm_within_s: Annotated[float, Field(gt=0)] = 10.0


class RegistryDoc(_Spec):
    version: Literal[1] = 1
    regions: list[RegionSpec]
    sites: list[SiteSpec]
    rule_sets: dict[str, list[RuleSpec]] = {}
