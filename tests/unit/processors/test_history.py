from __future__ import annotations

import numpy as np
import pytest

from processors.history.aggregate import MinuteAggregator
from processors.history.lines import minute_lines, transition_line
from processors.history.publish import MinutePublisher
from processors.history.writer import PointsRejected, write_points
from riskwatch.kafka_access import KafkaAccess
from riskwatch.wire.minutes import MinuteDecodeError, SiteMinute
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
    agg.add(sensor[:100], value[:100], ts[:100], now=185.0)
    agg.add(sensor[100:], value[100:], ts[100:], now=185.0)
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
    (line,) = minute_lines(SiteMinute("S", "R", 60.0, ["G 1,x"], [2.5], [2.5], [2.5], [1]))
    assert line == "sensor_1m,sensor=G\\ 1\\,x,site=S,region=R min=2.5,max=2.5,mean=2.5,count=1i 60000"
    t_line = transition_line(_transition(0))
    assert t_line.startswith(
        'transition,kind=alarm,entity_type=sensor,entity=G\\ 1\\,x,site=S,region=R id="id0"'
    )
    assert t_line.endswith(" 60000")


def test_a_closed_minute_becomes_one_record_per_site_with_every_sensor() -> None:
    # sensors 0, 2 at site A (region R1), 1, 3 at site B (R2); sensor 3 did not report
    publisher = MinutePublisher(["a0", "b1", "a2", "b3"], np.array([0, 1, 0, 1]), ["A", "B"], ["R1", "R2"])
    agg = MinuteAggregator(4)
    agg.add(np.array([2, 1, 0, 2]), np.array([1.0, 5.0, 3.0, 2.0]), np.full(4, 125.0), now=126.0)
    (minute,) = agg.close_due(1e9)
    records = publisher.records(minute)
    assert [(r.site, r.region, r.start, r.sensor, r.min, r.max, r.mean, r.count) for r in records] == [
        ("A", "R1", 120.0, ["a0", "a2"], [3.0, 1.0], [3.0, 2.0], [3.0, 1.5], [1, 2]),
        ("B", "R2", 120.0, ["b1"], [5.0], [5.0], [5.0], [1]),
    ]
    assert [SiteMinute.from_bytes(r.to_bytes()) for r in records] == records
    assert records[0].key == b"A"


def test_a_sensor_is_credited_once_per_owed_window_and_the_site_minute_says_so() -> None:
    # sensor 0 owes a reading a minute, sensor 1 one per 5 minutes (a window of 300 s), both at site A
    registry_windows = np.array([60.0, 300.0])
    publisher = MinutePublisher(["m", "f"], np.array([0, 0]), ["A"], ["R1"], [1.0 + 60 / 300])
    agg = MinuteAggregator(2, window_s=registry_windows)
    credited = []
    for minute in range(5, 12):  # minutes 5..11: the 5-minute windows [300, 600) and [600, 900)
        agg.add(np.array([0, 1]), np.ones(2), np.full(2, minute * 60.0 + 1), now=minute * 60.0 + 2)
        (closed,) = agg.close_due(1e9)
        credited.append(closed.credited.tolist())
    assert credited == [[True, True], *[[True, False]] * 4, [True, True], [True, False]]
    (record,) = publisher.records(closed)
    assert (record.credited, record.owed) == ([True, False], 1.2)
    assert minute_lines(SiteMinute.from_bytes(record.to_bytes()))[-1] == (
        "site_1m,site=A,region=R1 credited=1i,sensors=2i,owed=1.2 660000"
    )


