"""The bridge's core, `Bridge`, and its thread loop: MQTT in -> validate -> batch -> Kafka -> MQTT ack.

Threads: paho's network loop fills the inbox; one bridge thread validates, batches and hands records to
the sink; kafka-python's I/O thread and the spool thread report durability; the bridge thread sends the
PUBACKs. `ingest/service.py` wires them together (`riskwatch bridge`).
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
from ingest.validate import Validated, Validator
from riskwatch.topics import Topics
from riskwatch.wire.batch import BodyCodec
from riskwatch.wire.deadletter import DeadLetter, Reason
from riskwatch.wire.gateway_protocol import CHANNELS

log = logging.getLogger(__name__)

_DRAIN = 256  # messages taken from the inbox per wake-up before checking batches and acks
_IDLE_WAIT_S = 0.5
_ACK_POLL_S = 0.002  # while acknowledgements are pending


class Acker(Protocol):
    """Where PUBACKs go (the MQTT source); a protocol so the bridge can be driven without a broker."""

    def ack(self, mid: int, qos: int) -> None: ...


class Bridge:
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
        compress: BodyCodec = "none",
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
        """One MQTT message in one guarded step: validate, serialise every record, hand them on.

        Whatever raises on the way (a bug, an input nobody foresaw) turns the message into an
        `internal_error` dead letter, so it is still acknowledged and the loop goes on with the next one.
        """
        pending = self.tracker.open(msg.mid, msg.qos)
        try:
            channel = msg.topic.rsplit("/", 1)[-1]
            self.metrics.messages_in.labels(channel if channel in CHANNELS else "other").inc()
            out = self.validator.validate(msg.topic, msg.payload, msg.received)
            records = self._records(out)  # all serialised before anything is handed on
            if out.readings_in:
                self.metrics.readings_in.inc(out.readings_in)
            for reason in out.rejected:
                self.metrics.rejects.labels(reason).inc()
            for record in records:
                self._send(record, pending)
            if out.readings is not None and out.seq is not None:
                self.tracker.hold(pending)  # released when the batch carrying these readings is durable
                cut = self.batcher.add(out.site, out.gateway, out.seq, out.readings, pending, self.clock())
                if cut is not None:
                    self._send_cut(cut)
        except Exception as exc:
            log.exception("handling a message on %r failed; dead-lettered as internal_error", msg.topic)
            self._internal_error(msg, exc, pending)
        finally:
            self.tracker.seal(pending)

    def _records(self, out: Validated) -> list[Record]:
        records = []
        if out.deadletter is not None:
            records.append(Record(self.topics.deadletter, out.deadletter.key, out.deadletter.to_bytes()))
        site = out.site.encode()
        records += [Record(self.topics.gateway, site, r.to_bytes()) for r in out.records]
        return records

    def _internal_error(self, msg: Inbound, exc: Exception, pending: Pending) -> None:
        self.metrics.rejects.labels(Reason.INTERNAL_ERROR.value).inc()
        try:
            letter = DeadLetter(
                Reason.INTERNAL_ERROR.value,
                f"bridge error {type(exc).__name__}: {exc}",
                msg.topic,
                msg.payload,
                msg.received,
            )
            self._send(Record(self.topics.deadletter, letter.key, letter.to_bytes()), pending)
        except Exception:  # not even the dead letter could be made: the counter and the log keep the trace
            log.exception("could not dead-letter a message on %r", msg.topic)

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
        try:
            self.sink.send(record, lambda: self.tracker.release([pending]))
        except Exception:
            self.tracker.release([pending])  # a hold that nothing will release would stall every ack
            raise

    def _send_cut(self, cut: Cut[Pending]) -> None:
        if cut.error:  # the batch could not be encoded: its messages are dead-lettered, never stuck
            self.metrics.rejects.labels(Reason.INTERNAL_ERROR.value).inc()
            letter = DeadLetter(
                Reason.INTERNAL_ERROR.value,
                f"encoding a batch of {cut.readings} readings failed: {cut.error}",
                self.topics.telemetry,
                b"",
                time.time(),
                site=cut.key.decode(errors="replace"),
            )
            self.sink.send(
                Record(self.topics.deadletter, letter.key, letter.to_bytes()),
                lambda: self.tracker.release(cut.tokens),
            )
            return

        def done() -> None:
            self.tracker.release(cut.tokens)
            self.metrics.readings_out.inc(cut.readings)

        self.sink.send(Record(self.topics.telemetry, cut.key, cut.value), done)


def run_loop(bridge: Bridge, inbox: queue.SimpleQueue[Inbound], stop: threading.Event) -> None:
    """The bridge thread's loop, until `stop` is set; a bad message never ends it."""
    while not stop.is_set():
        try:
            msg = inbox.get(timeout=bridge.wait_s())
        except queue.Empty:
            msg = None
        n = 0
        while msg is not None:
            bridge.handle(msg)  # guarded: a message that cannot be handled is dead-lettered
            n += 1
            if n >= _DRAIN:
                break
            try:
                msg = inbox.get_nowait()
            except queue.Empty:
                msg = None
        bridge.tick()
