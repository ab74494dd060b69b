"""A hazardous-chemicals tank farm: levels filling and emptying, a daily temperature cycle, pressure
following temperature, flammable and toxic gas detectors with background noise, and leaks.

Incidents: `leak` (unit, severity: 1.0 puts the nearest detector at ~1.5 x its L2), `leak_stop`,
`overfill` (unit: the filling pump does not stop), `overfill_stop`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from simulators.plants.base import Incident, Plant, first_order
from simulators.sensors import SimSensor

DETECTOR_TAU_S = 15.0  # plume build-up plus detector response (GB 50166: <= 30 s to test gas)
FILL_TIME_S = 4 * 3600.0  # a full tank turnover in about four hours
DAY_S = 86400.0
TZ_OFFSET_S = 8 * 3600.0  # the daily cycle peaks mid-afternoon China time


class TankFarm(Plant):
    industry = "hazardous_chemicals"
    incidents = ("leak", "leak_stop", "overfill", "overfill_stop")

    def __init__(self, site: str, sensors: Sequence[SimSensor], seed: int = 0, speed: float = 1.0) -> None:
        super().__init__(site, sensors, seed, speed)
        self.gas = self.of_kind("flammable", "toxic")
        self.level = self.of_kind("level")
        self.temp = self.of_kind("temperature")
        self.pres = self.of_kind("pressure")
        self.leak = np.zeros(len(self.units))  # severity per unit
        # Detector exposure to a leak in its unit: the k-th detector of a unit sees 0.85**k of the plume.
        exposure = np.zeros(len(self.sensors))
        seen: dict[int, int] = {}
        for i in self.gas:
            k = seen.get(int(self.unit_of[i]), 0)
            seen[int(self.unit_of[i])] = k + 1
            exposure[i] = 0.85**k
        self.exposure = exposure
        l2 = np.array([s.l2_high if s.l2_high is not None else 0.0 for s in self.sensors])
        self.peak = 1.5 * l2  # concentration at exposure 1, severity 1
        self.background = np.where(np.isin(self.kinds, ("flammable", "toxic")), 0.04 * l2, 0.0)
        self.values[self.gas] = self.background[self.gas]
        # Tanks start at staggered fill fractions and alternate filling / emptying between two marks.
        top = np.array([s.l1_high if s.l1_high is not None else s.range_high for s in self.sensors])
        bottom = np.array([s.l1_low if s.l1_low is not None else s.range_low for s in self.sensors])
        self.mark_hi = bottom + 0.85 * (top - bottom)
        self.mark_lo = bottom + 0.2 * (top - bottom)
        self.fill_rate = (self.high - self.low) / FILL_TIME_S
        self.direction = np.where(self.rng.random(len(self.sensors)) < 0.5, 1.0, -1.0)
        start = self.rng.uniform(0.3, 0.7, len(self.sensors))
        self.values[self.level] = (self.mark_lo + start * (self.mark_hi - self.mark_lo))[self.level]
        self.overfill = np.zeros(len(self.units), dtype=bool)
        self.temp_base = self.normal.copy()

    def advance(self, t: float, dt: float) -> None:
        v = self.values
        # Levels: pumps run until a mark, then the movement reverses; an overfill keeps filling.
        lv = self.level
        over = self.overfill[self.unit_of[lv]]
        v[lv] += self.direction[lv] * self.fill_rate[lv] * dt
        turn_down = (v[lv] >= self.mark_hi[lv]) & ~over
        turn_up = v[lv] <= self.mark_lo[lv]
        self.direction[lv[turn_down]] = -1.0
        self.direction[lv[turn_up]] = 1.0
        self.direction[lv[over]] = 1.0
        v[lv] = np.minimum(v[lv], self.high[lv])
        # Temperature: a daily sine of +-3 degC around the configured normal, peaking at 15:00.
        hours = ((t + TZ_OFFSET_S) % DAY_S) / 3600.0
        swing = 3.0 * math.sin(2 * math.pi * (hours - 9.0) / 24.0)
        v[self.temp] = self.temp_base[self.temp] + swing
        # Vapour pressure follows temperature: about 1 % of the normal pressure per degC.
        v[self.pres] = self.temp_base[self.pres] * (1.0 + 0.01 * swing)
        # Gas: background plus the plume of a leak in the detector's unit, with a first-order response.
        g = self.gas
        target = self.background[g] + self.leak[self.unit_of[g]] * self.exposure[g] * self.peak[g]
        v[g] = first_order(v[g], target, dt, DETECTOR_TAU_S)

    def apply(self, incident: Incident) -> None:
        units = self.target_units(incident)
        if incident.kind == "leak":
            self.leak[units] = incident.num("severity", 1.0)
        elif incident.kind == "leak_stop":
            self.leak[units] = 0.0
        elif incident.kind == "overfill":
            self.overfill[units] = True
        elif incident.kind == "overfill_stop":
            self.overfill[units] = False
        else:
            super().apply(incident)
