"""The bridge core without brokers: records go to the right topics, and PUBACKs wait for durability, in order."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from ingest.bridge import Bridge
from ingest.metrics import BridgeMetrics
from ingest.mqtt import Inbound
from ingest.spool import Record
from riskwatch.topics import Topics
from riskwatch.wire.batch import decode
from riskwatch.wire.deadletter import DeadLetter
from riskwatch.wire.gateway_protocol import status_payload, telemetry_payload
from tests.unit.ingest.conftest import small_registry

NOW = 1_700_000_000.0


class _Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[Record, Callable[[], None]]] = []

    def send(self, record: Record, done: Callable[[], None]) -> None:
        self.sent.append((record, done))


class _Acker:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


def _bridge(sink: _Sink, acker: _Acker, clock: list[float]) -> Bridge:
    return Bridge(
        small_registry(),
        Topics("x"),
        sink,
        acker,
        BridgeMetrics(CollectorRegistry()),  # type: ignore[arg-type]
        {},
        batch_max_readings=100,
        batch_linger_s=0.05,
        clock=lambda: clock[0],
    )


def test_messages_are_acknowledged_only_when_durable_and_in_arrival_order() -> None:
    sink, acker, clock = _Sink(), _Acker(), [0.0]
    bridge = _bridge(sink, acker, clock)
    good = telemetry_payload("gw-a1", 1, [{"s": "pt-1", "v": 1.0, "t": NOW}])
    bridge.handle(Inbound(11, 1, "rw/v1/site-A/gw-a1/telemetry", good, NOW))
    bridge.handle(Inbound(12, 1, "rw/v1/site-A/gw-a1/telemetry", b"{broken", NOW))
    bridge.handle(Inbound(13, 1, "rw/v1/site-A/gw-a1/status", status_payload("gw-a1", "online"), NOW))
    bridge.tick()
    assert [r.topic for r, _ in sink.sent] == ["x.deadletter", "x.gateway"]  # the batch is still lingering
    assert DeadLetter.from_bytes(sink.sent[0][0].value).reason == "malformed_json"
    for _, done in sink.sent:
        done()
    bridge.tick()
    assert acker.acked == []  # 12 and 13 are durable but wait behind 11
    clock[0] = 0.06
    bridge.tick()
    record, done = sink.sent[-1]
    assert record.topic == "x.telemetry" and record.key == b"site-A"
    assert [s.seq for s in decode(record.value).sources] == [1]
    done()
    bridge.tick()
    assert acker.acked == [11, 12, 13]


def test_flush_ships_open_batches() -> None:
    sink, acker, clock = _Sink(), _Acker(), [0.0]
    bridge = _bridge(sink, acker, clock)
    bridge.handle(
        Inbound(
            1,
            1,
            "rw/v1/site-A/gw-a1/telemetry",
            telemetry_payload("gw-a1", 7, [{"s": "gas-1", "v": 2.0, "t": NOW}]),
            NOW,
        )
    )
    sink.flush = lambda timeout_s: True  # type: ignore[attr-defined]
    bridge.sink.send = lambda record, done: (sink.sent.append((record, done)), done())  # type: ignore[method-assign]
    assert bridge.flush(1.0)
    assert acker.acked == [1] and sink.sent[-1][0].topic == "x.telemetry"


def _ack_all(sink: _Sink, bridge: Bridge) -> None:
    for _, done in sink.sent:
        done()
    bridge.tick()


def test_a_lone_surrogate_is_dead_lettered_and_the_loop_goes_on() -> None:
    sink, acker, clock = _Sink(), _Acker(), [0.0]
    bridge = _bridge(sink, acker, clock)
    hostile = b'{"gw": "gw-a1", "seq": 1, "events": [{"kind": "valve_closed", "target": "u1", "t": 1700000000, "note": "\\ud800"}]}'
    bridge.handle(Inbound(1, 1, "rw/v1/site-A/gw-a1/events", hostile, NOW))
    bridge.handle(Inbound(2, 1, "rw/v1/site-A/gw-a1/status", status_payload("gw-a1", "online"), NOW))
    assert [r.topic for r, _ in sink.sent] == ["x.deadletter", "x.gateway"]
    letter = DeadLetter.from_bytes(sink.sent[0][0].value)
    assert letter.reason == "malformed_json" and "surrogate" in letter.detail
    assert letter.original == hostile
    _ack_all(sink, bridge)
    assert acker.acked == [1, 2]


def test_any_exception_while_handling_becomes_an_internal_error_dead_letter() -> None:
    sink, acker, clock = _Sink(), _Acker(), [0.0]
    bridge = _bridge(sink, acker, clock)
    real = bridge.validator

    class _Broken:
        def validate(self, topic: str, payload: bytes, received: float) -> object:
            if b"boom" in payload:
                raise OverflowError("int too large to convert to float")
            return real.validate(topic, payload, received)

    bridge.validator = _Broken()  # type: ignore[assignment]
    bridge.handle(Inbound(1, 1, "rw/v1/site-A/gw-a1/telemetry", b"boom" * 100_000, NOW))
    bridge.handle(Inbound(2, 1, "rw/v1/site-A/gw-a1/status", status_payload("gw-a1", "online"), NOW))
    assert [r.topic for r, _ in sink.sent] == ["x.deadletter", "x.gateway"]
    raw = sink.sent[0][0].value
    letter = DeadLetter.from_bytes(raw)
    assert letter.reason == "internal_error" and "OverflowError" in letter.detail
    assert len(raw) <= 256 * 1024 and letter.original_length == 400_000
    assert bridge.metrics.rejects.labels("internal_error")._value.get() == 1
    _ack_all(sink, bridge)
    assert acker.acked == [1, 2]


def test_a_batch_that_cannot_be_encoded_releases_its_messages() -> None:
    sink, acker, clock = _Sink(), _Acker(), [0.0]
    bridge = _bridge(sink, acker, clock)
    bridge.batcher.fingerprint = 12345  # type: ignore[assignment]  # makes the encoder raise
    good = telemetry_payload("gw-a1", 1, [{"s": "pt-1", "v": 1.0, "t": NOW}])
    bridge.handle(Inbound(1, 1, "rw/v1/site-A/gw-a1/telemetry", good, NOW))
    clock[0] = 1.0
    bridge.tick()
    assert [r.topic for r, _ in sink.sent] == ["x.deadletter"]
    assert DeadLetter.from_bytes(sink.sent[0][0].value).reason == "internal_error"
    _ack_all(sink, bridge)
    assert acker.acked == [1]
