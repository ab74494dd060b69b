"""The snapshot flush's order: covered transitions delivered, then snapshots delivered, then acks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from faust.streams import current_event

from processors.state.table import SnapshotTable


class StoreData(dict):  # type: ignore[type-arg]
    """Like Faust's rocksdb store: a write needs a current event, whose partition picks the database."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def __setitem__(self, key: bytes, value: bytes) -> None:
        event = current_event()
        assert event is not None, "Faust's rocksdb store asserts a current event"
        self.log.append(f"stored {key.decode()} in p{event.message.partition}")
        super().__setitem__(key, value)


class FakeTable:
    """Records changelog sends (to its changelog topic, as Faust's `Topic.send`); each returns a future the
    test resolves (Kafka's acknowledgement)."""

    key_serializer = value_serializer = None

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.data = StoreData(log)
        self.futures: list[asyncio.Future[None]] = []
        self.changelog_topic = SimpleNamespace(send=self.send_changelog)

    def _on_changelog_sent(self, fut: Any) -> None:
        pass

    async def send_changelog(
        self, *, partition: int, key: bytes, value: bytes, callback: Any, **_: Any
    ) -> asyncio.Future[None]:
        assert callback == self._on_changelog_sent  # keeps the offset the table's recovery starts from
        self.log.append(f"snapshot {key.decode()} -> p{partition}")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: self.log.append(f"snapshot {key.decode()} delivered"))
        self.futures.append(fut)
        return fut


class FakeStates:
    def __init__(self) -> None:
        self.dirty = {"A": b"state-a", "B": b"state-b"}
        self.redirtied: list[str] = []

    def take_dirty(self, sites: Iterable[str]) -> list[tuple[str, bytes]]:
        out = [(s, self.dirty.pop(s)) for s in sites if s in self.dirty]
        return out

    def mark_dirty(self, sites: Iterable[str]) -> None:
        for s in sites:
            self.redirtied.append(s)
            self.dirty[s] = f"state-{s.lower()}-again".encode()


class FakeStream:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def ack(self, event: Any) -> None:
        self.log.append(f"ack {event.message.offset}")


def _event(partition: int, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset, value=b"x" * 10))


def _table(
    log: list[str], in_flight: list[asyncio.Future[None]]
) -> tuple[SnapshotTable, FakeTable, FakeStates]:
    fake = FakeTable(log)
    states = FakeStates()

    def take() -> list[Any]:
        out = list(in_flight)
        in_flight.clear()
        return out

    app = SimpleNamespace(Table=lambda *a, **k: fake)
    return SnapshotTable(app, "site-state", 2, states, take), fake, states  # type: ignore[arg-type]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_acks_wait_for_the_transitions_and_then_the_snapshots() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        transition: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        transition.add_done_callback(lambda f: log.append("transition delivered"))
        table, fake, _ = _table(log, [transition])
        stream = FakeStream(log)
        table.hold(stream, _event(0, 7))
        table.hold(stream, _event(0, 8))
        flushing = asyncio.ensure_future(table.flush(0, ["A", "B"], now=100.0))
        await _settle()
        assert log == [], "nothing is sent to the changelog before the covered transitions are delivered"
        transition.set_result(None)
        await _settle()
        assert log == [
            "transition delivered",
            "snapshot A -> p0",
            "snapshot B -> p0",
            "stored A in p0",
            "stored B in p0",
        ]
        table.hold(stream, _event(0, 9))  # arrives while the snapshots are in flight: not covered by them
        fake.futures[0].set_result(None)
        await _settle()
        assert not any(line.startswith("ack") for line in log), "no ack before every snapshot is delivered"
        fake.futures[1].set_result(None)
        assert await flushing == 2
        assert fake.data == {b"A": b"state-a", b"B": b"state-b"}
        assert table.pending_since(0, 101.0) == 1.0  # offset 9 still held for the next flush
        assert table.held(0) == (1, 10)  # (events, bytes of their records): what bounds the flush interval
        return log

    log = asyncio.run(run())
    assert log[-2:] == ["ack 7", "ack 8"]


def test_a_failed_snapshot_write_keeps_the_events_held_and_the_sites_dirty() -> None:
    async def run() -> None:
        log: list[str] = []
        table, fake, states = _table(log, [])
        stream = FakeStream(log)
        table.hold(stream, _event(1, 3))
        flushing = asyncio.ensure_future(table.flush(1, ["A"], now=50.0))
        await _settle()
        fake.futures[0].set_exception(RuntimeError("broker gone"))
        with pytest.raises(RuntimeError, match="broker gone"):
            await flushing
        assert not any(line.startswith("ack") for line in log)
        assert states.redirtied == ["A"]
        assert table.held(1) == (1, 10)  # still held, and still counted towards the flush bound
        # The next flush writes the site again and only then acks offset 3.
        retry = asyncio.ensure_future(table.flush(1, ["A"], now=55.0))
        await _settle()
        assert log[-2:] == ["snapshot A -> p1", "stored A in p1"]
        assert not any(line.startswith("ack") for line in log)
        fake.futures[1].set_result(None)
        assert await retry == 1
        assert fake.data[b"A"] == b"state-a-again"
        assert log[-1] == "ack 3"

    asyncio.run(run())
