"""A worker that cannot finish a rebalance gives up so its supervisor restarts it: tables that never
recover, or a revocation step that never ends (it would hold every worker of the group in the rebalance).
And snapshot flushes are spaced out while a partition is behind."""

from __future__ import annotations

from processors.timers import recovery_overdue, revocation_since


def test_overdue_only_after_the_timeout_while_not_ready() -> None:
    assert not recovery_overdue(None, 1000.0, 180.0)  # ready
    assert not recovery_overdue(900.0, 1000.0, 180.0)  # 100 s into a recovery
    assert recovery_overdue(800.0, 1000.5, 180.0)
    assert not recovery_overdue(0.0, 1e9, 0.0)  # 0: the watchdog is off


def test_snapshots_are_flushed_less_often_only_while_a_partition_is_behind() -> None:
    """Caught up: every --snapshot-every-s. Behind: BACKLOG_SNAPSHOT_FACTOR times less often, but never
    with more than HELD_FLUSH_EVENTS events (or HELD_FLUSH_BYTES) waiting for their ack (offsets must not lag unboundedly)."""
    from processors.timers import (
        BACKLOG_RECORDS,
        BACKLOG_SNAPSHOT_FACTOR,
        HELD_FLUSH_BYTES,
        HELD_FLUSH_EVENTS,
        snapshot_due,
    )

    every = 5.0
    assert snapshot_due(5.0, every, 0, (10, 20_000)) and not snapshot_due(4.9, every, 0, (10, 20_000))
    assert snapshot_due(5.0, every, None, (10, 20_000))  # backlog unknown (no fetch yet): the usual interval
    assert snapshot_due(5.0, every, BACKLOG_RECORDS, (10, 20_000))
    behind = BACKLOG_RECORDS + 1
    assert not snapshot_due(5.0, every, behind, (10, 20_000))
    assert not snapshot_due(every * BACKLOG_SNAPSHOT_FACTOR - 0.1, every, behind, (10, 20_000))
    assert snapshot_due(every * BACKLOG_SNAPSHOT_FACTOR, every, behind, (10, 20_000))
    assert snapshot_due(0.5, every, behind, (HELD_FLUSH_EVENTS, 0))  # too many records held in memory
    assert snapshot_due(0.5, every, behind, (10, HELD_FLUSH_BYTES))  # or too many bytes of them


def test_a_revocation_is_timed_from_the_first_check_that_sees_it_until_its_signal() -> None:
    limit = 10.0
    since = revocation_since(None, started=1, finished=1, stopping=False, now=100.0)
    assert since is None  # the first rebalance's revocation finished: nothing under way
    since = revocation_since(since, started=2, finished=1, stopping=False, now=101.0)
    assert since == 101.0  # a second rebalance began
    for now in (102.0, 105.0, 111.0):
        since = revocation_since(since, 2, 1, False, now)
    assert since == 101.0 and not recovery_overdue(since, 111.0, limit)
    since = revocation_since(since, 2, 1, False, 111.5)
    assert recovery_overdue(since, 111.5, limit)  # stuck past the session timeout: exit
    # The signal came (finished caught up): the clock resets, and the next rebalance starts a new one.
    assert revocation_since(since, 2, 2, False, 112.0) is None
    assert revocation_since(None, 3, 2, False, 200.0) == 200.0


def test_a_stopping_worker_is_not_judged() -> None:
    assert revocation_since(101.0, 2, 1, True, 500.0) is None
