"""Wall-clock timers: what happens without input, the periodic snapshot flush, and gauges.

Every `tick_every_s` the tick evaluates each site the worker owns with an empty batch at `now`, so stale
sensors, off-delays and persistence rules ("L2 lasting >= 10 min") fire with no reading arriving; it
also publishes closed history minutes and refreshes the lag, colour and snapshot-age gauges. A loop of
its own writes due snapshots (then acks the events they cover), so a flush waiting on Kafka never holds a
tick back. Both report to the health check.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.types import TP

from processors import faust_internals
from processors.app import WorkerContext

log = logging.getLogger(__name__)


def install(app: faust.App, ctx: WorkerContext, tables: Any) -> None:
    s = ctx.settings
    snapshots = tables.snapshots
    emit = tables.emitter

    def guarded(name: str, body: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """`body` as a timer that reports its beat `name` to the health check, and exits the worker when
        it has failed on every run for TIMER_FAILING_EXIT_S."""
        failing_since: list[float] = []  # when the timer's current run of failures began

        @functools.wraps(body)
        async def run() -> None:
            try:
                await body()
            except Exception as exc:
                if app.should_stop or app.rebalancing or not ctx.ready:  # shutting down, or partitions moved
                    log.warning("timer %s interrupted by a rebalance: %r", name, exc)
                    return
                # A failed snapshot flush is retried by the next run (Kafka briefly gone); a timer that keeps
                # failing does nothing useful: exit for the supervisor instead of idling behind live ports.
                first = failing_since[0] if failing_since else time.monotonic()
                failing_since[:] = [first]
                if time.monotonic() - first >= TIMER_FAILING_EXIT_S:
                    ctx.health.failed(
                        f"the {name} timer has failed for {TIMER_FAILING_EXIT_S:.0f} s: {exc!r}"
                    )
                log.exception("timer %s failed; retrying at its next run", name)
                return
            failing_since.clear()
            ctx.health.beat(name)

        return run

    async def tick() -> None:
        if not ctx.ready or app.rebalancing or app.in_recovery:  # state being restored; next tick catches up
            return
        now = ctx.clock()
        partitions = set(ctx.owned)
        ctx.metrics.sites_owned.set(sum(len(ctx.sites_by_partition[p]) for p in partitions))
        for p in partitions - ctx.caught_up:
            if await _caught_up(app, ctx, p):
                ctx.caught_up.add(p)
        sites = [site for p in sorted(partitions & ctx.caught_up) for site in ctx.sites_by_partition[p]]
        errors = ctx.states.tick_errors
        engine_now = ctx.engine_clock()  # the wall clock, held back while readings arrive late
        # In slices, yielding in between: thousands of sites at ~0.1-0.3 ms each would otherwise hold the
        # event loop (records, heartbeats, web requests) for the whole pass. Each slice under the snapshot
        # lock, its transitions sent within it: a flush then covers a site's change only with its
        # transitions delivered first, as for records.
        for first in range(0, len(sites), TICK_SLICE_SITES):
            async with snapshots.lock:
                await emit.transitions(ctx.states.tick(sites[first : first + TICK_SLICE_SITES], engine_now))
            await asyncio.sleep(0)
        if ctx.states.tick_errors > errors:
            ctx.metrics.evaluation_errors.labels("tick").inc(ctx.states.tick_errors - errors)
        # Not before every owned partition has been read to its end once: after a restart the minutes
        # restored from the snapshots are overdue, and the backlog still holds the rest of their readings.
        # A worker that cannot catch up still closes them, BACKLOG_CLOSE_S late (history, bounded memory).
        late_s = 0.0 if partitions <= ctx.caught_up else BACKLOG_CLOSE_S
        async with snapshots.lock:  # a minute closes either before a site's snapshot takes it or after
            for agg in ctx.aggregator.close_due(now, late_s=late_s):
                await emit.minutes(ctx.minutes.records(agg))
        if ctx.aggregator.repaired:
            ctx.metrics.history_repaired.inc(ctx.aggregator.repaired)
            ctx.aggregator.repaired = 0
        await _reread_stalled(app, ctx, tables, partitions)
        _gauges(app, ctx, snapshots, partitions, now)

    async def flush() -> None:
        """Store the due partitions' snapshots and ack what they cover. A loop of its own: a flush waits
        for Kafka to store its snapshots (seconds on a busy broker), and inside the tick that wait delayed
        every stale, delay and lasting-condition warning behind it (ticks of 4-6 s at 24,000 readings/s)."""
        if not ctx.ready or app.rebalancing or app.in_recovery:
            return
        now = ctx.clock()
        for p in sorted(set(ctx.owned)):
            backlog = _backlog(app, ctx, p)
            since = (now - snapshots.last_flush.get(p, 0.0)) / ctx.speed  # real seconds
            if snapshot_due(since, s.snapshot_every_s, backlog, snapshots.held(p)):
                await snapshots.flush(p, ctx.sites_by_partition[p], now)

    app.timer(interval=s.tick_every_s, name="riskwatch-tick")(guarded("tick", tick))

    @app.task
    async def flush_loop() -> None:
        """The flush every `tick_every_s` after the last one ended: a flush waits seconds for Kafka by
        design, which Faust's timers would log as an overlap every time."""
        run = guarded("flush", flush)
        while True:
            await asyncio.sleep(s.tick_every_s)
            await run()

    @app.task
    async def loop_lag() -> None:
        """Measure how late the loop wakes a task: a take, tick or flush that does not yield in time
        delays every record, heartbeat and request behind it. The part of the lag the loop thread spent
        on a CPU is what its own work explains; the rest is the process waiting for a core."""
        worst = 0.0
        while True:
            due, cpu = time.perf_counter() + LOOP_LAG_EVERY_S, time.thread_time()
            await asyncio.sleep(LOOP_LAG_EVERY_S)
            late = max(0.0, time.perf_counter() - due)
            ctx.metrics.loop_lag.observe(late)
            ctx.metrics.loop_lag_on_cpu.observe(min(late, time.thread_time() - cpu))
            if late > worst:
                worst = late
                ctx.metrics.loop_lag_max.set(worst)

    @app.task
    async def recovery_watchdog() -> None:
        revoking_since: float | None = None
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            # A rebalance starts with Faust's revocation step (stop the streams, flush the producer), and
            # the group's rebalance waits for every member's: one worker stuck there stalls all of them.
            revoking_since = revocation_since(
                revoking_since, app.rebalancing_count, ctx.revocations_done, bool(app.should_stop), now
            )
            if revoking_since is not None and recovery_overdue(revoking_since, now, s.session_timeout_s):
                _exit_stuck(
                    f"stuck {now - revoking_since:.0f} s in a rebalance's revocation step (stopping its "
                    f"streams, flushing its producer; limit: --session-timeout-s {s.session_timeout_s:.0f})"
                )
            if recovery_overdue(ctx.not_ready_since, now, s.recovery_timeout_s):
                # Faust's table recovery can hang (docs/processors.md, "Known limits"); a fresh start
                # recovers. Nothing is lost: events are acked only after their state is stored.
                _exit_stuck(
                    f"tables not restored {now - (ctx.not_ready_since or 0.0):.0f} s after the last "
                    f"rebalance (limit {s.recovery_timeout_s:.0f} s)"
                )

    async def send_open_minutes(*args: Any, **kwargs: Any) -> None:
        """A worker stopped in order publishes its open minutes (what they hold so far): a minute the
        next owner closes later overwrites it with the readings replayed after this worker's snapshot."""
        try:
            for agg in ctx.aggregator.close_due(ctx.clock(), everything=True):
                await emit.minutes(ctx.minutes.records(agg))
        except Exception as exc:  # Kafka gone while stopping: those partial minutes are lost, say so
            log.warning("open minutes not published while stopping: %r", exc)

    app.on_before_shutdown.connect(send_open_minutes)


