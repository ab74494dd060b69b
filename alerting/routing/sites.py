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


class SiteDirectory:
    """Looks a site up in the registry first, then the `sites:` labels; falls back to the bare id."""

    def __init__(self, labels: Mapping[str, SiteLabels], registry: SiteLookup | None = None) -> None:
        self._labels, self._registry = dict(labels), registry

    def facts(self, site: str, region: str = "") -> SiteFacts:
        if self._registry is not None and (found := self._registry(site)) is not None:
            return found
        label = self._labels.get(site)
        if label is None:
            return SiteFacts(site, site, region, "")
        return SiteFacts(site, label.name or site, label.region or region, label.industry)


def registry_lookup(path: str) -> SiteLookup:
    """Site facts from the site registry file (riskwatch.registry, imported only when asked for)."""
    from riskwatch.registry import load_registry

    registry = load_registry(path)

    def lookup(site: str) -> SiteFacts | None:
        found = registry.sites.get(site)
        return None if found is None else SiteFacts(found.id, found.name, found.region, found.industry)

    return lookup
