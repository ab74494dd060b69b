"""Build a Registry from a parsed document: schema per element, defaults, cross-references, all problems."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from riskwatch.levels import Colour
from riskwatch.registry.models import Gateway, Region, Sensor, Site, Unit
from riskwatch.registry.registry import Problem, Registry, RegistryError
from riskwatch.registry.rules import BUILTIN_RULE_SETS, INDUSTRY_RULE_SET, Rule
from riskwatch.registry.schema import GatewaySpec, RegionSpec, RuleSpec, SensorSpec, SiteSpec, UnitSpec
from riskwatch.registry.sensors import resolve_sensor
from riskwatch.registry.types import INDUSTRIES, TYPES, UNIT_KINDS, static_grade_from_score

_GROUPS = frozenset(t.group for t in TYPES.values())


def _loc(base: str, loc: tuple[Any, ...]) -> str:
    path = base
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(document)"


class Builder:
    """Turns a parsed document into a Registry, collecting every problem before raising."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def report(self, path: str, reason: str) -> None:
        self.problems.append(Problem.of(self.source, path, reason))

    def spec(self, model: type[BaseModel], raw: Any, path: str, skip: tuple[str, ...] = ()) -> Any:
        """Validate one element (without its nested lists `skip`), reporting schema errors at their path."""
        if not isinstance(raw, dict):
            self.report(path, f"expected a mapping, got {type(raw).__name__}")
            return None
        try:
            return model.model_validate({k: v for k, v in raw.items() if k not in skip} if skip else raw)
        except ValidationError as exc:
            for err in exc.errors():
                self.report(_loc(path, tuple(err["loc"])), err["msg"])
            return None

    def items(self, raw: Any, path: str) -> list[Any]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.report(path, f"expected a list, got {type(raw).__name__}")
            return []
        return raw

    def build(self, doc: Any) -> Registry:
        if not isinstance(doc, dict):
            raise RegistryError(
                [Problem.of(self.source, "(document)", "expected a mapping with regions and sites")]
            )
        for key in doc.keys() - {"version", "regions", "sites", "rule_sets"}:
            where = key if isinstance(key, str) and key.strip() else repr(key)  # never an empty path
            self.report(where, "unknown key; expected version, regions, sites, rule_sets")
        if doc.get("version", 1) != 1:
            self.report("version", f"unsupported registry version {doc.get('version')!r}; expected 1")
        for key in ("regions", "sites"):
            if key not in doc:
                self.report(key, "missing: a registry needs regions and sites")
        rule_sets = self.rule_sets(doc.get("rule_sets"))
        regions: dict[str, Region] = {}
        for i, raw in enumerate(self.items(doc.get("regions"), "regions")):
            spec = self.spec(RegionSpec, raw, f"regions[{i}]")
            if spec is None:
                continue
            if spec.id in regions:
                self.report(f"regions[{i}].id", f"duplicate region id {spec.id!r}")
                continue
            regions[spec.id] = Region(spec.id, spec.name)
        self.regions, self.rule_set_map = regions, rule_sets
        self.sites: dict[str, Site] = {}
        self.units: dict[str, Unit] = {}
        self.gateways: dict[str, Gateway] = {}
        self.sensors: dict[str, Sensor] = {}
        self.first_seen: dict[str, str] = {}  # sensor id -> path, for duplicate messages
        self.templates: dict[tuple[Any, ...], dict[str, Any]] = {}  # resolved fields of repeated specs
        for i, raw in enumerate(self.items(doc.get("sites"), "sites")):
            self.site(raw, f"sites[{i}]")
        if self.problems:
            raise RegistryError(self.problems)
        return Registry(self.source, regions, self.sites, self.units, self.gateways, self.sensors, rule_sets)

    def rule_sets(self, raw: Any) -> dict[str, tuple[Rule, ...]]:
        sets = dict(BUILTIN_RULE_SETS)
        if raw is None:
            return sets
        if not isinstance(raw, dict):
            self.report("rule_sets", "expected a mapping of rule set name -> list of rules")
            return sets
        for name, rules in raw.items():
            resolved: list[Rule] = []
            for j, rule_raw in enumerate(self.items(rules, f"rule_sets.{name}")):
                path = f"rule_sets.{name}[{j}]"
                spec: RuleSpec | None = self.spec(RuleSpec, rule_raw, path)
                if spec is None:
                    continue
                for group in spec.groups:
                    if group not in _GROUPS:
                        self.report(
                            f"{path}.groups", f"unknown quantity group {group!r}; one of {sorted(_GROUPS)}"
                        )
                if spec.kind == "count" and not spec.states:
                    self.report(f"{path}.states", "a count rule needs states: [l1, l2, fault, stale]")
                resolved.append(
                    Rule(
                        spec.name,
                        Colour.parse(spec.colour),
                        spec.kind,
                        tuple(spec.states),
                        tuple(spec.groups),
                        spec.min_sensors,
                        spec.min_quantities,
                        spec.min_duration_s,
                        spec.confirm_within_s,
                    )
                )
            sets[str(name)] = tuple(resolved)
        return sets

    def site(self, raw: Any, path: str) -> None:
        spec: SiteSpec | None = self.spec(SiteSpec, raw, path, skip=("gateways", "units", "sensors"))
        if spec is None:
            if not isinstance(raw, dict):
                return
            # Keep checking what the site holds, so one bad field does not hide the other problems.
            spec = SiteSpec.model_construct(id=str(raw.get("id")), region="", industry="", rules="default")
        ok = True
        if spec.id in self.sites:
            self.report(f"{path}.id", f"duplicate site id {spec.id!r}")
            return
        if spec.region and spec.region not in self.regions:
            self.report(
                f"{path}.region", f"unknown region {spec.region!r}; regions: {', '.join(self.regions)}"
            )
            ok = False
        if spec.industry and spec.industry not in INDUSTRIES:
            self.report(
                f"{path}.industry", f"unknown industry {spec.industry!r}; one of {', '.join(INDUSTRIES)}"
            )
            ok = False
        rule_set = spec.rules or (spec.industry if spec.industry in self.rule_set_map else None)
        rule_set = rule_set or INDUSTRY_RULE_SET.get(spec.industry, "default")
        if rule_set not in self.rule_set_map:
            self.report(
                f"{path}.rules", f"unknown rule set {rule_set!r}; rule sets: {', '.join(self.rule_set_map)}"
            )
            ok = False
        grade = spec.static_grade
        if spec.static_score is not None:
            scored = static_grade_from_score(spec.static_score)
            if grade is not None and grade != scored:
                self.report(
                    f"{path}.static_grade",
                    f"static_grade {grade} disagrees with static_score {spec.static_score} ({scored})",
                )
                ok = False
            grade = scored
        if (spec.lat is None) != (spec.lon is None):
            given, missing = ("lat", "lon") if spec.lon is None else ("lon", "lat")
            self.report(
                f"{path}.{missing}",
                f"`{given}` is given without `{missing}`: a site's map position needs both",
            )
            ok = False
        site = Site(
            spec.id,
            spec.region,
            spec.name,
            spec.industry,
            grade,
            spec.static_score,
            rule_set,
            spec.lat,
            spec.lon,
        )
        if ok:
            self.sites[spec.id] = site
        gateways: list[str] = []
        for j, graw in enumerate(self.items(raw.get("gateways"), f"{path}.gateways")):
            g: GatewaySpec | None = self.spec(GatewaySpec, graw, f"{path}.gateways[{j}]")
            if g is None:
                continue
            if g.id in self.gateways:
                other = self.gateways[g.id].site
                self.report(
                    f"{path}.gateways[{j}].id", f"duplicate gateway id {g.id!r} (already in site {other})"
                )
                continue
            self.gateways[g.id] = Gateway(g.id, spec.id, g.name)
            gateways.append(g.id)
        default_gw = gateways[0] if len(gateways) == 1 else None
        site_units: dict[str, str | None] = {}  # unit id -> its default gateway
        for j, uraw in enumerate(self.items(raw.get("units"), f"{path}.units")):
            upath = f"{path}.units[{j}]"
            u: UnitSpec | None = self.spec(UnitSpec, uraw, upath, skip=("sensors",))
            if u is None:
                if isinstance(uraw, dict):  # still check its sensors
                    for k, sraw in enumerate(self.items(uraw.get("sensors"), f"{upath}.sensors")):
                        self.sensor(sraw, f"{upath}.sensors[{k}]", spec.id, str(uraw.get("id")), default_gw)
                continue
            if u.id in self.units:
                self.report(
                    f"{upath}.id", f"duplicate unit id {u.id!r} (already in site {self.units[u.id].site})"
                )
                continue
            if u.kind not in UNIT_KINDS:
                self.report(f"{upath}.kind", f"unknown unit kind {u.kind!r}; one of {', '.join(UNIT_KINDS)}")
            if u.gateway is not None:
                self.check_gateway(u.gateway, spec.id, f"{upath}.gateway")
            self.units[u.id] = Unit(u.id, spec.id, u.kind, u.name, u.hazard_grade)
            site_units[u.id] = u.gateway or default_gw
            for k, sraw in enumerate(self.items(uraw.get("sensors"), f"{upath}.sensors")):
                self.sensor(sraw, f"{upath}.sensors[{k}]", spec.id, u.id, site_units[u.id])
        for k, sraw in enumerate(self.items(raw.get("sensors"), f"{path}.sensors")):
            spath = f"{path}.sensors[{k}]"
            unit_id = sraw.get("unit") if isinstance(sraw, dict) else None
            if unit_id is None:
                self.report(
                    f"{spath}.unit", "a sensor listed at site level must name its unit (hazard source)"
                )
                continue
            if not isinstance(unit_id, str):  # a list or mapping here cannot even be looked up
                self.report(f"{spath}.unit", f"expected a hazard source id, got {type(unit_id).__name__}")
                continue
            if unit_id not in site_units:
                if unit_id in self.units:
                    owner = self.units[unit_id].site
                    self.report(f"{spath}.unit", f"unit {unit_id!r} belongs to site {owner}, not {spec.id}")
                else:
                    self.report(
                        f"{spath}.unit",
                        f"unknown unit {unit_id!r}; units of {spec.id}: {', '.join(site_units)}",
                    )
                continue
            self.sensor(sraw, spath, spec.id, unit_id, site_units[unit_id])

    def check_gateway(self, gateway: str, site: str, path: str) -> bool:
        known = self.gateways.get(gateway)
        if known is None:
            self.report(path, f"unknown gateway {gateway!r}; declare it under the site's gateways")
            return False
        if known.site != site:
            self.report(path, f"gateway {gateway!r} belongs to site {known.site}, not {site}")
            return False
        return True

    def sensor(self, raw: Any, path: str, site: str, unit: str, default_gw: str | None) -> None:
        key = _template_key(raw)
        template = self.templates.get(key) if key is not None else None
        if template is not None and self.sensor_fast(raw, path, site, unit, default_gw, template):
            return
        spec: SensorSpec | None = self.spec(SensorSpec, raw, path)
        if spec is None:
            return
        if spec.id in self.first_seen:
            self.report(
                f"{path}.id", f"duplicate sensor id {spec.id!r} (first at {self.first_seen[spec.id]})"
            )
            return
        self.first_seen[spec.id] = path
        if spec.unit is not None and spec.unit != unit:
            self.report(f"{path}.unit", f"sensor is listed under unit {unit} but names unit {spec.unit!r}")
            return
        gateway = spec.gateway or default_gw
        if gateway is None:
            self.report(
                f"{path}.gateway", f"missing gateway: site {site} has several; name one here or on the unit"
            )
            return
        if spec.gateway is not None and not self.check_gateway(gateway, site, f"{path}.gateway"):
            return

        sensor = resolve_sensor(
            spec,
            site=site,
            unit=unit,
            gateway=gateway,
            index=len(self.sensors),
            report=lambda suffix, reason: self.report(path + suffix, reason),
        )
        if sensor is not None:
            self.sensors[sensor.id] = sensor
            if key is not None:
                fields = {f: getattr(sensor, f) for f in _TEMPLATE_FIELDS}
                self.templates[key] = fields

    def sensor_fast(
        self,
        raw: dict[str, Any],
        path: str,
        site: str,
        unit: str,
        default_gw: str | None,
        template: dict[str, Any],
    ) -> bool:
        """A sensor whose every field but id/name/gateway/unit matches one already resolved: reuse it.

        Returns False (take the full path) when anything is unusual, so error messages stay identical.
        """
        sid, name, gateway, named_unit = (
            raw.get("id"),
            raw.get("name", ""),
            raw.get("gateway"),
            raw.get("unit"),
        )
        if (
            not (type(sid) is str and len(sid) <= 120 and _ID.fullmatch(sid) and type(name) is str)
            or sid in self.first_seen
        ):
            return False
        if named_unit is not None and named_unit != unit:
            return False
        gateway = gateway if gateway is not None else default_gw
        if type(gateway) is not str:
            return False
        known = self.gateways.get(gateway)
        if known is None or known.site != site:
            return False
        self.first_seen[sid] = path
        self.sensors[sid] = Sensor(
            id=sid, site=site, unit=unit, gateway=gateway, index=len(self.sensors), name=name, **template
        )
        return True


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")
_PER_SENSOR = frozenset({"id", "name", "gateway", "unit"})
_TEMPLATE_FIELDS = tuple(
    f for f in Sensor._fields if f not in {"id", "site", "unit", "gateway", "index", "name"}
)
_SCALARS = (str, int, float, bool, type(None))


def _template_key(raw: Any) -> tuple[Any, ...] | None:
    if type(raw) is not dict:
        return None
    return tuple((k, v if type(v) in _SCALARS else repr(v)) for k, v in raw.items() if k not in _PER_SENSOR)
