"""Alert records and audit events: what the store keeps and `rw.alerts` carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from riskwatch.errors import RiskwatchError
from riskwatch.wire.deadletter import safe_text

# Bounds of what people may write (the API refuses longer texts) and of one audit event as published.
MAX_NOTE_CHARS = 2000
MAX_FIELD_CHARS = 200
MAX_EVENT_BYTES = 64 * 1024


class AlertState(StrEnum):
    ACTIVE_UNACK = "active-unacknowledged"
    ACTIVE_ACK = "active-acknowledged"
    CLEARED_UNACK = "cleared-unacknowledged"
    # Acknowledged and back to normal, but the disposal note is still owed (sign for -> dispose -> close).
    CLEARED_ACK = "cleared-acknowledged"
    CLOSED = "closed"


def state_of(active: bool, acked: bool, closed: bool) -> AlertState:
    if closed:
        return AlertState.CLOSED
    if active:
        return AlertState.ACTIVE_ACK if acked else AlertState.ACTIVE_UNACK
    return AlertState.CLEARED_ACK if acked else AlertState.CLEARED_UNACK


class LifecycleError(RiskwatchError):
    """An operator action that the alert's state does not allow (HTTP 409)."""


class InvalidInput(LifecycleError):
    """The request itself is wrong: missing note, expiry in the past (HTTP 400)."""


class NoteRequired(InvalidInput):
    """Closing, noting and shelving need a non-empty text (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One entity's episode: opened on a routed colour, closed by a person with a disposal note."""

    id: str
    kind: str  # "warning" or "alarm"
    entity_type: str
    entity: str
    site: str
    region: str
    unit: str
    level: str  # the raw label: a Colour label (warnings) or an AlarmState label (alarms)
    colour: str  # the colour routing and messages use
    peak_colour: str
    active: bool
    acked: bool
    closed: bool
    opened_at: float
    updated_at: float
    routes: tuple[str, ...]
    receivers: tuple[str, ...]
    escalation: str | None = None
    cause: dict[str, Any] = field(default_factory=dict)  # the last transition's cause, for messages
    event_at: float = 0.0  # event time of the last transition
    acked_by: str = ""
    closed_by: str = ""
    disposal: str = ""
    shelved_until: float | None = None
    tier: int = 0  # escalation tiers notified so far (across loops)
    next_escalation_at: float | None = None
    renotify_at: float | None = None

    @property
    def state(self) -> AlertState:
        return state_of(self.active, self.acked, self.closed)

    @property
    def entity_key(self) -> str:
        return f"{self.kind}|{self.entity_type}|{self.entity}"

    def timers(self) -> tuple[float, ...]:
        return tuple(t for t in (self.next_escalation_at, self.renotify_at, self.shelved_until) if t)

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["state"] = self.state.value
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Alert:
        doc = dict(doc)
        doc.pop("state", None)
        doc["routes"], doc["receivers"] = tuple(doc["routes"]), tuple(doc["receivers"])
        return cls(**doc)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One audited change: who, when, what, note. Published on `rw.alerts`."""

    alert_id: str
    type: str  # opened raised lowered cleared reactivated acknowledged noted closed shelved unshelved
    #            escalated renotify notified suppressed delivery_failed
    at: float
    actor: str  # "system" or a user
    state: str
    colour: str
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # assigned by the store

    def to_bytes(self) -> bytes:
        """JSON, at most MAX_EVENT_BYTES whatever went into it: every event must fit one Kafka record
        on `rw.alerts`, or the audit trail would stop behind it."""
        doc = asdict(self)
        try:
            raw = orjson.dumps(doc)
        except TypeError:  # a text that is not valid Unicode (a lone surrogate)
            raw = b""
        if raw and len(raw) <= MAX_EVENT_BYTES:
            return raw
        for name in ("alert_id", "type", "actor", "state", "colour"):
            doc[name] = safe_text(doc[name], MAX_FIELD_CHARS)
        doc["note"] = safe_text(self.note, MAX_NOTE_CHARS)
        detail = {safe_text(k, 100): safe_text(v, MAX_FIELD_CHARS) for k, v in list(self.detail.items())[:20]}
        doc["detail"] = {**detail, "truncated": True}
        return orjson.dumps(doc)

    @classmethod
    def from_bytes(cls, raw: bytes) -> AlertEvent:
        return cls(**orjson.loads(raw))
