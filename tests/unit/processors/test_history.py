from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from processors.history.aggregate import MinuteAggregator
from processors.history.lines import aggregate_lines, sensor_tag_sets, transition_line
from processors.history.writer import HistoryWriter
from riskwatch.wire.transitions import Cause, CauseItem, Transition


def _transition(n: int) -> Transition:
    return Transition(
        f"id{n}",
        "alarm",
        "sensor",
        "G 1,x",
        "normal",
        "l1_high",
        60.0 + n,
        Cause("r", (CauseItem("G", "q", "l1"),)),
        "S",
        "R",
    )


def test_minute_aggregates_match_a_plain_computation() -> None:
    rng = np.random.default_rng(1)
    sensor = rng.integers(0, 5, 200)
    value = rng.normal(10, 3, 200)
    ts = 120.0 + rng.uniform(0, 119, 200)  # two minutes: [120,180) and [180,240)
    agg = MinuteAggregator(5, grace_s=10)
    agg.add(sensor[:100], value[:100], ts[:100], now=200.0)
    agg.add(sensor[100:], value[100:], ts[100:], now=200.0)
    assert agg.close_due(now=189.0) == []  # first minute still within its grace
    first = agg.close_due(now=190.0)
    assert [m.start for m in first] == [120.0]
    rest = agg.close_due(now=10_000.0)
    for m in first + rest:
        in_minute = (ts >= m.start) & (ts < m.start + 60)
        for s, lo, hi, mean, n in zip(m.sensor, m.min, m.max, m.mean, m.count, strict=True):
            rows = in_minute & (sensor == s)
            assert (lo, hi, n) == (value[rows].min(), value[rows].max(), rows.sum())
            assert np.isclose(mean, value[rows].mean())
    assert sum(int(m.count.sum()) for m in first + rest) == 200


def test_readings_older_than_max_age_are_counted_not_aggregated() -> None:
    agg = MinuteAggregator(2, max_age_s=60)
    agg.add(np.array([0, 1]), np.array([1.0, np.nan]), np.array([0.0, 1000.0]), now=1000.0)
    assert agg.too_old == 2 and agg.buckets == {}


def test_line_protocol_escapes_tags_and_keeps_transition_time() -> None:
    tags = sensor_tag_sets(["G 1,x"], ["S"], ["R"])
    assert tags == ["sensor=G\\ 1\\,x,site=S,region=R"]
    agg = MinuteAggregator(1)
    agg.add(np.array([0]), np.array([2.5]), np.array([60.5]), now=61.0)
    (line,) = aggregate_lines(agg.close_due(1e9)[0], tags)
    assert line == "sensor_1m,sensor=G\\ 1\\,x,site=S,region=R min=2.5,max=2.5,mean=2.5,count=1i 60000"
    t_line = transition_line(_transition(0))
    assert t_line.startswith(
        'transition,kind=alarm,entity_type=sensor,entity=G\\ 1\\,x,site=S,region=R id="id0"'
    )
    assert t_line.endswith(" 60000")


class FlakySink:
    """Fails while `down` is set, like an InfluxDB that is stopped."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.lines: list[str] = []

    def write(self, lines: list[str]) -> None:
        if self.down.is_set():
            raise ConnectionError("influx down")
        self.lines.extend(lines)

    def close(self) -> None:
        pass


def _wait(pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_outage_loses_nothing_and_keeps_order() -> None:
    sink = FlakySink()
    sink.down.set()
    writer = HistoryWriter(sink, [], limit_points=100, chunk_points=2, backoff=(0.01, 0.05))
    writer.start()
    started = time.perf_counter()
    for n in range(10):
        writer.put_transitions([_transition(n)])
    assert time.perf_counter() - started < 0.5  # the stream never waits for the database
    time.sleep(0.1)
    assert sink.lines == [] and writer.pending == 10
    sink.down.clear()
    assert _wait(lambda: len(sink.lines) == 10)
    assert [line.split('id="')[1][:3] for line in sink.lines] == [f"id{n}" for n in range(10)]
    assert writer.dropped == 0 and writer.pending == 0
    writer.stop()


def test_points_beyond_the_limit_are_dropped_and_counted() -> None:
    sink = FlakySink()
    sink.down.set()
    writer = HistoryWriter(sink, [], limit_points=3, backoff=(0.01, 0.05))
    writer.start()
    writer.put_transitions([_transition(n) for n in range(2)])
    writer.put_transitions([_transition(n) for n in range(2, 4)])  # 2 + 2 > 3: refused whole
    assert writer.dropped == 2
    sink.down.clear()
    assert _wait(lambda: len(sink.lines) == 2)
    writer.stop()


class TimedSink(FlakySink):
    """Records when each chunk arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, int]] = []

    def write(self, lines: list[str]) -> None:
        super().write(lines)
        self.arrivals.append((time.monotonic(), len(lines)))


