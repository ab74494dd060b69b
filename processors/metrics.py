"""The worker's Prometheus metrics, on an injected registry (tests use a fresh one each)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class WorkerMetrics:
    """Counters, gauges and histograms of one worker process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.readings = counter("riskwatch_readings", "Readings evaluated (rate = readings/s)")
        self.batches = counter("riskwatch_batches", "Telemetry batches evaluated")
        self.duplicates = counter(
            "riskwatch_duplicate_readings",
            "Readings of gateway messages already evaluated, left out by (gateway, seq)",
        )
        self.eval_seconds = Histogram(
            "riskwatch_batch_eval_seconds",
            "Engine evaluation time per batch",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.record_delay = Histogram(
            "riskwatch_record_delay_seconds",
            "From a telemetry batch's Kafka timestamp (the bridge sending it) to its evaluation",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.loop_lag = Histogram(
            "riskwatch_event_loop_lag_seconds",
            "How late the event loop ran a task due to run (sampled every 50 ms): work that does not yield",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.loop_lag_on_cpu = Histogram(
            "riskwatch_event_loop_lag_on_cpu_seconds",
            "Event-loop lag the worker's own work explains: the lag, at most the CPU time its loop thread "
            "used meanwhile (a process waiting for a core on a busy machine is late without blocking)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.loop_lag_max = gauge(
            "riskwatch_event_loop_lag_max_seconds", "The largest event-loop lag measured since the start"
        )
        self.rereads = counter(
            "riskwatch_record_rereads",
            "Seeks back to records Faust fetched but never delivered (processors/offsets.py)",
            "topic",
        )
        self.transitions = counter("riskwatch_transitions", "Transitions emitted", "kind", "entity_type")
        self.deadletters = counter("riskwatch_deadletters", "Records sent to the dead-letter topic", "reason")
        self.ignored = counter(
            "riskwatch_readings_ignored",
            "Inputs the engine evaluated without effect: out_of_order (older than the sensor's newest "
            "reading), rejected (a non-finite time, an unknown sensor or event target)",
            "reason",
        )
        self.clamped = counter(
            "riskwatch_timestamps_clamped",
            "Readings and events stamped beyond the worker's clock + tolerance, taken at that bound",
            "input",
        )
        self.evaluation_errors = counter(
            "riskwatch_evaluation_errors",
            "Evaluations that raised (the record is dead-lettered, a timer tick skips the site)",
            "stage",
        )
        self.lag = gauge(
            "riskwatch_consumer_lag", "Records behind the end of the partition", "topic", "partition"
        )
        self.entities = gauge(
            "riskwatch_entities", "Entities currently at each non-normal level", "entity_type", "level"
        )
        self.snapshot_age = gauge(
            "riskwatch_snapshot_age_seconds", "Age of the oldest pending state snapshot of an owned partition"
        )
        self.partitions_owned = gauge(
            "riskwatch_partitions_owned", "Telemetry partitions assigned to this worker"
        )
        self.ready = gauge(
            "riskwatch_worker_ready", "1 once the tables of the current assignment are restored"
        )
        self.input_lag = gauge(
            "riskwatch_input_lag_seconds",
            "Median over sites of how long before its evaluation the newest reading of the site's latest "
            "records was taken: how far behind the path upstream of the engine is",
        )
        self.engine_clock_behind = gauge(
            "riskwatch_engine_clock_behind_seconds",
            "How far the engine's timers (stale, delays, lasting conditions) are held behind the wall clock "
            "because readings arrive late",
        )
        self.sites_owned = gauge("riskwatch_sites_owned", "Sites whose partition this worker owns")
        self.gateways = gauge(
            "riskwatch_gateways", "Gateways of the sites this worker has loaded, online or offline", "state"
        )
        self.history_repaired = counter(
            "riskwatch_history_repaired_fields",
            "Aggregate fields that overflowed (a mean of huge values) and were clipped to the minute's range",
        )
        self.history_published = counter(
            "riskwatch_history_points_published",
            "Minute-aggregate points (one per sensor and minute) sent to the history topic",
        )
