"""In-order acknowledgement and per-site batching, without brokers."""

from __future__ import annotations

import numpy as np

from ingest.acks import AckTracker
from ingest.batcher import SiteBatcher
from riskwatch.wire.batch import Source, decode
from riskwatch.wire.readings import Readings


def test_acks_wait_for_every_record_and_keep_arrival_order() -> None:
    tracker = AckTracker()
    first, second = tracker.open(1, 1), tracker.open(2, 1)
    tracker.hold(first)
    tracker.hold(first)
    tracker.seal(first)
    tracker.seal(second)  # no records: ready, but behind `first`
    assert tracker.ready() == []
    tracker.release([first])
    assert tracker.ready() == []
    tracker.release([first])
    assert [p.mid for p in tracker.ready()] == [1, 2]
    assert len(tracker) == 0


def test_unsealed_message_is_not_acknowledged() -> None:
    tracker = AckTracker()
    tracker.open(7, 1)
    assert tracker.ready() == []


def test_batches_cut_by_size_and_by_linger_per_site() -> None:
    batcher: SiteBatcher[str] = SiteBatcher("fp", ("a", "b", "c"), max_readings=4, linger_s=0.05)
    r2 = Readings.of([0, 1], [1.0, 2.0], [10.0, 11.0])
    assert batcher.add("A", "gw-1", 1, r2, "m1", now=0.0) is None
    assert batcher.add("B", "gw-9", 5, Readings.of([2], [9.0], [12.0]), "m2", now=0.01) is None
    cut = batcher.add("A", "gw-1", 2, r2, "m3", now=0.02)
    assert cut is not None and cut.key == b"A" and cut.tokens == ["m1", "m3"] and cut.readings == 4
    batch = decode(cut.value)
    assert batch.sources == (Source("gw-1", 1, 2), Source("gw-1", 2, 2))
    np.testing.assert_array_equal(batch.readings.sensor, [0, 1, 0, 1])
    assert batch.sensor_ids == {0: "a", 1: "b"}
    assert batcher.due(now=0.05) == []
    (late,) = batcher.due(now=0.07)
    assert late.key == b"B" and decode(late.value).site == "B"
    assert batcher.next_due() is None