def _minute(n: int, start: float = 60.0) -> object:
    agg = MinuteAggregator(n)
    agg.add(np.arange(n), np.ones(n), np.full(n, start + 1), now=start + 2)
    (minute,) = agg.close_due(1e12)
    return minute


def test_a_minute_of_aggregates_is_paced_not_burst() -> None:
    sink = TimedSink()
    tags = sensor_tag_sets([f"s{i}" for i in range(400)], ["S"] * 400, ["R"] * 400)
    writer = HistoryWriter(sink, tags, limit_points=10_000, chunk_points=50, pace_points_per_s=1000)
    writer.start()
    queued = time.monotonic()
    writer.put_aggregate(_minute(400))  # type: ignore[arg-type]
    assert _wait(lambda: len(sink.lines) == 400, timeout=5)
    # 400 points at 1000/s in chunks of 50: the last chunk is due 350 ms after queueing, not at once.
    first, last = sink.arrivals[0][0] - queued, sink.arrivals[-1][0] - queued
    assert first < 0.1 and 0.33 <= last < 1.0, (first, last)
    assert [n for _, n in sink.arrivals] == [50] * 8
    assert sorted(int(line.split(",")[1][len("sensor=s") :]) for line in sink.lines) == list(range(400))
    writer.stop()


def test_a_large_minute_is_written_within_the_pacing_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from processors.history import writer as module

    monkeypatch.setattr(module, "PACE_WITHIN_S", 0.3)  # at 1 point/s, 3000 points would take 50 minutes
    sink = TimedSink()
    n = 3000
    tags = sensor_tag_sets([f"s{i}" for i in range(n)], ["S"] * n, ["R"] * n)
    writer = HistoryWriter(sink, tags, limit_points=10_000, chunk_points=500, pace_points_per_s=1)
    writer.start()
    queued = time.monotonic()
    writer.put_aggregate(_minute(n))  # type: ignore[arg-type]
    assert _wait(lambda: len(sink.lines) == n, timeout=5)
    assert 0.2 <= sink.arrivals[-1][0] - queued < 1.0
    writer.stop()


def test_a_backlog_after_an_outage_is_written_at_full_speed() -> None:
    sink = TimedSink()
    sink.down.set()
    tags = sensor_tag_sets([f"s{i}" for i in range(200)], ["S"] * 200, ["R"] * 200)
    writer = HistoryWriter(
        sink, tags, limit_points=10_000, chunk_points=50, backoff=(0.01, 0.02), pace_points_per_s=200
    )
    writer.start()
    writer.put_aggregate(_minute(200, 60.0))  # type: ignore[arg-type]
    writer.put_aggregate(_minute(200, 120.0))  # type: ignore[arg-type]
    time.sleep(1.2)  # both minutes' pacing (1 s each at 200/s) has run out while the database was down
    back = time.monotonic()
    sink.down.clear()
    assert _wait(lambda: len(sink.lines) == 400, timeout=5)
    assert sink.arrivals[-1][0] - back < 0.5
    writer.stop()


def test_stop_writes_what_is_queued_without_pacing() -> None:
    sink = TimedSink()
    tags = sensor_tag_sets([f"s{i}" for i in range(100)], ["S"] * 100, ["R"] * 100)
    writer = HistoryWriter(sink, tags, limit_points=10_000, chunk_points=10, pace_points_per_s=10)
    writer.start()
    writer.put_aggregate(_minute(100))  # type: ignore[arg-type]  (10 s at 10/s)
    time.sleep(0.05)
    started = time.monotonic()
    writer.stop(timeout=5)
    assert len(sink.lines) == 100 and time.monotonic() - started < 1.0


