"""Readers of the pipeline's Kafka topics, for the load generator, scenarios, the demo and the bench.

They read like any consumer would (kafka-python, no consumer group, from the end or the beginning of
every partition) and decode with the kernel's wire formats: `rw.telemetry` with the batch codec,
`rw.warnings` / `rw.alarms` as transitions, `rw.alerts` as JSON audit events.

A reader takes each partition in offset order and skips nothing. kafka-python can move a position
past records it never returned: when it cannot validate a position after a leader change, or a fetch
is out of range, it resets the position by `auto_offset_reset` (here its default, "latest"), and the
records in between are gone without an error. That was seen once in the cluster test, after a broker's
SIGKILL: a red warning on `rw.warnings` that alerting consumed but the test's reader never returned.
So a record beyond the next expected offset rewinds the partition to it (a plain seek, which asks for
no validation), and a record returned again is left out. ("earliest" instead was tried: in one cluster
run of three the telemetry reader then stopped making progress after the broker's kill.)
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from kafka import KafkaConsumer, TopicPartition

from riskwatch.kafka_access import KafkaAccess
from riskwatch.wire.batch import BatchDecodeError, decode
from riskwatch.wire.transitions import Transition, TransitionDecodeError
from simulators.latency import LatencyHistogram
from simulators.sensors import SimulatorError

log = logging.getLogger(__name__)


class TopicReader:
    """Every partition of one topic, assigned by hand, starting at the end (or the beginning)."""

    def __init__(
        self, access: KafkaAccess, topic: str, from_beginning: bool = False, timeout_s: float = 30.0
    ) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(
            **access.kafka_python(),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            client_id=f"riskwatch-sim-{topic}",
        )
        deadline = time.monotonic() + timeout_s
        partitions = self.consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = self.consumer.partitions_for_topic(topic)
        if not partitions:
            self.consumer.close()
            raise SimulatorError(
                f"Kafka topic {topic} not found at {access.bootstrap} or not readable by {access.user}; "
                "is the stack up?"
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        if from_beginning:
            self.consumer.seek_to_beginning(*tps)
        else:
            self.consumer.seek_to_end(*tps)
        # Resolve the lazy seek now, so records produced from here on are all seen.
        self.next_offset = {tp: self.consumer.position(tp) for tp in tps}
        self.rewinds = 0  # holes the client left and this reader went back for
        self._rewound_at: dict[TopicPartition, int] = {}

    def poll(self, timeout_s: float = 0.2) -> list[bytes]:
        return [value for _, value in self.poll_timed(timeout_s)]

    def poll_timed(self, timeout_s: float = 0.2) -> list[tuple[float, bytes]]:
        """New records as (Kafka timestamp in epoch seconds, value), each partition in offset order."""
        batches = self.consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=5000)
        return [pair for tp, records in batches.items() for pair in self._in_order(tp, records)]

    def behind(self) -> int:
        """Records on the topic not returned yet (asks the brokers for the partitions' end offsets)."""
        ends = self.consumer.end_offsets(list(self.next_offset))
        return sum(max(0, ends[tp] - n) for tp, n in self.next_offset.items())

    def _in_order(self, tp: TopicPartition, records: list[Any]) -> list[tuple[float, bytes]]:
        """The records from the partition's next offset on: one returned before is left out, and one
        beyond a hole rewinds the partition to the hole, once (a hole found again is a real gap)."""
        want = self.next_offset.get(tp, 0)
        out = []
        for r in records:
            if r.offset < want:
                continue
            if r.offset > want and self._rewound_at.get(tp) != want:
                log.warning("%s partition %d: offsets %d..%d were never returned; re-reading them",
                            tp.topic, tp.partition, want, r.offset - 1)  # fmt: skip
                self.rewinds += 1
                self._rewound_at[tp] = want
                self.consumer.seek(tp, want)
                break
            out.append((r.timestamp / 1000.0, r.value))
            want = r.offset + 1
        self.next_offset[tp] = want
        return out

    def close(self) -> None:
        self.consumer.close()


class MinuteTally:
    """Per minute of reading time, the sensors (registry indices) that had readings in it and how many:
    what the history must hold once the minutes have closed (one aggregate per sensor and minute, its
    count the readings). A few numpy operations per call, whatever the number of readings."""

    def __init__(self) -> None:
        self._sensors: dict[int, npt.NDArray[np.bool_]] = {}  # by minute number (epoch seconds // 60)
        self._readings: dict[int, int] = {}

    def add(self, sensor: npt.NDArray[np.integer], ts: npt.NDArray[np.float64]) -> None:
        if ts.shape[0] == 0:
            return
        minute = (ts // 60).astype(np.int64)
        first = int(minute[0])
        if (minute == first).all():  # the usual poll: one minute
            self._mark(first, sensor)
            return
        for m in np.unique(minute).tolist():
            self._mark(m, sensor[minute == m])

    def _mark(self, minute: int, sensor: npt.NDArray[np.integer]) -> None:
        present = self._sensors.get(minute)
        size = int(sensor.max()) + 1
        if present is None or present.shape[0] < size:
            grown = np.zeros(max(size, 0 if present is None else 2 * present.shape[0]), np.bool_)
            if present is not None:
                grown[: present.shape[0]] = present
            present = self._sensors[minute] = grown
        present[sensor] = True
        self._readings[minute] = self._readings.get(minute, 0) + int(sensor.shape[0])

    def totals(self) -> dict[float, tuple[int, int]]:
        """(sensors, readings) by the minute's start in epoch seconds, oldest first."""
        return {m * 60.0: (int(self._sensors[m].sum()), self._readings[m]) for m in sorted(self._sensors)}


class TelemetryCounter:
    """Counts readings arriving on `rw.telemetry`, de-duplicated by (gateway, seq), with latencies and
    the minutes they fall in (`minutes`)."""

    def __init__(
        self, reader: TopicReader, sites: Iterable[str] | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.reader, self.clock = reader, clock
        self.sites = None if sites is None else frozenset(sites)  # count only these sites' batches
        self.other_sites = 0
        self.last_arrival = 0.0  # wall time the last counted reading arrived
        self.seen: set[tuple[str, int]] = set()
        self.readings = 0
        self.by_site: dict[str, int] = {}  # readings counted per site: where a shortfall lies
        self.duplicates = 0
        self.undecodable = 0
        self.histogram = LatencyHistogram()
        self.window = LatencyHistogram()  # since the last `take_window()`
        self.minutes = MinuteTally()  # this run's fresh readings by minute and sensor

    def begin_run(self) -> None:
        """Count a new run from zero (readings, duplicates, latencies); what was seen stays seen."""
        self.readings = self.duplicates = self.undecodable = self.other_sites = 0
        self.by_site = {}
        self.histogram, self.window = LatencyHistogram(), LatencyHistogram()
        self.minutes = MinuteTally()
        self.last_arrival = 0.0

    def poll(self, timeout_s: float = 0.2) -> int:
        new = 0
        # Added to the histograms and the minute tally once per poll: cheaper.
        latencies: list[npt.NDArray[np.float64]] = []
        stamps: list[npt.NDArray[np.float64]] = []
        sensors: list[npt.NDArray[np.int32]] = []
        for raw in self.reader.poll(timeout_s):
            now = self.clock()
            try:
                batch = decode(raw)
            except BatchDecodeError:
                self.undecodable += 1
                continue
            n = len(batch.readings)
            if self.sites is not None and batch.site not in self.sites:
                self.other_sites += n
                continue
            # Each source (gateway, seq) holds `count` contiguous readings: count only sources not seen
            # before, so an at-least-once redelivery is a duplicate, not a gain.
            pairs = [(s.gateway, s.seq) for s in batch.sources]
            fresh = [pair not in self.seen for pair in pairs]
            self.seen.update(pairs)
            if all(fresh):  # the usual record: nothing seen before
                ts, sensor = batch.readings.ts, batch.readings.sensor
                fresh_readings = n
            else:
                counts = np.array([s.count for s in batch.sources], dtype=np.int64)
                if counts.sum() == n:
                    keep = np.repeat(np.array(fresh, dtype=bool), counts)
                else:  # a producer that does not fill counts: take the batch as one unit
                    keep = np.full(n, any(fresh) if fresh else True)
                ts, sensor = batch.readings.ts[keep], batch.readings.sensor[keep]
                fresh_readings = int(keep.sum())
            latencies.append(now - ts)
            stamps.append(ts)
            sensors.append(sensor)
            self.duplicates += n - fresh_readings
            new += fresh_readings
            if fresh_readings:
                self.last_arrival = now
                self.by_site[batch.site] = self.by_site.get(batch.site, 0) + fresh_readings
        if latencies:
            joined = np.concatenate(latencies)
            self.histogram.add(joined)
            self.window.add(joined)
            self.minutes.add(np.concatenate(sensors), np.concatenate(stamps))
        self.readings += new
        return new

    def take_window(self) -> LatencyHistogram:
        window, self.window = self.window, LatencyHistogram()
        return window


class DeadLetterCounter:
    """Readings dead-lettered on `rw.deadletter` (by the bridge or the worker), for the end-of-path count:
    a letter naming its items counts them; a whole message refused counts the readings it carried."""

    def __init__(self, reader: TopicReader) -> None:
        self.reader = reader
        self.readings = 0
        self.letters = 0
        self.reasons: dict[str, int] = {}

    def poll(self, timeout_s: float = 0.2) -> int:
        new = 0
        for raw in self.reader.poll(timeout_s):
            try:
                doc = orjson.loads(raw)
                if _carries_no_readings(str(doc.get("source", ""))):
                    n = 0
                else:
                    n = int(doc.get("items_total") or 0) or _readings_in(
                        base64.b64decode(doc.get("original", ""))
                    )
            except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
                n, doc = 0, {"reason": "undecodable_dead_letter"}
            self.letters += 1
            reason = str(doc.get("reason", ""))
            self.reasons[reason] = self.reasons.get(reason, 0) + n
            new += n
        self.readings += new
        return new


def _carries_no_readings(source: str) -> bool:
    """A letter about a gateway's status or events (MQTT rw/v1/S/G/status|events, Kafka *.gateway): e.g.
    a retained status of a gateway another registry knows, refused as gateway_unknown. It names no
    readings, so it must not be counted against the readings sent."""
    return source.endswith(("/status", "/events", ".gateway"))


def _readings_in(original: bytes) -> int:
    """Readings in a refused gateway message (JSON), or 1 for anything else: never counted as none."""
    try:
        readings = orjson.loads(original).get("readings")
    except (orjson.JSONDecodeError, AttributeError):
        return 1
    return len(readings) if isinstance(readings, list) else 1


class TransitionReader:
    """Decoded transitions from `rw.warnings` or `rw.alarms`; undecodable records are counted."""

    def __init__(self, reader: TopicReader) -> None:
        self.reader = reader
        self.undecodable = 0

    def poll(self, timeout_s: float = 0.2) -> list[Transition]:
        return [t for _, t in self.poll_timed(timeout_s)]

    def poll_timed(self, timeout_s: float = 0.2) -> list[tuple[float, Transition]]:
        """New transitions with the time Kafka stored each (epoch seconds)."""
        out = []
        for stored, raw in self.reader.poll_timed(timeout_s):
            try:
                out.append((stored, Transition.from_bytes(raw)))
            except TransitionDecodeError:
                self.undecodable += 1
        return out

    def read_to_end(self, timeout_s: float = 60.0) -> list[tuple[float, Transition]]:
        """Every transition up to the topic's end offsets as they are now, with its stored time."""
        out: list[tuple[float, Transition]] = []
        deadline = time.monotonic() + timeout_s
        while self.reader.behind() and time.monotonic() < deadline:
            out += self.poll_timed(0.5)
        return out


def json_records(reader: TopicReader, timeout_s: float = 0.2) -> list[dict[str, Any]]:
    """JSON records of a topic (e.g. `rw.alerts` audit events); non-JSON records are skipped."""
    out = []
    for raw in reader.poll(timeout_s):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def latencies_of(transitions: Iterable[Transition], now: float) -> np.ndarray:
    return np.array([now - t.at for t in transitions], dtype=np.float64)
