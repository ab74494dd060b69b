"""The gateway MQTT protocol, version 1 (docs/gateway-protocol.md, docs/gateway-protocol.schema.json).

Structural parsing only: topic shape, JSON, field types. Checks against the site registry (gateway at
its site, sensor known, unit, timestamps) belong to the bridge. Parsing never raises on bad input: it
returns a `Rejected` with a stable reason code, or marks the bad items of a message so the good ones go on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from riskwatch.errors import RiskwatchError
from riskwatch.topics import MQTT_VERSION
from riskwatch.wire.deadletter import Reason

PROTOCOL_VERSION = 1
CHANNELS = ("telemetry", "status", "events")
STATUS_STATES = ("online", "offline")
EVENT_KINDS = (
    "valve_closed",
    "valve_opened",
    "interlock_bypassed",
    "interlock_restored",
    "maintenance_on",
    "maintenance_off",
)
Channel = Literal["telemetry", "status", "events"]
_NUMBER = (int, float)


class GatewayDecodeError(RiskwatchError):
    """A `rw.gateway` record could not be decoded."""


class Rejected(NamedTuple):
    """Why a whole message was refused."""

    reason: Reason
    detail: str


class TopicParts(NamedTuple):
    site: str
    gateway: str
    channel: Channel


class ItemError(NamedTuple):
    """One bad reading or event inside an otherwise usable message."""

    index: int
    reason: Reason
    detail: str


class TelemetryMessage(NamedTuple):
    """A parsed telemetry message as columns; rows listed in `bad` hold placeholders."""

    gateway: str
    seq: int
    sensor: list[str]
    value: npt.NDArray[np.float64]
    ts: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    unit: list[str | None] | None  # None when no reading carries "u"
    bad: list[ItemError]


class GatewayEvent(NamedTuple):
    kind: str
    target: str
    t: float
    note: str


class EventsMessage(NamedTuple):
    gateway: str
    seq: int
    events: list[GatewayEvent | None]  # None where `bad` has the reason
    bad: list[ItemError]


class StatusMessage(NamedTuple):
    gateway: str
    state: str
    t: float | None


def parse_topic(topic: str, root: str = "rw") -> TopicParts | Rejected:
    """Split rw/v1/{site}/{gateway}/{channel}; anything else is `wrong_topic`."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != root or parts[1] != MQTT_VERSION:
        return Rejected(Reason.WRONG_TOPIC, f"expected {root}/{MQTT_VERSION}/SITE/GATEWAY/CHANNEL")
    if parts[4] not in CHANNELS or not parts[2] or not parts[3]:
        return Rejected(Reason.WRONG_TOPIC, f"unknown channel {parts[4]!r}, expected one of {CHANNELS}")
    return TopicParts(parts[2], parts[3], parts[4])  # type: ignore[arg-type]