@pytest.mark.parametrize("fold_readings", [1, 7, 1 << 15])
def test_aggregates_are_exact_whenever_kept_batches_are_folded(
    monkeypatch: pytest.MonkeyPatch, fold_readings: int
) -> None:
    from processors.history import aggregate

    monkeypatch.setattr(aggregate, "FOLD_READINGS", fold_readings)
    rng = np.random.default_rng(7)
    n, batches = 50, 40
    sensor = rng.integers(0, n, (batches, 25))
    value = rng.normal(0, 5, (batches, 25))
    agg = MinuteAggregator(n, grace_s=0)
    for b in range(batches):
        agg.add(sensor[b], value[b], np.full(25, 61.0 + b), now=120.0)
    (minute,) = agg.close_due(now=121.0)
    flat_s, flat_v = sensor.ravel(), value.ravel()
    assert list(minute.sensor) == sorted(set(flat_s.tolist()))
    for s, lo, hi, mean, count in zip(
        minute.sensor, minute.min, minute.max, minute.mean, minute.count, strict=True
    ):
        rows = flat_s == s
        assert (lo, hi, count) == (flat_v[rows].min(), flat_v[rows].max(), rows.sum())
        assert np.isclose(mean, flat_v[rows].mean())


class PickySink(FlakySink):
    """Refuses any chunk holding a line with `bad` in it, as InfluxDB answers 400 to a malformed point."""

    def write(self, lines: list[str]) -> None:
        from processors.history.writer import PointsRejected

        if any("bad" in line for line in lines):
            raise PointsRejected("HTTP 400: unable to parse")
        super().write(lines)


def test_a_huge_mean_is_clipped_not_written_as_inf() -> None:
    agg = MinuteAggregator(2)
    agg.add(np.array([0, 0, 1]), np.array([1.7e308, 1.7e308, 2.0]), np.array([60.0, 61.0, 62.0]), 62.0)
    (minute,) = agg.close_due(1000.0)
    assert minute.mean.tolist() == [1.7e308, 2.0] and agg.repaired == 1
    lines = aggregate_lines(minute, ["sensor=a", "sensor=b"])
    assert not any("inf" in line for line in lines)


def test_a_refused_point_is_dropped_and_counted_the_rest_written_in_order() -> None:
    sink = PickySink()
    rejected: list[int] = []

    class Hooks:
        def written(self, points: int) -> None: ...
        def dropped(self, points: int) -> None: ...
        def retried(self) -> None:
            raise AssertionError("a refused point is not retried")

        def pending(self, points: int) -> None: ...
        def rejected(self, points: int) -> None:
            rejected.append(points)

    writer = HistoryWriter(sink, [], limit_points=100, chunk_points=8, backoff=(0.01, 0.05), hooks=Hooks())
    writer.start()
    bad = dataclasses.replace(_transition(3), entity="bad")
    writer.put_transitions(
        [_transition(n) for n in range(3)] + [bad] + [_transition(n) for n in range(4, 10)]
    )
    assert _wait(lambda: len(sink.lines) == 9 and writer.pending == 0)
    assert [line.split('id="')[1][:3] for line in sink.lines] == [f"id{n}" for n in range(10) if n != 3]
    assert writer.rejected == 1 and rejected == [1] and writer.alive()
    ((line, why),) = writer.take_refused()
    assert "entity=bad" in line and "HTTP 400" in why and writer.take_refused() == []
    from processors.timers import history_letter
    from riskwatch.wire.deadletter import DeadLetter

    letter = DeadLetter.from_bytes(history_letter(line, why, 5.0).to_bytes())
    assert (letter.reason, letter.source, letter.original) == ("history_rejected", "influxdb", line.encode())
    writer.put_transitions([_transition(20)])  # and the writer goes on
    assert _wait(lambda: len(sink.lines) == 10)
    writer.stop()


def test_points_that_cannot_be_rendered_are_dropped_and_the_writer_goes_on() -> None:
    sink = FlakySink()
    writer = HistoryWriter(sink, [], limit_points=100, backoff=(0.01, 0.05))
    writer.start()
    writer.put_transitions([dataclasses.replace(_transition(0), at=float("inf"))])  # round(inf) raises
    writer.put_transitions([_transition(1)])
    assert _wait(lambda: len(sink.lines) == 1 and writer.pending == 0)
    assert writer.rejected == 1 and writer.alive()
    writer.stop()


def test_influx_sink_refuses_malformed_points_and_retries_an_outage() -> None:
    from influxdb_client.rest import ApiException

    from processors.history.influx import InfluxSink
    from processors.history.writer import PointsRejected

    sink = InfluxSink("http://127.0.0.1:9", "u:p", "-", "db/rp")

    class Api:
        status = 400

        def write(self, **kwargs: object) -> None:
            raise ApiException(status=self.status, reason="x")

    sink._api = Api()  # type: ignore[assignment]
    with pytest.raises(PointsRejected, match="HTTP 400"):
        sink.write(["m f=inf 1"])
    Api.status = 503
    with pytest.raises(ApiException):  # an outage: the writer retries it
        sink.write(["m f=1 1"])
    sink.close()
