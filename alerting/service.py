"""Composition root: Kafka in (rw.warnings, rw.alarms) -> lifecycle -> dispatch -> channels, audit out
(rw.alerts), HTTP API. Offsets are committed only after the store has committed the change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from prometheus_client import CollectorRegistry
from pydantic import Field, model_validator

from alerting.api.app import build_app, metrics_app, serve
from alerting.api.auth import Sessions, TokenAuth
from alerting.api.feed import EventHub
from alerting.board.geometry import load_map, shipped_map
from alerting.board.web import HISTORY_S, Board
from alerting.channels import build_channel
from alerting.config import RoutingConfig, Secrets
from alerting.deadletters import DeadLetters, store_failed
from alerting.dispatch.dispatcher import Dispatcher
from alerting.dispatch.outbox import Deliverer
from alerting.health import Health, TaskDied, supervise
from alerting.history.sources import INFLUX_TOKEN_ENV
from alerting.inputs import RecordRejected, decode_transition
from alerting.lifecycle.manager import AlertManager
from alerting.metrics import AlertingMetrics
from alerting.routing.sites import SiteDirectory, SiteLookup, UnitLookup
from alerting.store import Store
from alerting.store.sqlite import REFUSED
from riskwatch.clock import ClockOption, SimulatedClock, clock_option
from riskwatch.errors import RiskwatchError
from riskwatch.kafka_access import KafkaOption, kafka_option_help, start_when_reachable
from riskwatch.options import Options, Port, option
from riskwatch.paths import home_dir
from riskwatch.tls import ServerTLS
from riskwatch.topics import Topics
from riskwatch.wire.deadletter import Reason

log = logging.getLogger("riskwatch.alerting")


class ServiceOptions(Options):
    """alerting's options, declared once: `riskwatch alerting --help` (which adds the routing file and the
    registry, alerting/cli.py), the RISKWATCH_ALERTING_* variables and the table in docs/alerting.md come
    from these fields. `login_links` and `influx_token` come only from the environment (secrets)."""

    ENV_PREFIX: ClassVar[str] = "RISKWATCH_ALERTING"
    KAFKA_ACCOUNT: ClassVar[str] = "alerting"

    kafka: KafkaOption = option(help=kafka_option_help("alerting"), metavar="HOST:PORT")
    db: Path = option(
        default_factory=lambda: home_dir() / "alerting.db", help="SQLite store",
        shown_default=".riskwatch/alerting.db",
    )  # fmt: skip
    topic_prefix: str = option("rw", "reads {prefix}.warnings, .alarms; writes {prefix}.alerts")
    host: str = option("127.0.0.1", "address of the API and board", old=["--http-host"])
    port: Port = option(8080, "port of the API and board (and /healthz)", old=["--http-port"])
    tls_certfile: Path | None = option(
        None, "serve the API and board over HTTPS with this certificate chain (leaf first), with --tls-keyfile",
        metavar="PEM",
    )  # fmt: skip
    tls_keyfile: Path | None = option(None, "private key of --tls-certfile", metavar="PEM")
    metrics_host: str = option("127.0.0.1", "address of --metrics-port")
    metrics_port: Port = option(
        0, "serve /metrics only on this port (plain HTTP, on --metrics-host), not on the API port; "
        "0: /metrics on the API port",
    )  # fmt: skip
    group: str = option(
        "riskwatch-alerting",
        "Kafka consumer group; the alerting account may use only groups starting riskwatch-alerting",
        old=["--group-id"],
    )
    tick_s: float = option(1.0, "seconds between timer, grouping and retry checks", old=["--tick"], gt=0)
    # >> Kafka retention: a redelivered transition is still recognised.
    seen_retention_s: float = option(
        30 * 86400.0, "how long transition ids are kept for de-duplication", gt=0
    )
    board: bool = option(
        True, "serve the monitoring-centre board (pages, sessions, live feed) on the API port"
    )
    map_file: Path | None = option(
        None, "the board's region geometry (GeoJSON, features naming registry regions)", old=["--map"],
        shown_default="the shipped example regions",
    )  # fmt: skip
    influx_url: str = option(
        "", f"InfluxDB with the history, for /api/history (token from ${INFLUX_TOKEN_ENV})"
    )
    influx_bucket: str = option("riskwatch/autogen", "db/retention of the history")
    clock: ClockOption = clock_option()
    login_links: tuple[tuple[str, str], ...] = ()  # (user, secret) one-time login links to accept
    influx_token: str = Field("", repr=False)  # "user:password", from the environment only

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceOptions:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("--tls-certfile and --tls-keyfile go together: give both or neither")
        return self

    @property
    def tls(self) -> ServerTLS | None:
        """HTTPS on the API and board port when a certificate is given."""
        if self.tls_certfile is None or self.tls_keyfile is None:
            return None
        return ServerTLS(self.tls_certfile, self.tls_keyfile)


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
        site_registry: object | None = None,
    ) -> None:
        self.options, self.cfg, self.secrets, self.clock = options, cfg, secrets, clock
        # board sessions are a transport matter: they expire in real time even on a simulated clock
        self.session_clock = time.time if isinstance(clock, SimulatedClock) else clock
        self.site_registry = site_registry  # the full registry, for the board's sites, units and gateways
        self.metrics = AlertingMetrics(registry if registry is not None else CollectorRegistry())
        self.topics = Topics(options.topic_prefix)
        self.directory = SiteDirectory(cfg.sites, sites, units)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then finish the current step and shut down cleanly. If one of the
        service's tasks dies, everything stops and TaskDied is raised: the process exits non-zero."""
        store = Store(self.options.db)
        hub, wake, audit_wake = EventHub(), asyncio.Event(), asyncio.Event()

        def changed() -> None:
            hub.notify()
            wake.set()
            audit_wake.set()

        dead = DeadLetters(store, self.metrics)
        manager = AlertManager(store, self.cfg, self.directory, self.clock, changed, dead)
        dispatcher = Dispatcher(store, self.cfg, self.directory, self.clock(), dead)
        channels = {
            name: build_channel(
                name, settings, self.secrets.get(f"channels.{name}"), self.secrets.get(f"channels.{name}.url")
            )
            for name, settings in self.cfg.channels.items()
        }
        deliverer = Deliverer(store, channels, self.cfg.defaults, self.metrics, dead)  # type: ignore[arg-type]
        health = Health()
        auth = TokenAuth.from_config(self.cfg, self.secrets)
        board = self._board(store, hub) if self.options.board else None
        history = None
        if self.options.influx_url:
            from alerting.history.influx import InfluxConnection, InfluxHistory

            conn = InfluxConnection(
                self.options.influx_url, self.options.influx_token, self.options.influx_bucket
            )
            history = InfluxHistory(conn)
        apart = self.options.metrics_port != 0
        metrics = None if apart else self.metrics
        app = build_app(manager, auth, hub, metrics, health, board, history, self.site_registry)
        sessions = Sessions(store, auth, self.session_clock)
        for user, secret in self.options.login_links:
            sessions.add_login_link(user, secret)
        o = self.options
        runners = []
        try:
            runners.append(await serve(app, o.host, o.port, o.tls.context() if o.tls else None))
            if apart:
                runners.append(
                    await serve(metrics_app(manager, self.metrics), o.metrics_host, o.metrics_port)
                )
        except OSError as exc:
            for runner in runners:
                await runner.cleanup()
            store.close()
            where, option = (
                (f"{o.metrics_host}:{o.metrics_port}", "--metrics-port")
                if runners
                else (f"{o.host}:{o.port}", "--port")
            )
            raise RiskwatchError(f"cannot listen on {where}: {exc.strerror}; choose {option}") from None
        log.info("alerting API on %s://%s:%d", "https" if o.tls else "http", o.host, o.port)
        if apart:
            log.info("alerting metrics (/metrics) on http://%s:%d", o.metrics_host, o.metrics_port)
        tasks: list[asyncio.Task[object]] = [
            asyncio.create_task(self._consume(manager, dead, wake, audit_wake), name="consume"),
            asyncio.create_task(self._notify(manager, dispatcher, deliverer, wake), name="notify"),
            asyncio.create_task(self._publish(store, dead, audit_wake), name="publish"),
        ]
        try:
            await supervise(tasks, stop, health)
        except TaskDied as exc:
            log.error("%s; stopping", exc, exc_info=exc.__cause__)
            raise
        finally:
            for runner in runners:
                await runner.cleanup()
            for channel in channels.values():
                await channel.close()  # type: ignore[attr-defined]
            store.close()

    def _board(self, store: Store, hub: EventHub) -> Board:
        if self.options.map_file is not None:
            geometry = load_map(self.options.map_file)
        else:
            regions = set(self.site_registry.regions) if self.site_registry is not None else None  # type: ignore[attr-defined]
            try:
                geometry = shipped_map(regions)
            except RiskwatchError as exc:
                log.warning("board map: %s; the map shows sites only", exc)
                geometry = None
        return Board(store, hub, self.site_registry, geometry, self.clock)

    async def _consume(
        self, manager: AlertManager, dead: DeadLetters, wake: asyncio.Event, audit_wake: asyncio.Event
    ) -> None:
        consumer = AIOKafkaConsumer(
            self.topics.warnings, self.topics.alarms, **self.options.kafka.aiokafka(),
            group_id=self.options.group, enable_auto_commit=False, auto_offset_reset="earliest",
        )  # fmt: skip
        await start_when_reachable(consumer, "consumer", KafkaError)
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                if batches:
                    with manager.store.transaction():  # one commit (fsync) per batch, each record a savepoint
                        for records in batches.values():
                            for r in records:
                                self.ingest(manager, dead, r.topic, r.value, r.partition, r.offset)
                    wake.set()
                    audit_wake.set()  # dead letters, if any, are published with the audit trail
                    try:
                        # The store committed every change above (fsync): only now may Kafka forget them.
                        await consumer.commit()
                    except KafkaError as exc:
                        # Not committed means replayed later; the store de-duplicates by transition id.
                        log.warning("offset commit failed, records will be replayed: %r", exc)
                        await asyncio.sleep(1.0)
        finally:
            await consumer.stop()

    def ingest(
        self, manager: AlertManager, dead: DeadLetters, topic: str, raw: bytes | None,
        partition: int | None = None, offset: int | None = None,
    ) -> bool:  # fmt: skip
        """One record, one guarded step: decode and check it, then apply it. A record that cannot be
        used is dead-lettered with its topic, partition and offset and skipped; True if it was applied.
        Only a failing store stops the consumer (nothing to blame on the record: it is replayed later)."""
        kind = "alarm" if topic == self.topics.alarms else "warning"
        try:
            transition = decode_transition(raw, kind)
        except RecordRejected as exc:
            self._rejected(dead, Reason.MALFORMED_RECORD, str(exc), topic, raw, partition, offset, "")
            return False
        try:
            applied = manager.handle(transition)
            if applied:
                with manager.store.transaction():  # the board's current levels and their history
                    manager.store.record_level(transition)
        except Exception as exc:
            if store_failed(exc):
                raise
            detail = f"{type(exc).__name__}: {exc}"
            self._rejected(
                dead, Reason.NOTIFICATION_ERROR, detail, topic, raw, partition, offset, transition.site
            )
            return False
        self.metrics.transitions.labels("applied" if applied else "duplicate").inc()
        return applied

    def _rejected(
        self, dead: DeadLetters, reason: Reason, detail: str, topic: str, raw: bytes | None,
        partition: int | None, offset: int | None, site: str,
    ) -> None:  # fmt: skip
        self.metrics.transitions.labels("rejected").inc()
        dead.record(reason, detail, topic, raw or b"", self.clock(), site, partition, offset)

    async def _notify(
        self, manager: AlertManager, dispatcher: Dispatcher, deliverer: Deliverer, wake: asyncio.Event
    ) -> None:
        pruned_at = 0.0
        while True:
            if self.clock() - pruned_at > 3600:
                pruned_at = self.clock()
                with manager.store.transaction():
                    manager.store.prune_seen(pruned_at - self.options.seen_retention_s)
                    manager.store.prune_level_log(pruned_at - HISTORY_S)
                    manager.store.prune_sessions(self.session_clock())
            wake.clear()
            manager.tick()
            dispatcher.step(self.clock())
            await deliverer.step(self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.options.tick_s)

    async def _publish(self, store: Store, dead: DeadLetters, audit_wake: asyncio.Event) -> None:
        """Audit events go to rw.alerts and dead letters to rw.deadletter from the store (an outbox too):
        none lost if Kafka is away. A record Kafka refuses for good is set aside, not retried forever."""
        producer = AIOKafkaProducer(**self.options.kafka.aiokafka(), acks="all", enable_idempotence=True)
        await start_when_reachable(producer, "producer", KafkaError)
        try:
            while True:
                audit_wake.clear()
                events = store.unpublished_events()
                letters = store.unpublished_deadletters()
                if not events and not letters:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(audit_wake.wait(), self.options.tick_s)
                    continue
                records = [(self.topics.alerts, e.alert_id.encode(), e.to_bytes()) for e in events]
                records += [(self.topics.deadletter, key, doc) for _, key, doc in letters]
                results = await _send_each(producer, records)
                seqs = [e.seq for e in events] + [seq for seq, _, _ in letters]
                retry = self._settle_published(store, dead, len(events), seqs, records, results)
                if retry is not None:
                    log.warning("publishing to Kafka failed, will retry: %r", retry)
                    await asyncio.sleep(1.0)
        finally:
            await producer.stop()

    def _settle_published(
        self, store: Store, dead: DeadLetters, n_events: int, seqs: list[int],
        records: list[tuple[str, bytes, bytes]], results: list[BaseException | None],
    ) -> BaseException | None:  # fmt: skip
        """Mark what Kafka took as published and what it refused for good as refused (an audit event is
        then dead-lettered); returns a retryable error if some records are still to send."""
        retry = None
        with store.transaction():
            for i, (seq, (topic, _, value), result) in enumerate(zip(seqs, records, results, strict=True)):
                is_event = i < n_events
                mark = store.mark_published if is_event else store.mark_deadletters_published
                if result is None:
                    mark([seq])
                elif isinstance(result, _REFUSED):
                    mark([seq], REFUSED)
                    detail = f"{topic} refused record {seq}: {type(result).__name__}: {result}"
                    if is_event:
                        dead.record(Reason.NOTIFICATION_ERROR, detail, topic, value, self.clock())
                    else:
                        log.error("%s; the dead letter stays in the store", detail)
                else:
                    retry = result
        return retry


# Kafka refuses these records for good: retrying one would block every record behind it.
_REFUSED = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, CorruptRecordException)


async def _send_each(
    producer: AIOKafkaProducer, records: list[tuple[str, bytes, bytes]]
) -> list[BaseException | None]:
    """Send every record; per record None (acknowledged) or the Kafka error it got."""
    pending: list[asyncio.Future[object] | BaseException] = []
    for topic, key, value in records:
        try:
            pending.append(await producer.send(topic, value, key=key))
        except KafkaError as exc:
            pending.append(exc)
    results: list[BaseException | None] = []
    for item in pending:
        if isinstance(item, BaseException):
            results.append(item)
            continue
        try:
            await item
            results.append(None)
        except KafkaError as exc:
            results.append(exc)
    return results
