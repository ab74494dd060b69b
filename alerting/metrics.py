"""Prometheus metrics of the alerting service, on an injected CollectorRegistry (tests use fresh ones)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class AlertingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.transitions = Counter(
            "riskwatch_alerting_transitions", "Input transitions by result (applied, duplicate, rejected)",
            ["result"], registry=registry,
        )  # fmt: skip
        self.notifications = Counter(
            "riskwatch_alerting_notifications", "Send attempts by channel and outcome (ok, retryable, error)",
            ["channel", "outcome"], registry=registry,
        )  # fmt: skip
        self.outbox = Gauge(
            "riskwatch_alerting_outbox_messages", "Outbox messages by status", ["status"], registry=registry
        )
        # Same name and label as the other components' dead-letter counter: one dashboard for all.
        self.deadletters = Counter(
            "riskwatch_deadletters",
            "Inputs sent to the dead-letter topic, by reason",
            ["reason"],
            registry=registry,
        )
        self.open_alerts = Gauge("riskwatch_alerting_open_alerts", "Alerts not closed yet", registry=registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
