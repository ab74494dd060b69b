"""The historian: a Kafka consumer of transitions and closed minutes that writes them to InfluxDB and
commits its offsets only once InfluxDB has accepted them.

Reads `rw.warnings`, `rw.alarms` (transitions) and `rw.history` (closed minutes the worker publishes) in
consumer group `riskwatch-history`; writes dead letters to `rw.deadletter`. Each fetched batch is one
guarded step: every record is decoded and rendered to line protocol on its own (one that cannot be is
dead-lettered as `malformed_record`), the lines are written (points InfluxDB refuses as malformed are
dead-lettered as `history_rejected`), the dead letters are acknowledged by Kafka, and only then are the
offsets committed. While InfluxDB is down or answers 5xx the same lines are retried with back-off and
nothing is committed, so a historian killed at any moment replays what InfluxDB may not have: points
written twice overwrite themselves (same series and time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError

from processors.health import Health
from processors.history.lines import minute_lines, transition_line
from processors.history.metrics import HistorianMetrics
from processors.history.writer import Sink, write_points
from riskwatch.kafka_access import KafkaAccess, start_when_reachable
from riskwatch.topics import Topics
from riskwatch.wire.deadletter import DeadLetter, Reason
from riskwatch.wire.minutes import SiteMinute
from riskwatch.wire.transitions import Transition

log = logging.getLogger("riskwatch.historian")

COMPONENT = "historian"
DEFAULT_GROUP = "riskwatch-history"


@dataclass(frozen=True, slots=True)
class HistorianOptions:
    kafka: KafkaAccess  # where Kafka is and the historian's account (riskwatch-history)
    topic_prefix: str = "rw"
    group_id: str = DEFAULT_GROUP
    max_records: int = 2000  # per fetch: one InfluxDB write step and one commit
    chunk_points: int = 5000  # points per InfluxDB request
    # A closed minute's aggregates (one point per sensor: 200k at a province's scale) arrive at once;
    # written in one burst they kept InfluxDB on a core for 15 s, starving the bridge and the worker on
    # a small machine. Fresh records are written at this pace; a backlog (older than `fresh_s`) at once.
    pace_points_per_s: float = 20_000.0
    fresh_s: float = 60.0
    backoff: tuple[float, float] = (0.5, 10.0)


class HistorianHealth(Health):
    """The loop's heartbeat (503 if it stops) plus whether InfluxDB takes writes, reported, not fatal:
    restarting the historian cannot bring InfluxDB back, and nothing is committed while it is away."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.influx_error = ""
        self.unwritten_since: float | None = None  # wall time of the oldest record consumed, not written

    def status(self, expected: tuple[str, ...] = ("consume",)) -> tuple[bool, dict[str, Any]]:
        ok, doc = super().status(expected)
        waiting = self.unwritten_since
        doc["writing"] = not self.influx_error
        doc["ready"] = ok and not self.influx_error
        doc["influxdb_error"] = self.influx_error
        doc["unwritten_age_s"] = round(time.time() - waiting, 3) if waiting is not None else 0.0
        return ok, doc


def render(topics: Topics, record: ConsumerRecord) -> list[str]:
    """The line protocol of one record; raises on a record that cannot be used."""
    raw = record.value
    if not raw:
        raise ValueError("empty record")
    if record.topic == topics.history:
        return minute_lines(SiteMinute.from_bytes(raw))
    kind = "alarm" if record.topic == topics.alarms else "warning"
    t = Transition.from_bytes(raw)
    if t.kind != kind:
        raise ValueError(f"`kind` {t.kind!r} does not belong on {record.topic}")
    return [transition_line(t)]


