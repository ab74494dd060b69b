"""A coal mine: methane at faces and return airways follows ventilation (CH4 % = emission / airflow).

Each working face (unit) has a design airflow and a methane emission giving ~0.35 % CH4 at the face.
Where a sensor sits decides what it sees (煤矿安全规程 sensor locations, docs/domain.md): the return corner
a little more than the face, the return airway a little less, intake air almost none.

Incidents: `ventilation_failure` (unit, airflow: fraction of design left), `ventilation_restore`,
`outburst` (unit, factor: emission multiplier), `outburst_stop`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulators.plants.base import Incident, Plant, first_order
from simulators.sensors import SimSensor

FACE_CH4 = 0.35  # %CH4 at the face in normal ventilation, well under the 1.0 % alarm
MIXING_TAU_S = 20.0  # airway mixing plus sensor response
# Multiplier of the face concentration by location keyword (first match wins).
LOCATION_FACTOR: tuple[tuple[str, float], ...] = (
    ("intake", 0.1),
    ("corner", 1.15),
    ("upper_corner", 1.15),
    ("return", 0.9),
    ("shearer", 1.05),
    ("heading", 1.0),
    ("face", 1.0),
)


def location_factor(location: str) -> float:
    key = location.lower()
    if "drainage" in key:
        return 0.0  # drainage roadways carry their own (drained) gas, modelled as constant
    for word, factor in LOCATION_FACTOR:
        if word in key:
            return factor
    return 1.0


class CoalMine(Plant):
    industry = "coal_mine"
    incidents = ("ventilation_failure", "ventilation_restore", "outburst", "outburst_stop")

    def __init__(self, site: str, sensors: Sequence[SimSensor], seed: int = 0, speed: float = 1.0) -> None:
        super().__init__(site, sensors, seed, speed)
        self.ch4 = self.of_kind("methane")
        self.air = self.of_kind("airflow")
        self.co = self.of_kind("toxic")
        n = len(self.units)
        self.airflow = np.ones(n)  # fraction of design airflow per face
        self.emission = np.ones(n)  # multiple of normal emission per face
        self.factor = np.array([location_factor(s.location or s.role) for s in self.sensors])
        drainage = self.factor == 0.0
        self.factor[drainage] = 1.0
        self.base_ch4 = np.where(drainage, self.normal, FACE_CH4)
        self.values[self.ch4] = (self.base_ch4 * self.factor)[self.ch4]

    def concentration(self) -> np.ndarray:
        """Steady-state CH4 % per methane sensor for the current airflow and emission."""
        u = self.unit_of[self.ch4]
        face = self.base_ch4[self.ch4] * self.emission[u] / np.maximum(self.airflow[u], 0.02)
        return np.minimum(face * self.factor[self.ch4], 100.0)

    def advance(self, t: float, dt: float) -> None:
        v = self.values
        v[self.ch4] = first_order(v[self.ch4], self.concentration(), dt, MIXING_TAU_S)
        air_target = self.normal[self.air] * self.airflow[self.unit_of[self.air]]
        v[self.air] = first_order(v[self.air], air_target, dt, 5.0)
        # CO stays at its background; a fire model is out of scope.
        v[self.co] = self.normal[self.co] * 0.2

    def apply(self, incident: Incident) -> None:
        units = self.target_units(incident)
        if incident.kind == "ventilation_failure":
            self.airflow[units] = incident.num("airflow", 0.25)
        elif incident.kind == "ventilation_restore":
            self.airflow[units] = 1.0
        elif incident.kind == "outburst":
            self.emission[units] = incident.num("factor", 4.0)
        elif incident.kind == "outburst_stop":
            self.emission[units] = 1.0
        else:
            super().apply(incident)