LOOP_LAG_EVERY_S = 0.05
BACKLOG_CLOSE_S = 600.0  # minutes close this much later than usual while a partition is not caught up
TICK_SLICE_SITES = 64  # sites evaluated by the timer between two yields to the event loop
EXIT_RECOVERY_STUCK = 75  # EX_TEMPFAIL: try again
TIMER_FAILING_EXIT_S = 60.0  # a timer failing on every tick for this long exits the worker (status 70)


# While a partition's backlog is more than BACKLOG_RECORDS records, its snapshots are flushed
# BACKLOG_SNAPSHOT_FACTOR times less often: a worker catching up dirties every site of the partition
# between two flushes, and serialising and sending them all took ~20 % of its main thread at the
# default 5 s. Offsets then lag by at most that factor times --snapshot-every-s, and never by more than
# HELD_FLUSH_EVENTS events or HELD_FLUSH_BYTES of their records (held in memory until acked).
BACKLOG_RECORDS = 1000
BACKLOG_SNAPSHOT_FACTOR = 4.0
HELD_FLUSH_EVENTS = 20_000
HELD_FLUSH_BYTES = 64 << 20


def snapshot_due(since_s: float, every_s: float, backlog: int | None, held: tuple[int, int]) -> bool:
    """Is a partition's snapshot flush due, `since_s` real seconds after its last one, with `backlog`
    records still to read (None: not known yet) and `held` (events, bytes of their records) waiting for
    their ack?

    A longer interval while behind keeps every guarantee: events are still acked only after the snapshots
    covering them are stored, so a crash replays at most BACKLOG_SNAPSHOT_FACTOR x every_s (and at most
    HELD_FLUSH_EVENTS events) more, which de-duplication leaves out. A worker that has caught up flushes
    every `every_s` again, so a live worker's offsets lag as before."""
    events, size = held
    if events >= HELD_FLUSH_EVENTS or size >= HELD_FLUSH_BYTES:
        return True
    behind = backlog is not None and backlog > BACKLOG_RECORDS
    return since_s >= every_s * (BACKLOG_SNAPSHOT_FACTOR if behind else 1.0)


