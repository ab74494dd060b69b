"""Every place the worker goes past the public API of Faust or aiokafka, in one module.

Checked against faust-streaming 0.15.3 and aiokafka 0.14.0 (the pins in pyproject.toml; `CHECKED_AGAINST`),
with the mode-streaming 0.7.1 they installed. tests/unit/processors/test_faust_internals.py asserts, on
the installed libraries, that each private attribute, method and behaviour used here is still there and
still behaves as assumed, and fails naming what changed: re-check this module before raising a pin.

The rest of `processors/` calls only these functions; no other module touches a private attribute of a
Faust or aiokafka object.

What is reached, and why:

- `set_fetch_wait`: aiokafka's `AIOKafkaConsumer._fetch_max_wait_ms` and `Fetcher._fetch_max_wait_ms`, on
  the consumer behind Faust's `Consumer._thread._consumer`. Faust builds that consumer with
  `fetch_max_wait_ms=1500` fixed (`AIOKafkaConsumerThread._create_worker_consumer`, no setting), and
  aiokafka keeps one fetch in flight per broker, so readings waited up to 1.5 s behind a fetch of quiet
  partitions (reading -> warning p50 ~1 s at 200k readings/s, 0.14 s with 50 ms). aiokafka's fetcher
  reads the attribute each time it builds a fetch request, so setting it on the running consumer takes
  effect at the next fetch.
- `take_unacked`: Faust's `Stream.noack_take` (a method of `Stream`, not declared on `StreamT`): takes
  buffered events in bunches without acking them, so they are acked only once the snapshot covering
  them is stored (processors/state/table.py).
- `seek_on_consumer_thread`: Faust's `Consumer.seek_wait`, relied on for running aiokafka's `seek` on
  Faust's consumer thread (`call_thread`), which owns the aiokafka consumer. Faust's plain
  `Consumer.seek` calls aiokafka's `seek` from the app's event loop instead, where a fetch finishing on
  the consumer thread can overwrite the new position: the re-read then never happened and was repeated
  every few seconds (minutes of late warnings after a rebalance in the cluster test, docs/capacity.md).
- `committed_offset`: Faust's `Consumer._committed_offset`, where `perform_seek` records the offsets it
  sought each assigned partition to (the group's committed ones) before the streams resume, and its own
  commits update. The first record after an assignment can be dropped like any other
  (processors/offsets.py); the agent needs to know where the assignment started to see that hole.
- `as_current_event`: sets Faust's private "current event" (`faust.streams._current_event`), from which a
  table write takes its partition, for the region stage, which takes its events in bunches like the
  input agents (in offset order, processors/offsets.py) and so writes its table outside the stream's own
  iteration.
- `send_changelog_now`: a table's changelog record sent with the changelog topic's public `send`, with
  the table's private `_on_changelog_sent` as its callback (what `Table.send_changelog` passes). Faust's
  `send_changelog` puts the record in the producer's send-soon buffer (100 messages), and Faust's
  conductor holds every incoming record's delivery until that buffer ebbs: a snapshot flush of a
  partition's ~330 sites ("producer buffer full" every flush at 1,000 sites) paused the streams.
- `store_locally`: writes a table's local store (`Table.data`) directly, under a stand-in for Faust's
  private "current event" (`as_current_event`). Faust's rocksdb store picks the partition's
  database from the current event, and outside an agent there is none; `table[key] = value` would
  also queue a changelog send that the snapshot flush makes and awaits itself.
- `make_producer_idempotent`: overrides the aiokafka driver's private `Producer._settings_extra`. Faust
  turns idempotence (and acks=all) on only inside transactions, and without it a send retried after a
  broker's failover can write a transition, snapshot or history record twice.
- `producer_knows_partitions`: the aiokafka producer Faust keeps privately (`Producer._ensure_producer`),
  asked with aiokafka's public `partitions_for`. Faust routes a table request by the partitions of the
  table's changelog in that producer's metadata, which it has only once it wrote to that topic: before
  that the route raised TypeError (a 500 for every request until a snapshot was written).

- `deliver_eagerly`: replaces `wait_first` on Faust's running `Consumer` (an instance attribute over mode's
  `Service.wait_first`), which its private `_drain_messages` calls once per fetched message as
  `wait_first(callback(message), suspend_flow.wait())`: four tasks made and three cancelled per message
  (~65-90 µs, ~8 % of the worker's main thread at 100-reading records). The replacement runs the
  callback's first step at once; the usual callback (a message put on a stream's queue) finishes there
  and its result is returned as mode's would, with no task made. A callback that suspends (a full
  queue, flow control) goes on as a task from where it stopped, under mode's own `wait_first`, so a
  flow suspension still interrupts it as before. The first step runs in the consumer's task rather than
  a task of its own (Faust's delivery sets no context variable there).

Faust faults worked around with its public API only (no reach-in, but re-check them with a new Faust):
records a partition's stream drops without a trace (processors/offsets.py, re-read through
`seek_on_consumer_thread`), and table recovery that hangs after a rebalance (the recovery watchdog in
processors/timers.py, driven by the `on_partitions_revoked` / `on_rebalance_complete` signals).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from types import SimpleNamespace
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT
from mode.services import WaitResults

log = logging.getLogger(__name__)

# The versions this module was checked against; the test holds them equal to pyproject.toml's pins.
CHECKED_AGAINST = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


def set_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> bool:
    """Set the running consumer's fetch wait (Faust fixes 1500 ms). Returns False (and the worker carries
    on, only slower to react) if this Faust/aiokafka has no such attribute."""
    consumer = getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    fetcher = getattr(consumer, "_fetcher", None)
    if consumer is None or not hasattr(consumer, "_fetch_max_wait_ms"):
        log.warning(
            "cannot set the consumer's fetch wait on this Faust/aiokafka: readings may wait up to 1.5 s"
        )
        return False
    consumer._fetch_max_wait_ms = fetch_max_wait_ms  # for a fetcher made later
    if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
        fetcher._fetch_max_wait_ms = fetch_max_wait_ms
    return True


def deliver_eagerly(app: faust.App) -> bool:
    """Hand fetched messages to the streams without mode's four tasks per message (see the module's
    docstring). Idempotent; returns False (the worker carries on, slower) if this Faust's consumer has
    no `wait_first` to replace."""
    consumer: Any = app.consumer
    wait_first = getattr(type(consumer), "wait_first", None)
    if wait_first is None or not inspect.iscoroutinefunction(wait_first):
        log.warning("cannot hand messages to the streams eagerly on this Faust: each costs four tasks")
        return False
    if "wait_first" not in vars(consumer):
        consumer.wait_first = _eager_wait_first(consumer, wait_first)
    return True


def _eager_wait_first(service: Any, wait_first: Any) -> Any:
    """`service.wait_first` that first runs a coroutine given first one step itself (no task)."""

    async def eager(*coros: Any, timeout: Any = None) -> Any:
        first = coros[0] if coros else None
        if timeout is None and inspect.iscoroutine(first) and not service.should_stop:
            try:
                yielded = first.send(None)
            except BaseException as exc:  # finished (or failed) in one step, as the usual delivery does
                for other in coros[1:]:
                    if inspect.iscoroutine(other):
                        other.close()  # never started: nothing to cancel
                if isinstance(exc, StopIteration):
                    return WaitResults([first], [exc.value], False)
                raise
            coros = (_Resumed(first, yielded), *coros[1:])
        return await wait_first(service, *coros, timeout=timeout)

    return eager


class _Resumed:
    """A coroutine that already ran a step and yielded `yielded` (a future it waits for), continued as
    an awaitable from exactly there: what a task would have done with it after that first step."""

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self.coro, self.yielded = coro, yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task (a cancellation): into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value


def take_unacked(stream: faust.StreamT, max_records: int, within_s: float) -> AsyncIterator[Sequence[Any]]:
    """The stream's events (not values) in bunches of up to `max_records`, waiting at most `within_s` for
    more; never acked by Faust (the caller acks each event)."""
    return cast("faust.Stream[Any]", stream).noack_take(max_records, within=within_s)


async def seek_on_consumer_thread(app: faust.App, topic: str, partition: int, offset: int) -> None:
    """Move the partition's read position to `offset`, on the thread that owns the aiokafka consumer."""
    await app.consumer.seek_wait({TP(topic, partition): offset})


