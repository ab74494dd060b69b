"""A small two-site registry (sites, units, gateways, sensors) for the bridge's unit tests (same shape as riskwatch.registry.Registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ingest.lookup import SensorTable


@dataclass(frozen=True)
class _Gateway:
    site: str


@dataclass(frozen=True)
class _Unit:
    site: str


@dataclass(frozen=True)
class _Sensor:
    site: str
    unit: str
    gateway: str
    uom: str
    index: int
    range_low: float = 0.0
    range_high: float = 100.0


@dataclass(frozen=True)
class _Registry:
    gateways: dict[str, _Gateway] = field(default_factory=dict)
    units: dict[str, _Unit] = field(default_factory=dict)
    sensors: dict[str, _Sensor] = field(default_factory=dict)
    fingerprint: str = "fp-test"


def small_registry() -> _Registry:
    return _Registry(
        gateways={"gw-a1": _Gateway("site-A"), "gw-a2": _Gateway("site-A"), "gw-b1": _Gateway("site-B")},
        # u1 is served by gw-a1; u2 by gw-a2; u3 has no sensors, so no gateway serves it
        units={"u1": _Unit("site-A"), "u2": _Unit("site-A"), "u3": _Unit("site-A"), "ub": _Unit("site-B")},
        sensors={
            "pt-1": _Sensor("site-A", "u1", "gw-a1", "MPa", 0),
            "gas-1": _Sensor("site-A", "u1", "gw-a1", "%LEL", 1),
            "pt-b": _Sensor("site-B", "ub", "gw-b1", "MPa", 2),
            "pt-a2": _Sensor("site-A", "u2", "gw-a2", "MPa", 3),
        },
    )


@pytest.fixture
def table() -> SensorTable:
    return SensorTable.from_registry(small_registry())
