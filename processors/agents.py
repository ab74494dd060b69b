"""The Faust agents: telemetry batches and gateway records in -> engine -> transitions out; region roll-up.

A Faust event is a whole columnar batch (raw bytes, decoded with numpy views), never a reading: Faust's
per-event cost is ~100 µs here, so per-reading events would cap a worker near 10k readings/s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any, NamedTuple

import faust

from processors import faust_internals
from processors.app import WorkerContext
from processors.offsets import OffsetOrder, Order
from processors.state.table import SnapshotTable
from processors.steps import Decoded, Record, Steps
from riskwatch import regions
from riskwatch.wire.deadletter import DeadLetter, Reason
from riskwatch.wire.minutes import SiteMinute
from riskwatch.wire.transitions import Transition, TransitionDecodeError

log = logging.getLogger(__name__)
SEEK_TIMEOUT_S = 10.0  # a seek back that does not finish in this long is tried again by the order check


class Tables(NamedTuple):
    snapshots: SnapshotTable
    regions: Any  # faust Table region -> RegionState bytes
    emitter: Emitter
    order: OffsetOrder
    reread: Callable[[str, int, int, str], Awaitable[None]]  # (topic, partition, offset, why): seek back
    region_input: str  # the region stage's input topic (site warnings), read in offset order too


class Emitter:
    """Sends transitions, minute aggregates and dead letters, and feeds the region stage."""

    def __init__(self, app: faust.App, ctx: WorkerContext, region_topic: Any) -> None:
        t = ctx.settings.topics
        self.ctx = ctx
        self.alarms = app.topic(t.alarms, key_type=bytes, value_type=bytes)
        self.warnings = app.topic(t.warnings, key_type=bytes, value_type=bytes)
        self.deadletter = app.topic(t.deadletter, key_type=bytes, value_type=bytes)
        self.history = app.topic(t.history, key_type=bytes, value_type=bytes)
        self.region_topic = region_topic
        self.in_flight: list[Awaitable[Any]] = []  # delivery futures of the sends since the last take

    def take_in_flight(self) -> list[Awaitable[Any]]:
        out, self.in_flight = self.in_flight, []
        return out

    async def _send(self, topic: Any, key: bytes, value: bytes) -> None:
        self.in_flight.append(await topic.send(key=key, value=value))

    async def transitions(self, out: list[Transition]) -> None:
        if not out:
            return
        m = self.ctx.metrics
        for t in out:
            try:
                raw, key, region = t.to_bytes(), t.key, t.region.encode()
            except Exception as exc:  # a bug, not a broker failure: retrying would fail the same way
                m.evaluation_errors.labels("emit").inc()
                log.error("transition %s of %r could not be serialised, not sent: %r", t.id, t.entity, exc)
                continue
            await self._send(self.alarms if t.kind == "alarm" else self.warnings, key, raw)
            if t.entity_type == "site":
                await self._send(self.region_topic, region, raw)
            m.transitions.labels(t.kind, t.entity_type).inc()

    async def region(self, t: Transition) -> None:
        """Send a region warning and wait until Kafka has it (a low rate: region colour changes only)."""
        await (await self.warnings.send(key=t.key, value=t.to_bytes()))
        self.ctx.metrics.transitions.labels(t.kind, t.entity_type).inc()

    async def minutes(self, records: list[SiteMinute]) -> None:
        """Closed minutes to the history topic (the historian writes them to InfluxDB)."""
        for r in records:
            await self._send(self.history, r.key, r.to_bytes())
            self.ctx.metrics.history_published.inc(len(r.sensor))

    async def dead(self, letters: list[DeadLetter]) -> None:
        for d in letters:
            await self._send(self.deadletter, d.key, d.to_bytes())
            self.ctx.metrics.deadletters.labels(d.reason).inc()
            log.warning("dead-lettered a record from %s: %s: %s", d.source, d.reason, d.detail[:200])


def install(app: faust.App, ctx: WorkerContext) -> Tables:
    """Register the agents on `app`; returns the tables the timers and views use."""
    return Agents(app, ctx).install()


DECODE_SLICE_RECORDS = 64  # records decoded at a time (then the loop may get a turn: _yield_if_due)
# Longest a take holds the event loop between two yields. Yielding after every site's records instead
# (a take of 1,000 records spans ~500 sites) paid a loop turn, with its select(), per record.
LOOP_SLICE_S = 0.005


async def _yield_if_due(since: float) -> float:
    """Give the event loop a turn if `since` (the last turn) is LOOP_SLICE_S ago; the new `since`."""
    now = time.perf_counter()
    if now - since < LOOP_SLICE_S:
        return since
    await asyncio.sleep(0)
    return time.perf_counter()


class Agents:
    """The worker's three agents and its rebalance handlers, on one Faust app.

    The input agents take records in bunches (`Stream.noack_take`): as many as the stream's buffer holds,
    up to `take_max_records`, waiting at most `take_within_s` for more. Each record is still decoded in
    its own guarded step, but each site's batches of a take are evaluated in one engine call, so the
    fixed cost of a call is paid per site and take, not per record, and a worker that is behind takes
    bigger bunches and catches up faster. The events are acked only once the snapshots covering them are
    stored (processors/state/table.py)."""

    def __init__(self, app: faust.App, ctx: WorkerContext) -> None:
        s = ctx.settings
        self.app, self.ctx, self.names = app, ctx, s.topics
        n = s.partitions
        self.telemetry_topic = app.topic(s.topics.telemetry, key_type=bytes, value_type=bytes, partitions=n)
        self.gateway_topic = app.topic(s.topics.gateway, key_type=bytes, value_type=bytes, partitions=n)
        self.by_region = app.topic(
            f"{s.group}-sites-by-region", key_type=bytes, value_type=bytes, partitions=n, internal=True
        )
        self.emit = Emitter(app, ctx, self.by_region)
        self.snapshots = SnapshotTable(app, "site-state", n, ctx.states, self.emit.take_in_flight)
        ctx.load_snapshot = self.snapshots.load
        self.region_table = app.Table("region-state", partitions=n, key_type=bytes, value_type=bytes)
        self.order = OffsetOrder(
            ctx.processed, committed=functools.partial(faust_internals.committed_offset, app)
        )
        self.steps = Steps(ctx)

    def install(self) -> Tables:
        app = self.app
        app.agent(self.telemetry_topic, name="telemetry")(self._fatal(self.on_telemetry))
        app.agent(self.gateway_topic, name="gateway")(self._fatal(self.on_gateway))
        app.agent(self.by_region, name="regions")(self._fatal(self.on_site_warning))
        # Faust calls these with the keyword arguments named here; its signal type says (sender, **kwargs).
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self.on_assigned)  # type: ignore[arg-type]
        app.on_rebalance_complete.connect(self.on_rebalance_complete)  # type: ignore[arg-type]
        return Tables(
            self.snapshots,
            self.region_table,
            self.emit,
            self.order,
            self.reread,
            self.by_region.get_topic_name(),
        )

    def _fatal(
        self, fun: Callable[[faust.StreamT], Awaitable[None]]
    ) -> Callable[[faust.StreamT], Awaitable[None]]:
        """An agent that raises is restarted in place by Faust, into the record it failed on: report it to
        the health check, which exits the worker for its supervisor (processors/health.py)."""

        @functools.wraps(fun)
        async def agent(stream: faust.StreamT) -> None:
            try:
                await fun(stream)
            except Exception as exc:
                if not self.app.should_stop:  # an error while the worker shuts down is not a crash
                    self.ctx.health.failed(f"agent {fun.__name__} crashed: {exc!r}")
                raise

        return agent

    def _takes(self, stream: faust.StreamT) -> AsyncIterator[Sequence[Any]]:
        """The stream's events in bunches, never acked by Faust (the snapshot flush acks them)."""
        s = self.ctx.settings
        return faust_internals.take_unacked(stream, s.take_max_records, s.take_within_s)

    async def on_telemetry(self, stream: faust.StreamT) -> None:
        async for events in self._takes(stream):
            await self.telemetry(stream, events)

    async def on_gateway(self, stream: faust.StreamT) -> None:
        async for events in self._takes(stream):
            await self.gateway(stream, events)

    async def telemetry(self, stream: Any, events: Sequence[Any]) -> None:
        """One take of `rw.telemetry`: decode each record (in slices, yielding to the event loop between
        them), evaluate each site's records in one call, send, then hold the events for the snapshot."""
        topic = self.names.telemetry
        taken = await self.in_order(events, topic, self.ctx.owned)
        if not taken:
            return
        async with self.snapshots.lock:
            by_site: dict[str, list[Decoded]] = {}
            slice_began = time.perf_counter()
            for first in range(0, len(taken), DECODE_SLICE_RECORDS):
                found, dead = self.steps.decode(
                    _record(e, topic) for e in taken[first : first + DECODE_SLICE_RECORDS]
                )
                for site, group in found.items():
                    by_site.setdefault(site, []).extend(group)
                await self.emit.dead(dead)
                slice_began = await _yield_if_due(slice_began)
            for group in by_site.values():
                outcome = self.steps.evaluate(group)
                await self.emit.dead(outcome.dead)
                await self.emit.transitions(outcome.transitions)
                slice_began = await _yield_if_due(slice_began)
            self._done(stream, taken, topic)

    async def gateway(self, stream: Any, events: Sequence[Any]) -> None:
        """One take of `rw.gateway` (a low rate): each record in its own guarded step, in order."""
        topic = self.names.gateway
        taken = await self.in_order(events, topic, self.ctx.owned)
        if not taken:
            return
        async with self.snapshots.lock:
            for event in taken:
                outcome = self.steps.gateway(_record(event, topic))
                await self.emit.dead(outcome.dead)
                await self.emit.transitions(outcome.transitions)
            self._done(stream, taken, topic)

    def _done(self, stream: Any, events: Sequence[Any], topic: str) -> None:
        """Mark the events processed and hold them for the next snapshot's ack: a record that could not
        be used was dead-lettered and is acked like any other, never retried forever."""
        for event in events:
            self.order.done(topic, event.message.partition, event.message.offset)
            self.snapshots.hold(stream, event)

    async def in_order(self, events: Sequence[Any], topic: str, owned: Collection[int] | None) -> list[Any]:
        """The events to process: of `owned` partitions (None: whatever the consumer hands over), and each
        next in its partition (else seek back to the hole)."""
        taken = []
        for event in events:
            p, offset = event.message.partition, event.message.offset
            if owned is not None and p not in owned:  # buffered before a revocation: the new owner has it
                continue
            verdict, expected = self.order.check(topic, p, offset)
            if verdict is Order.SEEK:
                await self.reread(
                    topic, p, expected, f"offsets {expected}..{offset - 1} never reached the agent"
                )
            if verdict is Order.PROCESS:
                self.order.claim(topic, p, offset)
                taken.append(event)
        return taken

    async def reread(self, topic: str, partition: int, offset: int, why: str) -> None:
        log.warning("%s partition %d: %s; re-reading from %d", topic, partition, why, offset)
        self.ctx.metrics.rereads.labels(topic).inc()
        try:
            # Not Faust's plain `seek`: it seeks from this loop, racing the consumer thread's fetches.
            await asyncio.wait_for(
                faust_internals.seek_on_consumer_thread(self.app, topic, partition, offset), SEEK_TIMEOUT_S
            )
        except Exception as exc:  # the partition moved meanwhile; a seek that did not take is repeated
            log.warning("%s partition %d: seek to %d failed: %r", topic, partition, offset, exc)

    async def on_site_warning(self, stream: faust.StreamT) -> None:
        # Low rate (site colour changes only), but in offset order like the inputs: a site warning Faust
        # dropped would leave its region at a colour none of its sites has. Acked once its state is written.
        topic = self.by_region.get_topic_name()
        async for events in self._takes(stream):
            for event in await self.in_order(events, topic, owned=None):
                await self.region(event, topic)
                self.order.done(topic, event.message.partition, event.message.offset)
                await stream.ack(event)

    async def region(self, event: Any, topic: str) -> None:
        """Fold one site warning into its region's state; send the region's warning if its colour changed.
        What cannot be used is dead-lettered (`malformed_record`) and skipped."""
        try:
            site_t = Transition.from_bytes(event.value)
            if site_t.entity_type != "site" or not site_t.region:
                raise TransitionDecodeError("not a site transition with a region")
            key = site_t.region.encode()
            with faust_internals.as_current_event(event):  # the store of the event's partition
                stored = self.region_table.get(key)
            state = regions.RegionState.from_bytes(stored) if stored else regions.RegionState()
            out = regions.roll_up(state, site_t)
        except Exception as exc:  # the internal topic is untrusted input too: skip what we cannot use
            self.ctx.metrics.evaluation_errors.labels("regions").inc()
            record = _record(event, topic)
            await self.emit.dead([self.steps.failed(record, Reason.MALFORMED_RECORD, "rolling up", exc)])
            return
        if out is not None:
            # Delivered before the state that records it is written: after a crash in between, the
            # site warning is read again and the region's is sent again (same id). Written first, the
            # state could survive a crash its warning did not, and the replay would then send nothing.
            await self.emit.region(out)
        with faust_internals.as_current_event(event):
            self.region_table[key] = state.to_bytes()

    async def on_revoked(self, sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        ctx, m = self.ctx, self.ctx.metrics
        # Faust sends this signal last in its revocation step; the watchdog (timers.py) judges the rest.
        ctx.revocations_done = self.app.rebalancing_count
        if ctx.ready:
            ctx.not_ready_since = time.monotonic()
        ctx.ready = False
        m.ready.set(0)
        gone = {tp.partition for tp in revoked if tp.topic == self.names.telemetry}
        ctx.owned -= gone
        m.partitions_owned.set(len(ctx.owned))
        ctx.caught_up -= gone
        self.order.forget((tp.topic, tp.partition) for tp in revoked)
        sites = [site for p in gone for site in ctx.sites_by_partition.get(p, ())]
        self.snapshots.forget(gone, sites)
        ctx.engine_clock.forget(sites)

    async def on_assigned(self, sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        faust_internals.set_fetch_wait(self.app, self.ctx.settings.fetch_max_wait_ms)
        faust_internals.deliver_eagerly(self.app)
        self.ctx.owned = {tp.partition for tp in assigned if tp.topic == self.names.telemetry}
        self.ctx.metrics.partitions_owned.set(len(self.ctx.owned))

    async def on_rebalance_complete(self, sender: Any, **kwargs: Any) -> None:
        ctx = self.ctx
        ctx.ready = True  # Faust sends this once the tables of the new assignment are restored
        ctx.not_ready_since = None
        ctx.metrics.ready.set(1)


def _record(event: Any, topic: str) -> Record:
    msg = event.message
    return Record(topic, msg.partition, msg.offset, event.value, msg.timestamp or None, event.key)
