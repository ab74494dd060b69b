"""A glass-kiln plant: the natural-gas main pressure, its low-pressure alarm and the emergency cut-off
valve that must confirm it closed (MEM Order No. 10, 2023, art. 6(5); docs/domain.md "Gas-fired kilns").

Incidents: `pressure_drop` (unit, drop: fraction of normal pressure lost, cutoff: whether the interlock
closes the valve, cutoff_delay_s: how long it takes), `pressure_restore`, `valve_reset` (reopen after
an incident). Flammable detectors near the kiln see gas if the valve stays open on a falling main.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulators.plants.base import Incident, Plant, first_order
from simulators.sensors import SimSensor

PRESSURE_TAU_S = 2.0  # a gas main empties in seconds once supply fails
KILN_TAU_S = 600.0  # a glass furnace cools slowly
VALVE_OPEN, VALVE_CLOSED = 0.0, 1.0


class KilnPlant(Plant):
    industry = "gas_kiln"
    incidents = ("pressure_drop", "pressure_restore", "valve_reset")

    def __init__(self, site: str, sensors: Sequence[SimSensor], seed: int = 0, speed: float = 1.0) -> None:
        super().__init__(site, sensors, seed, speed)
        self.pres = self.of_kind("gas_pressure", "pressure")
        self.valve = self.of_kind("cutoff")
        self.temp = self.of_kind("temperature")
        self.gas = self.of_kind("flammable", "toxic")
        n = len(self.units)
        self.supply = np.ones(n)  # fraction of normal main pressure the supply holds
        self.interlock = np.ones(n, dtype=bool)
        self.cutoff_delay = np.full(n, 2.0)
        self.closed = np.zeros(n, dtype=bool)
        self.low_since = np.full(n, np.nan)
        self.alarm_at = self._low_alarm_setpoints()
        self.values[self.valve] = VALVE_OPEN
        self.noise[self.valve] = 0.0  # a limit switch reads exactly open or closed
        l1 = np.array([s.l1_high if s.l1_high is not None else 0.0 for s in self.sensors])
        self.values[self.gas] = 0.04 * l1[self.gas]
        self.gas_l1 = l1

    def _low_alarm_setpoints(self) -> np.ndarray:
        """Per unit, the pressure below which the low-pressure alarm is on (L1 low, else 70 % normal)."""
        out = np.full(len(self.units), -np.inf)
        for i in self.pres:
            s = self.sensors[i]
            sp = s.l1_low if s.l1_low is not None else 0.7 * self.normal[i]
            u = int(self.unit_of[i])
            out[u] = max(out[u], sp)
        return out

    def advance(self, t: float, dt: float) -> None:
        v = self.values
        p = self.pres
        units = self.unit_of[p]
        # A closed cut-off isolates the kiln: its pressure sensor is upstream and keeps the main's value.
        target = self.normal[p] * self.supply[units]
        v[p] = first_order(v[p], target, dt, PRESSURE_TAU_S)
        low = np.zeros(len(self.units), dtype=bool)
        np.logical_or.at(low, units, v[p] < self.alarm_at[units])
        self.low_since[low & np.isnan(self.low_since)] = t
        self.low_since[~low] = np.nan
        due = low & self.interlock & ~self.closed & (t - np.nan_to_num(self.low_since) >= self.cutoff_delay)
        for u in np.flatnonzero(due):
            self.closed[u] = True
            self.emit(int(u), "valve_closed", "emergency cut-off confirmed closed")
        v[self.valve] = np.where(self.closed[self.unit_of[self.valve]], VALVE_CLOSED, VALVE_OPEN)
        # Unburnt gas around a kiln whose flame is starved and whose valve stays open.
        leaking = low & ~self.closed
        g = self.gas
        gas_target = self.gas_l1[g] * (0.04 + 1.2 * leaking[self.unit_of[g]])
        v[g] = first_order(v[g], gas_target, dt, 20.0)
        # Furnace temperature sags slowly once the gas is cut.
        cut = self.closed | (self.supply < 0.5)
        temp_target = self.normal[self.temp] * np.where(cut[self.unit_of[self.temp]], 0.8, 1.0)
        v[self.temp] = first_order(v[self.temp], temp_target, dt, KILN_TAU_S)

    def apply(self, incident: Incident) -> None:
        units = self.target_units(incident)
        if incident.kind == "pressure_drop":
            self.supply[units] = 1.0 - incident.num("drop", 0.6)
            self.interlock[units] = incident.flag("cutoff", True)
            self.cutoff_delay[units] = incident.num("cutoff_delay_s", 2.0)
        elif incident.kind == "pressure_restore":
            self.supply[units] = 1.0
        elif incident.kind == "valve_reset":
            self.closed[units] = False
            self.interlock[units] = True
            for u in units:
                self.emit(u, "valve_opened", "cut-off valve reset")
        else:
            super().apply(incident)