class Historian:
    def __init__(
        self,
        options: HistorianOptions,
        sink: Sink,
        metrics: HistorianMetrics,
        health: HistorianHealth,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options, self.sink, self.metrics, self.health, self.clock = options, sink, metrics, health, clock
        self.topics = Topics(options.topic_prefix)
        self.metrics.writing.set(1)  # no failed write yet: 0 only while writes fail

    def lines_of(self, records: list[ConsumerRecord]) -> tuple[list[str], list[DeadLetter]]:
        """Each record on its own: its lines, or a dead letter saying why it cannot be written."""
        lines: list[str] = []
        dead: list[DeadLetter] = []
        for r in records:
            try:
                lines += render(self.topics, r)
            except Exception as exc:
                dead.append(self._letter(Reason.MALFORMED_RECORD, f"{type(exc).__name__}: {exc}", r))
        return lines, dead

    def _letter(self, reason: Reason, detail: str, r: Any = None, line: str = "") -> DeadLetter:
        if r is None:  # a point InfluxDB refused: the line is what could not be stored
            return DeadLetter(
                reason.value, detail, "influxdb", line.encode("utf-8", "backslashreplace"), self.clock(),
                component=COMPONENT,
            )  # fmt: skip
        return DeadLetter(
            reason.value, detail, r.topic, r.value or b"", self.clock(), component=COMPONENT,
            partition=r.partition, offset=r.offset,
        )  # fmt: skip

    async def write(self, lines: list[str], fresh: bool, stop: asyncio.Event) -> list[DeadLetter] | None:
        """Write until InfluxDB has every line (retrying an outage); the refused points as dead letters.
        None if `stop` was set before the lines were written."""
        pace = self.options.pace_points_per_s if fresh else 0.0

        def paced(n: int) -> None:
            if pace > 0:
                time.sleep(n / pace)

        delay = self.options.backoff[0]
        while True:
            self.health.beat("consume")
            try:
                refused = await asyncio.to_thread(
                    write_points, self.sink, lines, self.options.chunk_points, paced
                )
            except Exception as exc:
                self.metrics.retries.inc()
                self.metrics.writing.set(0)
                self.health.influx_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("history write failed (%s); retrying in %.1f s, nothing committed", exc, delay)
                if await _stopped_within(stop, delay):
                    return None
                delay = min(delay * 2, self.options.backoff[1])
                continue
            if self.health.influx_error:
                log.warning("history writes succeed again")
            self.health.influx_error = ""
            self.metrics.writing.set(1)
            self.metrics.rejected.inc(len(refused))
            for line, why in refused:
                log.error("InfluxDB refused a history point, dead-lettered: %s: %.300s", why, line)
            return [self._letter(Reason.HISTORY_REJECTED, f"InfluxDB refused the point: {why}", None, line)
                    for line, why in refused]  # fmt: skip

    async def send_dead(
        self, producer: AIOKafkaProducer, dead: list[DeadLetter], stop: asyncio.Event
    ) -> bool:
        """Until Kafka has acknowledged every dead letter (False if stopped first)."""
        delay = self.options.backoff[0]
        while dead:
            self.health.beat("consume")
            try:
                futures = [await producer.send(self.topics.deadletter, d.to_bytes(), key=d.key) for d in dead]
                await asyncio.gather(*futures)
            except KafkaError as exc:
                log.warning("dead letters not sent (%r); retrying in %.1f s", exc, delay)
                if await _stopped_within(stop, delay):
                    return False
                delay = min(delay * 2, self.options.backoff[1])
                continue
            for d in dead:
                self.metrics.deadletters.labels(d.reason).inc()
            break
        return True

    async def step(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        records: list[ConsumerRecord],
        stop: asyncio.Event,
    ) -> None:
        """One fetched batch: render, write, dead-letter, then commit. Stopped midway, nothing is committed."""
        oldest = min((r.timestamp for r in records), default=0) / 1000.0
        self.health.unwritten_since = oldest or self.clock()
        self.metrics.unwritten_age.set(max(0.0, self.clock() - self.health.unwritten_since))
        lines, dead = self.lines_of(records)
        refused = await self.write(lines, self.clock() - oldest < self.options.fresh_s, stop)
        if refused is None or not await self.send_dead(producer, dead + refused, stop):
            return
        try:
            await consumer.commit()  # InfluxDB and the dead-letter topic have it all: Kafka may forget it
        except KafkaError as exc:  # not committed means written again later, which overwrites itself
            log.warning("offset commit failed, records will be written again: %r", exc)
            return
        self.health.unwritten_since = None
        self.metrics.unwritten_age.set(0)
        for r in records:
            self.metrics.records.labels(r.topic).inc()
        written = Counter(line.split(",", 1)[0] for line in lines)
        written.subtract(d.original.split(b",", 1)[0].decode("utf-8", "replace") for d in refused)
        for measurement, n in written.items():
            self.metrics.written.labels(measurement).inc(n)

    async def run(self, stop: asyncio.Event) -> None:
        t = self.topics
        consumer = AIOKafkaConsumer(
            t.warnings, t.alarms, t.history, **self.options.kafka.aiokafka(),
            group_id=self.options.group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            # An InfluxDB outage keeps one batch in the write step for as long as it lasts: staying in the
            # group meanwhile keeps the partitions here (the health check catches a loop that is stuck).
            max_poll_interval_ms=24 * 3600 * 1000,
        )  # fmt: skip
        producer = AIOKafkaProducer(**self.options.kafka.aiokafka(), acks="all", enable_idempotence=True)
        for client, what in ((consumer, "consumer"), (producer, "producer")):
            await start_when_reachable(client, what, KafkaError, stop, lambda: self.health.beat("consume"))
        lag_at = 0.0
        try:
            while not stop.is_set():
                self.health.beat("consume")
                batches = await consumer.getmany(timeout_ms=1000, max_records=self.options.max_records)
                records = [r for rs in batches.values() for r in rs]
                if records:
                    await self.step(consumer, producer, records, stop)
                if time.monotonic() - lag_at > 5.0:
                    lag_at = time.monotonic()
                    await self._lag(consumer)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                continue
            position = await consumer.position(tp)
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - position))


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` (a back-off) unless `stop` is set first; True if it was."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
