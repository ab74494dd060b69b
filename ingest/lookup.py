"""The registry, flattened into the arrays the validator indexes per message without per-reading lookups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


class SensorLike(Protocol):
    site: str
    unit: str
    gateway: str
    uom: str
    index: int


class GatewayLike(Protocol):
    site: str


class UnitLike(Protocol):
    site: str


class RegistryLike(Protocol):
    """What the bridge needs of `riskwatch.registry.Registry`."""

    @property
    def gateways(self) -> Mapping[str, GatewayLike]: ...

    @property
    def units(self) -> Mapping[str, UnitLike]: ...

    @property
    def sensors(self) -> Mapping[str, SensorLike]: ...

    @property
    def fingerprint(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SensorTable:
    """Registry facts by dense sensor index (ids, site and gateway codes, units of measure); gateways and
    hazard-source units by id.

    The registry names a gateway per sensor; a unit is served by every gateway one of its sensors is
    assigned to, so a gateway may name in its events exactly the units and sensors it reports for.
    """

    fingerprint: str
    index_of: Mapping[str, int]
    ids: tuple[str, ...]  # by index; "" for an index no sensor uses
    site_code: npt.NDArray[np.int32]  # by index
    gateway_code: npt.NDArray[np.int32]  # by index
    uom: tuple[str, ...]  # by index
    site_codes: Mapping[str, int]
    gateway_codes: Mapping[str, int]
    gateway_site: Mapping[str, str]
    unit_gateways: Mapping[str, frozenset[str]]  # unit id -> the gateways serving it (may be empty)

    @classmethod
    def from_registry(cls, registry: RegistryLike) -> SensorTable:
        sensors = registry.sensors
        size = max((s.index for s in sensors.values()), default=-1) + 1
        ids, uom = [""] * size, [""] * size
        site_code = np.full(size, -1, np.int32)
        gateway_code = np.full(size, -1, np.int32)
        site_codes: dict[str, int] = {}
        gateway_site = {gw_id: gw.site for gw_id, gw in registry.gateways.items()}
        gateway_codes = {gw_id: code for code, gw_id in enumerate(gateway_site)}
        unit_gateways: dict[str, set[str]] = {unit_id: set() for unit_id in registry.units}
        for sensor_id, sensor in sensors.items():
            ids[sensor.index], uom[sensor.index] = sensor_id, sensor.uom
            site_code[sensor.index] = site_codes.setdefault(sensor.site, len(site_codes))
            gateway_code[sensor.index] = gateway_codes.get(sensor.gateway, -1)
            unit_gateways.setdefault(sensor.unit, set()).add(sensor.gateway)
        for site in gateway_site.values():
            site_codes.setdefault(site, len(site_codes))
        index_of = {sensor_id: sensor.index for sensor_id, sensor in sensors.items()}
        return cls(
            registry.fingerprint,
            index_of,
            tuple(ids),
            site_code,
            gateway_code,
            tuple(uom),
            site_codes,
            gateway_codes,
            gateway_site,
            {unit: frozenset(gws) for unit, gws in unit_gateways.items()},
        )

    def sensor_gateway(self, index: int) -> str:
        """The gateway the registry assigns the sensor at `index` to."""
        code = int(self.gateway_code[index])
        return tuple(self.gateway_codes)[code] if code >= 0 else ""
