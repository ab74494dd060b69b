"""One sensor of the reference engine: its set points and its scalar state, as plain Python values."""

from __future__ import annotations

import math
from dataclasses import dataclass

from riskwatch.levels import AlarmState
from riskwatch.registry import Sensor

# Scalar level codes: 0 normal, +k / -k the k-th set point crossed on the high / low side, then these.
FAULT, STALE = 8, 9


def thresholds(sensor: Sensor) -> tuple[list[float | None], list[float | None]]:
    """Set points of levels 1..4 on the high and the low side (tailings bands on their own side)."""
    if sensor.bands is not None:
        none: list[float | None] = [None] * 4
        return (list(sensor.bands), none) if sensor.band_side == "high" else (none, list(sensor.bands))
    return [sensor.l1_high, sensor.l2_high, None, None], [sensor.l1_low, sensor.l2_low, None, None]


def state_of(sensor: Sensor, code: int) -> AlarmState:
    """The alarm state a level code reports: tailings bands 1-2 are L1, 3-4 are L2."""
    if code == FAULT:
        return AlarmState.FAULT
    if code == STALE:
        return AlarmState.STALE
    if code == 0:
        return AlarmState.NORMAL
    level = abs(code)
    second = level >= 3 if sensor.bands is not None else level >= 2
    if code > 0:
        return AlarmState.L2_HIGH if second else AlarmState.L1_HIGH
    return AlarmState.L2_LOW if second else AlarmState.L1_LOW


@dataclass
class RefSensor:
    spec: Sensor
    high: list[float | None]
    low: list[float | None]
    code: int = 0
    cand: int = 0
    cand_since: float = 0.0
    since: float = -math.inf  # never changed
    last_ts: float = math.nan  # stale timer start: newest taken reading, or the engine's start if none
    seen: bool = False  # a reading was taken: older ones are out of order from now on
    last_value: float = math.nan
    ucode: int = 0
    usince: float = -math.inf  # never changed: no report time for the unit's `at`
    chat: bool = False
    t1: float = -math.inf
    t2: float = -math.inf

    @property
    def stale_at(self) -> float:
        """When the sensor turns stale if nothing arrives (never while it is stale already)."""
        return self.last_ts + self.spec.stale_after_s if self.code != STALE else math.inf

    def setpoint(self, code: int) -> float | None:
        if 1 <= code <= 4:
            return next(t for t in self.high[code - 1 :] if t is not None)
        if -4 <= code <= -1:
            return next(t for t in self.low[-code - 1 :] if t is not None)
        return None
