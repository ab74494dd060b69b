"""The load generator's count of what reached rw.telemetry: each (gateway, seq) once, with latencies."""

from __future__ import annotations

import numpy as np
import pytest

from riskwatch.wire.batch import encode
from riskwatch.wire.readings import Readings
from simulators.kafka_watch import MinuteTally, TelemetryCounter


class _Records:
    """Stands in for the topic reader: hands out the records queued since the last poll."""

    def __init__(self) -> None:
        self.queued: list[bytes] = []

    def poll(self, timeout_s: float = 0.2) -> list[bytes]:
        out, self.queued = self.queued, []
        return out


def _batch(site: str, sources: list[tuple[str, int, int]], ts: float) -> bytes:
    n = sum(count for _, _, count in sources)
    readings = Readings.of(list(range(n)), [1.0] * n, [ts] * n)
    return encode(site, "f" * 32, sources, readings, compress="lz4")


def test_redelivered_sources_count_once_and_latency_is_measured_on_fresh_readings_only() -> None:
    records = _Records()
    counter = TelemetryCounter(records, sites={"S1", "S2"}, clock=lambda: 100.0)  # type: ignore[arg-type]
    records.queued = [
        _batch("S1", [("G1", 1, 3), ("G2", 7, 2)], ts=99.5),
        _batch("S2", [("G3", 1, 4)], ts=99.0),
    ]
    assert counter.poll() == 9
    # G1/1 again (a redelivery) beside a new G1/2; and a batch of a site not in the run
    records.queued = [
        _batch("S1", [("G1", 1, 3), ("G1", 2, 5)], ts=99.9),
        _batch("X", [("GX", 1, 6)], ts=99.0),
    ]
    assert counter.poll() == 5
    assert (counter.readings, counter.duplicates, counter.other_sites) == (14, 3, 6)
    assert counter.by_site == {"S1": 10, "S2": 4}
    assert counter.histogram.total == 14  # the 3 duplicates' latencies are not counted
    assert counter.histogram.max == pytest.approx(1.0)
    assert counter.histogram.percentile(50) == pytest.approx(0.5, rel=0.02)
    window = counter.take_window()
    assert window.total == 14 and counter.take_window().total == 0
    assert np.isclose(counter.last_arrival, 100.0)


def test_an_undecodable_record_is_counted_and_the_rest_still_are() -> None:
    records = _Records()
    counter = TelemetryCounter(records, clock=lambda: 10.0)  # type: ignore[arg-type]
    records.queued = [b"not a batch", _batch("S1", [("G1", 1, 2)], ts=9.0)]
    assert counter.poll() == 2
    assert counter.undecodable == 1


def test_the_minute_tally_counts_each_sensor_once_a_minute_and_every_fresh_reading() -> None:
    """What the history must hold: per minute, the sensors with readings in it and their readings."""
    records = _Records()
    counter = TelemetryCounter(records, clock=lambda: 200.0)  # type: ignore[arg-type]
    a = encode("S1", "f" * 32, [("G1", 1, 4)], Readings.of([0, 1, 0, 7], [1.0] * 4, [59.0, 59.5, 60.0, 61.0]))
    b = encode("S1", "f" * 32, [("G1", 2, 3)], Readings.of([1, 1, 3], [1.0] * 3, [62.0, 63.0, 119.9]))
    records.queued = [a, b]
    counter.poll()
    records.queued = [a]  # redelivered: its readings are in the tally once
    counter.poll()
    # minute 0: sensors 0 and 1 (one reading each); minute 60: sensors 0, 7, 1, 3 with 5 readings
    assert counter.minutes.totals() == {0.0: (2, 2), 60.0: (4, 5)}
    counter.begin_run()
    assert counter.minutes.totals() == {}


def test_the_minute_tally_grows_with_the_highest_sensor_index() -> None:
    tally = MinuteTally()
    tally.add(np.array([2], np.int32), np.array([130.0]))
    tally.add(np.array([5000, 2], np.int32), np.array([150.0, 170.0]))
    assert tally.totals() == {120.0: (2, 3)}
