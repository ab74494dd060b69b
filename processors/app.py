"""The composition root: build the collaborators, then a Faust app that is only topics in -> engine -> out.

Everything with behaviour lives elsewhere: decoding in `intake`, state in `state/`, region roll-up in
`regions`, minute aggregates in `history/`, the Faust wiring in `agents`, `timers` and `web`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import faust
from aiokafka.partitioner import murmur2
from prometheus_client import CollectorRegistry
from pydantic import model_validator

from processors import faust_internals
from processors.engine_clock import EngineClock
from processors.engine_port import EngineApi
from processors.health import Health
from processors.history.aggregate import MinuteAggregator
from processors.history.publish import MinutePublisher
from processors.intake import DEFAULT_FUTURE_TOLERANCE_S, DEFAULT_MAX_AGE_S, Intake
from processors.metrics import WorkerMetrics
from processors.state.sites import SiteIndex
from processors.state.states import SiteStates
from riskwatch.clock import ClockOption, clock_option, speed_of
from riskwatch.kafka_access import KafkaOption, kafka_option_help
from riskwatch.options import LogLevel, Options, Port, option
from riskwatch.registry import Registry
from riskwatch.topics import Topics


class WorkerSettings(Options):
    """What one worker process needs to know: its options (`riskwatch worker --help`, the table in
    docs/processors.md and the RISKWATCH_WORKER_* variables all come from these fields) and `partitions`,
    which the command reads from Kafka."""

    ENV_PREFIX: ClassVar[str] = "RISKWATCH_WORKER"
    KAFKA_ACCOUNT: ClassVar[str] = "worker"

    registry: Path = option(help="site registry; every worker of a group must load the same one")
    kafka: KafkaOption = option(help=kafka_option_help("worker"), metavar="HOST:PORT")
    topic_prefix: str = option(
        "rw", "topics {prefix}.telemetry, .gateway, .alarms, .warnings, .deadletter, .history"
    )
    group: str = option("", "consumer group / Faust app id", shown_default="riskwatch-worker-PREFIX")
    data_dir: Path = option(help="this worker's own folder (table stores); never shared between workers")
    host: str = option(
        "127.0.0.1", "address of the HTTP views (and of /metrics unless --metrics-host)", old=["--bind"]
    )
    port: Port = option(6066, "port of the HTTP views and /healthz (0: off)", old=["--web-port"])
    metrics_host: str = option(
        "", "address of /metrics and /healthz, e.g. a monitoring network's", shown_default="--host"
    )
    metrics_port: Port = option(9101, "Prometheus /metrics and /healthz port (0: off)")
    tick_every_s: float = option(
        1.0,
        "seconds between timer evaluations (stale, delays, lasting conditions)",
        old=["--tick-every"],
        gt=0,
    )
    snapshot_every_s: float = option(
        5.0, "seconds between state snapshots per partition, 4x that while it is over 1,000 records behind "
        "(bounds how far offsets lag)",
        old=["--snapshot-every"], gt=0,
    )  # fmt: skip
    commit_every: int = option(10_000, "events between offset commits", gt=0)
    session_timeout_s: float = option(
        30.0, "seconds before a dead worker's partitions move to the others", old=["--session-timeout"], gt=0
    )
    replication_factor: int = option(
        1, "replicas of the topics the worker creates (its tables' changelogs): 3 on a 3-broker cluster", ge=1
    )
    recovery_timeout_s: float = option(
        180.0,
        "seconds without restored tables after a rebalance before the worker exits with status 75 so its "
        "supervisor restarts it (0: never)",
        old=["--recovery-timeout"],
        ge=0,
    )
    stream_buffer_maxsize: int = option(4096, "events buffered per partition ahead of the agents", gt=0)
    # When behind, an agent takes all its buffer holds (up to this many records) and evaluates each
    # site's records among them in one engine call, so a backlog drains faster than it grew.
    take_max_records: int = option(1000, "records an agent takes at once when they are waiting", gt=0)
    take_within_s: float = option(
        0.01, "longest an agent waits to fill a take (adds at most this to reading -> warning)", gt=0
    )
    fetch_max_bytes: int = option(
        16 << 20, "bytes fetched per partition at most (whole columnar batches are ~21 bytes a reading)", gt=0
    )
    # aiokafka keeps one fetch in flight per broker, so a fetch parked on quiet partitions (rw.gateway, the
    # region stage) delays the next fetch of rw.telemetry by up to this long; Faust 0.15.3 hard-codes
    # 1500 ms (see faust_internals.set_fetch_wait).
    fetch_max_wait_ms: int = option(
        50, "longest the broker holds a fetch with no new records (Faust's own 1500 ms delays readings)", ge=0
    )
    future_tolerance_s: float = option(
        DEFAULT_FUTURE_TOLERANCE_S,
        "readings and events stamped later than the worker's clock + this are taken at that bound",
        ge=0,
    )
    max_age_s: float = option(
        DEFAULT_MAX_AGE_S,
        "readings older than this (by the worker's clock) are dead-lettered as old_timestamp",
        gt=0,
    )
    clock: ClockOption = clock_option()
    log_level: LogLevel = option("warning", "how much the worker logs", old=["--loglevel"])
    engine_module: str = option("processors.engine", "the engine to load (benchmarks)", hidden=True)
    partitions: int = 0  # of rw.telemetry and rw.gateway (co-partitioned, keyed by site): read from Kafka

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @model_validator(mode="before")
    @classmethod
    def _default_group(cls, data: Any) -> Any:
        """No --group: the prefix's own group, so workers of another topic prefix never share work."""
        if isinstance(data, dict) and not data.get("group"):
            return {**data, "group": f"riskwatch-worker-{data.get('topic_prefix', 'rw')}"}
        return data