def committed_offset(app: faust.App, topic: str, partition: int) -> int | None:
    """The offset the consumer was sought to when the partition was assigned (the group's committed
    offset: the first record not yet processed), or None if the group has none (Faust keeps 0 as None)."""
    consumer: Any = app.consumer
    offset = consumer._committed_offset.get(TP(topic, partition))
    return offset if isinstance(offset, int) else None


async def send_changelog_now(table: Any, partition: int, key: bytes, value: bytes) -> Awaitable[Any]:
    """Send a table's changelog record straight to the producer (`Topic.send`), not through Faust's
    send-soon buffer (`Table.send_changelog`); the returned future resolves once Kafka has it. The
    table's private `_on_changelog_sent` callback keeps, as after a buffered send, the offset its
    recovery starts from."""
    return await table.changelog_topic.send(
        key=key,
        value=value,
        partition=partition,
        key_serializer=table.key_serializer,
        value_serializer=table.value_serializer,
        callback=table._on_changelog_sent,
        force=True,  # never attached to a current event: sent now
    )


def store_locally(table: Any, partition: int, items: Iterable[tuple[bytes, bytes]]) -> None:
    """Write `(key, value)` pairs to the table's local store in `partition` only (no changelog send)."""
    with as_current_event(_AtPartition(partition)):  # the store reads only .message.partition
        for key, value in items:
            table.data[key] = value


@contextlib.contextmanager
def as_current_event(event: Any) -> Iterator[None]:
    """Faust's "current event" set to `event` for the block: a table write reads the partition of its
    store and changelog from it, and outside a stream's own iteration (events taken in bunches) there is
    none."""
    token = _current_event.set(weakref.ref(cast(EventT, event)))
    try:
        yield
    finally:
        _current_event.reset(token)


class _AtPartition:
    """All of an event that Faust's store reads when writing: the partition."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def make_producer_idempotent(app: faust.App) -> None:
    """Make the worker's producer idempotent with acks=all, like the bridge's and alerting's. Call before
    the producer exists."""

    class IdempotentProducer(faust_aiokafka.Producer):
        def _settings_extra(self) -> Mapping[str, Any]:
            return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    app.transport.Producer = IdempotentProducer  # type: ignore[misc]  # a ClassVar, set on this instance


async def producer_knows_partitions(app: faust.App, topic: str, timeout_s: float) -> bool:
    """Does the producer know `topic`'s partitions? Asks the broker if not (for at most `timeout_s`)."""
    ensure = getattr(app.producer, "_ensure_producer", None)
    if ensure is None:  # another Faust driver: let its router decide
        return True
    try:
        return bool(await asyncio.wait_for(ensure().partitions_for(topic), timeout_s))
    except Exception as exc:  # not known yet (or the broker is away): the caller answers 503
        log.info("partitions of %s not known yet: %r", topic, exc)
        return False
