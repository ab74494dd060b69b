"""The worker's Prometheus metrics, on an injected registry (tests use a fresh one each)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class WorkerMetrics:
    """Counters, gauges and histograms of one worker process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.readings = Counter(
            "riskwatch_readings", "Readings evaluated (rate = readings/s)", registry=registry
        )
        self.batches = Counter("riskwatch_batches", "Telemetry batches evaluated", registry=registry)
        self.duplicates = Counter(
            "riskwatch_duplicate_readings",
            "Readings of gateway messages already evaluated, left out by (gateway, seq)",
            registry=registry,
        )
        self.eval_seconds = Histogram(
            "riskwatch_batch_eval_seconds",
            "Engine evaluation time per batch",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.transitions = Counter(
            "riskwatch_transitions", "Transitions emitted", ["kind", "entity_type"], registry=registry
        )
        self.deadletters = Counter(
            "riskwatch_deadletters", "Records sent to the dead-letter topic", ["reason"], registry=registry
        )
        self.lag = Gauge(
            "riskwatch_consumer_lag",
            "Records behind the end of the partition",
            ["topic", "partition"],
            registry=registry,
        )
        self.entities = Gauge(
            "riskwatch_entities",
            "Entities currently at each non-normal level",
            ["entity_type", "level"],
            registry=registry,
        )
        self.snapshot_age = Gauge(
            "riskwatch_snapshot_age_seconds",
            "Age of the oldest pending state snapshot of an owned partition",
            registry=registry,
        )
        self.partitions_owned = Gauge(
            "riskwatch_partitions_owned", "Telemetry partitions assigned to this worker", registry=registry
        )
        self.ready = Gauge(
            "riskwatch_worker_ready",
            "1 once the tables of the current assignment are restored",
            registry=registry,
        )
        self.sites_owned = Gauge(
            "riskwatch_sites_owned", "Sites whose partition this worker owns", registry=registry
        )
        self.history_written = Counter(
            "riskwatch_history_points_written", "History points written to InfluxDB", registry=registry
        )
        self.history_dropped = Counter(
            "riskwatch_history_points_dropped",
            "History points dropped because the buffer limit was exceeded",
            registry=registry,
        )
        self.history_retries = Counter(
            "riskwatch_history_write_retries", "Failed history writes retried", registry=registry
        )
        self.history_pending = Gauge(
            "riskwatch_history_points_pending", "History points waiting in the buffer", registry=registry
        )

    # WriterHooks for processors.history.writer
    def written(self, points: int) -> None:
        self.history_written.inc(points)

    def dropped(self, points: int) -> None:
        self.history_dropped.inc(points)

    def retried(self) -> None:
        self.history_retries.inc()

    def pending(self, points: int) -> None:
        self.history_pending.set(points)
