"""The bridge's composition root and worker loop: MQTT in -> validate -> batch -> Kafka -> MQTT ack.

Threads: paho's network loop fills the inbox; one worker validates, batches and hands records to the
sink; kafka-python's I/O thread and the spool thread report durability; the worker sends the PUBACKs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ingest.acks import AckTracker, Pending
from ingest.batcher import Cut, SiteBatcher
from ingest.lookup import RegistryLike, SensorTable
from ingest.metrics import BridgeMetrics
from ingest.mqtt import Inbound
from ingest.sink import KafkaSink
from ingest.spool import Record
from ingest.validate import Outcome, Validator
from riskwatch.topics import Topics
from riskwatch.wire.deadletter import DeadLetter, Reason

log = logging.getLogger(__name__)

_DRAIN = 256  # messages taken from the inbox per wake-up before checking batches and acks
_IDLE_WAIT_S = 0.5
_ACK_POLL_S = 0.002  # while acknowledgements are pending


class Acker(Protocol):
    """Where PUBACKs go (the MQTT source); a protocol so the worker can be driven without a broker."""

    def ack(self, mid: int, qos: int) -> None: ...


class Worker:
    """Validates and batches inbound messages; owns the batcher; acknowledges in arrival order."""

    def __init__(
        self,
        registry: RegistryLike,
        topics: Topics,
        sink: KafkaSink,
        acker: Acker,
        metrics: BridgeMetrics,
        validator_options: dict[str, Any],
        batch_max_readings: int,
        batch_linger_s: float,
        compress: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        table = SensorTable.from_registry(registry)
        self.validator = Validator(table, **validator_options)
        self.batcher: SiteBatcher[Pending] = SiteBatcher(
            table.fingerprint, table.ids, batch_max_readings, batch_linger_s, compress
        )
        self.topics, self.sink, self.acker, self.metrics, self.clock = topics, sink, acker, metrics, clock
        self.tracker = AckTracker()

    def handle(self, msg: Inbound) -> None:
        pending = self.tracker.open(msg.mid, msg.qos)
        try:
            out = self.validator.validate(msg.topic, msg.payload, msg.received)
        except Exception as exc:  # a validator bug: dead-letter the message rather than stall the acks
            log.exception("validating a message on %s failed", msg.topic)
            out = internal_error(msg, exc)
        channel = msg.topic.rsplit("/", 1)[-1]
        self.metrics.messages_in.labels(
            channel if channel in ("telemetry", "status", "events") else "other"
        ).inc()
        if out.readings_in:
            self.metrics.readings_in.inc(out.readings_in)
        for reason in out.rejected:
            self.metrics.rejects.labels(reason).inc()
        if out.deadletter is not None:
            self._send(Record(self.topics.deadletter, out.deadletter.key, out.deadletter.to_bytes()), pending)
        for record in out.records:
            self._send(Record(self.topics.gateway, out.site.encode(), record.to_bytes()), pending)
        if out.readings is not None and out.seq is not None:
            self.tracker.hold(pending)  # released when the batch carrying these readings is durable
            cut = self.batcher.add(out.site, out.gateway, out.seq, out.readings, pending, self.clock())
            if cut is not None:
                self._send_cut(cut)
        self.tracker.seal(pending)

    def tick(self) -> None:
        """Ship batches that waited their linger; acknowledge what is durable."""
        for cut in self.batcher.due(self.clock()):
            self._send_cut(cut)
        self.ack_ready()

    def ack_ready(self) -> int:
        ready = self.tracker.ready()
        for pending in ready:
            self.acker.ack(pending.mid, pending.qos)
        if ready:
            self.metrics.acked.inc(len(ready))
        self.metrics.in_flight.set(len(self.tracker))
        return len(ready)

    def wait_s(self) -> float:
        """How long the loop may block on the inbox before it has work to do."""
        due = self.batcher.next_due()
        wait = _IDLE_WAIT_S if due is None else max(0.0, due + self.batcher.linger_s - self.clock())
        return min(wait, _ACK_POLL_S) if len(self.tracker) else wait

    def flush(self, timeout_s: float) -> bool:
        """Ship every open batch and wait until all of it is durable and acknowledged."""
        for cut in self.batcher.cut_all():
            self._send_cut(cut)
        deadline = self.clock() + timeout_s
        self.sink.flush(timeout_s)
        while len(self.tracker) and self.clock() < deadline:
            self.ack_ready()
            time.sleep(0.01)
        self.ack_ready()
        return len(self.tracker) == 0

    def _send(self, record: Record, pending: Pending) -> None:
        self.tracker.hold(pending)
        self.sink.send(record, lambda: self.tracker.release([pending]))

    def _send_cut(self, cut: Cut[Pending]) -> None:
        def done() -> None:
            self.tracker.release(cut.tokens)
            self.metrics.readings_out.inc(cut.readings)

        self.sink.send(Record(self.topics.telemetry, cut.key, cut.value), done)


def internal_error(msg: Inbound, exc: Exception) -> Outcome:
    detail = f"bridge error {type(exc).__name__}: {exc}"
    record = DeadLetter(Reason.INTERNAL_ERROR.value, detail, msg.topic, msg.payload, msg.received)
    return Outcome("", "", None, None, (), record, (Reason.INTERNAL_ERROR.value,), 0)


def run_loop(worker: Worker, inbox: queue.SimpleQueue[Inbound], stop: threading.Event) -> None:
    """The worker thread's loop, until `stop` is set; a bad message never ends it."""
    while not stop.is_set():
        try:
            msg = inbox.get(timeout=worker.wait_s())
        except queue.Empty:
            msg = None
        n = 0
        while msg is not None:
            worker.handle(msg)
            n += 1
            if n >= _DRAIN:
                break
            try:
                msg = inbox.get_nowait()
            except queue.Empty:
                msg = None
        worker.tick()
