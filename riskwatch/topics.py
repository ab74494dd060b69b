"""Kafka and MQTT topic names (docs/architecture.md "Topics"). A prefix lets tests run isolated pipelines."""

from __future__ import annotations

from dataclasses import dataclass

MQTT_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class Topics:
    """Kafka topic names; `prefix` defaults to 'rw' and tests use a unique one per test."""

    prefix: str = "rw"

    @property
    def telemetry(self) -> str:
        return f"{self.prefix}.telemetry"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.gateway"

    @property
    def alarms(self) -> str:
        return f"{self.prefix}.alarms"

    @property
    def warnings(self) -> str:
        return f"{self.prefix}.warnings"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def history(self) -> str:
        """Closed minutes of sensor aggregates (riskwatch/wire/minutes.py), for the historian."""
        return f"{self.prefix}.history"

    def all(self) -> tuple[str, ...]:
        return (
            self.telemetry, self.deadletter, self.gateway, self.alarms, self.warnings, self.alerts, self.history,
        )  # fmt: skip


def mqtt_topic(site: str, gateway: str, channel: str, root: str = "rw") -> str:
    """Gateway-side MQTT topic: rw/v1/{site}/{gateway}/{telemetry|status|events}."""
    return f"{root}/{MQTT_VERSION}/{site}/{gateway}/{channel}"
