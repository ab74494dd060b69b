"""A partition's records reach the engine in offset order; a hole makes the agent seek back."""

from __future__ import annotations

from processors.offsets import OffsetOrder, Order


def test_in_order_records_are_processed_and_a_re_read_overlap_is_skipped() -> None:
    order = OffsetOrder({})
    assert order.check("t", 0, 45) == (Order.PROCESS, 45)  # first since the assignment: any offset
    order.done("t", 0, 45)
    assert order.check("t", 0, 46) == (Order.PROCESS, 46)
    order.done("t", 0, 46)
    assert order.check("t", 0, 45) == (Order.SKIP, 47)
    assert order.check("t", 1, 7) == (Order.PROCESS, 7)  # partitions are independent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_hole_seeks_back_once_then_waits_for_the_re_read() -> None:
    processed: dict[tuple[str, int], int] = {}
    order = OffsetOrder(processed, reseek_after_s=10.0, clock=Clock())
    order.done("t", 2, 45)
    assert order.check("t", 2, 72) == (Order.SEEK, 46)
    assert order.check("t", 2, 73) == (Order.WAIT, 46)  # buffered beyond the hole: dropped
    assert order.check("t", 2, 46) == (Order.PROCESS, 46)  # the re-read arrives
    order.done("t", 2, 46)
    assert processed == {("t", 2): 46}  # shared with the lag gauge


def test_a_re_read_that_never_comes_is_sought_again_later() -> None:
    clock = Clock()
    order = OffsetOrder({}, reseek_after_s=10.0, clock=clock)
    order.done("t", 0, 5)
    assert order.check("t", 0, 9)[0] is Order.SEEK
    clock.now = 9.0
    assert order.check("t", 0, 9)[0] is Order.WAIT
    clock.now = 10.5
    assert order.check("t", 0, 9)[0] is Order.SEEK


def test_a_hole_at_the_tail_is_found_by_the_timer_after_a_quiet_spell() -> None:
    clock = Clock()
    order = OffsetOrder({}, reseek_after_s=10.0, clock=clock)
    assert order.stalled("t", 0, 90) is None  # nothing processed since the assignment: not judged
    order.done("t", 0, 83)
    clock.now = 5.0
    assert order.stalled("t", 0, 90) is None  # records 84..89 may still be on their way
    clock.now = 12.0
    assert order.stalled("t", 0, 90) == 84
    assert order.stalled("t", 0, 90) is None  # sought just now
    clock.now = 23.0
    assert order.stalled("t", 0, 90) == 84  # the re-read never came: again
    order.done("t", 0, 89)
    clock.now = 40.0
    assert order.stalled("t", 0, 90) is None  # caught up: the end offset is the next to be written


def test_a_revoked_partition_starts_afresh_at_its_next_assignment() -> None:
    order = OffsetOrder({})
    order.done("t", 0, 5)
    order.done("g", 0, 3)
    order.done("t", 1, 8)
    order.forget({("t", 0), ("g", 0)})
    assert order.check("t", 0, 2) == (Order.PROCESS, 2)  # replay from an older committed offset
    assert order.check("g", 0, 1) == (Order.PROCESS, 1)
    assert order.check("t", 1, 8) == (Order.SKIP, 9)


def test_an_assignment_starts_at_its_committed_offset_so_a_hole_at_its_head_is_re_read() -> None:
    clock = Clock()
    committed = {("t", 0): 100}
    order = OffsetOrder({}, reseek_after_s=10.0, clock=clock, committed=lambda t, p: committed.get((t, p)))
    assert order.check("t", 0, 140) == (Order.SEEK, 100)  # 100..139 dropped before reaching the agent
    assert order.check("t", 0, 99) == (Order.SKIP, 100)  # before the start: processed by a former owner
    assert order.check("t", 0, 100) == (Order.PROCESS, 100)
    order.claim("t", 0, 100)
    order.done("t", 0, 100)
    assert order.check("t", 1, 7) == (Order.PROCESS, 7)  # no commit in the group: the first record starts
    clock.now = 30.0
    assert order.stalled("t", 0, 140) == 101  # the re-read stopped short: the timer seeks again


def test_the_timer_judges_a_hole_from_the_start_once_a_record_was_checked() -> None:
    clock = Clock()
    order = OffsetOrder({}, reseek_after_s=10.0, clock=clock, committed=lambda t, p: 50)
    assert order.check("t", 0, 80)[0] is Order.SEEK
    clock.now = 12.0
    assert order.stalled("t", 0, 90) == 50  # the seek back never took: again


def test_records_dropped_at_the_head_of_a_partition_that_falls_quiet_are_re_read() -> None:
    """Nothing processed since the assignment, and no later record to show the hole: the timer, which
    holds a partition back until its records are evaluated, seeks to the assignment's start."""
    clock = Clock()
    order = OffsetOrder({}, reseek_after_s=10.0, clock=clock, committed=lambda t, p: 50)
    assert order.stalled("t", 0, None) is None  # not fetched yet: the assignment's seek may be to come
    assert order.stalled("t", 0, 90) is None  # 50..89 may still be on their way
    clock.now = 9.0
    assert order.stalled("t", 0, 90) is None
    clock.now = 10.5
    assert order.stalled("t", 0, 90) == 50
    assert order.stalled("t", 0, 50) is None  # nothing beyond the start: nothing missing
    assert OffsetOrder({}, committed=lambda t, p: None).stalled("t", 0, 90) is None  # no start known
