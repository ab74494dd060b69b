"""deploy/docker-compose.yml: every service restarts after a crash with the same policy and has a real
health check (the protocol answers, not just a port)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "docker-compose.yml"
SERVICES = yaml.safe_load(COMPOSE.read_text())["services"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_restarts_and_is_health_checked(name: str) -> None:
    service = SERVICES[name]
    assert service["restart"] == "unless-stopped"
    check = service["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and check["test"][1].strip()
    assert check["retries"] >= 3 and "start_period" in check


def test_health_checks_speak_each_protocol() -> None:
    assert "kafka-broker-api-versions.sh" in SERVICES["kafka"]["healthcheck"]["test"][1]
    assert "mosquitto_sub" in SERVICES["mosquitto"]["healthcheck"]["test"][1]
    assert "/ping" in SERVICES["influxdb"]["healthcheck"]["test"][1]
