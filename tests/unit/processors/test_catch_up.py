"""When a partition counts as read to its end: the timers' catch-up gate (processors/timers.py)."""

from __future__ import annotations

from processors.timers import read_to_end


def test_a_partition_is_read_to_its_end_when_its_last_record_is_evaluated() -> None:
    assert read_to_end(high=10, done=9, start=4, position=10)
    assert not read_to_end(high=10, done=8, start=4, position=10)


def test_records_fetched_but_not_yet_evaluated_after_a_restart_are_a_backlog() -> None:
    """A restarted worker's consumer has fetched the backlog (position at the end) into the stream's
    buffer, and nothing is evaluated yet: the restored minutes must wait for those readings."""
    assert not read_to_end(high=10, done=None, start=7, position=10)


def test_a_partition_with_nothing_new_since_its_committed_offset_is_read_to_its_end() -> None:
    assert read_to_end(high=7, done=None, start=7, position=None)


def test_without_a_committed_offset_the_fetch_position_decides() -> None:
    assert read_to_end(high=3, done=None, start=None, position=3)
    assert not read_to_end(high=3, done=None, start=None, position=0)
    assert not read_to_end(high=3, done=None, start=None, position=None)
