"""A worker whose tables never recover after a rebalance gives up so its supervisor restarts it."""

from __future__ import annotations

from processors.timers import recovery_overdue


def test_overdue_only_after_the_timeout_while_not_ready() -> None:
    assert not recovery_overdue(None, 1000.0, 180.0)  # ready
    assert not recovery_overdue(900.0, 1000.0, 180.0)  # 100 s into a recovery
    assert recovery_overdue(800.0, 1000.5, 180.0)
    assert not recovery_overdue(0.0, 1e9, 0.0)  # 0: the watchdog is off