def _backlog(app: faust.App, ctx: WorkerContext, partition: int) -> int | None:
    """Records of the partition's telemetry not yet evaluated (None before its first fetch)."""
    end = _end_offset(app, TP(ctx.settings.topics.telemetry, partition))
    if end is None:
        return None
    done = ctx.processed.get((ctx.settings.topics.telemetry, partition))
    return max(0, end - (done + 1 if done is not None else 0))


def _exit_stuck(why: str) -> None:
    """Exit with EX_TEMPFAIL for the supervisor to restart a worker that cannot finish a rebalance."""
    log.critical("%s: exiting so the supervisor restarts this worker", why)
    logging.shutdown()
    os._exit(EXIT_RECOVERY_STUCK)


def revocation_since(
    since: float | None, started: int, finished: int, stopping: bool, now: float
) -> float | None:
    """When the revocation step under way began (`since`: the last check's answer), None if none is.

    Faust counts rebalances as they start (`rebalancing_count`) and ends each revocation step with the
    `on_partitions_revoked` signal (`finished`); a worker that is stopping skips the rest of a rebalance.
    """
    return (since or now) if started > finished and not stopping else None


def recovery_overdue(not_ready_since: float | None, now: float, timeout_s: float) -> bool:
    """Has the worker been without restored tables for longer than `timeout_s` (0: never judged)?"""
    return timeout_s > 0 and not_ready_since is not None and now - not_ready_since > timeout_s


def _end_offset(app: faust.App, tp: TP) -> int | None:
    """The partition's end offset as last fetched (None before the first fetch)."""
    try:
        return app.consumer.highwater(tp)
    except Exception:  # aiokafka raises until the partition has been fetched once
        return None


async def _reread_stalled(app: faust.App, ctx: WorkerContext, tables: Any, partitions: set[int]) -> None:
    """Seek back where records exist beyond the last processed one and nothing moves (processors/offsets.py)."""
    inputs = [
        TP(topic, p)
        for p in sorted(partitions)
        for topic in (ctx.settings.topics.telemetry, ctx.settings.topics.gateway)
    ]
    inputs += sorted(tp for tp in app.consumer.assignment() if tp.topic == tables.region_input)
    for tp in inputs:
        end = _end_offset(app, tp)
        start = tables.order.stalled(tp.topic, tp.partition, end)
        if start is not None:
            await tables.reread(
                tp.topic, tp.partition, start, f"stalled below the partition's end offset {end}"
            )


async def _caught_up(app: faust.App, ctx: WorkerContext, partition: int) -> bool:
    """Has the worker read partition `partition` of both input topics up to their end?

    Timers start on a partition only then: a tick before the backlog is read would turn a restored site's
    sensors stale (last reading + timeout) only for the backlog's readings to bring them back.
    """
    for topic in (ctx.settings.topics.telemetry, ctx.settings.topics.gateway):
        tp = TP(topic, partition)
        high = _end_offset(app, tp)
        if high is None:
            return False
        done = ctx.processed.get((topic, partition))
        start = faust_internals.committed_offset(app, topic, partition)
        position = await app.consumer.position(tp) if done is None and start is None else None
        if not read_to_end(high, done, start, position):
            return False
    return True


def read_to_end(high: int, done: int | None, start: int | None, position: int | None) -> bool:
    """Has the worker evaluated a partition's records up to its end offset `high`?

    `done`: the last offset evaluated since the assignment; `start`: where the assignment started (the
    group's committed offset); `position`: the consumer's fetch position, asked only when neither is known.
    The fetch position passes records as soon as they are fetched into the stream's buffer, before the
    agent evaluates them: trusted after a restart, it let the tick close the restored minutes while their
    backlog was still buffered, and the backlog's readings then made a second, partial minute that
    overwrote the whole one in history."""
    if done is not None:
        return done + 1 >= high
    at = start if start is not None else position
    return at is not None and at >= high


def _gauges(app: faust.App, ctx: WorkerContext, snapshots: Any, partitions: set[int], now: float) -> None:
    m = ctx.metrics
    m.input_lag.set(ctx.engine_clock.input_lag / ctx.speed)  # real s
    m.engine_clock_behind.set(ctx.engine_clock.behind / ctx.speed)
    m.snapshot_age.set(
        max((snapshots.pending_since(p, now) for p in partitions), default=0.0) / ctx.speed
    )  # real s
    for tp in app.consumer.assignment():
        processed = ctx.processed.get((tp.topic, tp.partition))
        high = _end_offset(app, tp)
        if high is not None and tp.topic in (ctx.settings.topics.telemetry, ctx.settings.topics.gateway):
            m.lag.labels(tp.topic, str(tp.partition)).set(
                max(0, high - (processed + 1 if processed is not None else 0))
            )
    counts: Counter[tuple[str, str]] = Counter()
    offline = total = 0
    for slot in ctx.states.slots.values():
        for etype, _ in slot.open:
            counts[(etype, slot.open[(etype, _)].new)] += 1
        off, n = ctx.states.engine.gateways(slot.state)
        offline, total = offline + off, total + n
    m.gateways.labels("offline").set(offline)
    m.gateways.labels("online").set(total - offline)
    m.entities.clear()
    for (etype, level), n in counts.items():
        m.entities.labels(etype, level).set(n)
