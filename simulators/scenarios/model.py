"""Scenario files: a registry, timed injections and the warnings the pipeline must (and must not) give.

    name: tank-farm-leak
    registry: registry.yaml          # relative to this file; the pipeline must run with the same one
    duration_s: 150
    speed: {TAIL-01: 60}             # physics speed-up per site (timestamps stay real, see plants/base.py)
    injections:
      - {at: 30, site: CHEM-01, incident: leak, unit: CHEM-01-TF1, params: {severity: 1.0}}
      - {at: 40, fault: stuck, target: CHEM-01-TF1-LEL-02, params: {value: 60}}
      - {at: 90, fault_stop: stuck, target: CHEM-01-TF1-LEL-02}
    expect:                          # entity reaches colour between after and by (scenario seconds)
      - {entity: CHEM-01-TF1, colour: red, after: 30, by: 90}
    forbid:                          # colours that must not appear ('*' = any entity of the sites)
      - {entity: CHEM-02, colours: [blue, yellow, orange, red], from: 20}

Times are seconds since the scenario started; `by` is when the warning must have arrived on
`rw.warnings`, as a duty officer would see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from riskwatch.errors import ConfigError
from riskwatch.levels import Colour
from simulators.faults import FAULTS

Seconds = Annotated[float, Field(ge=0)]
Params = dict[str, float | bool | str]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Injection(_Spec):
    """One timed change: a plant incident, a fault starting, or a fault ending."""

    at: Seconds
    site: str = ""
    incident: str = ""
    unit: str = ""
    fault: str = ""
    fault_stop: str = ""
    target: str = ""
    params: Params = {}

    @model_validator(mode="after")
    def _one_kind(self) -> Injection:
        kinds = [k for k in (self.incident, self.fault, self.fault_stop) if k]
        if len(kinds) != 1:
            raise ValueError("give exactly one of incident, fault, fault_stop")
        if self.incident and not self.site:
            raise ValueError("an incident needs the site it happens at")
        if (self.fault or self.fault_stop) and not self.target:
            raise ValueError("a fault needs a target (sensor id, or gateway id for gateway faults)")
        for kind in (self.fault, self.fault_stop):
            if kind and kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        return self

    def describe(self) -> str:
        if self.incident:
            where = f"{self.site}/{self.unit}" if self.unit else self.site
            extra = " ".join(f"{k}={v}" for k, v in self.params.items())
            return f"incident {self.incident} at {where} {extra}".rstrip()
        if self.fault:
            return f"fault {self.fault} on {self.target}"
        return f"fault {self.fault_stop} on {self.target} ends"


def _colour(value: Any) -> Colour:
    if isinstance(value, Colour):
        return value
    return Colour.parse(str(value))


class Expectation(_Spec):
    """`entity` (unit, site or region id) must turn `colour` between `after` and `by`."""

    entity: str
    colour: str
    after: Seconds = 0.0
    by: Seconds

    @model_validator(mode="after")
    def _check(self) -> Expectation:
        _colour(self.colour)
        if self.by <= self.after:
            raise ValueError(f"'by' ({self.by}) must be later than 'after' ({self.after})")
        return self

    @property
    def level(self) -> Colour:
        return _colour(self.colour)


class Forbidden(_Spec):
    """None of `colours` may appear for `entity` ('*' = any entity of the scenario) in [from, to]."""

    entity: str
    colours: list[str]
    start: Seconds = Field(0.0, alias="from")
    end: Seconds | None = Field(None, alias="to")

    @model_validator(mode="after")
    def _check(self) -> Forbidden:
        if not self.colours:
            raise ValueError("list at least one colour")
        for c in self.colours:
            _colour(c)
        return self

    @property
    def levels(self) -> frozenset[Colour]:
        return frozenset(_colour(c) for c in self.colours)


class Scenario(_Spec):
    name: str
    description: str = ""
    registry: str = "registry.yaml"
    duration_s: Annotated[float, Field(gt=0)]
    tick_s: Annotated[float, Field(gt=0, le=30)] = 1.0
    seed: int = 0
    speed: dict[str, Annotated[float, Field(gt=0)]] = {}
    injections: list[Injection] = []
    expect: list[Expectation] = []
    forbid: list[Forbidden] = []
    source: str = "<scenario>"

    @model_validator(mode="after")
    def _within_duration(self) -> Scenario:
        for inj in self.injections:
            if inj.at > self.duration_s:
                raise ValueError(f"injection at {inj.at} s is after the end ({self.duration_s} s)")
        for exp in self.expect:
            if exp.by > self.duration_s:
                raise ValueError(f"expectation for {exp.entity} 'by' {exp.by} s is after the end")
        return self

    def registry_path(self) -> Path:
        path = Path(self.registry)
        return path if path.is_absolute() else Path(self.source).parent / path

    def schedule(self) -> list[Injection]:
        return sorted(self.injections, key=lambda i: i.at)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def parse_scenario(doc: Any, source: str = "<scenario>") -> Scenario:
    """Validate a scenario document; every problem is reported with file, path and reason."""
    if not isinstance(doc, dict):
        raise ConfigError(source, "(top)", "a scenario must be a mapping")
    try:
        return Scenario.model_validate({**doc, "source": source})
    except ValidationError as exc:
        first = exc.errors()[0]
        problems = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(source, _where(first["loc"]), problems) from None


def load_scenario(path: Path) -> Scenario:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "(file)", f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "(file)", f"not valid YAML: {exc}") from None
    return parse_scenario(doc, str(path))
