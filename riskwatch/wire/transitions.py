"""Alarm and warning transitions as they travel on `rw.alarms` and `rw.warnings` (JSON, version 1).

A transition is emitted only when a level changes. Its `id` is deterministic from the input (entity,
new level and the event time), so a replay after a crash or rebalance yields the same id and consumers
de-duplicate by it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from riskwatch.errors import RiskwatchError

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
            if doc.pop("v", None) != WIRE_VERSION:
                raise TransitionDecodeError(f"unsupported transition wire version in {raw[:80]!r}")
            cause = doc.pop("cause")
            items = tuple(CauseItem(**item) for item in cause.get("items", ()))
            return cls(cause=Cause(rule=cause["rule"], items=items, text=cause.get("text", "")), **doc)
        except TransitionDecodeError:
            raise
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
            raise TransitionDecodeError(f"malformed transition record: {exc}") from exc


def transition_id(kind: Kind, entity_type: EntityType, entity: str, new: str, at: float) -> str:
    """Deterministic id: the same input replayed gives the same id (millisecond resolution)."""
    text = f"{kind}|{entity_type}|{entity}|{new}|{round(at * 1000)}"
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
