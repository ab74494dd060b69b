"""Validate one MQTT message against the gateway protocol and the site registry.

Per message the checks are a few numpy operations over the message's columns; only the rejected
readings (rare) get Python objects. The result says what goes to Kafka and what is dead-lettered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

import numpy as np

from ingest.lookup import SensorTable
from riskwatch.wire.deadletter import DeadItem, DeadLetter, Reason, summary_reason
from riskwatch.wire.gateway import (
    EventsMessage,
    GatewayRecord,
    ItemError,
    Rejected,
    StatusMessage,
    TelemetryMessage,
    TopicParts,
    parse_events,
    parse_status,
    parse_telemetry,
    parse_topic,
)
from riskwatch.wire.readings import Readings

DEFAULT_MAX_PAYLOAD = 256 * 1024  # bytes; hundreds of readings are ~30 KiB
DEFAULT_FUTURE_TOLERANCE_S = 300.0  # gateway clocks drift; beyond this a timestamp is a clock fault

# Row checks in priority order: a row failing several gets the first reason.
_ROW_REASONS = (
    Reason.SENSOR_UNKNOWN,
    Reason.SENSOR_SITE_MISMATCH,
    Reason.WRONG_UNIT,
    Reason.NON_FINITE_VALUE,
    Reason.NON_FINITE_TIMESTAMP,
    Reason.FUTURE_TIMESTAMP,
    Reason.SCHEMA,
)
_SCHEMA_CODE = len(_ROW_REASONS)


class Outcome(NamedTuple):
    """What one MQTT message turns into."""

    site: str
    gateway: str
    seq: int | None
    readings: Readings | None  # valid telemetry readings, registry-indexed
    records: tuple[GatewayRecord, ...]  # for rw.gateway
    deadletter: DeadLetter | None
    rejected: tuple[str, ...]  # one reason per rejected message or item, for the metrics
    readings_in: int


@dataclass(frozen=True, slots=True)
class Validator:
    """Validates messages against one registry snapshot; `received` times come from the caller's clock."""

    table: SensorTable
    max_payload: int = DEFAULT_MAX_PAYLOAD
    future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S
    topic_root: str = "rw"

    def validate(self, topic: str, payload: bytes, received: float) -> Outcome:
        if len(payload) > self.max_payload:
            return _reject(
                topic,
                payload,
                received,
                Reason.OVERSIZED_PAYLOAD,
                f"{len(payload)} bytes > limit {self.max_payload}",
            )
        parts = parse_topic(topic, self.topic_root)
        if isinstance(parts, Rejected):
            return _reject(topic, payload, received, parts.reason, parts.detail)
        registered_site = self.table.gateway_site.get(parts.gateway)
        if registered_site is None:
            return _reject(
                topic,
                payload,
                received,
                Reason.GATEWAY_UNKNOWN,
                f"gateway {parts.gateway!r} is not in registry {self.table.fingerprint}",
                parts,
            )
        if registered_site != parts.site:
            return _reject(
                topic,
                payload,
                received,
                Reason.GATEWAY_SITE_MISMATCH,
                f"registry puts gateway {parts.gateway!r} at site {registered_site!r}",
                parts,
            )
        if parts.channel == "telemetry":
            return self._telemetry(topic, payload, received, parts)
        if parts.channel == "status":
            return self._status(topic, payload, received, parts)
        return self._events(topic, payload, received, parts)

    def _telemetry(self, topic: str, payload: bytes, received: float, parts: TopicParts) -> Outcome:
        msg = parse_telemetry(payload)
        if isinstance(msg, Rejected):
            return _reject(topic, payload, received, msg.reason, msg.detail, parts)
        if msg.gateway != parts.gateway:
            return _gw_mismatch(topic, payload, received, parts, msg)
        n = len(msg.sensor)
        idx = np.fromiter(map(self.table.index_of.get, msg.sensor, repeat(-1)), np.int32, n)
        site = self.table.site_codes[parts.site]
        limit = received + self.future_tolerance_s
        if (  # the common case, all good, in a few whole-array operations
            not msg.bad
            and msg.unit is None
            and idx.min() >= 0
            and (self.table.site_code[idx] == site).all()
            and math.isfinite(msg.value.sum())  # an overflowing sum just takes the slow path
            and math.isfinite(msg.ts.sum())
            and msg.ts.max() <= limit
        ):
            readings = Readings(idx, msg.value, msg.ts, msg.quality)
            return Outcome(parts.site, parts.gateway, msg.seq, readings, (), None, (), n)
        known = idx >= 0
        # code 0 = good; otherwise 1 + position in _ROW_REASONS; later checks never override earlier ones
        code = np.where(known, 0, 1).astype(np.int8)
        if msg.bad:
            code[[b.index for b in msg.bad]] = _SCHEMA_CODE
        site_ok = self.table.site_code[np.where(known, idx, 0)] == site
        _mark(code, known & ~site_ok, 2)
        if msg.unit is not None:
            uom = self.table.uom
            wrong = [
                u is not None and (i < 0 or u != uom[i]) for u, i in zip(msg.unit, idx.tolist(), strict=True)
            ]
            _mark(code, np.array(wrong) & known, 3)
        _mark(code, ~np.isfinite(msg.value), 4)
        finite_ts = np.isfinite(msg.ts)
        _mark(code, ~finite_ts, 5)
        _mark(code, finite_ts & (msg.ts > limit), 6)
        good = code == 0
        readings = (
            Readings(idx[good], msg.value[good], msg.ts[good], msg.quality[good]) if good.any() else None
        )
        deadletter, rejected = None, ()
        if not good.all():
            items = _items(msg, code, idx, received, self.future_tolerance_s, self.table)
            deadletter, rejected = _partly_rejected(items, n, "readings", topic, payload, received, parts)
        return Outcome(parts.site, parts.gateway, msg.seq, readings, (), deadletter, rejected, n)

    def _status(self, topic: str, payload: bytes, received: float, parts: TopicParts) -> Outcome:
        msg = parse_status(payload)
        if isinstance(msg, Rejected):
            return _reject(topic, payload, received, msg.reason, msg.detail, parts)
        if msg.gateway != parts.gateway:
            return _gw_mismatch(topic, payload, received, parts, msg)
        record = GatewayRecord("status", parts.site, parts.gateway, msg.t, received, state=msg.state)
        return Outcome(parts.site, parts.gateway, None, None, (record,), None, (), 0)

    def _events(self, topic: str, payload: bytes, received: float, parts: TopicParts) -> Outcome:
        msg = parse_events(payload)
        if isinstance(msg, Rejected):
            return _reject(topic, payload, received, msg.reason, msg.detail, parts)
        if msg.gateway != parts.gateway:
            return _gw_mismatch(topic, payload, received, parts, msg)
        bad = list(msg.bad)
        records = []
        for i, event in enumerate(msg.events):
            if event is None:
                continue
            if event.t > received + self.future_tolerance_s:
                bad.append(ItemError(i, Reason.FUTURE_TIMESTAMP, f"t={event.t} is ahead of the bridge clock"))
                continue
            records.append(
                GatewayRecord(
                    "event",
                    parts.site,
                    parts.gateway,
                    event.t,
                    received,
                    seq=msg.seq,
                    index=i,
                    kind=event.kind,
                    target=event.target,
                    note=event.note,
                )
            )
        deadletter, rejected = None, ()
        if bad:
            items = tuple(DeadItem(b.index, b.reason.value, b.detail) for b in sorted(bad))
            total = len(msg.events)
            deadletter, rejected = _partly_rejected(items, total, "events", topic, payload, received, parts)
        return Outcome(parts.site, parts.gateway, msg.seq, None, tuple(records), deadletter, rejected, 0)


