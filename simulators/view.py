"""What the demo shows: per-site colours, recent transitions, alerts delivered, readings/s.

`DemoState` is fed by the demo's readers (pure bookkeeping, testable); `render` draws it with Rich
for the live view, and `summary` gives the closing text for headless runs.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from riskwatch.levels import Colour
from riskwatch.wire.transitions import Transition
from simulators.scenarios.checker import cause_text
from simulators.webhook import Delivery

STYLE = {
    "normal": "green",
    "blue": "bold white on blue",
    "yellow": "bold black on yellow",
    "orange": "bold black on dark_orange",
    "red": "bold white on red",
}


def colour_label(label: str) -> str:
    try:
        colour = Colour.parse(label)
    except ValueError:
        return label
    return f"{colour.label} {colour.label_zh}"


@dataclass(slots=True)
class SiteRow:
    site: str
    name: str
    industry: str
    colour: str = "normal"
    since: float = 0.0
    cause: str = ""


@dataclass(slots=True)
class DemoState:
    sites: dict[str, SiteRow]
    started: float = field(default_factory=time.time)
    transitions: deque[tuple[float, Transition]] = field(default_factory=lambda: deque(maxlen=12))
    history: deque[tuple[float, Transition]] = field(default_factory=lambda: deque(maxlen=100_000))
    alerts: deque[Delivery] = field(default_factory=lambda: deque(maxlen=8))
    injections: deque[str] = field(default_factory=lambda: deque(maxlen=6))
    alerts_total: int = 0
    warnings_by_colour: Counter[str] = field(default_factory=Counter)
    readings_per_s: float = 0.0
    readings_total: int = 0
    services: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_sites(cls, names: Mapping[str, tuple[str, str]]) -> DemoState:
        return cls({site: SiteRow(site, name, industry) for site, (name, industry) in names.items()})

    def on_transition(self, t: Transition, arrived: float) -> None:
        if t.kind != "warning":
            return
        self.transitions.append((arrived, t))
        self.history.append((arrived, t))
        self.warnings_by_colour[t.new] += 1
        if t.entity_type == "site" and t.entity in self.sites:
            row = self.sites[t.entity]
            row.colour, row.since, row.cause = t.new, t.at, cause_text(t)

    def on_alert(self, delivery: Delivery) -> None:
        if not delivery.duplicate:
            self.alerts.append(delivery)
            self.alerts_total += 1


def _offset(state: DemoState, t: float) -> str:
    return f"{t - state.started:7.1f}s"


def render(state: DemoState) -> Group:
    sites = Table(title="sites", expand=True)
    for col in ("site", "name", "industry", "colour", "since", "cause"):
        sites.add_column(col, overflow="fold")
    for row in state.sites.values():
        since = time.strftime("%H:%M:%S", time.localtime(row.since)) if row.since else ""
        sites.add_row(row.site, row.name, row.industry, Text(colour_label(row.colour), style=STYLE.get(row.colour, "")),
                      since, row.cause)  # fmt: skip
    recent = Table(title="recent warnings (rw.warnings)", expand=True)
    for col in ("t", "entity", "change", "cause"):
        recent.add_column(col, overflow="fold")
    for arrived, t in reversed(state.transitions):
        change = Text.assemble((t.old, STYLE.get(t.old, "")), " -> ", (t.new, STYLE.get(t.new, "")))
        recent.add_row(_offset(state, arrived), f"{t.entity_type} {t.entity}", change, cause_text(t))
    alerts = Table(title=f"alerts delivered to the webhook: {state.alerts_total}", expand=True)
    for col in ("t", "colour", "title"):
        alerts.add_column(col, overflow="fold")
    for d in reversed(state.alerts):
        alerts.add_row(_offset(state, d.at), Text(d.colour, style=STYLE.get(d.colour, "")), d.title)
    head = Text.assemble(
        ("riskwatch demo", "bold"), f"   t={time.time() - state.started:6.0f} s   ",
        f"readings/s {state.readings_per_s:,.0f}   readings {state.readings_total:,}   ",
        "services " + ", ".join(f"{k} {v}" for k, v in state.services.items()),
    )  # fmt: skip
    script = Panel(
        "\n".join(state.injections) or "(waiting for the first incident)", title="incidents injected"
    )
    return Group(head, sites, recent, alerts, script, Text("Ctrl-C stops everything", style="dim"))


def summary(state: DemoState, ran_s: float) -> list[str]:
    lines = [
        f"ran {ran_s:.0f} s; {state.readings_total:,} readings reached Kafka",
        "warnings by colour: "
        + (", ".join(f"{c} {n}" for c, n in sorted(state.warnings_by_colour.items())) or "none"),
        f"alerts delivered to the webhook: {state.alerts_total}",
        "sites now: " + ", ".join(f"{r.site} {r.colour}" for r in state.sites.values()),
    ]
    return lines