MINUTE_GRACE_S = 30.0  # a minute closes this long after it ends
MINUTE_GRACE_REAL_S = 5.0  # ... and, on a simulated clock, at least this long in real time
# Readings evaluated up to this late (real seconds) leave the engine's timers on the wall clock
# (processors/engine_clock.py); gateway clocks are not aligned to the second, nor is delivery.
ENGINE_CLOCK_GRACE_REAL_S = 10.0
# ... and never more than this far behind it: a deployment whose gateway clocks are all wrong (local time
# sent as UTC) must still see a silent gateway turn stale, at most this much later.
ENGINE_CLOCK_MAX_BEHIND_REAL_S = 600.0
MINUTE_MAX_AGE_S = 3600.0  # older readings are counted, not aggregated (a minute of real time per hour)


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
        # On a simulated clock running `speed` times real time, pipeline latency (real time) is `speed` times
        # longer in simulated time: a minute waits at least MINUTE_GRACE_REAL_S real seconds for readings.
        self.speed = speed_of(clock)
        self.aggregator = MinuteAggregator.for_registry(  # credits completeness per owed window
            registry,
            grace_s=max(MINUTE_GRACE_S, MINUTE_GRACE_REAL_S * self.speed),
            max_age_s=max(MINUTE_MAX_AGE_S, MINUTE_MAX_AGE_S * self.speed / 60),
        )
        self.states = SiteStates(
            self.index,
            engine,
            lambda site: self.load_snapshot(site),
            on_ignored=lambda reason, n: metrics.ignored.labels(reason).inc(n),
            minutes=self.aggregator,  # open minutes travel in the site snapshots
        )
        self.minutes = MinutePublisher.for_registry(registry)  # closed minutes -> rw.history records
        # What the engine evaluates and times at: the wall clock held back by the input's lag.
        self.engine_clock = EngineClock(
            registry.sites,
            clock,
            grace_s=ENGINE_CLOCK_GRACE_REAL_S * self.speed,
            max_behind_s=ENGINE_CLOCK_MAX_BEHIND_REAL_S * self.speed,
            refresh_s=0.5 * self.speed,
        )
        # Partitions of rw.telemetry/rw.gateway this worker owns, and whether their state is recovered:
        # nothing loads a site from the table while Faust is still restoring it after a rebalance.
        self.owned: set[int] = set()
        self.ready = False
        self.not_ready_since: float | None = time.monotonic()  # when the worker last stopped being ready
        self.revocations_done = 0  # Faust's rebalances whose revocation step has finished (on_revoked)
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
        web_enabled=settings.port > 0,
        web_bind=settings.host,
        web_host=settings.host,
        web_port=max(settings.port, 1),
        canonical_url=f"http://{settings.host}:{settings.port}",
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
    faust_internals.make_producer_idempotent(app)
    tables = agents.install(app, ctx)
    timers.install(app, ctx, tables)
    if settings.port > 0:
        web.install(app, ctx, tables)
    return app, ctx
