"""The gateway MQTT protocol, version 1 (docs/gateway-protocol.md, docs/gateway-protocol.schema.json).

Structural parsing only: topic shape, JSON, field types. Checks against the site registry (gateway at
its site, sensor known, unit, timestamps) belong to the bridge. Parsing never raises on bad input: it
returns a `Rejected` with a stable reason code, or marks the bad items of a message so the good ones go on.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple, TypeGuard

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

# Bounds of the protocol: anything longer or bigger is refused with a reason, so no gateway can make
# the bridge (or anything downstream) handle unbounded text or counts.
MAX_ID_CHARS = 128  # gateway and sensor ids
MAX_TARGET_CHARS = 128  # an event's unit or sensor id
MAX_NOTE_CHARS = 1000  # an event's free-text note
MAX_UNIT_CHARS = 32
MAX_PAYLOAD_BYTES = 256 * 1024  # the bridge's default payload limit (--max-payload-kb)
# Mosquitto's max_packet_size is the payload limit plus room for the rest of a PUBLISH packet (topic up to
# 64 KiB, properties): a bit more than the limit still reaches the bridge, which dead-letters it as
# `oversized_payload`; anything bigger the broker refuses by disconnecting the sender.
MQTT_PACKET_OVERHEAD = 64 * 1024
DEFAULT_MAX_READINGS = 5000  # per telemetry message (a 256 KiB payload holds at most ~11,000)
DEFAULT_MAX_EVENTS = 200  # per events message
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson (and so the fast path) represents


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

    index: int  # type: ignore[assignment]  # the item's position; shadows tuple.index on purpose
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
    the precise `non_finite_value` reason instead of losing the whole message to `malformed_json`.

    The stdlib parser also accepts what orjson rightly refuses: lone surrogate escapes ("\\ud800",
    which no UTF-8 encoder can write back) and integers beyond 64 bits (which no float column holds).
    Such documents are refused here, so nothing downstream ever meets them.
    """
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError, TypeError) as fallback_exc:
            return Rejected(Reason.MALFORMED_JSON, f"{exc}; {type(fallback_exc).__name__}")
        problem = _unrepresentable(doc)
        return doc if problem is None else problem


def _unrepresentable(doc: Any) -> Rejected | None:
    """The first string with a lone surrogate or integer beyond 64 bits in `doc`, walked without recursion."""
    stack = [doc]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is dict:
            stack.extend(node.keys())
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
        elif kind is str:
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return Rejected(
                    Reason.MALFORMED_JSON,
                    "a string holds a lone surrogate escape (such as \\ud800), which is not valid Unicode",
                )
        elif kind is int and not _INT_MIN <= node <= _INT_MAX:
            return Rejected(
                Reason.SCHEMA, f"an integer with {node.bit_length()} bits: numbers must fit in 64 bits"
            )
    return None


def _text_problem(value: Any, name: str, limit: int, what: str) -> str:
    """The problem with a text field (`what` says what it must be), or "": a string of at most `limit`
    characters, non-empty when `what` says so."""
    if type(value) is not str or (not value and what.startswith("a non-empty")):
        return f"{name} must be {what}"
    if len(value) > limit:
        return f"{name} is longer than {limit} characters"
    return ""


def _gateway_problem(doc: Any) -> str:
    if type(doc) is not dict:
        return "payload must be a JSON object"
    return _text_problem(doc.get("gw"), "'gw'", MAX_ID_CHARS, "a non-empty string")


def _header(doc: Any, items_key: str, max_items: int) -> tuple[str, int, list[Any]] | Rejected:
    """The gateway, sequence number and items of a decoded message (or why the JSON was refused)."""
    if isinstance(doc, Rejected):  # load_json refused the payload
        return doc
    problem = _gateway_problem(doc)
    if problem:
        return Rejected(Reason.SCHEMA, problem)
    gw, seq, items = doc["gw"], doc.get("seq"), doc.get(items_key)
    if type(seq) is not int or seq < 0 or seq >= 2**64:
        return Rejected(Reason.SCHEMA, "'seq' must be an integer in [0, 2^64)")
    if type(items) is not list or not items:
        return Rejected(Reason.SCHEMA, f"'{items_key}' must be a non-empty array")
    if len(items) > max_items:
        return Rejected(
            Reason.TOO_MANY_ITEMS, f"{len(items)} {items_key} in one message; at most {max_items}"
        )
    return gw, seq, items