def load_json(payload: bytes) -> Any | Rejected:
    """orjson first; on failure the stdlib parser, which accepts NaN/Infinity so those readings get
    the precise `non_finite_value` reason instead of losing the whole message to `malformed_json`."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(payload)
        except (ValueError, RecursionError):
            return Rejected(Reason.MALFORMED_JSON, str(exc))


def _header(doc: Any, items_key: str) -> tuple[str, int, list[Any]] | Rejected:
    if type(doc) is not dict:
        return Rejected(Reason.SCHEMA, "payload must be a JSON object")
    gw, seq, items = doc.get("gw"), doc.get("seq"), doc.get(items_key)
    if type(gw) is not str or not gw:
        return Rejected(Reason.SCHEMA, "'gw' must be a non-empty string")
    if type(seq) is not int or seq < 0 or seq >= 2**64:
        return Rejected(Reason.SCHEMA, "'seq' must be an integer in [0, 2^64)")
    if type(items) is not list or not items:
        return Rejected(Reason.SCHEMA, f"'{items_key}' must be a non-empty array")
    return gw, seq, items


def parse_telemetry(payload: bytes) -> TelemetryMessage | Rejected:
    """Parse {"gw", "seq", "readings": [{"s", "v", "t", "q"?, "u"?}]} into columns."""
    doc = load_json(payload)
    if isinstance(doc, Rejected):
        return doc
    head = _header(doc, "readings")
    if isinstance(head, Rejected):
        return head
    gw, seq, rows = head
    try:  # fast path: every row well-formed, checked by type sets rather than per-row branches
        sensor = [r["s"] for r in rows]
        values = [r["v"] for r in rows]
        times = [r["t"] for r in rows]
        quality = [r.get("q", 0) for r in rows]
        units = [r.get("u") for r in rows]
        ok = (
            set(map(type, sensor)) == {str}
            and set(map(type, values)) <= {int, float}
            and set(map(type, times)) <= {int, float}
            and set(map(type, quality)) == {int}
            and (min(quality) >= 0 and max(quality) <= 255)
            and all(sensor)
        )
    except (KeyError, TypeError, AttributeError):
        ok = False
    if ok:
        unit = units if any(u is not None for u in units) else None
        if unit is not None and not set(map(type, unit)) <= {str, type(None)}:
            ok = False
        else:
            return TelemetryMessage(
                gw,
                seq,
                sensor,
                np.array(values, np.float64),
                np.array(times, np.float64),
                np.array(quality, np.uint8),
                unit,
                [],
            )
    return _parse_telemetry_slow(gw, seq, rows)


def _parse_telemetry_slow(gw: str, seq: int, rows: list[Any]) -> TelemetryMessage:
    """Row by row, only for messages with at least one malformed reading."""
    n = len(rows)
    sensor, unit = [""] * n, [None] * n
    value, ts, quality = np.full(n, np.nan), np.zeros(n), np.zeros(n, np.uint8)
    bad: list[ItemError] = []
    for i, r in enumerate(rows):
        problem = _reading_problem(r)
        if problem:
            bad.append(ItemError(i, Reason.SCHEMA, problem))
            continue
        sensor[i], value[i], ts[i], quality[i], unit[i] = r["s"], r["v"], r["t"], r.get("q", 0), r.get("u")
    has_unit = any(u is not None for u in unit)
    return TelemetryMessage(gw, seq, sensor, value, ts, quality, unit if has_unit else None, bad)  # type: ignore[arg-type]


def _reading_problem(r: Any) -> str:
    if type(r) is not dict:
        return "reading must be an object"
    if type(r.get("s")) is not str or not r["s"]:
        return "'s' (sensor id) must be a non-empty string"
    if type(r.get("v")) not in _NUMBER:
        return "'v' (value) must be a number"
    if type(r.get("t")) not in _NUMBER:
        return "'t' (epoch seconds) must be a number"
    q = r.get("q", 0)
    if type(q) is not int or not 0 <= q <= 255:
        return "'q' (quality) must be an integer 0..255"
    if type(r.get("u", "")) is not str:
        return "'u' (unit) must be a string"
    return ""


def parse_status(payload: bytes) -> StatusMessage | Rejected:
    """Parse {"gw", "state": "online"|"offline", "t"?}."""
    doc = load_json(payload)
    if isinstance(doc, Rejected):
        return doc
    if type(doc) is not dict or type(doc.get("gw")) is not str or not doc["gw"]:
        return Rejected(Reason.SCHEMA, "status must be an object with a non-empty 'gw'")
    if doc.get("state") not in STATUS_STATES:
        return Rejected(Reason.SCHEMA, f"'state' must be one of {STATUS_STATES}")
    t = doc.get("t")
    if t is not None and type(t) not in _NUMBER:
        return Rejected(Reason.SCHEMA, "'t' must be a number of epoch seconds")
    return StatusMessage(doc["gw"], doc["state"], None if t is None else float(t))


def parse_events(payload: bytes) -> EventsMessage | Rejected:
    """Parse {"gw", "seq", "events": [{"kind", "target", "t", "note"?}]}."""
    doc = load_json(payload)
    if isinstance(doc, Rejected):
        return doc
    head = _header(doc, "events")
    if isinstance(head, Rejected):
        return head
    gw, seq, rows = head
    events: list[GatewayEvent | None] = []
    bad: list[ItemError] = []
    for i, e in enumerate(rows):
        problem = ""
        if type(e) is not dict:
            problem = "event must be an object"
        elif e.get("kind") not in EVENT_KINDS:
            problem = f"'kind' must be one of {EVENT_KINDS}"
        elif type(e.get("target")) is not str or not e["target"]:
            problem = "'target' must be a non-empty string (a unit or sensor id)"
        elif type(e.get("t")) not in _NUMBER:
            problem = "'t' (epoch seconds) must be a number"
        elif type(e.get("note", "")) is not str:
            problem = "'note' must be a string"
        if problem:
            bad.append(ItemError(i, Reason.SCHEMA, problem))
            events.append(None)
        else:
            events.append(GatewayEvent(e["kind"], e["target"], float(e["t"]), e.get("note", "")))
    return EventsMessage(gw, seq, events, bad)


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """A gateway status change or event as it travels on `rw.gateway` (JSON, keyed by site).

    `type` is "status" (state online/offline) or "event" (kind, target, note). Events are
    de-duplicated by (gw, seq, index); `received` is when the bridge took the MQTT message.
    """

    type: Literal["status", "event"]
    site: str
    gw: str
    t: float | None
    received: float
    state: str = ""
    seq: int = 0
    index: int = 0
    kind: str = ""
    target: str = ""
    note: str = ""

    def to_bytes(self) -> bytes:
        doc = asdict(self)
        doc["v"] = PROTOCOL_VERSION
        return orjson.dumps(doc)

    @classmethod
    def from_bytes(cls, raw: bytes) -> GatewayRecord:
        try:
            doc: dict[str, Any] = orjson.loads(raw)
            if doc.pop("v", None) != PROTOCOL_VERSION:
                raise GatewayDecodeError(f"unsupported rw.gateway record version in {raw[:80]!r}")
            return cls(**doc)
        except GatewayDecodeError:
            raise
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise GatewayDecodeError(f"malformed rw.gateway record: {exc}") from exc


def telemetry_payload(gateway: str, seq: int, readings: list[dict[str, Any]]) -> bytes:
    """Encode a telemetry message (for simulators and example gateways)."""
    return orjson.dumps({"gw": gateway, "seq": seq, "readings": readings})


def status_payload(gateway: str, state: str, t: float | None = None) -> bytes:
    doc: dict[str, Any] = {"gw": gateway, "state": state}
    if t is not None:
        doc["t"] = t
    return orjson.dumps(doc)


def events_payload(gateway: str, seq: int, events: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"gw": gateway, "seq": seq, "events": events})
