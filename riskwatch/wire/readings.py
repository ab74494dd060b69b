"""Columnar readings: the arrays the Kafka batch codec decodes into and the engine evaluates.

One row per reading. `sensor` holds dense registry indices (`Registry.sensors[id].index`), so the engine
indexes its per-sensor parameter and state arrays directly, with no per-reading Python lookups.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

SENSOR_DTYPE = np.int32
VALUE_DTYPE = np.float64
TS_DTYPE = np.float64  # epoch seconds
QUALITY_DTYPE = np.uint8

QUALITY_GOOD = 0  # any other value is a bad-quality flag reported by the gateway


class Readings(NamedTuple):
    """A columnar batch of readings; all four arrays have the same length."""

    sensor: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]
    ts: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.sensor.shape[0])

    @classmethod
    def empty(cls) -> Readings:
        return cls.of([], [], [], [])

    @classmethod
    def of(cls, sensor: object, value: object, ts: object, quality: object | None = None) -> Readings:
        """Build from any array-likes, converting to the wire dtypes (quality defaults to good)."""
        s = np.asarray(sensor, dtype=SENSOR_DTYPE)
        q = np.zeros(s.shape[0], QUALITY_DTYPE) if quality is None else np.asarray(quality, QUALITY_DTYPE)
        return cls(s, np.asarray(value, VALUE_DTYPE), np.asarray(ts, TS_DTYPE), q)
