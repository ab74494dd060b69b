"""Engine snapshots in a Faust table (changelog-backed, rocksdict on disk), and acks held until then.

Why acks are held: Faust commits the offsets of acked events. A batch's event is acked only after the
snapshot of its site (covering that batch) has been written to the table, so a committed offset never
runs ahead of the stored state. After SIGKILL or a rebalance, the next owner restores the snapshot and
replays from the committed offset; the engine ignores readings older than a sensor's last, so the
replayed overlap changes nothing and re-emitted transitions carry the same ids.

Snapshots are written every `snapshot_every_s` per partition (not per batch) to keep the changelog
small. Faust's table writes need "the current event" to choose the partition; a flush borrows the last
event seen on that partition (the changelog is co-partitioned with rw.telemetry and rw.gateway).
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from typing import Any

import faust
from faust.streams import _current_event

from processors.state.states import SiteStates


class SnapshotTable:
    """The `site -> snapshot` table plus per-partition pending events."""

    def __init__(self, app: faust.App, name: str, partitions: int, states: SiteStates) -> None:
        self.table = app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes)
        self.states = states
        self._pending: dict[int, list[tuple[Any, Any]]] = defaultdict(list)  # partition -> [(stream, event)]
        self._last_event: dict[int, Any] = {}
        self.last_flush: dict[int, float] = {}

    def load(self, site: str) -> bytes | None:
        value = self.table.get(site.encode())
        return bytes(value) if value is not None else None

    def hold(self, stream: Any, event: Any) -> None:
        """Remember an event to ack once its partition's snapshots are written."""
        partition = event.message.partition
        self._pending[partition].append((stream, event))
        self._last_event[partition] = event

    def pending_since(self, partition: int, now: float) -> float:
        return now - self.last_flush.get(partition, now) if self._pending.get(partition) else 0.0

    async def flush(self, partition: int, sites: list[str], now: float) -> int:
        """Write the partition's dirty snapshots, then ack its held events. Returns snapshots written."""
        event = self._last_event.get(partition)
        if event is None:
            return 0
        written = 0
        token = _current_event.set(weakref.ref(event))
        try:
            for site, raw in self.states.take_dirty(sites):
                self.table[site.encode()] = raw
                written += 1
        finally:
            _current_event.reset(token)
        held, self._pending[partition] = self._pending[partition], []
        for stream, ev in held:
            await stream.ack(ev)
        self.last_flush[partition] = now
        return written

    def forget(self, partitions: set[int], sites: list[str]) -> None:
        """Partitions revoked: drop their held events (the next owner replays them) and live state."""
        for p in partitions:
            self._pending.pop(p, None)
            self._last_event.pop(p, None)
            self.last_flush.pop(p, None)
        self.states.drop(sites)
