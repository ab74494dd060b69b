"""Instrument and communication faults layered on top of the plant physics.

Sensor faults: `stuck` (frozen at its value when the fault starts, or at `value`), `drift` (`rate` per
hour added since the start), `spikes` (probability `p` per reading of a jump of `size`), `dropout`
(probability `p` per reading that nothing is sent). Gateway faults: `disconnect` (the gateway drops off
MQTT without a goodbye, so the broker publishes its last will) and `clock_skew` (`offset_s` added to
every timestamp it sends). All state is per-sensor numpy arrays, so a tick is a few vector operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from simulators.sensors import SimSensor, SimulatorError

SENSOR_FAULTS = ("stuck", "drift", "spikes", "dropout")
GATEWAY_FAULTS = ("disconnect", "clock_skew")
FAULTS = SENSOR_FAULTS + GATEWAY_FAULTS


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault to inject: kind, target (sensor id, or gateway id for gateway faults), parameters."""

    kind: str
    target: str
    params: Mapping[str, float] = field(default_factory=dict)

    def num(self, name: str, default: float) -> float:
        value = self.params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SimulatorError(f"fault {self.kind} on {self.target}: {name} must be a number")
        return float(value)


class FaultedTick:
    """One tick after faults: which readings go out, their values and their timestamp offsets."""

    __slots__ = ("keep", "skew", "values")

    def __init__(
        self, keep: npt.NDArray[np.bool_], values: npt.NDArray[np.float64], skew: npt.NDArray[np.float64]
    ):
        self.keep, self.values, self.skew = keep, values, skew


class FaultInjector:
    """Holds the active faults of a set of sensors and applies them to each tick's values."""

    def __init__(self, sensors: Sequence[SimSensor], seed: int = 0) -> None:
        self.sensors = tuple(sensors)
        n = len(self.sensors)
        self.position = {s.id: i for i, s in enumerate(self.sensors)}
        self.gateways = {s.gateway for s in self.sensors}
        self.gateway_of = np.array([s.gateway for s in self.sensors])
        self.rng = np.random.default_rng(seed + 7919)
        self.stuck = np.zeros(n, dtype=bool)
        self.stuck_value = np.full(n, np.nan)
        self.drift_per_s = np.zeros(n)
        self.drift_since = np.zeros(n)
        self.spike_p = np.zeros(n)
        self.spike_size = np.zeros(n)
        self.dropout_p = np.zeros(n)
        self.skew = np.zeros(n)
        self.disconnected: set[str] = set()

    def _sensor(self, fault: Fault) -> int:
        if fault.target not in self.position:
            raise SimulatorError(f"fault {fault.kind}: unknown sensor {fault.target!r}")
        return self.position[fault.target]

    def _gateway(self, fault: Fault) -> npt.NDArray[np.bool_]:
        if fault.target not in self.gateways:
            raise SimulatorError(f"fault {fault.kind}: unknown gateway {fault.target!r}")
        return self.gateway_of == fault.target

    def start(self, fault: Fault, t: float) -> None:
        """Begin a fault at time t (a second start of the same kind replaces the first)."""
        if fault.kind not in FAULTS:
            raise SimulatorError(f"unknown fault {fault.kind!r}; known: {', '.join(FAULTS)}")
        if fault.kind == "disconnect":
            self._gateway(fault)
            self.disconnected.add(fault.target)
        elif fault.kind == "clock_skew":
            self.skew[self._gateway(fault)] = fault.num("offset_s", 600.0)
        else:
            i = self._sensor(fault)
            s = self.sensors[i]
            if fault.kind == "stuck":
                self.stuck[i] = True
                self.stuck_value[i] = fault.num("value", np.nan)
            elif fault.kind == "drift":
                self.drift_per_s[i] = fault.num("rate", 0.05 * (s.range_high - s.range_low)) / 3600.0
                self.drift_since[i] = t
            elif fault.kind == "spikes":
                self.spike_p[i] = fault.num("p", 0.2)
                self.spike_size[i] = fault.num("size", 0.5 * (s.range_high - s.range_low))
            else:
                self.dropout_p[i] = fault.num("p", 1.0)

    def stop(self, kind: str, target: str) -> None:
        """End a fault; the sensor or gateway behaves normally from the next tick."""
        fault = Fault(kind, target)
        if kind == "disconnect":
            self.disconnected.discard(target)
        elif kind == "clock_skew":
            self.skew[self._gateway(fault)] = 0.0
        elif kind in SENSOR_FAULTS:
            i = self._sensor(fault)
            if kind == "stuck":
                self.stuck[i], self.stuck_value[i] = False, np.nan
            elif kind == "drift":
                self.drift_per_s[i] = 0.0
            elif kind == "spikes":
                self.spike_p[i] = 0.0
            else:
                self.dropout_p[i] = 0.0
        else:
            raise SimulatorError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")

    def apply(self, t: float, values: npt.NDArray[np.float64]) -> FaultedTick:
        """Faulted copy of one tick's true values (aligned with `sensors`)."""
        out = values + self.drift_per_s * np.where(self.drift_per_s != 0.0, t - self.drift_since, 0.0)
        newly = self.stuck & np.isnan(self.stuck_value)
        self.stuck_value[newly] = out[newly]
        out = np.where(self.stuck, self.stuck_value, out)
        spikes = self.rng.random(out.shape) < self.spike_p
        out = np.where(spikes, out + self.spike_size, out)
        keep = self.rng.random(out.shape) >= self.dropout_p
        if self.disconnected:
            keep &= ~np.isin(self.gateway_of, list(self.disconnected))
        return FaultedTick(keep, out, self.skew.copy())
