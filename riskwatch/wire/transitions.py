"""Alarm and warning transitions as they travel on `rw.alarms` and `rw.warnings` (JSON, version 1).

A transition is emitted only when a level changes. Its `id` is deterministic from the input (entity,
new level and the event time), so a replay after a crash or rebalance yields the same id and consumers
de-duplicate by it.

`from_bytes` treats a record as untrusted (anything with access to Kafka can write to these topics): it
returns a Transition whose every field has its declared type, levels that are Colour labels (warnings)
or AlarmState labels (alarms), and a finite `at` that a datetime can render, or raises
TransitionDecodeError; never another exception.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from riskwatch.errors import RiskwatchError
from riskwatch.levels import AlarmState, Colour

WIRE_VERSION = 1
_VERSION_PREFIX = b'{"v":%d,' % WIRE_VERSION

Kind = Literal["alarm", "warning"]
EntityType = Literal["sensor", "unit", "site", "region"]


class TransitionDecodeError(RiskwatchError):
    """A transition record could not be decoded."""


@dataclass(frozen=True, slots=True)
class CauseItem:
    """One sensor's contribution to a level: what it read against which set point, since when."""

    sensor: str
    quantity: str
    state: str  # an AlarmState label
    value: float | None = None
    setpoint: float | None = None
    unit: str = ""
    since: float | None = None  # epoch seconds the sensor entered `state`


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a level was reached: the rule that fired, the sensors behind it, optional free text."""

    rule: str
    items: tuple[CauseItem, ...] = ()
    text: str = ""


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of level of one entity: `old`/`new` are Colour labels or AlarmState labels."""

    id: str
    kind: Kind
    entity_type: EntityType
    entity: str
    old: str
    new: str
    at: float  # epoch seconds of the reading or timer that caused it (event time, not wall time)
    cause: Cause
    site: str = ""
    region: str = ""
    unit: str = ""  # hazard source (unit) id, for sensor and unit transitions
    counts: dict[str, int] = field(default_factory=dict)  # region roll-ups: number of sites per colour

    @property
    def key(self) -> bytes:
        """Kafka key: region roll-ups by region, everything else by site."""
        return (self.region if self.entity_type == "region" else self.site).encode()

    def to_bytes(self) -> bytes:
        # orjson serialises (slotted, nested) dataclasses natively: ~20x faster than dataclasses.asdict,
        # which dominated the worker when transitions were frequent. The version leads the object.
        return _VERSION_PREFIX + orjson.dumps(self)[1:]

    @classmethod
    def from_bytes(cls, raw: bytes) -> Transition:
        try:
            doc: dict[str, Any] = orjson.loads(raw)
            if type(doc) is not dict or doc.pop("v", None) != WIRE_VERSION:
                raise TransitionDecodeError(f"unsupported transition wire version in {bytes(raw[:80])!r}")
            cause = doc.pop("cause")
            if type(cause) is not dict or type(cause.get("items", [])) is not list:
                raise TransitionDecodeError("'cause' must be an object with a list of 'items'")
            items = tuple(CauseItem(**item) for item in cause.get("items", ()))
            t = cls(cause=Cause(rule=cause["rule"], items=items, text=cause.get("text", "")), **doc)
        except TransitionDecodeError:
            raise
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError, ValueError) as exc:
            raise TransitionDecodeError(f"malformed transition record: {exc}") from exc
        problem = _problem(t)
        if problem:
            raise TransitionDecodeError(f"malformed transition record: {problem}")
        return t


_KINDS = ("alarm", "warning")
_ENTITY_TYPES = ("sensor", "unit", "site", "region")
_LEVELS = {"warning": {c.label for c in Colour}, "alarm": {s.label for s in AlarmState}}
MAX_AT = 253402300799.0  # 9999-12-31T23:59:59Z: the latest time a datetime renders


def _is_text(value: object) -> bool:
    return type(value) is str


def _is_number(value: object, optional: bool = False) -> bool:
    if value is None:
        return optional
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


def _problem(t: Transition) -> str:
    """Why a decoded transition is unusable ("" if it is fine): JSON decodes into any types."""
    texts = (t.id, t.entity, t.old, t.new, t.site, t.region, t.unit, t.cause.rule, t.cause.text)
    if not all(map(_is_text, texts)):
        return "id, entity, old, new, site, region, unit and the cause's rule and text must be strings"
    if t.kind not in _KINDS or t.entity_type not in _ENTITY_TYPES:
        return f"kind must be one of {_KINDS} and entity_type one of {_ENTITY_TYPES}"
    if t.old not in _LEVELS[t.kind] or t.new not in _LEVELS[t.kind]:
        return f"old and new must be {'colour' if t.kind == 'warning' else 'alarm state'} labels"
    if not _is_number(t.at) or not 0 <= t.at <= MAX_AT:
        return f"'at' must be epoch seconds between 0 and {MAX_AT:.0f}"
    if type(t.counts) is not dict or not all(_is_text(k) and type(v) is int for k, v in t.counts.items()):
        return "'counts' must map colour labels to integers"
    for item in t.cause.items:
        if not (
            _is_text(item.sensor) and _is_text(item.quantity) and _is_text(item.state) and _is_text(item.unit)
        ):
            return "a cause item's sensor, quantity, state and unit must be strings"
        if not all(_is_number(v, optional=True) for v in (item.value, item.setpoint, item.since)):
            return "a cause item's value, setpoint and since must be numbers or null"
    return ""


def transition_id(kind: Kind, entity_type: EntityType, entity: str, new: str, at: float) -> str:
    """Deterministic id: the same input replayed gives the same id (millisecond resolution)."""
    text = f"{kind}|{entity_type}|{entity}|{new}|{round(at * 1000)}"
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
