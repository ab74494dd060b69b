"""The bridge's Prometheus metrics, registered on an injected registry so tests use fresh ones."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BridgeMetrics:
    """Counters by channel and reason, spool depth, Kafka produce latency, MQTT connection state."""

    def __init__(self, registry: CollectorRegistry) -> None:
        p = "riskwatch_bridge_"
        self.messages_in = Counter(
            p + "messages_in", "MQTT messages received", ["channel"], registry=registry
        )
        self.readings_in = Counter(
            p + "readings_in", "readings received in telemetry messages", registry=registry
        )
        self.readings_out = Counter(
            p + "readings_out", "valid readings delivered to rw.telemetry", registry=registry
        )
        self.records_out = Counter(
            p + "records_out", "Kafka records delivered (or spooled)", ["topic"], registry=registry
        )
        self.rejects = Counter(
            p + "rejects", "rejected messages or items, by dead-letter reason", ["reason"], registry=registry
        )
        self.oversized = Counter(
            p + "oversized_records",
            "records Kafka refused as too large: replaced by a dead letter, or dropped if one themselves",
            ["topic", "outcome"],
            registry=registry,
        )
        self.acked = Counter(p + "mqtt_acked", "MQTT messages acknowledged to the broker", registry=registry)
        self.spool_bytes = Gauge(p + "spool_bytes", "bytes waiting in the local spool", registry=registry)
        self.spool_records = Gauge(
            p + "spool_records", "records waiting in the local spool", registry=registry
        )
        self.spooled = Counter(p + "spooled_records", "records written to the spool", registry=registry)
        self.replayed = Counter(
            p + "replayed_records", "spooled records delivered to Kafka", registry=registry
        )
        self.produce_latency = Histogram(
            p + "kafka_produce_latency_seconds",
            "time from handing a record to the producer to Kafka's acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.mqtt_connected = Gauge(
            p + "mqtt_connected", "1 while connected to the MQTT broker", registry=registry
        )
        self.in_flight = Gauge(
            p + "mqtt_in_flight", "MQTT messages received, not yet acknowledged", registry=registry
        )