@pytest.mark.parametrize(
    "doc",
    [
        b"{not json",
        b'{"v":2,"site":"S","region":"R","start":60,"sensor":[],"min":[],"max":[],"mean":[],"count":[]}',
        b'{"v":1,"site":"","region":"R","start":60,"sensor":[],"min":[],"max":[],"mean":[],"count":[]}',
        b'{"v":1,"site":"S","region":"R","start":60,"sensor":["a"],"min":[],"max":[],"mean":[],"count":[]}',
        b'{"v":1,"site":"S","region":"R","start":60,"sensor":["a"],"min":[1],"max":[1],"mean":[1e999],"count":[1]}',
        b'{"v":1,"site":"S","region":"R","start":60,"sensor":["a"],"min":[1],"max":[1],"mean":[1],"count":[0]}',
        b'{"v":1,"site":"S","region":"R","start":"x","sensor":[],"min":[],"max":[],"mean":[],"count":[]}',
        b'{"v":1,"site":"S","region":"R","start":60,"sensor":[7],"min":[1],"max":[1],"mean":[1],"count":[1]}',
        b"[]",
        # completeness: a boolean per sensor and a non-negative owed, both or neither
        b'{"v":1,"site":"S","region":"R","start":60,"sensor":["a"],"min":[1],"max":[1],"mean":[1],"count":[1],'
        b'"credited":[true,true],"owed":1}',
        b'{"v":1,"site":"S","region":"R","start":60,"sensor":["a"],"min":[1],"max":[1],"mean":[1],"count":[1],'
        b'"credited":[1],"owed":1}',
        b'{"v":1,"site":"S","region":"R","start":60,"sensor":["a"],"min":[1],"max":[1],"mean":[1],"count":[1],'
        b'"credited":[true],"owed":-1}',
        b'{"v":1,"site":"S","region":"R","start":60,"sensor":["a"],"min":[1],"max":[1],"mean":[1],"count":[1],'
        b'"credited":[true]}',
    ],
)
def test_a_hostile_minute_record_is_refused_with_a_reason(doc: bytes) -> None:
    with pytest.raises(MinuteDecodeError):
        SiteMinute.from_bytes(doc)


class Sink:
    """Refuses any chunk holding a line with `bad` (InfluxDB's 400); fails every call while `down`."""

    def __init__(self, down: int = 0) -> None:
        self.down = down
        self.lines: list[str] = []
        self.calls = 0

    def write(self, lines: list[str]) -> None:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise ConnectionError("influx down")
        if any("bad" in line for line in lines):
            raise PointsRejected("HTTP 400: unable to parse")
        self.lines.extend(lines)

    def close(self) -> None:
        pass


def test_refused_points_are_found_and_returned_the_rest_written_in_order() -> None:
    sink = Sink()
    lines = [f"p{n}" for n in range(10)]
    lines[3] = "bad3"
    written: list[int] = []
    refused = write_points(sink, lines, chunk_points=4, after_chunk=written.append)
    assert refused == [("bad3", "HTTP 400: unable to parse")]
    assert sink.lines == [line for line in lines if line != "bad3"]
    assert sum(written) == 9


def test_an_outage_is_raised_for_the_caller_to_retry() -> None:
    sink = Sink(down=1)
    with pytest.raises(ConnectionError):
        write_points(sink, ["p0", "p1"])
    assert write_points(sink, ["p0", "p1"]) == [] and sink.lines == ["p0", "p1"]


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
        agg.add(sensor[b], value[b], np.full(25, 61.0 + b), now=110.0)
    (minute,) = agg.close_due(now=121.0)
    flat_s, flat_v = sensor.ravel(), value.ravel()
    assert list(minute.sensor) == sorted(set(flat_s.tolist()))
    for s, lo, hi, mean, count in zip(
        minute.sensor, minute.min, minute.max, minute.mean, minute.count, strict=True
    ):
        rows = flat_s == s
        assert (lo, hi, count) == (flat_v[rows].min(), flat_v[rows].max(), rows.sum())
        assert np.isclose(mean, flat_v[rows].mean())


def test_a_huge_mean_is_clipped_not_written_as_inf() -> None:
    agg = MinuteAggregator(2)
    agg.add(np.array([0, 0, 1]), np.array([1.7e308, 1.7e308, 2.0]), np.array([60.0, 61.0, 62.0]), 62.0)
    (minute,) = agg.close_due(1000.0)
    assert minute.mean.tolist() == [1.7e308, 2.0] and agg.repaired == 1
    publisher = MinutePublisher(["a", "b"], np.array([0, 0]), ["S"], ["R"])
    lines = minute_lines(SiteMinute.from_bytes(publisher.records(minute)[0].to_bytes()))
    assert len(lines) == 3 and not any("inf" in line for line in lines)  # two sensors and the site's


def test_influx_sink_refuses_malformed_points_and_retries_an_outage() -> None:
    from influxdb_client.rest import ApiException

    from processors.history.influx import InfluxSink

    sink = InfluxSink("http://127.0.0.1:9", "u:p", "-", "db/rp")

    class Api:
        status = 400

        def write(self, **kwargs: object) -> None:
            raise ApiException(status=self.status, reason="x")

    sink._api = Api()  # type: ignore[assignment]
    with pytest.raises(PointsRejected, match="HTTP 400"):
        sink.write(["m f=inf 1"])
    Api.status = 503
    with pytest.raises(ApiException):  # an outage: the historian retries it
        sink.write(["m f=1 1"])
    sink.close()


