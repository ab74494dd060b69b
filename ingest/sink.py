"""Kafka delivery that loses nothing: the producer when Kafka answers, the fsync'd spool when it does not.

A record is *durable* once Kafka acknowledged it (acks=all) or it is in the spool; `send`'s callback
fires then, and only then may the MQTT message behind it be acknowledged. While the spool holds
anything, new records go to the spool too, so replay keeps their order; when the replayer has emptied
it, records go straight to Kafka again. A full spool stalls the callbacks (MQTT back-pressure).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from kafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

from ingest.metrics import BridgeMetrics
from ingest.spool import Record, Spool
from riskwatch.wire.deadletter import DeadLetter, Reason

log = logging.getLogger(__name__)

Done = Callable[[], None]
_SPOOL_CHUNK = 5000  # records per fsync while spooling
_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
_GRACE_S = 5.0  # beyond delivery_timeout_s, before we stop waiting for the producer's own verdict
# Kafka refuses these records for good (the producer's max request size or the broker's message.max.bytes):
# retrying them would block everything queued behind them, so they are replaced, never retried.
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


class _Flight:
    """A record handed to the producer, waiting for its outcome."""

    __slots__ = ("done", "record", "settled", "started")

    def __init__(self, record: Record, done: Done, started: float) -> None:
        self.record, self.done, self.started, self.settled = record, done, started, False


class FutureLike(Protocol):
    def add_callback(self, f: Callable[..., Any]) -> Any: ...
    def add_errback(self, f: Callable[..., Any]) -> Any: ...
    def get(self, timeout: float | None = None) -> Any: ...


class ProducerLike(Protocol):
    """The part of kafka.KafkaProducer the sink uses."""

    def send(self, topic: str, value: bytes, key: bytes) -> FutureLike: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


class KafkaSink:
    """Thread-safe `send`; a background thread writes failed records to the spool and replays it."""

    def __init__(
        self,
        producer_factory: Callable[[], ProducerLike],
        spool: Spool,
        metrics: BridgeMetrics,
        delivery_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        deadletter_topic: str = "rw.deadletter",
    ) -> None:
        self.producer_factory, self.spool, self.metrics = producer_factory, spool, metrics
        self.deadletter_topic = deadletter_topic
        self.producer: ProducerLike | None = None
        # kafka-python 3.0.12's idempotent producer resets its producer id when a batch expires and then
        # never asks for a new one, so after any failure replay starts on a fresh producer.
        self._fresh_producer_needed = True
        self.delivery_timeout_s, self.clock = delivery_timeout_s, clock
        self._cond = threading.Condition()
        self._to_spool: deque[tuple[Record, Done]] = deque()
        self._flights: deque[_Flight] = deque()
        self._spooling = not spool.empty()  # leftovers from the last run go first
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="bridge-spool", daemon=True)
        self._update_gauges()

    def start(self) -> None:
        try:
            self.producer = self.producer_factory()
            self._fresh_producer_needed = False
        except Exception as exc:  # Kafka down at start: spool until it answers
            log.warning("Kafka not reachable at start (%s); spooling", exc)
            self._spooling = True
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def spooling(self) -> bool:
        return self._spooling

    def send(self, record: Record, done: Done) -> None:
        """Hand a record on; `done` runs once it is durable (from another thread)."""
        with self._cond:
            if self._spooling:
                self._queue_for_spool(record, done)
                return
        flight = _Flight(record, done, self.clock())
        try:
            assert self.producer is not None, "no Kafka producer yet"
            future = self.producer.send(record.topic, value=record.value, key=record.key)
        except Exception as exc:  # buffer full or no metadata within max_block_ms: Kafka is not answering
            self._settle(flight, exc)
            return
        with self._cond:
            self._flights.append(flight)
        future.add_callback(lambda _meta: self._settle(flight, None))
        future.add_errback(lambda exc: self._settle(flight, exc))

    def flush(self, timeout_s: float) -> bool:
        """Wait until every record handed in is durable (acked or spooled); False on timeout."""
        deadline = self.clock() + timeout_s
        try:
            if self.producer is not None:
                self.producer.flush(timeout=max(0.1, timeout_s))
        except Exception as exc:
            log.warning("Kafka flush did not complete: %s", exc)
        with self._cond:
            self._cond.notify_all()
            while self._to_spool and self.clock() < deadline:
                self._cond.wait(0.1)
            return not self._to_spool

    def close(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        self._close_producer(timeout_s)
        self.spool.close()

    def _close_producer(self, timeout_s: float) -> None:
        producer, self.producer = self.producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=timeout_s)
        except Exception as exc:
            # kafka-python's close() gives up at its flush timeout before stopping the sender thread;
            # force-closing the sender fails the unfinished records, whose errbacks spool them.
            log.info("closing the Kafka producer: %s; forcing it", exc)
            sender = getattr(producer, "_sender", None)
            if sender is not None and sender.is_alive():
                sender.force_close()
            producer._closed = True  # type: ignore[attr-defined]  # its __del__ would retry the flush

    def _settle(self, flight: _Flight, exc: BaseException | None) -> None:
        """The first outcome of a record wins; a late success after we spooled it is a duplicate."""
        with self._cond:
            if flight.settled:
                return
            flight.settled = True
        if exc is None:
            self.metrics.produce_latency.observe(self.clock() - flight.started)
            self.metrics.records_out.labels(flight.record.topic).inc()
            flight.done()
        elif isinstance(exc, _TOO_LARGE):
            stand_in = self._stand_in(flight.record, exc)
            if stand_in is None:
                flight.done()
            else:  # through the spool: this may run on the producer's own I/O thread
                with self._cond:
                    self._queue_for_spool(stand_in, flight.done)
        else:
            self._failed(flight.record, flight.done, exc)

    def _stand_in(self, record: Record, exc: BaseException) -> Record | None:
        """What goes to Kafka instead of a record it refuses as too large: a bounded dead letter naming
        it (with its first bytes, length and hash), or nothing if the refused record is a dead letter."""
        if record.topic == self.deadletter_topic:
            self.metrics.oversized.labels(record.topic, "dropped").inc()
            log.error(
                "Kafka refused a %d-byte dead letter as too large (%s); dropped", len(record.value), exc
            )
            return None
        self.metrics.oversized.labels(record.topic, "replaced").inc()
        log.error(
            "Kafka refused a %d-byte record for %s as too large (%s); dead-lettered instead",
            len(record.value),
            record.topic,
            exc,
        )
        letter = DeadLetter(
            Reason.OVERSIZED_PAYLOAD.value,
            f"Kafka refused this {len(record.value)}-byte record for {record.topic} as too large: {exc}",
            record.topic,
            record.value,
            time.time(),
            site=record.key.decode(errors="replace"),
        )
        return Record(self.deadletter_topic, record.key, letter.to_bytes())

    def _expire_flights(self) -> None:
        """Records the producer neither acknowledged nor failed in time count as failed (and spooled)."""
        limit = self.clock() - self.delivery_timeout_s - _GRACE_S
        expired = []
        with self._cond:
            while self._flights and (self._flights[0].settled or self._flights[0].started < limit):
                flight = self._flights.popleft()
                if not flight.settled:
                    expired.append(flight)
        for flight in expired:
            self._settle(flight, TimeoutError("no answer from the Kafka producer in time"))

    def _failed(self, record: Record, done: Done, exc: BaseException) -> None:
        with self._cond:
            if not self._spooling:
                log.warning("Kafka did not take a record (%s); spooling until it answers again", exc)
            self._spooling = True
            self._fresh_producer_needed = True
            self._queue_for_spool(record, done)

    def _queue_for_spool(self, record: Record, done: Done) -> None:
        self._to_spool.append((record, done))
        self._cond.notify_all()

    def _run(self) -> None:
        backoff = 0
        while True:
            self._expire_flights()
            if self._spooling and not self._stop and self.spool.empty() and not self._to_spool:
                try:  # outside the lock: building a producer waits for Kafka's bootstrap
                    self._ensure_producer()
                except Exception as exc:
                    log.info("Kafka still not answering: %s", exc)
                    with self._cond:
                        self._cond.wait(_BACKOFF_S[-1])
                    continue
            with self._cond:
                if not self._stop and not self._to_spool and self.spool.empty():
                    if self._spooling:  # everything replayed and nothing waiting: straight to Kafka again
                        self._spooling = False
                        log.info("spool empty: sending straight to Kafka again")
                    self._cond.wait(0.5)
                    continue
                if self._stop and not self._to_spool:
                    return
                chunk = [self._to_spool.popleft() for _ in range(min(_SPOOL_CHUNK, len(self._to_spool)))]
            written = self.spool.append([record for record, _ in chunk]) if chunk else 0
            if written < len(chunk):  # spool full: keep the rest, unacknowledged, at the head of the queue
                with self._cond:
                    self._to_spool.extendleft(reversed(chunk[written:]))
            for record, done in chunk[:written]:
                self.metrics.spooled.inc()
                self.metrics.records_out.labels(record.topic).inc()
                done()
            self._update_gauges()
            if self._stop:
                continue
            if self.spool.empty():
                continue
            if self._replay_oldest():
                backoff = 0
            else:
                with self._cond:
                    self._cond.wait(_BACKOFF_S[min(backoff, len(_BACKOFF_S) - 1)])
                backoff += 1

    def _replay_oldest(self) -> bool:
        """Send the oldest segment; delete it only when Kafka acknowledged every record in it (or
        refused one as too large for good, which is replaced by its dead letter, see `_stand_in`)."""
        segment = self.spool.oldest()
        if segment is None:
            return True
        try:
            producer = self._ensure_producer()
            outcomes = [_try_send(producer, r) for r in segment.records]
            deadline = self.clock() + self.delivery_timeout_s
            for record, outcome in zip(segment.records, outcomes, strict=True):
                try:
                    if isinstance(outcome, BaseException):
                        raise outcome
                    outcome.get(timeout=max(0.1, deadline - self.clock()))
                except _TOO_LARGE as exc:
                    stand_in = self._stand_in(record, exc)
                    if stand_in is not None:
                        try:
                            _send_now(producer, stand_in, max(0.1, deadline - self.clock()))
                        except _TOO_LARGE as again:
                            self._stand_in(stand_in, again)  # counted and logged; nothing smaller to send
        except Exception as exc:
            log.info("spool replay paused, Kafka not answering yet: %s", exc)
            self._fresh_producer_needed = True
            return False
        self.spool.delivered(segment)
        self.metrics.replayed.inc(len(segment.records))
        self._update_gauges()
        log.info("replayed %d spooled records from %s", len(segment.records), segment.path.name)
        return True

    def _ensure_producer(self) -> ProducerLike:
        if self._fresh_producer_needed or self.producer is None:
            self._close_producer(0)
            self.producer = self.producer_factory()
            self._fresh_producer_needed = False
        return self.producer

    def _update_gauges(self) -> None:
        self.metrics.spool_bytes.set(self.spool.bytes)
        self.metrics.spool_records.set(self.spool.records)


def _try_send(producer: ProducerLike, record: Record) -> FutureLike | BaseException:
    """The producer's future, or the exception its `send` raised for a record it refuses outright."""
    try:
        return producer.send(record.topic, value=record.value, key=record.key)
    except _TOO_LARGE as exc:
        return exc


def _send_now(producer: ProducerLike, record: Record, timeout_s: float) -> None:
    producer.send(record.topic, value=record.value, key=record.key).get(timeout=timeout_s)
