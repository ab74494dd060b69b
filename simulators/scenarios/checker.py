"""Judging a scenario run: which expectations were met, which forbidden colours appeared, the timeline.

Pure: it takes the transitions read from `rw.warnings` with the time each arrived (seconds since the
scenario started) and the scenario; the runner does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from riskwatch.levels import Colour
from riskwatch.wire.transitions import Transition
from simulators.scenarios.model import Injection, Scenario


@dataclass(frozen=True, slots=True)
class Seen:
    """A transition and when it arrived, in seconds since the scenario started."""

    offset: float
    transition: Transition


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class Scope:
    """Which entities the scenario owns: its sites (units and sites carry `site`) and their regions."""

    sites: frozenset[str]
    regions: frozenset[str]

    def covers(self, t: Transition) -> bool:
        if t.entity_type == "region":
            return t.entity in self.regions
        return t.site in self.sites


def _colour(label: str) -> Colour | None:
    try:
        return Colour.parse(label)
    except ValueError:
        return None


def warnings_only(seen: Iterable[Seen], scope: Scope) -> list[Seen]:
    return [s for s in seen if s.transition.kind == "warning" and scope.covers(s.transition)]


def check(scenario: Scenario, seen: Sequence[Seen], scope: Scope) -> list[CheckResult]:
    """One outcome per expectation and per forbidden colour that appeared (a clean forbid is one ok)."""
    mine = warnings_only(seen, scope)
    outcomes: list[CheckResult] = []
    for exp in scenario.expect:
        hits = [
            s
            for s in mine
            if s.transition.entity == exp.entity
            and _colour(s.transition.new) == exp.level
            and exp.after <= s.offset <= exp.by
        ]
        if hits:
            outcomes.append(
                CheckResult(
                    True, f"{exp.entity} turned {exp.colour} at {hits[0].offset:.1f} s (by {exp.by:g} s)"
                )
            )
            continue
        history = [s for s in mine if s.transition.entity == exp.entity]
        if not history:
            why = "no warning for it arrived at all"
        else:
            why = "it went " + ", ".join(f"{s.transition.new} at {s.offset:.1f} s" for s in history[-6:])
        outcomes.append(
            CheckResult(
                False,
                f"{exp.entity} did not turn {exp.colour} between {exp.after:g} s and {exp.by:g} s: {why}",
            )
        )
    for rule in scenario.forbid:
        end = rule.end if rule.end is not None else float("inf")
        bad = [
            s
            for s in mine
            if (rule.entity == "*" or s.transition.entity == rule.entity)
            and _colour(s.transition.new) in rule.levels
            and rule.start <= s.offset <= end
        ]
        window = f"{rule.start:g}-{'end' if rule.end is None else f'{rule.end:g}'} s"
        if not bad:
            outcomes.append(CheckResult(True, f"{rule.entity}: no {'/'.join(rule.colours)} in {window}"))
        for s in bad:
            t = s.transition
            outcomes.append(
                CheckResult(
                    False,
                    f"{t.entity} turned {t.new} at {s.offset:.1f} s, forbidden in {window} ({cause_text(t)})",
                )
            )
    return outcomes


def cause_text(t: Transition) -> str:
    items = ", ".join(
        f"{i.sensor} {i.state}" + (f" {i.value:g}{i.unit}" if i.value is not None else "")
        for i in t.cause.items[:4]
    )
    return f"rule {t.cause.rule}" + (f": {items}" if items else "")


def timeline(injections: Sequence[tuple[float, Injection]], seen: Sequence[Seen], scope: Scope) -> list[str]:
    """Injections and warnings in arrival order, one line each."""
    rows: list[tuple[float, int, str]] = [(at, 0, f"inject  {inj.describe()}") for at, inj in injections]
    for s in warnings_only(seen, scope):
        t = s.transition
        rows.append((s.offset, 1, f"{t.entity_type:<7} {t.entity}: {t.old} -> {t.new}  ({cause_text(t)})"))
    return [f"{at:8.1f} s  {text}" for at, _, text in sorted(rows, key=lambda r: (r[0], r[1]))]
