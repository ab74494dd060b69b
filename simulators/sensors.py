"""The simulators' view of a configured sensor: what a plant model needs to produce its readings.

Simulated sensors are exactly the registry's sensors (the simulators are driven by the registry); this
module only copies the fields a model needs, so the plants stay testable with hand-built sensors.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from riskwatch.errors import RiskwatchError


class SimulatorError(RiskwatchError):
    """A simulator input (registry, scenario, injection) cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class SimSensor:
    """One configured sensor as the simulators see it."""

    id: str
    index: int
    site: str
    unit: str
    gateway: str
    quantity: str
    uom: str
    range_low: float
    range_high: float
    l1_high: float | None = None
    l2_high: float | None = None
    l1_low: float | None = None
    l2_low: float | None = None
    location: str = ""
    role: str = ""
    group: str = ""
    bands: tuple[float | None, float | None, float | None, float | None] = (None, None, None, None)

    @property
    def red(self) -> float | None:
        """The worst configured threshold: tailings red band, else L2, else L1 (either side)."""
        for value in (self.bands[3], self.l2_high, self.l2_low, self.l1_high, self.l1_low):
            if value is not None:
                return value
        return None

    @property
    def kind(self) -> str:
        """The physical variable behind the sensor, from its quantity, role and location names."""
        return classify(self.quantity, self.role, self.group, self.uom)

    def normal_value(self) -> float:
        """A plausible healthy value, well inside the set points."""
        lo, hi = self.range_low, self.range_high
        blue, yellow = self.bands[0], self.bands[1]
        if blue is not None:
            # Tailings bands: sit on the safe side of blue by half the blue-yellow gap.
            gap = (yellow - blue) if yellow is not None else 0.05 * (hi - lo) * (1 if blue < hi else -1)
            return blue - 0.5 * gap
        if self.l1_high is not None and self.l1_low is not None:
            return (self.l1_high + self.l1_low) / 2
        if self.l1_high is not None:
            base = max(lo, 0.0) if math.isfinite(lo) else 0.0
            # Process values run closer to their alarm than gas does to its (gas is near zero).
            share = 0.75 if self.kind in ("temperature", "pressure", "level", "flow") else 0.4
            return base + share * (self.l1_high - base)
        if self.l1_low is not None:
            top = hi if math.isfinite(hi) else self.l1_low * 2
            return self.l1_low + 0.5 * (top - self.l1_low)
        return lo + 0.3 * (hi - lo)


# Keyword table: the first match wins, so specific names come before generic ones.
_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cutoff", ("cutoff", "cut_off", "cut-off", "valve", "shutoff")),
    ("methane", ("methane", "ch4")),
    ("oxygen", ("oxygen", "o2")),
    ("flammable", ("flammable", "lel", "combustible")),
    ("toxic", ("toxic", "h2s", "co_", "nh3", "cl2", "so2", "benzene", "hcn", "phosgene", "oel", "mg/m3")),
    ("airflow", ("airflow", "air_flow", "wind", "ventilation", "air_velocity")),
    ("rainfall", ("rain",)),
    ("phreatic", ("phreatic", "seepage")),
    ("dry_beach", ("beach",)),
    ("freeboard", ("freeboard",)),
    ("displacement", ("displacement", "creep", "deformation", "landslide")),
    ("water_level", ("water_level", "pond_level", "reservoir")),
    ("gas_pressure", ("gas_main", "gas_pressure", "main_pressure")),
    ("pressure", ("pressure",)),
    ("temperature", ("temperature", "temp")),
    ("level", ("level",)),
    ("flow", ("flow",)),
    ("co", ("carbon_monoxide",)),
)


@functools.lru_cache(maxsize=1024)  # a province has few distinct (type, role, group, unit) combinations
def classify(quantity: str, role: str = "", group: str = "", uom: str = "") -> str:
    """Map registry names (role, quantity group, quantity) to a physical variable kind, else 'other'."""
    for text in (role, group, quantity):
        key = text.strip().lower().replace(" ", "_")
        if not key:
            continue
        if key in ("co", "carbon_monoxide"):
            return "toxic"
        for kind, words in _KINDS:
            if any(word in key for word in words):
                return "toxic" if kind == "co" else kind
    unit = uom.strip().lower()
    return {"%lel": "flammable", "%ch4": "methane", "mm": "rainfall", "mg/m3": "toxic"}.get(unit, "other")


def _num(value: Any, default: float) -> float:
    return default if value is None else float(value)


def _bands(raw: Any) -> tuple[float | None, float | None, float | None, float | None]:
    """Tailings bands from the registry as (blue, yellow, orange, red), whatever their container."""
    if raw is None:
        return (None, None, None, None)
    names = ("blue", "yellow", "orange", "red")
    if isinstance(raw, dict):
        got = [raw.get(n) for n in names]
    elif isinstance(raw, list | tuple):
        got = [*list(raw)[:4], None, None, None, None][:4]
    else:
        got = [getattr(raw, n, None) for n in names]
    return tuple(None if v is None else float(v) for v in got)  # type: ignore[return-value]


def from_registry(registry: Any) -> tuple[SimSensor, ...]:
    """The registry's sensors in index order, as SimSensor records."""
    out: list[SimSensor] = []
    for sensor in registry.sensors.values():
        out.append(
            SimSensor(
                id=sensor.id,
                index=int(sensor.index),
                site=sensor.site,
                unit=sensor.unit,
                gateway=sensor.gateway,
                quantity=str(sensor.quantity),
                uom=str(getattr(sensor, "uom", "") or ""),
                range_low=_num(getattr(sensor, "range_low", None), 0.0),
                range_high=_num(getattr(sensor, "range_high", None), 100.0),
                l1_high=getattr(sensor, "l1_high", None),
                l2_high=getattr(sensor, "l2_high", None),
                l1_low=getattr(sensor, "l1_low", None),
                l2_low=getattr(sensor, "l2_low", None),
                location=str(getattr(sensor, "location", "") or ""),
                role=str(getattr(sensor, "role", "") or ""),
                group=str(getattr(sensor, "group", "") or ""),
                bands=_bands(getattr(sensor, "bands", None)),
            )
        )
    out.sort(key=lambda s: s.index)
    return tuple(out)
