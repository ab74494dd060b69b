"""The checked registry: records by id in file order, its sensor fingerprint, and its errors."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from riskwatch.errors import ConfigError
from riskwatch.registry.models import Gateway, Region, Sensor, Site, Unit
from riskwatch.registry.rules import Rule
from riskwatch.wire.deadletter import safe_text

# A problem names what the document said: cut what it quotes so one hostile value cannot flood the
# report, and escape lone surrogates so every line prints and logs.
_PATH_CHARS, _REASON_CHARS = 300, 1000


class Problem(NamedTuple):
    """One thing wrong with a registry: where (file, path in the document) and why."""

    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.reason}"

    @classmethod
    def of(cls, file: str, path: str, reason: str) -> Problem:
        """A problem whose texts always encode to UTF-8 and stay short, whatever the document held."""
        return cls(
            safe_text(file, _PATH_CHARS), safe_text(path, _PATH_CHARS), safe_text(reason, _REASON_CHARS)
        )


class RegistryError(ConfigError):
    """A registry has problems; `.problems` lists all of them (the message shows each on its own line)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.file, first.path, first.reason)
        if len(problems) > 1:
            lines = "\n".join(f"  {p}" for p in problems)
            self.args = (f"{len(problems)} problems in {first.file}:\n{lines}",)

    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    """Regions, sites, hazard sources (units), gateways and sensors by id, in file order."""

    def __init__(
        self,
        source: str,
        regions: dict[str, Region],
        sites: dict[str, Site],
        units: dict[str, Unit],
        gateways: dict[str, Gateway],
        sensors: dict[str, Sensor],
        rule_sets: dict[str, tuple[Rule, ...]],
    ) -> None:
        self.source = source
        self.regions: Mapping[str, Region] = MappingProxyType(regions)
        self.sites: Mapping[str, Site] = MappingProxyType(sites)
        self.units: Mapping[str, Unit] = MappingProxyType(units)
        self.gateways: Mapping[str, Gateway] = MappingProxyType(gateways)
        self.sensors: Mapping[str, Sensor] = MappingProxyType(sensors)
        self.rule_sets: Mapping[str, tuple[Rule, ...]] = MappingProxyType(rule_sets)
        self.sensor_list: tuple[Sensor, ...] = tuple(sensors.values())
        self.sensor_ids: tuple[str, ...] = tuple(sensors)
        self.fingerprint: str = registry_fingerprint(self.sensor_ids)

    def __len__(self) -> int:
        return len(self.sensor_list)

    def __repr__(self) -> str:
        return (
            f"Registry({self.source!r}: {len(self.regions)} regions, {len(self.sites)} sites, "
            f"{len(self.units)} units, {len(self.gateways)} gateways, {len(self.sensor_list)} sensors)"
        )

    def rules_for_site(self, site_id: str) -> tuple[Rule, ...]:
        return self.rule_sets[self.sites[site_id].rule_set]

    @classmethod
    def from_dict(cls, doc: Any, source: str = "<registry>") -> Registry:
        """Build from an already parsed document; raises RegistryError listing every problem."""
        from riskwatch.registry.builder import Builder  # the builder needs Registry: import on use

        return Builder(source).build(doc)


def registry_fingerprint(sensor_ids: tuple[str, ...] | list[str]) -> str:
    """Stable hash of the sensor ids in index order: equal fingerprints mean equal sensor indices."""
    return hashlib.blake2b("\x1f".join(sensor_ids).encode(), digest_size=16).hexdigest()
