"""What processors/faust_internals.py relies on, checked against the really installed Faust and aiokafka.

Every reach-in past their public API is checked on the real classes and, where it is cheap, on real
objects built the way Faust builds them (no broker needed). A failure names what changed: re-check
processors/faust_internals.py before raising a pin in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiokafka
import faust
import pytest
from aiokafka.consumer.fetcher import Fetcher
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import current_event
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustAiokafkaConsumer
from faust.transport.drivers.aiokafka import Producer as FaustAiokafkaProducer
from faust.types import Message

from processors import faust_internals
from processors.faust_internals import (
    CHECKED_AGAINST,
    make_producer_idempotent,
    producer_knows_partitions,
    set_fetch_wait,
    store_locally,
    take_unacked,
)

RECHECK = "re-check processors/faust_internals.py before raising the pin"
PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def _app(**options: Any) -> faust.App:
    return faust.App(
        "faust-internals-test", broker="kafka://127.0.0.1:9", autodiscover=False, web_enabled=False, **options
    )


def _pins() -> dict[str, str]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return dict(d.split("==", 1) for d in deps if "==" in d)


def _changed(what: str) -> str:
    return f"{what}: {RECHECK}"


def _params(fun: Any) -> list[str]:
    return list(inspect.signature(fun).parameters)


def _assert_source_has(obj: Any, text: str, why: str) -> None:
    source = inspect.getsource(obj)
    assert text in source, _changed(f"{obj.__module__}.{obj.__qualname__} no longer has {text!r} ({why})")


@pytest.mark.parametrize("dist", sorted(CHECKED_AGAINST))
def test_the_installed_versions_are_the_pinned_ones_the_module_was_checked_against(dist: str) -> None:
    pinned, installed = _pins().get(dist), importlib.metadata.version(dist)
    assert installed == pinned, _changed(f"{dist} {installed} is installed but pyproject.toml pins {pinned}")
    assert CHECKED_AGAINST[dist] == pinned, _changed(
        f"pyproject.toml pins {dist} {pinned}, faust_internals.CHECKED_AGAINST says {CHECKED_AGAINST[dist]}"
    )


# -- set_fetch_wait ---------------------------------------------------------------------------------


def test_faust_builds_its_consumer_with_a_1500_ms_wait_and_the_worker_shortens_it() -> None:
    async def check() -> None:
        app = _app()
        thread = app.consumer._thread  # where set_fetch_wait looks: Faust's aiokafka consumer thread
        assert isinstance(thread, AIOKafkaConsumerThread), _changed(f"app.consumer._thread is {thread!r}")
        # What Faust's AIOKafkaConsumerThread.on_start does before starting the consumer.
        _assert_source_has(AIOKafkaConsumerThread.on_start, "self._consumer = self._create_consumer(", "")
        thread._consumer = thread._create_consumer(loop=asyncio.get_running_loop())
        consumer = thread._consumer
        assert isinstance(consumer, aiokafka.AIOKafkaConsumer)
        # If Faust stops fixing it (or makes it a setting), the workaround may go.
        assert consumer._fetch_max_wait_ms == 1500, _changed(
            f"Faust now builds its consumer with fetch_max_wait_ms={consumer._fetch_max_wait_ms}"
        )
        assert set_fetch_wait(app, 50)
        assert consumer._fetch_max_wait_ms == 50
        # What AIOKafkaConsumer.start() does once connected: the fetcher takes the consumer's wait.
        _assert_source_has(
            type(consumer).start, "fetch_max_wait_ms=self._fetch_max_wait_ms", "a fetcher made later"
        )
        fetcher = Fetcher(consumer._client, consumer._subscription, fetch_max_wait_ms=1500)
        try:
            consumer._fetcher = fetcher
            assert set_fetch_wait(app, 40)
            assert fetcher._fetch_max_wait_ms == 40 and consumer._fetch_max_wait_ms == 40
        finally:
            await fetcher.close()
            await consumer._client.close()

    asyncio.run(check())


def test_aiokafka_reads_the_wait_each_time_it_builds_a_fetch() -> None:
    """Setting the attribute on a running fetcher works only because every fetch request is built from it."""
    source = inspect.getsource(Fetcher._get_actions_per_node)  # where aiokafka 0.14 builds its requests
    assert re.search(r"FetchRequest\(\s*self\._fetch_max_wait_ms,", source), _changed(
        "aiokafka's Fetcher._get_actions_per_node no longer builds FetchRequest from self._fetch_max_wait_ms"
    )


def test_an_unknown_consumer_is_reported_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    app = SimpleNamespace(consumer=SimpleNamespace(_thread=SimpleNamespace(_consumer=None)))
    with caplog.at_level(logging.WARNING):
        assert not set_fetch_wait(app, 50)  # type: ignore[arg-type]
    assert "fetch wait" in caplog.text


# -- take_unacked -----------------------------------------------------------------------------------


def test_a_real_stream_gives_its_events_in_bunches_with_faust_acks_off() -> None:
    assert _params(faust.Stream.noack_take) == ["self", "max_", "within"], _changed(
        f"Stream.noack_take{inspect.signature(faust.Stream.noack_take)}"
    )

    async def run() -> list[list[tuple[bytes, bool]]]:
        app = _app()
        app.flow_control.resume()  # what the worker's consumer does once partitions are assigned
        channel = app.channel(key_type=bytes, value_type=bytes)
        stream = app.stream(channel)
        bunches: list[list[tuple[bytes, bool]]] = []

        async def take() -> None:
            async for events in take_unacked(stream, 3, 0.05):
                assert all(isinstance(e, faust.types.EventT) for e in events), _changed(
                    f"Stream.noack_take yields {events!r}, not events"
                )
                bunches.append([(e.value, stream.enable_acks) for e in events])
                if sum(map(len, bunches)) == 5:
                    return

        # All five wait before the take starts, so the first bunch is full however slow the machine is.
        for i in range(5):
            await channel.send(key=b"k", value=b"%d" % i)
        await asyncio.wait_for(take(), 10)
        return bunches

    bunches = asyncio.run(run())
    # At most 3 a bunch, the rest after `within`; Faust's own acking is off while the events are taken.
    assert bunches == [[(b"0", False), (b"1", False), (b"2", False)], [(b"3", False), (b"4", False)]]


# -- seek_on_consumer_thread ------------------------------------------------------------------------


def test_seek_wait_seeks_on_the_consumer_thread_and_plain_seek_does_not() -> None:
    consumer = _app().consumer
    delegate, thread = type(consumer), consumer._thread
    assert delegate is FaustAiokafkaConsumer, _changed(f"the app's consumer is a {delegate}")
    assert _params(delegate.seek_wait) == ["self", "partitions"], _changed(
        f"Faust's Consumer.seek_wait{inspect.signature(delegate.seek_wait)}"
    )
    assert isinstance(thread, AIOKafkaConsumerThread) and callable(getattr(thread, "call_thread", None)), (
        _changed("Faust's consumer thread has no call_thread")
    )
    _assert_source_has(delegate.seek_wait, "self._thread.seek_wait(", "the app's consumer delegates to it")
    _assert_source_has(
        AIOKafkaConsumerThread.seek_wait, "self.call_thread(self._seek_wait", "runs on the consumer thread"
    )
    _assert_source_has(AIOKafkaConsumerThread._seek_wait, "consumer.seek(tp, offset)", "aiokafka's seek")
    # Why the worker does not use Faust's `seek`: it reaches aiokafka from the app's loop. If this fails,
    # Faust may have fixed the race, and the module may be simplified.
    _assert_source_has(delegate.seek, "await self._seek(", "plain seek")
    _assert_source_has(delegate._seek, "self._thread.seek(", "plain seek, not through call_thread")
    _assert_source_has(AIOKafkaConsumerThread.seek, "self._ensure_consumer().seek(", "plain seek")


def test_the_offsets_faust_seeks_an_assignment_to_are_what_committed_offset_reads() -> None:
    from faust.transport.consumer import Consumer as FaustConsumer

    app = _app()
    consumer = app.consumer
    tp = faust_internals.TP("rw.telemetry", 3)
    assert faust_internals.committed_offset(app, tp.topic, tp.partition) is None  # nothing sought yet
    # What Faust's recovery runs before the streams resume after an assignment, on a real consumer whose
    # aiokafka side answers as aiokafka's `seek_to_committed` does (committed offset per partition).
    _assert_source_has(FaustConsumer.perform_seek, "self._committed_offset.update(", "records the seek")

    async def sought() -> dict[Any, int | None]:
        return {tp: 1234, faust_internals.TP("rw.telemetry", 4): None}

    consumer.seek_to_committed = sought  # type: ignore[method-assign]
    asyncio.run(consumer.perform_seek())
    assert faust_internals.committed_offset(app, tp.topic, tp.partition) == 1234
    assert faust_internals.committed_offset(app, tp.topic, 4) is None  # no commit in the group yet


# -- send_changelog_now -----------------------------------------------------------------------------


def test_a_changelog_record_sent_now_skips_the_send_soon_buffer_and_keeps_the_tables_callback() -> None:
    from faust.tables.base import Collection

    _assert_source_has(Collection.send_changelog, "send_soon(", "a table's own send goes through the buffer")
    _assert_source_has(
        Collection.send_changelog, "callback=self._on_changelog_sent", "what a changelog send calls back"
    )
    assert {"callback", "force", "partition"} <= set(_params(faust.Topic.send)), _changed("Topic.send")

    async def check() -> None:
        app = _app()
        table = app.Table("changelog-now", partitions=3, key_type=bytes, value_type=bytes)
        sends: list[dict[str, Any]] = []

        async def send(**kwargs: Any) -> str:
            sends.append(kwargs)
            return "delivery"

        table.changelog_topic.send = send  # type: ignore[method-assign]
        assert await faust_internals.send_changelog_now(table, 2, b"site", b"snapshot") == "delivery"
        (sent,) = sends
        assert (sent["key"], sent["value"], sent["partition"], sent["force"]) == (
            b"site",
            b"snapshot",
            2,
            True,
        )
        assert sent["callback"] == table._on_changelog_sent
        assert app.producer.buffer.size == 0  # nothing waits in the send-soon buffer

    asyncio.run(check())


# -- store_locally ----------------------------------------------------------------------------------


def test_writes_reach_a_real_rocksdb_store_in_the_given_partition_only(tmp_path: Path) -> None:
    _assert_source_has(RocksDBStore._set, "current_event()", "the store picks the partition's database")
    app = _app(store="rocksdb://", datadir=str(tmp_path))
    table = app.Table("internals", partitions=3, key_type=bytes, value_type=bytes)
    store = table.data
    assert isinstance(store, RocksDBStore), _changed(f"Table.data is {type(store)}")
    try:
        store_locally(table, 2, [(b"site-a", b"snapshot-a"), (b"site-b", b"snapshot-b")])
        assert current_event() is None  # the stand-in is current only during the writes
        assert store._db_for_partition(2).get(b"site-a") == b"snapshot-a"
        assert store._db_for_partition(2).get(b"site-b") == b"snapshot-b"
        assert store._db_for_partition(1).get(b"site-a") is None
        assert store._db_for_partition(0).get(b"site-a") is None
    finally:
        for db in store._dbs.values():
            db.close()


def test_store_locally_restores_the_current_event_when_a_write_fails() -> None:
    class Refusing(dict[bytes, bytes]):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store_locally(SimpleNamespace(data=Refusing()), 0, [(b"k", b"v")])
    assert current_event() is None


def test_a_table_write_outside_a_streams_iteration_takes_the_partition_of_the_event_made_current() -> None:
    app = _app()
    table = app.Table("regions-internals", partitions=6, key_type=bytes, value_type=bytes)
    # What the region stage's table write would meet with its events taken in bunches: no current event.
    with pytest.raises(TypeError, match="outside of stream iteration"):
        table.partition_for_key(b"RB")
    message = Message("sites-by-region", 4, 17, 0.0, 0, {}, b"RB", b"", None)
    event = faust.Event(app, b"RB", b"", {}, message)  # as a stream makes them
    with faust_internals.as_current_event(event):
        assert table.partition_for_key(b"RB") == 4  # the changelog (and the store) of the event's partition
    assert current_event() is None


# -- make_producer_idempotent -----------------------------------------------------------------------


def test_the_worker_producer_is_idempotent_with_acks_all() -> None:
    async def check() -> None:
        app = _app()
        make_producer_idempotent(app)
        assert isinstance(app.producer, FaustAiokafkaProducer)
        settings = app.producer._settings_extra()
        assert settings["acks"] == "all" and settings["enable_idempotence"] is True
        producer = app.producer._new_producer()  # what Faust starts: a real aiokafka producer, unconnected
        try:
            assert producer._txn_manager is not None, _changed(
                "Faust's _new_producer ignores _settings_extra"
            )
            assert producer._sender._acks == -1
        finally:
            await producer.stop()

    asyncio.run(check())


def test_faust_alone_would_not_be() -> None:
    """Why the override exists: Faust 0.15.3 asks for idempotence only inside transactions."""
    assert "enable_idempotence" not in _app().producer._settings_extra(), _changed(
        "Faust now asks for idempotence outside transactions: the override may go"
    )


# -- producer_knows_partitions ----------------------------------------------------------------------


def test_the_partition_lookup_asks_the_producer_faust_keeps(caplog: pytest.LogCaptureFixture) -> None:
    assert _params(aiokafka.AIOKafkaProducer.partitions_for) == ["self", "topic"]
    assert inspect.iscoroutinefunction(aiokafka.AIOKafkaProducer.partitions_for)

    async def check() -> None:
        app = _app()
        with caplog.at_level(logging.INFO, logger=faust_internals.__name__):
            assert not await producer_knows_partitions(app, "rw-changelog", 0.2)  # not started yet
        assert "NotReady" in caplog.text, _changed(f"Faust's unstarted producer: {caplog.text}")
        caplog.clear()
        producer = app.producer._new_producer()  # what Producer.on_start keeps in _producer
        _assert_source_has(FaustAiokafkaProducer.on_start, "self._producer = self._new_producer()", "")
        app.producer._producer = producer
        try:
            assert app.producer._ensure_producer() is producer
            with caplog.at_level(logging.INFO, logger=faust_internals.__name__):
                # No broker on port 9: the lookup reaches aiokafka and times out.
                assert not await producer_knows_partitions(app, "rw-changelog", 0.2)
            assert "TimeoutError" in caplog.text
        finally:
            await producer.stop()

    asyncio.run(check())


# -- faults worked around with the public API (processors/offsets.py, processors/timers.py) ---------


def test_the_public_hooks_of_the_order_check_and_the_recovery_watchdog_are_there() -> None:
    app = _app()
    for signal in ("on_partitions_revoked", "on_partitions_assigned", "on_rebalance_complete"):
        assert callable(getattr(getattr(app, signal, None), "connect", None)), _changed(f"App.{signal}")
    assert app.rebalancing is False and app.in_recovery is False
    # The watchdog counts on this signal coming only once the tables are restored.
    _assert_source_has(Recovery, "await self.app.on_rebalance_complete.send()", "sent after recovery")
    consumer = FaustAiokafkaConsumer
    assert _params(consumer.highwater) == ["self", "tp"] and _params(consumer.position) == ["self", "tp"]


# -- deliver_eagerly ---------------------------------------------------------------------------------


def test_faust_hands_each_fetched_message_over_through_the_consumers_wait_first() -> None:
    from faust.transport.consumer import Consumer

    _assert_source_has(
        Consumer._drain_messages,
        "await self.wait_first(\n                                callback(message), self.suspend_flow.wait()",
        "deliver_eagerly replaces the consumer's wait_first, called once per message there",
    )
    assert inspect.iscoroutinefunction(getattr(Consumer, "wait_first", None)), _changed(
        "Faust's Consumer has no coroutine wait_first"
    )


def test_an_eager_delivery_returns_what_mode_returns_and_continues_a_callback_that_waits() -> None:
    """On a real Faust consumer (no broker): a callback that finishes at once gives mode's result with no
    task made; one that waits (a full queue) is continued from where it stopped, gets what it waited for,
    and can still be interrupted by the flow's suspension; an error propagates; stopping is honoured."""

    async def run() -> None:
        app = _app()
        consumer = app.consumer
        assert faust_internals.deliver_eagerly(app) and faust_internals.deliver_eagerly(app)
        suspend = asyncio.Event()
        steps: list[str] = []

        async def at_once(message: str) -> str:
            steps.append(message)
            return message.upper()

        tasks_before = len(asyncio.all_tasks())
        got = await consumer.wait_first(at_once("a"), suspend.wait())
        assert (got.results, got.stopped, steps) == (["A"], False, ["a"])
        assert len(asyncio.all_tasks()) == tasks_before

        room = asyncio.get_running_loop().create_future()

        async def waits_for_room(message: str) -> str:
            steps.append(f"{message} waits")
            value = await room
            steps.append(f"{message} put {value}")
            return message

        asyncio.get_running_loop().call_later(0.05, room.set_result, "later")
        got = await consumer.wait_first(waits_for_room("b"), suspend.wait())
        assert got.results == ["b"] and steps[-2:] == ["b waits", "b put later"]

        never = asyncio.get_running_loop().create_future()

        async def blocked() -> None:
            await never

        asyncio.get_running_loop().call_later(0.05, suspend.set)
        got = await consumer.wait_first(blocked(), suspend.wait())
        assert len(got.results) == 1 and got.results[0] is True  # the suspension won, as with mode's own
        await asyncio.sleep(0)
        assert never.cancelled()  # the waiting callback was cancelled through the continuation

        async def fails() -> None:
            raise ValueError("bad record")

        with pytest.raises(ValueError, match="bad record"):
            await consumer.wait_first(fails(), suspend.wait())

    asyncio.run(run())
