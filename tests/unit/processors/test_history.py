from __future__ import annotations

import threading
import time

import numpy as np

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
