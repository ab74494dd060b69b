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
from riskwatch.wire.gateway_protocol import (
    DEFAULT_MAX_EVENTS,
    DEFAULT_MAX_READINGS,
    MAX_PAYLOAD_BYTES,
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

DEFAULT_MAX_PAYLOAD = MAX_PAYLOAD_BYTES  # hundreds of readings are ~30 KiB
DEFAULT_FUTURE_TOLERANCE_S = 300.0  # gateway clocks drift; beyond this a timestamp is a clock fault
# A gateway buffers readings through an outage and sends them late; older than this is a clock fault
# (or an attack), and no downstream step is asked to handle times from before the window.
DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0

# Row checks in priority order: a row failing several gets the first reason.
_ROW_REASONS = (
    Reason.SENSOR_UNKNOWN,
    Reason.SENSOR_SITE_MISMATCH,
    Reason.SENSOR_GATEWAY_MISMATCH,
    Reason.WRONG_UNIT,
    Reason.NON_FINITE_VALUE,
    Reason.NON_FINITE_TIMESTAMP,
    Reason.FUTURE_TIMESTAMP,
    Reason.OLD_TIMESTAMP,
    Reason.SCHEMA,
)
_CODE = {reason: i + 1 for i, reason in enumerate(_ROW_REASONS)}  # 0 = good


class Validated(NamedTuple):
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
    max_age_s: float = DEFAULT_MAX_AGE_S
    max_readings: int = DEFAULT_MAX_READINGS
    max_events: int = DEFAULT_MAX_EVENTS
    topic_root: str = "rw"

    def _time_problem(self, t: float, received: float) -> tuple[Reason, str] | None:
        """Whether one timestamp (an event's or a status's) is outside the accepted window."""
        if not math.isfinite(t):
            return Reason.NON_FINITE_TIMESTAMP, f"t={t}"
        if t > received + self.future_tolerance_s:
            ahead = t - received
            return Reason.FUTURE_TIMESTAMP, (
                f"t={t} is {ahead:.0f} s ahead of the bridge clock (tolerance {self.future_tolerance_s:.0f} s)"
            )
        if t < received - self.max_age_s:
            return Reason.OLD_TIMESTAMP, (
                f"t={t} is {received - t:.0f} s old (maximum age {self.max_age_s:.0f} s)"
            )
        return None

    def validate(self, topic: str, payload: bytes, received: float) -> Validated:
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

    def _telemetry(self, topic: str, payload: bytes, received: float, parts: TopicParts) -> Validated:
        msg = parse_telemetry(payload, self.max_readings)
        if isinstance(msg, Rejected):
            return _reject(topic, payload, received, msg.reason, msg.detail, parts)
        if msg.gateway != parts.gateway:
            return _gw_mismatch(topic, payload, received, parts, msg)
        n = len(msg.sensor)
        table = self.table
        idx = np.fromiter(map(table.index_of.get, msg.sensor, repeat(-1)), np.int32, n)
        gateway = table.gateway_codes[parts.gateway]
        oldest, limit = received - self.max_age_s, received + self.future_tolerance_s
        if (  # the common case, all good, in a few whole-array operations
            not msg.bad
            and msg.unit is None
            and idx.min() >= 0
            and (table.gateway_code[idx] == gateway).all()  # its own sensors, so also its site's
            and math.isfinite(msg.value.sum())  # an overflowing sum just takes the slow path
            and math.isfinite(msg.ts.sum())
            and msg.ts.max() <= limit
            and msg.ts.min() >= oldest
        ):
            readings = Readings(idx, msg.value, msg.ts, msg.quality)
            return Validated(parts.site, parts.gateway, msg.seq, readings, (), None, (), n)
        known = idx >= 0
        # code 0 = good; otherwise _CODE[reason]; later checks never override earlier ones
        code = np.where(known, 0, _CODE[Reason.SENSOR_UNKNOWN]).astype(np.int8)
        if msg.bad:
            code[[b.index for b in msg.bad]] = _CODE[Reason.SCHEMA]
        safe_idx = np.where(known, idx, 0)
        site_ok = table.site_code[safe_idx] == table.site_codes[parts.site]
        _mark(code, known & ~site_ok, _CODE[Reason.SENSOR_SITE_MISMATCH])
        _mark(code, known & (table.gateway_code[safe_idx] != gateway), _CODE[Reason.SENSOR_GATEWAY_MISMATCH])
        if msg.unit is not None:
            uom = table.uom
            wrong = [
                u is not None and (i < 0 or u != uom[i]) for u, i in zip(msg.unit, idx.tolist(), strict=True)
            ]
            _mark(code, np.array(wrong) & known, _CODE[Reason.WRONG_UNIT])
        _mark(code, ~np.isfinite(msg.value), _CODE[Reason.NON_FINITE_VALUE])
        finite_ts = np.isfinite(msg.ts)
        _mark(code, ~finite_ts, _CODE[Reason.NON_FINITE_TIMESTAMP])
        _mark(code, finite_ts & (msg.ts > limit), _CODE[Reason.FUTURE_TIMESTAMP])
        _mark(code, finite_ts & (msg.ts < oldest), _CODE[Reason.OLD_TIMESTAMP])
        good = code == 0
        some = Readings(idx[good], msg.value[good], msg.ts[good], msg.quality[good]) if good.any() else None
        deadletter: DeadLetter | None = None
        rejected: tuple[str, ...] = ()
        if not good.all():
            items = self._items(msg, code, idx, received)
            deadletter, rejected = _partly_rejected(items, n, "readings", topic, payload, received, parts)
        return Validated(parts.site, parts.gateway, msg.seq, some, (), deadletter, rejected, n)

    def _items(
        self, msg: TelemetryMessage, code: np.ndarray, idx: np.ndarray, received: float
    ) -> tuple[DeadItem, ...]:
        """Per-reading reasons, built only for the rejected rows."""
        table = self.table
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
            elif reason is Reason.SENSOR_GATEWAY_MISMATCH:
                detail = f"the registry assigns sensor {sensor!r} to gateway {table.sensor_gateway(idx[i])!r}"
            elif reason is Reason.WRONG_UNIT:
                detail = f"unit {msg.unit[i]!r} but the registry says {table.uom[idx[i]]!r}"  # type: ignore[index]
            elif reason in (Reason.FUTURE_TIMESTAMP, Reason.OLD_TIMESTAMP):
                problem = self._time_problem(float(msg.ts[i]), received)
                detail = problem[1] if problem else f"t={msg.ts[i]}"
            else:
                detail = f"v={msg.value[i]} t={msg.ts[i]}"
            items.append(DeadItem(i, reason.value, detail, sensor))
        return tuple(items)

    def _status(self, topic: str, payload: bytes, received: float, parts: TopicParts) -> Validated:
        msg = parse_status(payload)
        if isinstance(msg, Rejected):
            return _reject(topic, payload, received, msg.reason, msg.detail, parts)
        if msg.gateway != parts.gateway:
            return _gw_mismatch(topic, payload, received, parts, msg)
        if msg.t is not None:
            problem = self._time_problem(msg.t, received)
            if problem is not None:
                return _reject(topic, payload, received, *problem, parts)
        record = GatewayRecord("status", parts.site, parts.gateway, msg.t, received, state=msg.state)
        return Validated(parts.site, parts.gateway, None, None, (record,), None, (), 0)

    def _events(self, topic: str, payload: bytes, received: float, parts: TopicParts) -> Validated:
        msg = parse_events(payload, self.max_events)
        if isinstance(msg, Rejected):
            return _reject(topic, payload, received, msg.reason, msg.detail, parts)
        if msg.gateway != parts.gateway:
            return _gw_mismatch(topic, payload, received, parts, msg)
        bad = list(msg.bad)
        records = []
        for i, event in enumerate(msg.events):
            if event is None:
                continue
            problem = self._time_problem(event.t, received) or self._target_problem(
                event.target, parts.gateway
            )
            if problem is not None:
                bad.append(ItemError(i, *problem))
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
        deadletter: DeadLetter | None = None
        rejected: tuple[str, ...] = ()
        if bad:
            items = tuple(DeadItem(b.index, b.reason.value, b.detail) for b in sorted(bad))
            total = len(msg.events)
            deadletter, rejected = _partly_rejected(items, total, "events", topic, payload, received, parts)
        return Validated(parts.site, parts.gateway, msg.seq, None, tuple(records), deadletter, rejected, 0)

    def _target_problem(self, target: str, gateway: str) -> tuple[Reason, str] | None:
        """An event may name only a unit or sensor its gateway serves."""
        table = self.table
        index = table.index_of.get(target)
        if index is not None:
            owner = table.sensor_gateway(index)
            if owner == gateway:
                return None
            return Reason.TARGET_NOT_SERVED, f"sensor {target!r} is served by gateway {owner!r}"
        served_by = table.unit_gateways.get(target)
        if served_by is None:
            return Reason.TARGET_UNKNOWN, f"no unit or sensor {target!r} in registry {table.fingerprint}"
        if gateway in served_by:
            return None
        return Reason.TARGET_NOT_SERVED, f"unit {target!r} is served by {sorted(served_by) or 'no gateway'}"


def _mark(code: np.ndarray, mask: np.ndarray, value: int) -> None:
    code[mask & (code == 0)] = value


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
) -> Validated:
    site, gateway = (parts.site, parts.gateway) if parts else ("", "")
    record = DeadLetter(reason.value, detail, topic, payload, received, site=site, gateway=gateway)
    return Validated(site, gateway, None, None, (), record, (reason.value,), 0)


def _gw_mismatch(
    topic: str,
    payload: bytes,
    received: float,
    parts: TopicParts,
    msg: TelemetryMessage | StatusMessage | EventsMessage,
) -> Validated:
    return _reject(
        topic,
        payload,
        received,
        Reason.GATEWAY_TOPIC_MISMATCH,
        f"payload gw {msg.gateway!r} published on gateway {parts.gateway!r}'s topic",
        parts,
    )
