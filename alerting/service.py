"""Composition root: Kafka in (rw.warnings, rw.alarms) -> lifecycle -> dispatch -> channels, audit out
(rw.alerts), HTTP API. Offsets are committed only after the store has committed the change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from alerting.api.app import build_app, serve
from alerting.api.auth import TokenAuth
from alerting.api.feed import EventHub
from alerting.channels import build_channel
from alerting.config import RoutingConfig, Secrets
from alerting.dispatch.dispatcher import Dispatcher
from alerting.dispatch.outbox import Deliverer
from alerting.lifecycle.manager import AlertManager
from alerting.metrics import AlertingMetrics
from alerting.routing.sites import SiteDirectory, SiteLookup, UnitLookup
from alerting.store import Store
from riskwatch.errors import RiskwatchError
from riskwatch.topics import Topics
from riskwatch.wire.transitions import Transition, TransitionDecodeError

log = logging.getLogger("riskwatch.alerting")


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    kafka: str
    db: Path
    topic_prefix: str = "rw"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    group_id: str = "riskwatch-alerting"
    tick_s: float = 1.0  # how often timers, grouping and retries are looked at
    seen_retention_s: float = 30 * 86400.0  # transition ids kept for de-duplication (>> Kafka retention)


class AlertingService:
    def __init__(
        self,
        options: ServiceOptions,
        cfg: RoutingConfig,
        secrets: Secrets,
        sites: SiteLookup | None = None,
        units: UnitLookup | None = None,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.options, self.cfg, self.secrets, self.clock = options, cfg, secrets, clock
        self.metrics = AlertingMetrics(registry if registry is not None else CollectorRegistry())
        self.topics = Topics(options.topic_prefix)
        self.directory = SiteDirectory(cfg.sites, sites, units)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then finish the current step and shut down cleanly."""
        store = Store(self.options.db)
        hub, wake, audit_wake = EventHub(), asyncio.Event(), asyncio.Event()

        def changed() -> None:
            hub.notify()
            wake.set()
            audit_wake.set()

        manager = AlertManager(store, self.cfg, self.directory, self.clock, changed)
        dispatcher = Dispatcher(store, self.cfg, self.directory, self.clock())
        channels = {
            name: build_channel(
                name, settings, self.secrets.get(f"channels.{name}"), self.secrets.get(f"channels.{name}.url")
            )
            for name, settings in self.cfg.channels.items()
        }
        deliverer = Deliverer(store, channels, self.cfg.defaults, self.metrics)  # type: ignore[arg-type]
        app = build_app(manager, TokenAuth.from_config(self.cfg, self.secrets), hub, self.metrics)
        try:
            runner = await serve(app, self.options.http_host, self.options.http_port)
        except OSError as exc:
            store.close()
            where = f"{self.options.http_host}:{self.options.http_port}"
            raise RiskwatchError(f"cannot listen on {where}: {exc.strerror}; choose --http-port") from None
        log.info("alerting API on http://%s:%d", self.options.http_host, self.options.http_port)
        tasks = [
            asyncio.create_task(self._consume(manager, store, wake, stop), name="consume"),
            asyncio.create_task(self._notify(manager, dispatcher, deliverer, wake), name="notify"),
            asyncio.create_task(self._publish(store, audit_wake), name="publish"),
        ]
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in [*tasks, stopper]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.cleanup()
        for channel in channels.values():
            await channel.close()  # type: ignore[attr-defined]
        store.close()
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _consume(
        self, manager: AlertManager, store: Store, wake: asyncio.Event, stop: asyncio.Event
    ) -> None:
        consumer = AIOKafkaConsumer(
            self.topics.warnings, self.topics.alarms, bootstrap_servers=self.options.kafka,
            group_id=self.options.group_id, enable_auto_commit=False, auto_offset_reset="earliest",
        )  # fmt: skip
        await _start(consumer, "consumer")
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                with store.transaction():  # one commit (fsync) per batch, each record a savepoint
                    for records in batches.values():
                        for record in records:
                            self._ingest(manager, store, record.topic, record.value)
                if batches:
                    wake.set()
                    try:
                        # The store committed every change above (fsync): only now may Kafka forget them.
                        await consumer.commit()
                    except KafkaError as exc:
                        # Not committed means replayed later; the store de-duplicates by transition id.
                        log.warning("offset commit failed, records will be replayed: %r", exc)
                        await asyncio.sleep(1.0)
        finally:
            await consumer.stop()

    def _ingest(self, manager: AlertManager, store: Store, topic: str, raw: bytes | None) -> None:
        try:
            applied = manager.handle(Transition.from_bytes(raw or b""))
            self.metrics.transitions.labels("applied" if applied else "duplicate").inc()
        except (TransitionDecodeError, ValueError, TypeError) as exc:
            self.metrics.transitions.labels("rejected").inc()
            log.warning("rejected a record on %s: %s", topic, exc)
            with store.transaction():
                store.reject(topic, str(exc), raw or b"", self.clock())

    async def _notify(
        self, manager: AlertManager, dispatcher: Dispatcher, deliverer: Deliverer, wake: asyncio.Event
    ) -> None:
        pruned_at = 0.0
        while True:
            if self.clock() - pruned_at > 3600:
                pruned_at = self.clock()
                with manager.store.transaction():
                    manager.store.prune_seen(pruned_at - self.options.seen_retention_s)
            wake.clear()
            manager.tick()
            dispatcher.step(self.clock())
            await deliverer.step(self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.options.tick_s)

    async def _publish(self, store: Store, audit_wake: asyncio.Event) -> None:
        """Audit events go to rw.alerts from the store (an outbox too): none lost if Kafka is away."""
        producer = AIOKafkaProducer(bootstrap_servers=self.options.kafka, acks="all", enable_idempotence=True)
        await _start(producer, "producer")
        try:
            while True:
                audit_wake.clear()
                events = store.unpublished_events()
                if events:
                    try:
                        futures = [
                            await producer.send(self.topics.alerts, e.to_bytes(), key=e.alert_id.encode())
                            for e in events
                        ]
                        await asyncio.gather(*futures)
                    except KafkaError as exc:
                        log.warning("audit publish to %s failed, will retry: %r", self.topics.alerts, exc)
                        await asyncio.sleep(1.0)
                        continue
                    with store.transaction():
                        store.mark_published(e.seq for e in events)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(audit_wake.wait(), self.options.tick_s)
        finally:
            await producer.stop()


async def _start(client: AIOKafkaConsumer | AIOKafkaProducer, what: str) -> None:
    """Keep trying: alerting must come up even if Kafka is still starting."""
    while True:
        try:
            await client.start()
            return
        except KafkaError as exc:
            log.warning("Kafka %s cannot start yet (%r); retrying in 2 s", what, exc)
            await asyncio.sleep(2.0)
