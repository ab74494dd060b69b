"""The registry, flattened into the arrays the validator indexes per message without per-reading lookups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


class SensorLike(Protocol):
    site: str
    gateway: str
    uom: str
    index: int


class GatewayLike(Protocol):
    site: str


class RegistryLike(Protocol):
    """What the bridge needs of `riskwatch.registry.Registry`."""

    @property
    def gateways(self) -> Mapping[str, GatewayLike]: ...

    @property
    def sensors(self) -> Mapping[str, SensorLike]: ...

    @property
    def fingerprint(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SensorTable:
    """Registry facts by dense sensor index: ids, site codes, units of measure; gateways by id."""

    fingerprint: str
    index_of: Mapping[str, int]
    ids: tuple[str, ...]  # by index; "" for an index no sensor uses
    site_code: npt.NDArray[np.int32]  # by index
    uom: tuple[str, ...]  # by index
    site_codes: Mapping[str, int]
    gateway_site: Mapping[str, str]

    @classmethod
    def from_registry(cls, registry: RegistryLike) -> SensorTable:
        sensors = registry.sensors
        size = max((s.index for s in sensors.values()), default=-1) + 1
        ids, uom = [""] * size, [""] * size
        site_code = np.full(size, -1, np.int32)
        site_codes: dict[str, int] = {}
        for sensor_id, sensor in sensors.items():
            ids[sensor.index], uom[sensor.index] = sensor_id, sensor.uom
            site_code[sensor.index] = site_codes.setdefault(sensor.site, len(site_codes))
        gateway_site = {gw_id: gw.site for gw_id, gw in registry.gateways.items()}
        for site in gateway_site.values():
            site_codes.setdefault(site, len(site_codes))
        index_of = {sensor_id: sensor.index for sensor_id, sensor in sensors.items()}
        return cls(
            registry.fingerprint, index_of, tuple(ids), site_code, tuple(uom), site_codes, gateway_site
        )
