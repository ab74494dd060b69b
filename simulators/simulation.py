"""A whole simulated estate: the registry's sensors, one plant per site, faults, grouped by gateway.

Pure and deterministic: `tick(t, dt)` returns what every gateway would send at time t. Publishing it
over MQTT is simulated_gateway.py's job, so scenarios and tests can drive the physics without a broker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simulators.faults import Fault, FaultInjector
from simulators.plants import Incident, Plant, PlantEvent, build_plants
from simulators.sensors import SimSensor, SimulatorError, from_registry


@dataclass(frozen=True, slots=True)
class GatewayBatch:
    """The readings one gateway sends in one tick."""

    site: str
    gateway: str
    sensor_ids: tuple[str, ...]
    values: npt.NDArray[np.float64]
    ts: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.sensor_ids)


@dataclass(frozen=True, slots=True)
class Tick:
    t: float
    batches: tuple[GatewayBatch, ...]
    events: tuple[PlantEvent, ...]
    disconnected: frozenset[str]


class Simulation:
    """Plants plus faults over a fixed sensor list (registry index order)."""

    def __init__(
        self,
        sensors: Sequence[SimSensor],
        industries: Mapping[str, str],
        seed: int = 0,
        speed: Mapping[str, float] | None = None,
    ) -> None:
        self.sensors = tuple(sensors)
        self.ids = np.array([s.id for s in self.sensors], dtype=object)
        self.site_of_gateway = {s.gateway: s.site for s in self.sensors}
        self.plants: dict[str, Plant] = build_plants(self.sensors, industries, seed, speed)
        position = {s.id: i for i, s in enumerate(self.sensors)}
        self.plant_positions = {
            site: np.array([position[s.id] for s in plant.sensors], dtype=np.int64)
            for site, plant in self.plants.items()
        }
        by_gateway: dict[str, list[int]] = {}
        for i, s in enumerate(self.sensors):
            by_gateway.setdefault(s.gateway, []).append(i)
        self.gateway_positions = {gw: np.array(pos, dtype=np.int64) for gw, pos in by_gateway.items()}
        self.faults = FaultInjector(self.sensors, seed)
        self.truth = np.array([s.normal_value() for s in self.sensors])

    @classmethod
    def from_registry(
        cls, registry: Any, seed: int = 0, speed: Mapping[str, float] | None = None
    ) -> Simulation:
        industries = {site.id: site.industry for site in registry.sites.values()}
        return cls(from_registry(registry), industries, seed, speed)

    def plant(self, site: str) -> Plant:
        if site not in self.plants:
            raise SimulatorError(f"no simulated site {site!r}; sites: {', '.join(self.plants)}")
        return self.plants[site]

    def inject(self, site: str, incident: Incident) -> None:
        self.plant(site).apply(incident)

    def start_fault(self, fault: Fault, t: float) -> None:
        self.faults.start(fault, t)

    def stop_fault(self, kind: str, target: str) -> None:
        self.faults.stop(kind, target)

    def tick(self, t: float, dt: float) -> Tick:
        """Advance every plant by dt to t and return each connected gateway's batch."""
        events: list[PlantEvent] = []
        for site, plant in self.plants.items():
            self.truth[self.plant_positions[site]] = plant.step(t, dt)
            events.extend(plant.drain_events())
        faulted = self.faults.apply(t, self.truth)
        disconnected = frozenset(self.faults.disconnected)
        batches = []
        for gw, pos in self.gateway_positions.items():
            if gw in disconnected:
                continue
            sel = pos[faulted.keep[pos]]
            if sel.size == 0:
                continue
            batches.append(
                GatewayBatch(
                    self.site_of_gateway[gw],
                    gw,
                    tuple(self.ids[sel]),
                    faulted.values[sel],
                    t + faulted.skew[sel],
                )
            )
        events = [e for e in events if e.gateway not in disconnected]
        return Tick(t, tuple(batches), tuple(events), disconnected)
