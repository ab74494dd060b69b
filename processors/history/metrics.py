"""The historian's Prometheus metrics, on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class HistorianMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.records = Counter(
            "riskwatch_history_records", "Kafka records written to history (committed)", ["topic"],
            registry=registry,
        )  # fmt: skip
        self.written = Counter(
            "riskwatch_history_points_written",
            "History points InfluxDB accepted (counted once their records are committed)",
            ["measurement"],
            registry=registry,
        )
        self.rejected = Counter(
            "riskwatch_history_rejected_points",
            "History points InfluxDB refused as malformed (4xx): dead-lettered, not retried",
            registry=registry,
        )
        self.retries = Counter(
            "riskwatch_history_write_retries", "Failed history writes retried (InfluxDB down, 5xx)",
            registry=registry,
        )  # fmt: skip
        self.deadletters = Counter(
            "riskwatch_deadletters", "Records sent to the dead-letter topic", ["reason"], registry=registry
        )
        self.writing = Gauge(
            "riskwatch_history_writing", "1 while InfluxDB accepts writes, 0 while the historian retries",
            registry=registry,
        )  # fmt: skip
        self.unwritten_age = Gauge(
            "riskwatch_history_unwritten_age_seconds",
            "Age of the oldest consumed record not yet in InfluxDB (0 when caught up)",
            registry=registry,
        )
        self.lag = Gauge(
            "riskwatch_consumer_lag", "Records behind the end of the partition", ["topic", "partition"],
            registry=registry,
        )  # fmt: skip
