"""A tailings pond: rainfall fills the pond; water level rises, freeboard and dry beach shrink, the
phreatic line rises (its depth falls) with a lag, and dam displacement creeps faster when it is high.

The items are those of GB 51108-2015 §8.3 (docs/domain.md "Tailings ponds"). Thresholds are set per point
by the designer, so the model works in metres of water rise and maps each sensor between its normal
value and its red band (or L2): a rise of DESIGN_RISE_M (the flood the designer planned for) brings
every point to red. The direction of each item is physical (freeboard and beach shrink, depth falls).

Incidents: `rainstorm` (intensity_mm_h), `rain_stop`. Hours of hydrology fit a short scenario with
`speed` (see plants/base.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulators.plants.base import Incident, Plant
from simulators.sensors import SimSensor

CATCHMENT_RATIO = 20.0  # catchment area / pond area: 1 mm of rain lifts the pond 20 mm
DRAIN_TAU_S = 12 * 3600.0  # the decant system lowers the pond over half a day
PHREATIC_TAU_S = 2 * 3600.0  # seepage into the dam lags the pond by hours
DESIGN_RISE_M = 2.0
CREEP_MM_PER_DAY = 0.2  # normal dam creep


class TailingsPond(Plant):
    industry = "tailings_pond"
    incidents = ("rainstorm", "rain_stop")

    def __init__(self, site: str, sensors: Sequence[SimSensor], seed: int = 0, speed: float = 1.0) -> None:
        super().__init__(site, sensors, seed, speed)
        self.rain_mm_h = 0.0
        self.rain_24h = 0.0  # rolling 24 h rainfall, what a rain gauge reports against 50/100 mm bands
        self.rise = 0.0  # metres above the normal pond level
        self.phreatic_rise = 0.0
        self.creep_mm = 0.0
        self.rain = self.of_kind("rainfall")
        self.disp = self.of_kind("displacement")
        self.rising = self.of_kind("water_level")  # value grows with the rise
        self.falling = self.of_kind("freeboard", "dry_beach")
        self.phreatic = self.of_kind("phreatic")
        # Per-sensor distance from normal to L2, signed by the side that alarms.
        self.to_l2 = np.zeros(len(self.sensors))
        for i, s in enumerate(self.sensors):
            if s.red is not None:
                self.to_l2[i] = s.red - self.normal[i]
        self.values[self.rain] = 0.0
        self.disp_base = self.normal.copy()
        self.noise[self.rain] = 0.0  # a tipping-bucket gauge reads zero when dry

    def advance(self, t: float, dt: float) -> None:
        hours = dt / 3600.0
        self.rain_24h += self.rain_mm_h * hours - self.rain_24h * hours / 24.0
        inflow_m = self.rain_mm_h * hours * CATCHMENT_RATIO / 1000.0
        self.rise = max(0.0, self.rise + inflow_m - self.rise * dt / DRAIN_TAU_S)
        lag = np.exp(-dt / PHREATIC_TAU_S)
        self.phreatic_rise = self.rise + (self.phreatic_rise - self.rise) * lag
        # Creep speeds up with the phreatic line: saturated dam material deforms faster.
        rate = CREEP_MM_PER_DAY / 86400.0 * (1.0 + 20.0 * self.phreatic_rise / DESIGN_RISE_M)
        self.creep_mm += rate * dt
        v = self.values
        frac = self.rise / DESIGN_RISE_M
        v[self.rising] = self.normal[self.rising] + frac * self.to_l2[self.rising]
        v[self.falling] = self.normal[self.falling] + frac * self.to_l2[self.falling]
        pfrac = self.phreatic_rise / DESIGN_RISE_M
        v[self.phreatic] = self.normal[self.phreatic] + pfrac * self.to_l2[self.phreatic]
        v[self.rain] = self.rain_24h
        v[self.disp] = self.disp_base[self.disp] + self.creep_mm

    def apply(self, incident: Incident) -> None:
        if incident.kind == "rainstorm":
            self.rain_mm_h = incident.num("intensity_mm_h", 60.0)
        elif incident.kind == "rain_stop":
            self.rain_mm_h = 0.0
        else:
            super().apply(incident)