def test_the_historian_commits_a_fetch_only_once_influxdb_has_it_and_dead_letters_the_rest() -> None:
    import asyncio
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from processors.history.historian import Historian, HistorianHealth, HistorianOptions
    from processors.history.metrics import HistorianMetrics
    from riskwatch.wire.deadletter import DeadLetter

    class Consumer:
        commits = 0

        async def commit(self) -> None:
            self.commits += 1

    class Producer:
        def __init__(self) -> None:
            self.sent: list[tuple[str, bytes]] = []

        async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
            self.sent.append((topic, value))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    minute = SiteMinute("S", "R", 60.0, ["a", "bad"], [1.0, 1.0], [2.0, 2.0], [1.5, 1.5], [2, 2])
    records = [
        SimpleNamespace(topic="rw.history", value=minute.to_bytes(), partition=0, offset=7, timestamp=0),
        SimpleNamespace(
            topic="rw.alarms", value=_transition(1).to_bytes(), partition=1, offset=3, timestamp=0
        ),
        SimpleNamespace(
            topic="rw.warnings", value=_transition(2).to_bytes(), partition=1, offset=4, timestamp=0
        ),
    ]
    sink = Sink(down=2)  # InfluxDB refuses the first two attempts; the point of sensor "bad" is malformed
    health = HistorianHealth(exit=lambda code: None)
    metrics = HistorianMetrics(CollectorRegistry())
    historian = Historian(
        HistorianOptions(KafkaAccess("k", "riskwatch-history", "pw"), backoff=(0.01, 0.02)),
        sink,
        metrics,
        health,
    )
    consumer, producer = Consumer(), Producer()
    asyncio.run(historian.step(consumer, producer, records, asyncio.Event()))  # type: ignore[arg-type]
    assert consumer.commits == 1 and sink.calls >= 3
    # an alarm is at home on rw.alarms, not on rw.warnings
    assert [line.split(",")[1] for line in sink.lines] == ["sensor=a", "kind=alarm"]
    letters = [DeadLetter.from_bytes(v) for _, v in producer.sent]
    assert sorted((d.reason, d.source, d.offset) for d in letters) == [
        ("history_rejected", "influxdb", None),
        ("malformed_record", "rw.warnings", 4),
    ]
    assert metrics.retries._value.get() == 2 and metrics.rejected._value.get() == 1
    written = {m: metrics.written.labels(m)._value.get() for m in ("sensor_1m", "transition")}
    assert written == {"sensor_1m": 1, "transition": 1}
    assert health.status()[1]["writing"] and health.unwritten_since is None


def test_the_historian_exits_70_when_its_loop_dies(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from processors.history import cli
    from processors.history.historian import Historian
    from riskwatch.errors import EXIT_TASK_DIED

    async def dies(self: Historian, stop: object) -> None:
        raise RuntimeError("a bug in the loop")

    monkeypatch.setattr(Historian, "run", dies)
    monkeypatch.setenv("RW_TEST_TOKEN", "u:p")
    monkeypatch.setenv("RISKWATCH_KAFKA_PASSWORD", "kafka-pw")
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(
        ["--kafka", "127.0.0.1:9", "--influx-url", "http://127.0.0.1:9", "--influx-token-env", "RW_TEST_TOKEN",
         "--metrics-port", "0"]
    )  # fmt: skip
    assert cli.run(args) == EXIT_TASK_DIED


def test_a_due_minute_still_receiving_readings_stays_open_until_they_stop() -> None:
    """A backlog of an old minute arriving in several fetches is closed once, with all its readings."""
    agg = MinuteAggregator(2, grace_s=30.0)
    agg.add(np.array([0]), np.array([1.0]), np.array([60.0]), now=1000.0)  # minute 1, long due
    assert agg.close_due(now=1000.5) == []  # its readings are still coming
    agg.add(np.array([0]), np.array([3.0]), np.array([61.0]), now=1002.0)
    assert agg.close_due(now=1006.0) == []
    (minute,) = agg.close_due(now=1007.0)  # quiet for QUIET_S
    assert (minute.start, minute.count.tolist(), minute.mean.tolist()) == (60.0, [2], [2.0])


def test_minutes_close_late_s_later_while_the_worker_is_behind() -> None:
    agg = MinuteAggregator(1, grace_s=30.0)
    agg.add(np.array([0]), np.array([1.0]), np.array([60.0]), now=100.0)
    assert agg.close_due(now=200.0, late_s=600.0) == []
    assert agg.close_due(now=749.0, late_s=600.0) == []  # ended 120 + grace 30 + late 600 = 750
    assert [m.start for m in agg.close_due(now=750.0, late_s=600.0)] == [60.0]
