"""Site facts for routing and messages: from the site registry when given, else the routes file labels."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from alerting.config import SiteLabels


@dataclass(frozen=True, slots=True)
class SiteFacts:
    site: str
    name: str
    region: str
    industry: str


SiteLookup = Callable[[str], SiteFacts | None]
UnitLookup = Callable[[str], str | None]  # unit id -> its name


class SiteDirectory:
    """Looks a site up in the registry first, then the `sites:` labels; falls back to the bare id."""

    def __init__(
        self,
        labels: Mapping[str, SiteLabels],
        registry: SiteLookup | None = None,
        units: UnitLookup | None = None,
    ) -> None:
        self._labels, self._registry, self._units = dict(labels), registry, units

    def unit_name(self, unit: str) -> str:
        """The hazard source's name from the registry, else its id."""
        name = self._units(unit) if self._units is not None and unit else None
        return name or unit

    def facts(self, site: str, region: str = "") -> SiteFacts:
        if self._registry is not None and (found := self._registry(site)) is not None:
            return found
        label = self._labels.get(site)
        if label is None:
            return SiteFacts(site, site, region, "")
        return SiteFacts(site, label.name or site, label.region or region, label.industry)


def registry_lookup(path: str) -> tuple[SiteLookup, UnitLookup]:
    """Site facts and unit names from the site registry file (imported only when asked for)."""
    from riskwatch.registry import load_registry

    registry = load_registry(path)

    def site(site_id: str) -> SiteFacts | None:
        found = registry.sites.get(site_id)
        return None if found is None else SiteFacts(found.id, found.name, found.region, found.industry)

    def unit(unit_id: str) -> str | None:
        found = registry.units.get(unit_id)
        return found.name if found is not None and found.name else None

    return site, unit
