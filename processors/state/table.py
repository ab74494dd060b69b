"""Engine snapshots in a Faust table (changelog-backed, rocksdict on disk), and acks held until then.

Why acks are held: Faust commits the offsets of acked events. A batch's event is acked only after the
snapshot of its site (covering that batch) has been written to the table, so a committed offset never
runs ahead of the stored state. After SIGKILL or a rebalance, the next owner restores the snapshot and
replays from the committed offset; the engine ignores readings older than a sensor's last, so the
replayed overlap changes nothing and re-emitted transitions carry the same ids.

"Written" means delivered: a flush sends each snapshot to the changelog itself and waits for Kafka's
acknowledgement before acking the events. (A plain `table[key] = value` only queues the record in Faust's
send-soon buffer, and Faust's pre-commit flush of that buffer gives up after 0.1 s without progress, so
an offset could be committed while the snapshot it depends on was still queued; a SIGKILL then left the
next owner an older snapshot and a later offset, and it skipped batches.)

Snapshots are written every `snapshot_every_s` per partition (not per batch) to keep the changelog
small. The changelog is co-partitioned with rw.telemetry and rw.gateway, so a site's snapshot goes to the
partition of its batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from processors import faust_internals
from processors.state.states import SiteStates

log = logging.getLogger(__name__)


SNAPSHOT_SLICE_SITES = 32  # sites serialised between two yields to the event loop


class SnapshotTable:
    """The `site -> snapshot` table plus per-partition pending events."""

    def __init__(
        self,
        app: faust.App,
        name: str,
        partitions: int,
        states: SiteStates,
        take_in_flight: Callable[[], list[Awaitable[Any]]],
    ) -> None:
        self.table = app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes)
        self.states = states
        self.take_in_flight = take_in_flight  # sends (transitions, dead letters) not yet known delivered
        # Held by an agent from evaluating a record until its event is held, so a snapshot never covers
        # a batch whose transitions are not yet sent (a replay would not send them again: it is a duplicate).
        self.lock = asyncio.Lock()
        self._pending: dict[int, list[tuple[Any, Any]]] = defaultdict(list)  # partition -> [(stream, event)]
        self._pending_bytes: dict[int, int] = defaultdict(int)  # partition -> bytes of those events' records
        self.last_flush: dict[int, float] = {}

    def load(self, site: str) -> bytes | None:
        value = self.table.get(site.encode())
        return bytes(value) if value is not None else None

    def hold(self, stream: Any, event: Any) -> None:
        """Remember an event to ack once its partition's snapshots are written."""
        p = event.message.partition
        self._pending[p].append((stream, event))
        self._pending_bytes[p] += len(event.message.value or b"")

    def held(self, partition: int) -> tuple[int, int]:
        """Events of the partition waiting for its next snapshot flush to be acked, and their records' bytes."""
        return len(self._pending.get(partition, ())), self._pending_bytes.get(partition, 0)

    def pending_since(self, partition: int, now: float) -> float:
        return now - self.last_flush.get(partition, now) if self._pending.get(partition) else 0.0

    async def flush(self, partition: int, sites: list[str], now: float) -> int:
        """Write the partition's dirty snapshots and ack the events they cover. Returns snapshots written.

        Order: the transitions the snapshots cover are delivered, then the snapshots, then the acks. A
        crash anywhere in between leaves an offset to replay from that is not past the stored state.
        """
        async with self.lock:
            held, self._pending[partition] = self._pending[partition], []
            held_bytes, self._pending_bytes[partition] = self._pending_bytes[partition], 0
            dirty: list[tuple[str, bytes]] = []
            # Serialising a partition's sites takes ~0.4 ms each: in slices, yielding to the loop between
            # them (still under the lock, so no record is evaluated into a half-taken snapshot set).
            try:
                for first in range(0, len(sites), SNAPSHOT_SLICE_SITES):
                    dirty += self.states.take_dirty(sites[first : first + SNAPSHOT_SLICE_SITES])
                    await asyncio.sleep(0)
            except BaseException:  # cancelled mid-way: nothing taken is lost
                self._pending[partition] = held + self._pending[partition]
                self._pending_bytes[partition] += held_bytes
                self.states.mark_dirty(site for site, _ in dirty)
                raise
            before = self.take_in_flight()
        try:
            if before:
                await asyncio.gather(*before)
            # Straight to the producer: through Faust's send-soon buffer, ~330 snapshots a partition held
            # every record's delivery until the buffer ebbed (processors/faust_internals.py).
            sent = [
                await faust_internals.send_changelog_now(self.table, partition, site.encode(), raw)
                for site, raw in dirty
            ]
            # The local store too (what Table.__setitem__ does besides the changelog send, made above).
            faust_internals.store_locally(self.table, partition, ((s.encode(), raw) for s, raw in dirty))
            if sent:
                await asyncio.gather(*sent)
        except BaseException:
            self._pending[partition] = held + self._pending[partition]
            self._pending_bytes[partition] += held_bytes
            self.states.mark_dirty(site for site, _ in dirty)
            raise
        for stream, ev in held:
            await stream.ack(ev)
        if held or dirty:
            log.debug(
                "partition %d: stored %s, acked %d records up to offset %s",
                partition,
                [site for site, _ in dirty],
                len(held),
                max((ev.message.offset for _, ev in held), default=None),
            )
        self.last_flush[partition] = now
        return len(dirty)

    def forget(self, partitions: set[int], sites: list[str]) -> None:
        """Partitions revoked: drop their held events (the next owner replays them) and live state."""
        for p in partitions:
            self._pending.pop(p, None)
            self._pending_bytes.pop(p, None)
            self.last_flush.pop(p, None)
        self.states.drop(sites)
