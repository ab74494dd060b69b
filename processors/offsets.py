"""Records of a partition must reach the engine in offset order, without holes.

faust-streaming 0.15.3 can drop a fetched record without a trace: `Stream` skips an event whose consumer
generation is not the app's current one or that arrives while flow control is paused (streams.py, "Skipping
message ... generation_id"), and the fetcher advances its read offset even when a paused flow cancels the
delivery. A skipped record is never acked, so it is not committed, but this worker would not see it again
until the next rebalance; in the failover test a worker that took over a partition received 18 of 45 records.
Our input topics have no legitimate holes (no transactions, no compaction), so a hole means loss: the agent
seeks back to the first missing offset and drops what arrives beyond the hole until the re-read catches up.
A hole at the tail shows no later record; the timer finds it instead: a partition with records beyond the
last one processed and no progress for a while is sought back too.

The first records after an assignment can be dropped the same way. Taking the first one to arrive as the
start would accept the hole before it, and the commits would then pass over it: so a partition's order
starts at the offset its consumer was sought to at the assignment, the group's committed offset (the first
record no worker has processed), where there is one.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, MutableMapping

Key = tuple[str, int]  # (topic, partition)


def _no_committed(topic: str, partition: int) -> int | None:
    return None


class Order(enum.Enum):
    PROCESS = "process"  # the next record (or the first since the assignment)
    SKIP = "skip"  # already processed since the assignment (a re-read overlap)
    SEEK = "seek"  # records before this one are missing: seek back to `expected`, drop this one
    WAIT = "wait"  # a seek back is under way: drop this one, it comes again


class OffsetOrder:
    """Per (topic, partition), the last processed offset (shared with the lag and catch-up gauges)."""

    def __init__(
        self,
        processed: MutableMapping[Key, int],
        reseek_after_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        committed: Callable[[str, int], int | None] = _no_committed,
    ) -> None:
        self.processed = processed
        # (topic, partition) -> the offset the assignment started at, if known; asked once the consumer has
        # been sought there: at the first record since, or by the timer once the partition was fetched
        self.committed = committed
        self.reseek_after_s = reseek_after_s
        self.clock = clock
        self._sought: dict[Key, tuple[int, float]] = {}  # key -> (offset sought, when)
        self._progress: dict[Key, float] = {}  # key -> when a record was last processed
        # key -> last offset taken for processing: a take holds records that are checked, then evaluated
        self._claimed: dict[Key, int] = {}

    def check(self, topic: str, partition: int, offset: int) -> tuple[Order, int]:
        """What to do with the record at `offset`; the second value is the offset expected next."""
        key, now = (topic, partition), self.clock()
        last = self._claimed.get(key, self.processed.get(key))
        if last is None:
            last = self._start(key)
        if last is None:
            return Order.PROCESS, offset
        expected = last + 1
        if offset == expected:
            return Order.PROCESS, expected
        if offset < expected:
            return Order.SKIP, expected
        return (Order.SEEK if self._seek_due(key, expected, now) else Order.WAIT), expected

    def claim(self, topic: str, partition: int, offset: int) -> None:
        """The record at `offset` (checked: PROCESS) will be processed: the next check expects its
        successor, while `processed` (which the catch-up and lag gauges read) waits for `done`."""
        self._claimed[(topic, partition)] = offset

    def done(self, topic: str, partition: int, offset: int) -> None:
        if self._claimed.get((topic, partition), offset) <= offset:
            self._claimed.pop((topic, partition), None)
        self.processed[(topic, partition)] = offset
        self._progress[(topic, partition)] = self.clock()

    def stalled(self, topic: str, partition: int, end: int | None) -> int | None:
        """The offset to seek back to if records up to `end` (the partition's end offset, known once the
        partition was fetched, so after the assignment's seek) exist beyond the last processed one and
        nothing was processed for `reseek_after_s`; else None.

        With nothing processed since the assignment, the last processed one is the one before its start:
        records dropped at the head of a partition that then falls quiet are found too (until they are
        evaluated the timers hold the partition back, processors/timers.py)."""
        key, now = (topic, partition), self.clock()
        last = self.processed.get(key)
        if last is None and end is not None and (start := self.committed(*key)) is not None:
            last = start - 1
        if last is None or end is None or last + 1 >= end:
            return None
        if now - self._progress.setdefault(key, now) < self.reseek_after_s:
            return None
        return last + 1 if self._seek_due(key, last + 1, now) else None

    def _start(self, key: Key) -> int | None:
        """At the first record since the assignment: the offset before the one the assignment started
        at, as if processed (a first record beyond it is a hole), if that offset is known."""
        start = self.committed(*key)
        if start is None:
            return None
        self.processed[key], self._progress[key] = start - 1, self.clock()
        return start - 1

    def _seek_due(self, key: Key, expected: int, now: float) -> bool:
        """Seek to `expected` unless that seek was made less than `reseek_after_s` ago."""
        sought = self._sought.get(key)
        if sought is not None and sought[0] == expected and now - sought[1] < self.reseek_after_s:
            return False
        self._sought[key] = (expected, now)
        return True

    def forget(self, revoked: Iterable[Key]) -> None:
        """(topic, partition)s revoked: their next assignment starts from the committed offset, whatever
        it is."""
        gone = set(revoked)
        for table in (self.processed, self._sought, self._progress, self._claimed):
            for key in [k for k in table if k in gone]:
                del table[key]
