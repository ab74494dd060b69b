"""The Faust agents: telemetry batches and gateway records in -> engine -> transitions out; region roll-up.

A Faust event is a whole columnar batch (raw bytes, decoded with numpy views), never a reading: Faust's
per-event cost is ~100 µs here, so per-reading events would cap a worker near 10k readings/s.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import faust
from faust.types import TP

from processors.app import WorkerContext
from processors.offsets import OffsetOrder, Order
from processors.state.table import SnapshotTable
from processors.steps import Record, Steps
from riskwatch import regions
from riskwatch.wire.deadletter import DeadLetter
from riskwatch.wire.minutes import SiteMinute
from riskwatch.wire.transitions import Transition, TransitionDecodeError

log = logging.getLogger(__name__)


class Tables(NamedTuple):
    snapshots: SnapshotTable
    regions: Any  # faust Table region -> RegionState bytes
    emitter: Emitter
    order: OffsetOrder
    reread: Callable[[str, int, int, str], Awaitable[None]]  # (topic, partition, offset, why): seek back


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
        await self._send(self.warnings, t.key, t.to_bytes())
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


def tune_fetcher(app: faust.App, fetch_max_wait_ms: int) -> bool:
    """Set the consumer's fetch wait, which Faust 0.15.3 fixes at 1500 ms when it builds the aiokafka
    consumer. With it, readings waited up to 1.5 s in Kafka behind a fetch of quiet partitions (reading
    -> warning p50 ~1 s at 200k readings/s). aiokafka reads the value each time it builds a fetch, so
    setting it on the running consumer takes effect at the next fetch. Returns False (and the worker
    carries on, only slower to react) if this Faust/aiokafka has no such attribute."""
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


def install(app: faust.App, ctx: WorkerContext) -> Tables:
    """Register the agents on `app`; returns the tables the timers and views use."""
    s = ctx.settings
    names = s.topics
    n = s.partitions
    telemetry = app.topic(names.telemetry, key_type=bytes, value_type=bytes, partitions=n)
    gateway = app.topic(names.gateway, key_type=bytes, value_type=bytes, partitions=n)
    by_region = app.topic(
        f"{s.group}-sites-by-region", key_type=bytes, value_type=bytes, partitions=n, internal=True
    )
    emit = Emitter(app, ctx, by_region)
    snapshots = SnapshotTable(app, "site-state", n, ctx.states, emit.take_in_flight)
    ctx.load_snapshot = snapshots.load
    region_table = app.Table("region-state", partitions=n, key_type=bytes, value_type=bytes)
    m = ctx.metrics
    order = OffsetOrder(ctx.processed)
    steps = Steps(ctx)

    def fatal(fun: Callable[[faust.StreamT], Awaitable[None]]) -> Callable[[faust.StreamT], Awaitable[None]]:
        """An agent that raises is restarted in place by Faust, into the record it failed on: report it to
        the health check, which exits the worker for its supervisor (processors/health.py)."""

        @functools.wraps(fun)
        async def agent(stream: faust.StreamT) -> None:
            try:
                await fun(stream)
            except Exception as exc:
                if not app.should_stop:  # an error while the worker shuts down is not a crash
                    ctx.health.failed(f"agent {fun.__name__} crashed: {exc!r}")
                raise

        return agent

    @app.agent(telemetry, name="telemetry")
    @fatal
    async def on_telemetry(stream: faust.StreamT) -> None:
        acks = stream.noack()  # type: ignore[attr-defined]  # Faust's Stream has it; StreamT does not say so
        async for event in acks.events():
            if not await _in_order(event, names.telemetry):
                continue
            async with snapshots.lock:
                await _handle(event, names.telemetry, steps.telemetry)
                snapshots.hold(acks, event)

    async def _handle(event: Any, topic: str, step: Callable[[Record], Any]) -> None:
        """One record, one guarded step (processors/steps.py); then send, and mark it processed: a record
        that could not be used is dead-lettered and acked like any other, never retried forever."""
        msg = event.message
        stamp = msg.timestamp if msg.timestamp else None
        outcome = step(Record(topic, msg.partition, msg.offset, event.value, stamp, event.key))
        if outcome.dead:
            await emit.dead(outcome.dead)
        await emit.transitions(outcome.transitions)
        order.done(topic, msg.partition, msg.offset)

    async def _in_order(event: Any, topic: str) -> bool:
        """Whether to process `event`: owned, and next in its partition (else seek back to the hole)."""
        p, offset = event.message.partition, event.message.offset
        if p not in ctx.owned:  # buffered before a revocation: the new owner has it
            return False
        verdict, expected = order.check(topic, p, offset)
        if verdict is Order.SEEK:
            await reread(topic, p, expected, f"offsets {expected}..{offset - 1} never reached the agent")
        return verdict is Order.PROCESS

    async def reread(topic: str, partition: int, offset: int, why: str) -> None:
        log.warning("%s partition %d: %s; re-reading from %d", topic, partition, why, offset)
        m.rereads.labels(topic).inc()
        try:
            await app.consumer.seek(TP(topic, partition), offset)
        except Exception as exc:  # the partition moved meanwhile; a seek that did not take is repeated
            log.warning("%s partition %d: seek to %d failed: %r", topic, partition, offset, exc)

    @app.agent(gateway, name="gateway")
    @fatal
    async def on_gateway(stream: faust.StreamT) -> None:
        acks = stream.noack()  # type: ignore[attr-defined]  # Faust's Stream has it; StreamT does not say so
        async for event in acks.events():
            if not await _in_order(event, names.gateway):
                continue
            async with snapshots.lock:
                await _handle(event, names.gateway, steps.gateway)
                snapshots.hold(acks, event)

    @app.agent(by_region, name="regions")
    @fatal
    async def on_site_warning(stream: faust.StreamT) -> None:
        # Low rate (site colour changes only): the region state is written per event, acked by Faust.
        async for raw in stream:
            try:
                site_t = Transition.from_bytes(raw)
                if site_t.entity_type != "site" or not site_t.region:
                    raise TransitionDecodeError("not a site transition with a region")
                key = site_t.region.encode()
                stored = region_table.get(key)
                state = regions.RegionState.from_bytes(stored) if stored else regions.RegionState()
                out = regions.roll_up(state, site_t)
            except Exception as exc:  # the internal topic is untrusted input too: skip what we cannot use
                m.evaluation_errors.labels("regions").inc()
                log.error("region stage: unusable site transition skipped: %r", exc)
                continue
            region_table[key] = state.to_bytes()
            if out is not None:
                await emit.region(out)

    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        if ctx.ready:
            ctx.not_ready_since = time.monotonic()
        ctx.ready = False
        m.ready.set(0)
        gone = {tp.partition for tp in revoked if tp.topic == names.telemetry}
        ctx.owned -= gone
        m.partitions_owned.set(len(ctx.owned))
        ctx.caught_up -= gone
        order.forget(gone)
        sites = [site for p in gone for site in ctx.sites_by_partition.get(p, ())]
        snapshots.forget(gone, sites)

    async def on_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        tune_fetcher(app, s.fetch_max_wait_ms)
        ctx.owned = {tp.partition for tp in assigned if tp.topic == names.telemetry}
        m.partitions_owned.set(len(ctx.owned))

    async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
        ctx.ready = True  # Faust sends this once the tables of the new assignment are restored
        ctx.not_ready_since = None
        m.ready.set(1)

    # Faust calls these with the keyword arguments named here; its signal type says (sender, **kwargs).
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    app.on_rebalance_complete.connect(on_rebalance_complete)  # type: ignore[arg-type]
    return Tables(snapshots, region_table, emit, order, reread)