def parse_telemetry(payload: bytes, max_readings: int = DEFAULT_MAX_READINGS) -> TelemetryMessage | Rejected:
    """Parse {"gw", "seq", "readings": [{"s", "v", "t", "q"?, "u"?}]} into columns."""
    head = _header(load_json(payload), "readings", max_readings)
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
            and max(map(len, sensor)) <= MAX_ID_CHARS
        )
    except (KeyError, TypeError, AttributeError):
        ok = False
    if ok:
        unit = units if any(u is not None for u in units) else None
        if unit is not None and (
            not set(map(type, unit)) <= {str, type(None)} or max(len(u or "") for u in unit) > MAX_UNIT_CHARS
        ):
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
    problem = _text_problem(r.get("s"), "'s' (sensor id)", MAX_ID_CHARS, "a non-empty string")
    if problem:
        return problem
    if not _is_number(r.get("v")):
        return "'v' (value) must be a number"
    if not _is_number(r.get("t")):
        return "'t' (epoch seconds) must be a number"
    q = r.get("q", 0)
    if type(q) is not int or not 0 <= q <= 255:
        return "'q' (quality) must be an integer 0..255"
    u = r.get("u")  # null is "not given", as an absent "u" (the fast path in parse_telemetry agrees)
    return "" if u is None else _text_problem(u, "'u' (unit)", MAX_UNIT_CHARS, "a string or null")


def _is_number(x: Any) -> TypeGuard[int | float]:
    """A JSON number a float64 column holds (huge integers are refused before this, see load_json)."""
    return type(x) is float or (type(x) is int and _INT_MIN <= x <= _INT_MAX)


def parse_status(payload: bytes) -> StatusMessage | Rejected:
    """Parse {"gw", "state": "online"|"offline", "t"?}."""
    doc = load_json(payload)
    if isinstance(doc, Rejected):
        return doc
    problem = _gateway_problem(doc)
    if problem:
        return Rejected(Reason.SCHEMA, f"status: {problem}")
    if doc.get("state") not in STATUS_STATES:
        return Rejected(Reason.SCHEMA, f"'state' must be one of {STATUS_STATES}")
    t = doc.get("t")
    if t is not None and not _is_number(t):
        return Rejected(Reason.SCHEMA, "'t' must be a number of epoch seconds")
    return StatusMessage(doc["gw"], doc["state"], None if t is None else float(t))


def parse_events(payload: bytes, max_events: int = DEFAULT_MAX_EVENTS) -> EventsMessage | Rejected:
    """Parse {"gw", "seq", "events": [{"kind", "target", "t", "note"?}]}."""
    head = _header(load_json(payload), "events", max_events)
    if isinstance(head, Rejected):
        return head
    gw, seq, rows = head
    events: list[GatewayEvent | None] = []
    bad: list[ItemError] = []
    for i, e in enumerate(rows):
        problem = _event_problem(e)
        if problem:
            bad.append(ItemError(i, Reason.SCHEMA, problem))
            events.append(None)
        else:
            events.append(GatewayEvent(e["kind"], e["target"], float(e["t"]), e.get("note", "")))
    return EventsMessage(gw, seq, events, bad)


def _event_problem(e: Any) -> str:
    if type(e) is not dict:
        return "event must be an object"
    if type(e.get("kind")) is not str or e["kind"] not in EVENT_KINDS:
        return f"'kind' must be one of {EVENT_KINDS}"
    problem = _text_problem(
        e.get("target"), "'target'", MAX_TARGET_CHARS, "a non-empty string (a unit or sensor id)"
    )
    if problem:
        return problem
    if not _is_number(e.get("t")):
        return "'t' (epoch seconds) must be a number"
    return _text_problem(e.get("note", ""), "'note'", MAX_NOTE_CHARS, "a string")


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
        """Decode and check every field's type; anything else raises GatewayDecodeError, never more."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise GatewayDecodeError(f"malformed rw.gateway record: {exc}") from exc
        if type(doc) is not dict:
            raise GatewayDecodeError("malformed rw.gateway record: not a JSON object")
        if doc.pop("v", None) != PROTOCOL_VERSION:
            raise GatewayDecodeError(f"unsupported rw.gateway record version in {raw[:80]!r}")
        problem = _record_problem(doc)
        if problem:
            raise GatewayDecodeError(f"malformed rw.gateway record: {problem}")
        t = doc.get("t")
        doc["t"] = None if t is None else float(t)
        doc["received"] = float(doc["received"])
        return cls(**doc)


_RECORD_FIELDS = {"type", "site", "gw", "t", "received", "state", "seq", "index", "kind", "target", "note"}
_RECORD_TEXT = ("site", "gw", "state", "kind", "target", "note")


def _record_problem(doc: dict[str, Any]) -> str:
    unknown = set(doc) - _RECORD_FIELDS
    if unknown:
        return f"unknown fields {sorted(map(str, unknown))[:5]}"
    if doc.get("type") not in ("status", "event"):
        return "'type' must be 'status' or 'event'"
    for name in ("site", "gw"):
        if name not in doc:
            return f"'{name}' is missing"
    for name in _RECORD_TEXT:
        if type(doc.get(name, "")) is not str:
            return f"'{name}' must be a string"
    for name in ("seq", "index"):
        value = doc.get(name, 0)
        if type(value) is not int or value < 0:
            return f"'{name}' must be a non-negative integer"
    t = doc.get("t")
    if t is not None and not (_is_number(t) and math.isfinite(t)):
        return "'t' must be a finite number or null"
    received = doc.get("received")
    if not (_is_number(received) and math.isfinite(received)):
        return "'received' must be a finite number"
    return ""


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