def _mark(code: np.ndarray, mask: np.ndarray, value: int) -> None:
    code[mask & (code == 0)] = value


def _items(
    msg: TelemetryMessage,
    code: np.ndarray,
    idx: np.ndarray,
    received: float,
    tolerance: float,
    table: SensorTable,
) -> tuple[DeadItem, ...]:
    """Per-reading reasons, built only for the rejected rows."""
    schema = {b.index: b for b in msg.bad}
    items = []
    for i in np.flatnonzero(code).tolist():
        reason = _ROW_REASONS[code[i] - 1]
        sensor = msg.sensor[i]
        if reason is Reason.SCHEMA:
            detail = schema[i].detail
        elif reason is Reason.SENSOR_UNKNOWN:
            detail = f"sensor {sensor!r} is not in registry {table.fingerprint}"
        elif reason is Reason.SENSOR_SITE_MISMATCH:
            detail = f"sensor {sensor!r} belongs to another site"
        elif reason is Reason.WRONG_UNIT:
            detail = f"unit {msg.unit[i]!r} but the registry says {table.uom[idx[i]]!r}"  # type: ignore[index]
        elif reason is Reason.FUTURE_TIMESTAMP:
            ahead = msg.ts[i] - received
            detail = f"t={msg.ts[i]} is {ahead:.0f} s ahead of the bridge clock (tolerance {tolerance:.0f} s)"
        else:
            detail = f"v={msg.value[i]} t={msg.ts[i]}"
        items.append(DeadItem(i, reason.value, detail, sensor))
    return tuple(items)


def _partly_rejected(
    items: tuple[DeadItem, ...],
    total: int,
    noun: str,
    topic: str,
    payload: bytes,
    received: float,
    parts: TopicParts,
) -> tuple[DeadLetter, tuple[str, ...]]:
    """The dead letter of a message some of whose `total` items were rejected, and one reason per item."""
    letter = DeadLetter(
        summary_reason(items),
        f"{len(items)} of {total} {noun} rejected",
        topic,
        payload,
        received,
        site=parts.site,
        gateway=parts.gateway,
        items=items,
    )
    return letter, tuple(item.reason for item in items)


def _reject(
    topic: str, payload: bytes, received: float, reason: Reason, detail: str, parts: TopicParts | None = None
) -> Outcome:
    site, gateway = (parts.site, parts.gateway) if parts else ("", "")
    record = DeadLetter(reason.value, detail, topic, payload, received, site=site, gateway=gateway)
    return Outcome(site, gateway, None, None, (), record, (reason.value,), 0)


def _gw_mismatch(
    topic: str,
    payload: bytes,
    received: float,
    parts: TopicParts,
    msg: TelemetryMessage | StatusMessage | EventsMessage,
) -> Outcome:
    return _reject(
        topic,
        payload,
        received,
        Reason.GATEWAY_TOPIC_MISMATCH,
        f"payload gw {msg.gateway!r} published on gateway {parts.gateway!r}'s topic",
        parts,
    )
