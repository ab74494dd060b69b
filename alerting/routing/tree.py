"""The runtime route tree: inheritance resolved once, matched Alertmanager-style (first match, `continue`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from alerting.config import Match, RouteSpec
from riskwatch.levels import Colour

# Root defaults when the file does not say (Alertmanager's defaults, a shorter wait for safety alerts).
DEFAULT_GROUP_BY: tuple[str, ...] = ("site",)
DEFAULT_GROUP_WAIT = 10.0
DEFAULT_GROUP_INTERVAL = 300.0


@dataclass(frozen=True, slots=True)
class Facts:
    """What routing looks at for one alert."""

    colour: Colour
    site: str = ""
    region: str = ""
    industry: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    name: str
    match: Match
    min_colour: Colour
    receiver: str
    escalation: str | None
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    continue_: bool
    children: tuple[Route, ...]

    def matches(self, facts: Facts) -> bool:
        m = self.match
        return (
            facts.colour >= self.min_colour
            and (not m.region or facts.region in m.region)
            and (not m.site or facts.site in m.site)
            and (not m.industry or facts.industry in m.industry)
        )


def build_tree(spec: RouteSpec, parent: Route | None = None, path: str = "route") -> Route:
    """Resolve inherited fields top-down."""
    if parent is None:
        assert spec.receiver is not None  # config checks the root has a receiver
        base = Route(path, "", Match(), Colour.BLUE, spec.receiver, None, DEFAULT_GROUP_BY,
                     DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL, False, ())  # fmt: skip
    else:
        base = parent
    node = Route(
        path=path,
        name=spec.name or path,
        match=spec.match,
        min_colour=spec.min_colour if spec.min_colour is not None else base.min_colour,
        receiver=spec.receiver or base.receiver,
        escalation=spec.escalation if spec.escalation is not None else base.escalation,
        group_by=spec.group_by if spec.group_by is not None else base.group_by,
        group_wait=spec.group_wait if spec.group_wait is not None else base.group_wait,
        group_interval=spec.group_interval if spec.group_interval is not None else base.group_interval,
        continue_=spec.continue_,
        children=(),
    )
    children = tuple(build_tree(c, node, f"{path}.routes[{i}]") for i, c in enumerate(spec.routes))
    return replace(node, children=children)


def match_routes(root: Route, facts: Facts) -> tuple[Route, ...]:
    """Deepest matching routes; the root's own conditions apply too (it may set a min_colour)."""
    if not root.matches(facts):
        return ()
    return _descend(root, facts)


def _descend(node: Route, facts: Facts) -> tuple[Route, ...]:
    found: list[Route] = []
    for child in node.children:
        if child.matches(facts):
            found.extend(_descend(child, facts))
            if not child.continue_:
                break
    return tuple(found) or (node,)
