"""The composition root: build the collaborators, then a Faust app that is only topics in -> engine -> out.

Everything with behaviour lives elsewhere: decoding in `intake`, state in `state/`, region roll-up in
`regions`, minute aggregates in `history/`, the Faust wiring in `agents`, `timers` and `web`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from prometheus_client import CollectorRegistry

from processors.engine_port import EngineApi
from processors.health import Health
from processors.history.aggregate import MinuteAggregator
from processors.history.publish import MinutePublisher
from processors.intake import DEFAULT_FUTURE_TOLERANCE_S, DEFAULT_MAX_AGE_S, Intake
from processors.metrics import WorkerMetrics
from processors.state.sites import SiteIndex
from processors.state.states import SiteStates
from riskwatch.kafka_access import KafkaAccess
from riskwatch.registry import Registry
from riskwatch.topics import Topics


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What one worker process needs to know; built from the command line."""

    kafka: KafkaAccess  # where Kafka is and the worker's account
    data_dir: Path
    partitions: int  # of rw.telemetry and rw.gateway (co-partitioned, keyed by site)
    topics: Topics = field(default_factory=Topics)
    app_id: str = ""  # Kafka consumer group; default "riskwatch-worker-{prefix}"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    tick_every_s: float = 1.0
    snapshot_every_s: float = 5.0
    commit_every: int = 10_000
    session_timeout_s: float = 30.0  # a SIGKILLed worker's partitions move after this long
    replication_factor: int = 1  # of the changelog topics the worker creates (3 on a 3-broker cluster)
    recovery_timeout_s: float = 180.0  # not ready (tables not restored) this long: exit, to be restarted
    stream_buffer_maxsize: int = 4096
    # An agent takes up to this many records at once (all its buffer holds, when behind) and evaluates
    # each site's batches among them in one engine call; it waits at most `take_within_s` for more.
    take_max_records: int = 1000
    take_within_s: float = 0.01
    fetch_max_bytes: int = 16 << 20  # per partition: whole columnar batches are ~21 bytes a reading
    # How long the broker may hold a fetch that finds no new records. aiokafka keeps one fetch in flight
    # per broker, so a fetch parked on quiet partitions (rw.gateway, the region stage) delays the next
    # fetch of rw.telemetry by up to this long; Faust 0.15.3 hard-codes 1500 ms (see agents.tune_fetcher).
    fetch_max_wait_ms: int = 50
    loglevel: str = "warning"
    # Readings/events stamped beyond the worker's clock + this are taken at that bound (processors/intake.py)
    future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S
    max_age_s: float = DEFAULT_MAX_AGE_S  # older readings are dead-lettered (old_timestamp)

    @property
    def group(self) -> str:
        return self.app_id or f"riskwatch-worker-{self.topics.prefix}"


def partition_of(site: str, partitions: int) -> int:
    """The partition the Kafka default partitioner (murmur2, as the bridge uses) gives a site key."""
    return (murmur2(site.encode()) & 0x7FFFFFFF) % partitions


class WorkerContext:
    """The collaborators the agents, timers and views share."""

    def __init__(
        self,
        settings: WorkerSettings,
        registry: Registry,
        engine: EngineApi,
        metrics: WorkerMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.metrics = metrics
        self.health = Health(
            stale_after_s=max(30.0, 10 * settings.tick_every_s),
            startup_s=settings.recovery_timeout_s or float("inf"),
        )
        self.index = SiteIndex(registry)
        self.intake = Intake(
            self.index,
            clock,
            settings.future_tolerance_s,
            settings.max_age_s,
            on_clamped=lambda kind, n: metrics.clamped.labels(kind).inc(n),
        )
        self.load_snapshot: Callable[[str], bytes | None] = lambda site: None  # bound to the table in agents
        self.aggregator = MinuteAggregator(len(registry.sensor_list))
        self.states = SiteStates(
            self.index,
            engine,
            lambda site: self.load_snapshot(site),
            on_ignored=lambda reason, n: metrics.ignored.labels(reason).inc(n),
            minutes=self.aggregator,  # open minutes travel in the site snapshots
        )
        self.minutes = MinutePublisher.for_registry(registry)  # closed minutes -> rw.history records
        # Partitions of rw.telemetry/rw.gateway this worker owns, and whether their state is recovered:
        # nothing loads a site from the table while Faust is still restoring it after a rebalance.
        self.owned: set[int] = set()
        self.ready = False
        self.not_ready_since: float | None = time.monotonic()  # when the worker last stopped being ready
        self.caught_up: set[int] = set()  # owned partitions read to their end once: timers run on these
        self.processed: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset evaluated
        self.sites_by_partition: dict[int, list[str]] = {p: [] for p in range(settings.partitions)}
        for site in registry.sites:
            self.sites_by_partition[partition_of(site, settings.partitions)].append(site)


def build_app(
    settings: WorkerSettings,
    registry: Registry,
    engine: EngineApi,
    metrics_registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[faust.App, WorkerContext]:
    """The Faust app of one worker and its context (not started)."""
    from processors import agents, timers, web

    ctx = WorkerContext(
        settings,
        registry,
        engine,
        WorkerMetrics(metrics_registry or CollectorRegistry()),
        clock,
    )
    app = faust.App(
        settings.group,
        broker=f"kafka://{settings.kafka.bootstrap}",
        broker_credentials=faust.SASLCredentials(**settings.kafka.sasl()),
        store="rocksdb://",  # faust-streaming uses rocksdict when python-rocksdb is absent
        datadir=str(settings.data_dir),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_replication_factor=settings.replication_factor,
        topic_partitions=settings.partitions,
        table_standby_replicas=0,
        broker_commit_every=settings.commit_every,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 10),
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        web_enabled=settings.web_port > 0,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=max(settings.web_port, 1),
        canonical_url=f"http://{settings.web_host}:{settings.web_port}",
        # Faust's own pages show table data, the cluster's layout and internals to anyone who asks:
        # closed. Routing a request to the key's owner does not need them (it uses the assignment).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        producer_acks=-1,
        # Held (unacked) events wait for the next snapshot; on a rebalance they are simply replayed by
        # the next owner, so do not wait for them to be acked (that would stall the rebalance).
        stream_wait_empty=False,
        consumer_max_fetch_size=settings.fetch_max_bytes,
    )
    idempotent_producer(app)
    tables = agents.install(app, ctx)
    timers.install(app, ctx, tables)
    if settings.web_port > 0:
        web.install(app, ctx, tables)
    return app, ctx


def idempotent_producer(app: faust.App) -> None:
    """Make the worker's producer idempotent, like the bridge's and alerting's: Faust 0.15.3 turns
    idempotence on only inside transactions, and without it a retried send after a broker's failover
    (acks=all) can write a transition, snapshot or history record twice. Set before the producer exists."""
    from faust.transport.drivers import aiokafka as driver

    class IdempotentProducer(driver.Producer):
        def _settings_extra(self) -> Mapping[str, Any]:
            return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    app.transport.Producer = IdempotentProducer  # type: ignore[misc]  # a ClassVar, set on this instance
