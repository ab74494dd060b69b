"""A small two-site registry for the bridge's unit tests (same shape as riskwatch.registry.Registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ingest.lookup import SensorTable


@dataclass(frozen=True)
class _Gateway:
    site: str


@dataclass(frozen=True)
class _Sensor:
    site: str
    gateway: str
    uom: str
    index: int
    range_low: float = 0.0
    range_high: float = 100.0


@dataclass(frozen=True)
class _Registry:
    gateways: dict[str, _Gateway] = field(default_factory=dict)
    sensors: dict[str, _Sensor] = field(default_factory=dict)
    fingerprint: str = "fp-test"


def small_registry() -> _Registry:
    return _Registry(
        gateways={"gw-a1": _Gateway("site-A"), "gw-a2": _Gateway("site-A"), "gw-b1": _Gateway("site-B")},
        sensors={
            "pt-1": _Sensor("site-A", "gw-a1", "MPa", 0),
            "gas-1": _Sensor("site-A", "gw-a1", "%LEL", 1),
            "pt-b": _Sensor("site-B", "gw-b1", "MPa", 2),
        },
    )


@pytest.fixture
def table() -> SensorTable:
    return SensorTable.from_registry(small_registry())
