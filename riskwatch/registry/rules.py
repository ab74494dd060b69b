"""Warning rules as data: which sensor alarm states make a hazard source (unit) blue/yellow/orange/red.

The default rules of docs/domain.md ("From alarms to colours") are a list of `Rule` records; a
registry may redefine the list per industry or name its own set and point sites at it. The engine
compiles these records into arrays; adding a rule never needs engine code unless it needs a new `kind`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from riskwatch.levels import Colour

RuleKind = Literal["count", "kiln_cutoff", "interlock_bypass", "tailings_rollup"]
StateClass = Literal["l1", "l2", "fault", "stale"]
RULE_KINDS: tuple[str, ...] = ("count", "kiln_cutoff", "interlock_bypass", "tailings_rollup")
STATE_CLASSES: tuple[str, ...] = ("l1", "l2", "fault", "stale")


@dataclass(frozen=True, slots=True)
class Rule:
    """One warning rule.

    kind "count": at least `min_sensors` sensors (of `groups`, or of every group but valves when empty)
    are in one of `states`, on at least `min_quantities` different quantity types, each for at least
    `min_duration_s`. kind "kiln_cutoff": a gas-main low-pressure alarm with no cut-off confirmation
    within `confirm_within_s`. kind "interlock_bypass": an interlock is reported bypassed while any
    sensor of the unit is in alarm. kind "tailings_rollup": GB 50863 §5.5.4 point -> item -> pond roll-up.
    """

    name: str
    colour: Colour
    kind: RuleKind = "count"
    states: tuple[StateClass, ...] = ()
    groups: tuple[str, ...] = ()
    min_sensors: int = 1
    min_quantities: int = 1
    min_duration_s: float = 0.0
    confirm_within_s: float = 10.0


def _count(name: str, colour: Colour, states: tuple[StateClass, ...], **kw: object) -> Rule:
    return Rule(name, colour, "count", states, **kw)  # type: ignore[arg-type]


# docs/domain.md "From alarms to colours" (a riskwatch default: the official counting rules are not public).
DEFAULT_RULES: tuple[Rule, ...] = (
    _count("any_l1", Colour.BLUE, ("l1",)),
    _count("fault_or_stale", Colour.BLUE, ("fault", "stale")),
    _count("any_l2", Colour.YELLOW, ("l2",)),
    _count("two_l1", Colour.YELLOW, ("l1",), min_sensors=2),
    _count("two_l2", Colour.ORANGE, ("l2",), min_sensors=2),
    _count("gas_l2", Colour.ORANGE, ("l2",), groups=("flammable_gas", "toxic_gas")),
    _count("l2_10min", Colour.ORANGE, ("l2",), min_duration_s=600.0),
    _count("methane_alarm", Colour.ORANGE, ("l1",), groups=("methane",)),
    _count("gas_l2_two_detectors", Colour.RED, ("l2",), groups=("flammable_gas", "toxic_gas"), min_sensors=2),
    _count("l2_two_quantities", Colour.RED, ("l2",), min_quantities=2),
    _count("methane_power_off", Colour.RED, ("l2",), groups=("methane",)),
    Rule("kiln_no_cutoff", Colour.RED, "kiln_cutoff", confirm_within_s=10.0),
    Rule("interlock_bypassed_in_alarm", Colour.RED, "interlock_bypass"),
)

# Tailings ponds use the GB 50863 count-based roll-up instead of the generic counts (two orange points
# of different items are orange, not red), plus the fault/stale rule.
TAILINGS_RULES: tuple[Rule, ...] = (
    _count("fault_or_stale", Colour.BLUE, ("fault", "stale")),
    Rule("tailings_rollup", Colour.RED, "tailings_rollup"),
)

BUILTIN_RULE_SETS: dict[str, tuple[Rule, ...]] = {
    "default": DEFAULT_RULES,
    "tailings": TAILINGS_RULES,
}

INDUSTRY_RULE_SET: dict[str, str] = {
    "hazardous_chemicals": "default",
    "coal_mine": "default",
    "non_coal_mine": "default",
    "gas_kiln": "default",
    "tailings_pond": "tailings",
}
