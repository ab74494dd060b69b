"""Plant models, one per industry, chosen from each site's industry in the registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from simulators.plants.base import Incident, Plant, PlantEvent
from simulators.plants.coal_mine import CoalMine
from simulators.plants.kiln import KilnPlant
from simulators.plants.tailings import TailingsPond
from simulators.plants.tank_farm import TankFarm
from simulators.sensors import SimSensor

__all__ = ["CoalMine", "Incident", "KilnPlant", "Plant", "PlantEvent", "TailingsPond", "TankFarm"]

# Industry name keywords -> model; anything else gets the generic plant (sensors at normal values).
_BY_INDUSTRY: tuple[tuple[str, type[Plant]], ...] = (
    ("tailing", TailingsPond),
    ("kiln", KilnPlant),
    ("glass", KilnPlant),
    ("coal", CoalMine),
    ("chem", TankFarm),
)


def plant_class(industry: str) -> type[Plant]:
    key = industry.lower()
    for word, cls in _BY_INDUSTRY:
        if word in key:
            return cls
    return Plant


def build_plants(
    sensors: Sequence[SimSensor],
    industries: Mapping[str, str],
    seed: int = 0,
    speed: Mapping[str, float] | None = None,
) -> dict[str, Plant]:
    """One plant per site that has sensors; each seeded from `seed` and its position, so runs repeat."""
    by_site: dict[str, list[SimSensor]] = {}
    for s in sensors:
        by_site.setdefault(s.site, []).append(s)
    speed = speed or {}
    return {
        site: plant_class(industries.get(site, ""))(site, group, seed=seed + n, speed=speed.get(site, 1.0))
        for n, (site, group) in enumerate(by_site.items())
    }
