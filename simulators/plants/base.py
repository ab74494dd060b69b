"""What every plant model shares: sensor bookkeeping, seeded noise, incidents and discrete events.

A plant is one site. `step(t, dt)` advances its physics by `dt` seconds and returns one value per
sensor (numpy, aligned with `sensors`). Time is injected, the random generator is seeded, so a plant
is deterministic and testable without a clock or a broker. Slow processes (a tailings pond filling in
a rainstorm) can run faster than the clock with `speed`: timestamps stay on the real clock, only the
physics is compressed, so the engine's future-timestamp and stale rules still hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from simulators.sensors import SimSensor, SimulatorError

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Incident:
    """A physical disturbance injected into a plant: kind, target unit ('' = whole site), parameters."""

    kind: str
    unit: str = ""
    params: Mapping[str, float | bool | str] = field(default_factory=dict)

    def num(self, name: str, default: float) -> float:
        value = self.params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SimulatorError(f"incident {self.kind}: parameter {name} must be a number, got {value!r}")
        return float(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.params.get(name, default)
        if not isinstance(value, bool):
            raise SimulatorError(f"incident {self.kind}: parameter {name} must be true or false")
        return value


@dataclass(frozen=True, slots=True)
class PlantEvent:
    """A discrete event a gateway reports on its events topic (valve closed, ...)."""

    t: float
    site: str
    gateway: str
    unit: str
    kind: str
    detail: str = ""


def first_order(current: Array, target: Array, dt: float, tau: float) -> Array:
    """Exact first-order lag step: sensors and rooms respond with a time constant, never instantly."""
    if tau <= 0:
        return target.copy()
    return target + (current - target) * np.exp(-dt / tau)


class Plant:
    """Base plant: maps sensors to physical variable kinds and produces noisy values per step."""

    industry = "generic"
    incidents: tuple[str, ...] = ()

    def __init__(self, site: str, sensors: Sequence[SimSensor], seed: int = 0, speed: float = 1.0) -> None:
        if not sensors:
            raise SimulatorError(f"site {site} has no sensors to simulate")
        self.site = site
        self.sensors = tuple(sensors)
        self.speed = float(speed)
        self.rng = np.random.default_rng(seed)
        self.units: tuple[str, ...] = tuple(dict.fromkeys(s.unit for s in self.sensors))
        unit_pos = {u: i for i, u in enumerate(self.units)}
        self.unit_of = np.array([unit_pos[s.unit] for s in self.sensors], dtype=np.int64)
        self.kinds = np.array([s.kind for s in self.sensors])
        self.normal = np.array([s.normal_value() for s in self.sensors], dtype=np.float64)
        self.low = np.array([s.range_low for s in self.sensors], dtype=np.float64)
        self.high = np.array([s.range_high for s in self.sensors], dtype=np.float64)
        span = np.where(np.isfinite(self.high - self.low), self.high - self.low, np.abs(self.normal) + 1.0)
        # Detector noise: a fraction of a percent of span, but never more than 2 % of the way to the
        # worst set point (a water level with a 2000 m datum range must not jitter by metres).
        red = np.array([np.nan if s.red is None else s.red for s in self.sensors], dtype=np.float64)
        gap = np.where(np.isnan(red), np.inf, np.abs(red - self.normal))
        self.noise = np.minimum(0.003 * span, 0.02 * gap)
        self.values = self.normal.copy()
        self.events: list[PlantEvent] = []
        self.t = 0.0

    # -- helpers for subclasses ---------------------------------------------------------------------
    def of_kind(self, *kinds: str) -> npt.NDArray[np.int64]:
        return np.flatnonzero(np.isin(self.kinds, kinds))

    def unit_index(self, unit: str) -> int:
        if unit not in self.units:
            raise SimulatorError(f"site {self.site} has no unit {unit!r}; units: {', '.join(self.units)}")
        return self.units.index(unit)

    def target_units(self, incident: Incident) -> list[int]:
        return [self.unit_index(incident.unit)] if incident.unit else list(range(len(self.units)))

    def gateway_of_unit(self, unit: int) -> str:
        for s, u in zip(self.sensors, self.unit_of, strict=True):
            if u == unit:
                return s.gateway
        return self.sensors[0].gateway

    def emit(self, unit: int, kind: str, detail: str = "") -> None:
        self.events.append(
            PlantEvent(self.t, self.site, self.gateway_of_unit(unit), self.units[unit], kind, detail)
        )

    # -- the public surface ---------------------------------------------------------------------------
    def step(self, t: float, dt: float) -> Array:
        """Advance the physics by dt seconds (times `speed`) to time t; return one value per sensor."""
        self.t = t
        self.advance(t, dt * self.speed)
        noisy = self.values + self.rng.normal(0.0, 1.0, self.values.shape) * self.noise
        return np.clip(noisy, self.low, self.high)

    def advance(self, t: float, dt: float) -> None:
        """Subclasses update `self.values` here. The base keeps sensors at their normal values."""

    def apply(self, incident: Incident) -> None:
        """Start or stop a disturbance; subclasses handle their own kinds."""
        raise SimulatorError(
            f"site {self.site} ({self.industry}) has no incident {incident.kind!r}; "
            f"known: {', '.join(self.incidents) or 'none'}"
        )

    def drain_events(self) -> list[PlantEvent]:
        out, self.events = self.events, []
        return out
