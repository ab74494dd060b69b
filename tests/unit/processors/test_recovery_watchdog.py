"""The timer's schedules: a worker whose tables never recover gives up so its supervisor restarts it;
snapshot flushes are spaced out while a partition is behind."""

from __future__ import annotations

from processors.timers import recovery_overdue


def test_overdue_only_after_the_timeout_while_not_ready() -> None:
    assert not recovery_overdue(None, 1000.0, 180.0)  # ready
    assert not recovery_overdue(900.0, 1000.0, 180.0)  # 100 s into a recovery
    assert recovery_overdue(800.0, 1000.5, 180.0)
    assert not recovery_overdue(0.0, 1e9, 0.0)  # 0: the watchdog is off


def test_snapshots_are_flushed_less_often_only_while_a_partition_is_behind() -> None:
    """Caught up: every --snapshot-every-s. Behind: BACKLOG_SNAPSHOT_FACTOR times less often, but never
    with more than HELD_FLUSH_EVENTS events waiting for their ack (offsets must not lag unboundedly)."""
    from processors.timers import BACKLOG_RECORDS, BACKLOG_SNAPSHOT_FACTOR, HELD_FLUSH_EVENTS, snapshot_due

    every = 5.0
    assert snapshot_due(5.0, every, 0, 10) and not snapshot_due(4.9, every, 0, 10)
    assert snapshot_due(5.0, every, None, 10)  # backlog unknown (no fetch yet): the usual interval
    assert snapshot_due(5.0, every, BACKLOG_RECORDS, 10)
    behind = BACKLOG_RECORDS + 1
    assert not snapshot_due(5.0, every, behind, 10)
    assert not snapshot_due(every * BACKLOG_SNAPSHOT_FACTOR - 0.1, every, behind, 10)
    assert snapshot_due(every * BACKLOG_SNAPSHOT_FACTOR, every, behind, 10)
    assert snapshot_due(0.5, every, behind, HELD_FLUSH_EVENTS)  # too many records held in memory
