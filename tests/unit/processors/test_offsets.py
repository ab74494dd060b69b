"""A partition's records reach the engine in offset order; a hole makes the agent seek back."""

from __future__ import annotations

from processors.offsets import OffsetOrder, Order


def test_in_order_records_are_processed_and_a_re_read_overlap_is_skipped() -> None:
    order = OffsetOrder({})
    assert order.check("t", 0, 45, 0.0) == (Order.PROCESS, 45)  # first since the assignment: any offset
    order.done("t", 0, 45)
    assert order.check("t", 0, 46, 0.0) == (Order.PROCESS, 46)
    order.done("t", 0, 46)
    assert order.check("t", 0, 45, 0.0) == (Order.SKIP, 47)
    assert order.check("t", 1, 7, 0.0) == (Order.PROCESS, 7)  # partitions are independent


def test_a_hole_seeks_back_once_then_waits_for_the_re_read() -> None:
    processed: dict[tuple[str, int], int] = {}
    order = OffsetOrder(processed, reseek_after_s=10.0)
    order.done("t", 2, 45)
    assert order.check("t", 2, 72, 100.0) == (Order.SEEK, 46)
    assert order.check("t", 2, 73, 101.0) == (Order.WAIT, 46)  # buffered beyond the hole: dropped
    assert order.check("t", 2, 46, 102.0) == (Order.PROCESS, 46)  # the re-read arrives
    order.done("t", 2, 46)
    assert processed == {("t", 2): 46}  # shared with the lag gauge


def test_a_re_read_that_never_comes_is_sought_again_later() -> None:
    order = OffsetOrder({}, reseek_after_s=10.0)
    order.done("t", 0, 5)
    assert order.check("t", 0, 9, 0.0)[0] is Order.SEEK
    assert order.check("t", 0, 9, 9.0)[0] is Order.WAIT
    assert order.check("t", 0, 9, 10.5)[0] is Order.SEEK


def test_a_revoked_partition_starts_afresh_at_its_next_assignment() -> None:
    order = OffsetOrder({})
    order.done("t", 0, 5)
    order.done("g", 0, 3)
    order.done("t", 1, 8)
    order.forget({0})
    assert order.check("t", 0, 2, 0.0) == (Order.PROCESS, 2)  # replay from an older committed offset
    assert order.check("g", 0, 1, 0.0) == (Order.PROCESS, 1)
    assert order.check("t", 1, 8, 0.0) == (Order.SKIP, 9)
