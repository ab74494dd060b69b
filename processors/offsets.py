"""Records of a partition must reach the engine in offset order, without holes.

faust-streaming 0.15.3 can drop a fetched record without a trace: `Stream` skips an event whose consumer
generation is not the app's current one or that arrives while flow control is paused (streams.py, "Skipping
message ... generation_id"), and the fetcher advances its read offset even when a paused flow cancels the
delivery. A skipped record is never acked, so it is not committed, but this worker would not see it again
until the next rebalance; in the failover test a worker that took over a partition received 18 of 45 records.
Our input topics have no legitimate holes (no transactions, no compaction), so a hole means loss: the agent
seeks back to the first missing offset and drops what arrives beyond the hole until the re-read catches up.
"""

from __future__ import annotations

import enum
from collections.abc import MutableMapping

Key = tuple[str, int]  # (topic, partition)


class Order(enum.Enum):
    PROCESS = "process"  # the next record (or the first since the assignment)
    SKIP = "skip"  # already processed since the assignment (a re-read overlap)
    SEEK = "seek"  # records before this one are missing: seek back to `expected`, drop this one
    WAIT = "wait"  # a seek back is under way: drop this one, it comes again


class OffsetOrder:
    """Per (topic, partition), the last processed offset (shared with the lag and catch-up gauges)."""

    def __init__(self, processed: MutableMapping[Key, int], reseek_after_s: float = 10.0) -> None:
        self.processed = processed
        self.reseek_after_s = reseek_after_s
        self._sought: dict[Key, tuple[int, float]] = {}  # key -> (offset sought, when)

    def check(self, topic: str, partition: int, offset: int, now: float) -> tuple[Order, int]:
        """What to do with the record at `offset`; the second value is the offset expected next."""
        key = (topic, partition)
        last = self.processed.get(key)
        if last is None:
            return Order.PROCESS, offset
        expected = last + 1
        if offset == expected:
            return Order.PROCESS, expected
        if offset < expected:
            return Order.SKIP, expected
        sought = self._sought.get(key)
        if sought is not None and sought[0] == expected and now - sought[1] < self.reseek_after_s:
            return Order.WAIT, expected
        self._sought[key] = (expected, now)  # first time, or the re-read never came: seek again
        return Order.SEEK, expected

    def done(self, topic: str, partition: int, offset: int) -> None:
        self.processed[(topic, partition)] = offset

    def forget(self, partitions: set[int]) -> None:
        """Partitions revoked: their next assignment starts from the committed offset, whatever it is."""
        for key in [k for k in self.processed if k[1] in partitions]:
            del self.processed[key]
        for key in [k for k in self._sought if k[1] in partitions]:
            del self._sought[key]
