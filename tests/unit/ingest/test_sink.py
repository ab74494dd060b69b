"""The Kafka sink's no-loss logic against a scripted producer: spool on failure, replay in order, resume."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ingest.metrics import BridgeMetrics
from ingest.sink import KafkaSink
from ingest.spool import Record, Spool
from riskwatch.wire.deadletter import DeadLetter


class _Future:
    def __init__(self) -> None:
        self.callbacks: list[Callable[..., Any]] = []
        self.errbacks: list[Callable[..., Any]] = []
        self.outcome: tuple[bool, Any] | None = None

    def add_callback(self, f: Callable[..., Any]) -> None:
        self.callbacks.append(f)
        if self.outcome and self.outcome[0]:
            f(None)

    def add_errback(self, f: Callable[..., Any]) -> None:
        self.errbacks.append(f)
        if self.outcome and not self.outcome[0]:
            f(self.outcome[1])

    def resolve(self, ok: bool) -> None:
        self.outcome = (ok, None if ok else RuntimeError("broker down"))
        for f in self.callbacks if ok else self.errbacks:
            f(self.outcome[1])

    def get(self, timeout: float | None = None) -> None:
        if not (self.outcome and self.outcome[0]):
            raise RuntimeError("broker down")


class _Producer:
    """Acknowledges immediately while `up`, fails every send otherwise; records what Kafka got."""

    def __init__(self, cluster: _Cluster) -> None:
        self.cluster = cluster

    def send(self, topic: str, value: bytes, key: bytes) -> _Future:
        future = _Future()
        if self.cluster.up:
            self.cluster.log.append(value)
        future.resolve(self.cluster.up)
        return future

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class _Cluster:
    def __init__(self) -> None:
        self.up, self.log, self.producers = True, [], 0

    def producer(self) -> _Producer:
        self.producers += 1
        return _Producer(self)


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_outage_spools_acknowledges_then_replays_in_order(tmp_path: Path) -> None:
    cluster = _Cluster()
    sink = KafkaSink(cluster.producer, Spool(tmp_path, 10**6), BridgeMetrics(CollectorRegistry()), 1.0)
    sink.start()
    done: list[int] = []
    try:
        sink.send(Record("t", b"k", b"0"), lambda: done.append(0))
        cluster.up = False
        for i in range(1, 5):
            sink.send(Record("t", b"k", str(i).encode()), lambda i=i: done.append(i))
        assert _wait(lambda: len(done) == 5)  # durable in the spool, so acknowledgeable
        assert sink.spooling and sink.spool.records == 4 and cluster.log == [b"0"]
        cluster.up = True
        sink.send(Record("t", b"k", b"5"), lambda: done.append(5))  # behind the spooled ones
        assert _wait(lambda: not sink.spooling and sink.spool.empty())
        assert cluster.log == [b"0", b"1", b"2", b"3", b"4", b"5"]
        assert cluster.producers >= 2  # replay used a fresh producer after the failure
        sink.send(Record("t", b"k", b"6"), lambda: done.append(6))
        assert cluster.log[-1] == b"6" and done[-1] == 6
    finally:
        sink.close()


def test_full_spool_holds_back_acknowledgements(tmp_path: Path) -> None:
    cluster = _Cluster()
    cluster.up = False
    sink = KafkaSink(cluster.producer, Spool(tmp_path, 100), BridgeMetrics(CollectorRegistry()), 1.0)
    sink.start()
    done: list[int] = []
    try:
        for i in range(10):
            sink.send(Record("t", b"k", b"x" * 20), lambda i=i: done.append(i))
        assert _wait(lambda: len(done) == 2)  # 2 frames of 40 bytes fit in 100
        time.sleep(0.3)
        assert len(done) == 2  # the rest wait, unacknowledged: MQTT back-pressure, not loss
        cluster.up = True
        assert _wait(lambda: len(done) == 10, 20)
        assert len(cluster.log) == 10
    finally:
        sink.close()


def test_a_spool_left_by_a_crashed_bridge_is_replayed_first(tmp_path: Path) -> None:
    leftover = Spool(tmp_path, 10**6)
    leftover.append([Record("t", b"k", b"old-1"), Record("t", b"k", b"old-2")])
    leftover.close()
    cluster = _Cluster()
    sink = KafkaSink(cluster.producer, Spool(tmp_path, 10**6), BridgeMetrics(CollectorRegistry()), 1.0)
    assert sink.spooling  # new records queue behind the old ones
    sink.start()
    try:
        sink.send(Record("t", b"k", b"new"), lambda: None)
        assert _wait(lambda: cluster.log == [b"old-1", b"old-2", b"new"])
        assert _wait(lambda: not sink.spooling)
    finally:
        sink.close()


def test_kafka_down_at_start_spools_until_a_producer_can_be_built(tmp_path: Path) -> None:
    cluster = _Cluster()
    cluster.up = False

    def factory() -> _Producer:
        if not cluster.up:
            raise RuntimeError("Unable to bootstrap")
        return cluster.producer()

    sink = KafkaSink(factory, Spool(tmp_path, 10**6), BridgeMetrics(CollectorRegistry()), 1.0)
    sink.start()
    done: list[int] = []
    try:
        assert sink.spooling
        sink.send(Record("t", b"k", b"a"), lambda: done.append(1))
        assert _wait(lambda: done == [1]) and sink.spool.records == 1
        cluster.up = True
        assert _wait(lambda: cluster.log == [b"a"] and not sink.spooling, 20)
    finally:
        sink.close()


class _SizeLimitedProducer(_Producer):
    """Kafka with a maximum record size: bigger records are refused for good, like the real producer
    (synchronously, past max_request_size) or the broker (through the future, past message.max.bytes)."""

    limit = 100_000  # a stand-in dead letter keeps 64 KiB of the original: ~88 KB

    def send(self, topic: str, value: bytes, key: bytes) -> _Future:
        from kafka.errors import MessageSizeTooLargeError

        if len(value) > self.limit and value.startswith(b"sync"):
            raise MessageSizeTooLargeError(f"{len(value)} bytes > max_request_size")
        if len(value) > self.limit:
            future = _Future()
            future.outcome = (False, MessageSizeTooLargeError("broker: message too large"))
            future.get = lambda timeout=None: (_ for _ in ()).throw(future.outcome[1])  # type: ignore[method-assign]
            return future
        return super().send(topic, value, key)


def test_records_kafka_refuses_as_too_large_are_replaced_never_retried(tmp_path: Path) -> None:
    leftover = Spool(tmp_path, 10**7)
    leftover.append(
        [
            Record("t.telemetry", b"site", b"async" * 30_000),  # refused by the broker
            Record("t.deadletter", b"site", b"sync" * 40_000),  # a dead letter too big: dropped, counted
            Record("t.telemetry", b"site", b"after"),
        ]
    )
    leftover.close()
    cluster = _Cluster()
    cluster.producer = lambda: _SizeLimitedProducer(cluster)  # type: ignore[method-assign]
    metrics = BridgeMetrics(CollectorRegistry())
    sink = KafkaSink(cluster.producer, Spool(tmp_path, 10**7), metrics, 1.0, deadletter_topic="t.deadletter")
    sink.start()
    done: list[str] = []
    try:
        assert _wait(lambda: sink.spool.empty() and not sink.spooling)  # not stuck behind the big ones
        assert b"after" in cluster.log
        sink.send(Record("t.telemetry", b"site", b"sync" * 40_000), lambda: done.append("live-sync"))
        sink.send(Record("t.gateway", b"site", b"x" * 200_000), lambda: done.append("live-async"))
        sink.send(Record("t.telemetry", b"site", b"next"), lambda: done.append("next"))
        assert _wait(lambda: sorted(done) == ["live-async", "live-sync", "next"] and sink.spool.empty())
        letters = [DeadLetter.from_bytes(v) for v in cluster.log if v.startswith(b'{"v":1')]
        assert sorted((d.reason, d.source, d.original_length) for d in letters) == [
            ("oversized_payload", "t.gateway", 200_000),
            ("oversized_payload", "t.telemetry", 150_000),
            ("oversized_payload", "t.telemetry", 160_000),
        ]
        assert all("too large" in d.detail for d in letters)
        assert metrics.oversized.labels("t.deadletter", "dropped")._value.get() == 1
        assert metrics.oversized.labels("t.telemetry", "replaced")._value.get() == 2
    finally:
        sink.close()
