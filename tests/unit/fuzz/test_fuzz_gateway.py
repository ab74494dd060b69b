"""Hostile gateway input: every MQTT payload is accepted or rejected with a reason, never an exception.

Arbitrary bytes, and gateway documents whose fields are replaced by hostile values (integers past 64
bits, NaN and infinities, lone surrogates, long strings, deep nesting, wrong types), go through the
parsers, the bridge's validator and its core (`Bridge`). Whatever comes out must serialise (dead letters within
their bound, rw.gateway records that decode again), and no input may ever be an `internal_error`.
Records on rw.gateway are fuzzed the same way: decoded, or refused with GatewayDecodeError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from ingest.bridge import Bridge
from ingest.lookup import SensorTable
from ingest.metrics import BridgeMetrics
from ingest.mqtt import Inbound
from ingest.spool import Record
from ingest.validate import Validated, Validator
from riskwatch.topics import Topics
from riskwatch.wire.deadletter import MAX_RECORD_BYTES, DeadLetter, Reason
from riskwatch.wire.gateway_protocol import (
    GatewayDecodeError,
    GatewayRecord,
    Rejected,
    parse_events,
    parse_status,
    parse_telemetry,
)
from tests.unit.ingest.conftest import small_registry

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_700_000_000.0
TOPICS = [f"rw/v1/site-A/gw-a1/{channel}" for channel in ("telemetry", "status", "events")]
REASONS = {r.value for r in Reason}

# Values a careless or hostile gateway puts where a field belongs.
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.one_of(SURROGATES, st.characters()), min_size=1, max_size=10),
    st.integers(100, 3000).map(lambda n: "x" * n),
    st.sampled_from(["pt-1", "gas-1", "pt-b", "pt-a2", "u1", "u2", "u3", "nowhere", "gw-a1", "gw-a2", ""]),
)
HOSTILE_NUMBER = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(10**20, 10**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([NOW, NOW - 1, NOW + 1e6, -1e11, 0, 1.7e308, -0.0, 2**63, 2**64, 2**64 - 1]),
    st.floats(NOW - 30 * 86400, NOW + 3600),
)
LEAF = st.one_of(st.none(), st.booleans(), HOSTILE_NUMBER, HOSTILE_TEXT)
ANY_JSON = st.recursive(
    LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=4)),
    max_leaves=12,
)
FIELD = st.one_of(ANY_JSON, LEAF, LEAF)  # mostly a single hostile value, sometimes a whole structure


def _maybe(key: str, value: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), value.map(lambda v: {key: v}))


READING = st.builds(
    lambda s, v, t, extra: {"s": s, "v": v, "t": t, **extra},
    st.one_of(HOSTILE_TEXT, FIELD),
    st.one_of(HOSTILE_NUMBER, FIELD),
    st.one_of(HOSTILE_NUMBER, FIELD),
    st.fixed_dictionaries({}, optional={"q": st.one_of(st.integers(-5, 300), FIELD), "u": FIELD}),
)
EVENT = st.builds(
    lambda kind, target, t, extra: {"kind": kind, "target": target, "t": t, **extra},
    st.one_of(st.sampled_from(["valve_closed", "maintenance_on", "bogus"]), FIELD),
    st.one_of(HOSTILE_TEXT, FIELD),
    st.one_of(HOSTILE_NUMBER, FIELD),
    st.fixed_dictionaries({}, optional={"note": st.one_of(HOSTILE_TEXT, FIELD)}),
)
GW = st.one_of(st.just("gw-a1"), st.just("gw-a1"), HOSTILE_TEXT, FIELD)
SEQ = st.one_of(st.integers(0, 2**64 + 5), HOSTILE_NUMBER, FIELD)
DOCUMENTS = st.one_of(
    st.builds(
        lambda gw, seq, rs: {"gw": gw, "seq": seq, "readings": rs}, GW, SEQ, st.lists(READING, max_size=6)
    ),
    st.builds(lambda gw, seq, es: {"gw": gw, "seq": seq, "events": es}, GW, SEQ, st.lists(EVENT, max_size=6)),
    st.builds(
        lambda gw, state, t: {"gw": gw, "state": state, **t},
        GW,
        st.one_of(st.sampled_from(["online", "offline"]), FIELD),
        _maybe("t", st.one_of(HOSTILE_NUMBER, FIELD)),
    ),
    ANY_JSON,
)
# What a serialiser cannot write: nesting deeper than any recursion limit, integers past the digit limit.
RAW_TEXTS = st.one_of(
    st.integers(1, 50_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 5_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(300, 6_000).map(
        lambda n: '{"gw": "gw-a1", "seq": 1, "readings": [{"s": "pt-1", "v": 1, "t": %s}]}' % ("9" * n)
    ),
)


def _encode(doc: Any, ascii_only: bool) -> bytes:
    # ensure_ascii writes lone surrogates as \ud800 escapes, as a hostile gateway would
    return json.dumps(doc, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


PAYLOADS = st.one_of(
    st.binary(max_size=600),
    st.builds(_encode, DOCUMENTS, st.booleans()),
    RAW_TEXTS.map(str.encode),
)


def _check_outcome(out: Validated, validator: Validator) -> None:
    if out.deadletter is not None:
        raw = out.deadletter.to_bytes()
        assert len(raw) <= MAX_RECORD_BYTES
        letter = DeadLetter.from_bytes(raw)
        assert letter.reason in REASONS and letter.detail
        assert letter.reason != Reason.INTERNAL_ERROR.value
        assert all(item.reason in REASONS and item.detail for item in letter.items)
    assert set(out.rejected) <= REASONS and Reason.INTERNAL_ERROR.value not in out.rejected
    for record in out.records:
        assert GatewayRecord.from_bytes(record.to_bytes()) == record
    if out.readings is not None:
        r = out.readings
        assert len(r) > 0 and np.isfinite(r.value).all() and np.isfinite(r.ts).all()
        assert (r.ts >= NOW - validator.max_age_s).all() and (
            r.ts <= NOW + validator.future_tolerance_s
        ).all()
        assert (r.sensor >= 0).all()


@FUZZ
@given(topic=st.sampled_from(TOPICS), payload=PAYLOADS)
def test_the_validator_accepts_or_rejects_with_a_reason(topic: str, payload: bytes) -> None:
    validator = Validator(SensorTable.from_registry(small_registry()))
    _check_outcome(validator.validate(topic, payload, NOW), validator)


@FUZZ
@given(payload=PAYLOADS)
def test_the_parsers_never_raise(payload: bytes) -> None:
    parsers: list[Callable[[bytes], Any]] = [parse_telemetry, parse_status, parse_events]
    for parse in parsers:
        result = parse(payload)
        if isinstance(result, Rejected):
            assert isinstance(result.reason, Reason) and result.detail
            result.detail.encode("utf-8")  # a detail always prints
        else:
            assert type(result.gateway) is str
            for text in (result.gateway, *getattr(result, "sensor", ())):
                text.encode("utf-8")  # no lone surrogate gets through


class _Sink:
    def __init__(self) -> None:
        self.sent: list[Record] = []

    def send(self, record: Record, done: Callable[[], None]) -> None:
        self.sent.append(record)
        done()


class _Acker:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(
        st.tuples(st.sampled_from([*TOPICS, "rw/v1/site-A/gw-a2/telemetry", "x"]), PAYLOADS), max_size=5
    )
)
def test_the_bridge_acknowledges_every_message_and_never_fails_one(messages: list[tuple[str, bytes]]) -> None:
    sink, acker, clock = _Sink(), _Acker(), [0.0]
    metrics = BridgeMetrics(CollectorRegistry())
    bridge = Bridge(
        small_registry(),
        Topics("x"),
        sink,
        acker,
        metrics,
        {},
        1000,
        0.0,
        clock=lambda: clock[0],  # type: ignore[arg-type]
    )
    for mid, (topic, payload) in enumerate(messages, 1):
        bridge.handle(Inbound(mid, 1, topic, payload, NOW))
    clock[0] = 1.0
    bridge.tick()
    assert acker.acked == list(range(1, len(messages) + 1))
    assert metrics.rejects.labels(Reason.INTERNAL_ERROR.value)._value.get() == 0
    assert all(len(r.value) <= max(MAX_RECORD_BYTES, 1 << 20) for r in sink.sent)


RECORD_DOCS = st.one_of(
    st.fixed_dictionaries(
        {"v": st.one_of(st.just(1), FIELD), "type": st.one_of(st.sampled_from(["status", "event"]), FIELD)},
        optional={
            name: st.one_of(HOSTILE_TEXT, FIELD) for name in ("site", "gw", "state", "kind", "target", "note")
        }
        | {"t": st.one_of(HOSTILE_NUMBER, FIELD), "received": st.one_of(HOSTILE_NUMBER, FIELD)}
        | {"seq": st.one_of(st.integers(-3, 2**64), FIELD), "index": st.one_of(st.integers(-3, 10), FIELD)}
        | {"extra": FIELD},
    ),
    ANY_JSON,
)


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=300), st.builds(_encode, RECORD_DOCS, st.booleans()), RAW_TEXTS.map(str.encode)
    )
)
def test_gateway_records_decode_or_are_refused_with_a_reason(raw: bytes) -> None:
    try:
        record = GatewayRecord.from_bytes(raw)
    except GatewayDecodeError as exc:
        assert str(exc)
        return
    assert record.type in ("status", "event")
    assert all(
        type(getattr(record, name)) is str for name in ("site", "gw", "state", "kind", "target", "note")
    )
    assert record.t is None or math.isfinite(record.t)
    assert math.isfinite(record.received)
    assert GatewayRecord.from_bytes(record.to_bytes()) == record
