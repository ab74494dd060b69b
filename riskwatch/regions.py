"""The region roll-up, written once: a region's colour is its highest site colour, with counts per colour
(docs/domain.md).

It folds site warnings one at a time into the region's state. The worker's region stage runs it on the
site warnings of every worker, re-keyed by region (processors/agents.py); the engine and the reference
engine run it on their own site warnings, so all three say the same. A region warning is announced when
the region's colour changes; it carries the counts of its non-normal sites and the site warning that
caused it. Its id derives from that site warning's time, so a replay repeats it exactly and consumers
de-duplicate it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

import orjson

from riskwatch.levels import Colour
from riskwatch.wire.transitions import Cause, Transition, transition_id

RULE = "highest_site"


class RegionState:
    """Non-normal site colours of one region, and the colour last announced."""

    def __init__(
        self, sites: dict[str, str] | None = None, colour: str = "normal", cause: dict[str, Any] | None = None
    ) -> None:
        self.sites: dict[str, str] = dict(sites or {})
        self.colour = colour
        self.cause = cause  # of the last region warning, for the worker's HTTP view

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.sites.values()))

    def to_bytes(self) -> bytes:
        return orjson.dumps({"sites": self.sites, "colour": self.colour, "cause": self.cause})

    @classmethod
    def from_bytes(cls, raw: bytes) -> RegionState:
        doc = orjson.loads(raw)
        return cls(doc["sites"], doc["colour"], doc.get("cause"))


def roll_up(state: RegionState, site_warning: Transition) -> Transition | None:
    """Fold one site warning into its region's state; the region warning if the region's colour changed."""
    t = site_warning
    if t.new == Colour.NORMAL.label:
        state.sites.pop(t.entity, None)
    else:
        state.sites[t.entity] = t.new
    worst = max((Colour.parse(c) for c in state.sites.values()), default=Colour.NORMAL)
    if worst.label == state.colour:
        return None
    old, state.colour = state.colour, worst.label
    leaders = sorted(s for s, c in state.sites.items() if c == worst.label)
    text = (
        f"{len(leaders)} site(s) {worst.label}: {', '.join(leaders[:10])}" if leaders else "all sites normal"
    )
    out = Transition(
        id=transition_id("warning", "region", t.region, worst.label, t.at),
        kind="warning",
        entity_type="region",
        entity=t.region,
        old=old,
        new=worst.label,
        at=t.at,
        cause=Cause(RULE, t.cause.items, f"{text}; after site {t.entity} went {t.new}"),
        site=t.entity,
        region=t.region,
        counts=state.counts(),
    )
    state.cause = asdict(out.cause)
    return out
