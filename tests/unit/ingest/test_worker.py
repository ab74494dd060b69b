"""The worker without brokers: records go to the right topics, and PUBACKs wait for durability, in order."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from ingest.bridge import Worker
from ingest.metrics import BridgeMetrics
from ingest.mqtt import Inbound
from ingest.spool import Record
from riskwatch.topics import Topics
from riskwatch.wire.batch import decode
from riskwatch.wire.deadletter import DeadLetter
from riskwatch.wire.gateway import status_payload, telemetry_payload
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


def _worker(sink: _Sink, acker: _Acker, clock: list[float]) -> Worker:
    return Worker(
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
    worker = _worker(sink, acker, clock)
    good = telemetry_payload("gw-a1", 1, [{"s": "pt-1", "v": 1.0, "t": NOW}])
    worker.handle(Inbound(11, 1, "rw/v1/site-A/gw-a1/telemetry", good, NOW))
    worker.handle(Inbound(12, 1, "rw/v1/site-A/gw-a1/telemetry", b"{broken", NOW))
    worker.handle(Inbound(13, 1, "rw/v1/site-A/gw-a1/status", status_payload("gw-a1", "online"), NOW))
    worker.tick()
    assert [r.topic for r, _ in sink.sent] == ["x.deadletter", "x.gateway"]  # the batch is still lingering
    assert DeadLetter.from_bytes(sink.sent[0][0].value).reason == "malformed_json"
    for _, done in sink.sent:
        done()
    worker.tick()
    assert acker.acked == []  # 12 and 13 are durable but wait behind 11
    clock[0] = 0.06
    worker.tick()
    record, done = sink.sent[-1]
    assert record.topic == "x.telemetry" and record.key == b"site-A"
    assert [s.seq for s in decode(record.value).sources] == [1]
    done()
    worker.tick()
    assert acker.acked == [11, 12, 13]


def test_flush_ships_open_batches() -> None:
    sink, acker, clock = _Sink(), _Acker(), [0.0]
    worker = _worker(sink, acker, clock)
    worker.handle(
        Inbound(
            1,
            1,
            "rw/v1/site-A/gw-a1/telemetry",
            telemetry_payload("gw-a1", 7, [{"s": "gas-1", "v": 2.0, "t": NOW}]),
            NOW,
        )
    )
    sink.flush = lambda timeout_s: True  # type: ignore[attr-defined]
    worker.sink.send = lambda record, done: (sink.sent.append((record, done)), done())  # type: ignore[method-assign]
    assert worker.flush(1.0)
    assert acker.acked == [1] and sink.sent[-1][0].topic == "x.telemetry"
