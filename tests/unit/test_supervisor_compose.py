"""deploy/docker-compose.yml: every service restarts after a crash with the same policy and has a real
health check (the protocol answers, not just a port)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "docker-compose.yml"
SERVICES = yaml.safe_load(COMPOSE.read_text())["services"]
# One-shot jobs (kafka-setup: topics, accounts, ACLs) run to completion; they are retried only on failure.
ONE_SHOT = {name for name, service in SERVICES.items() if name.endswith("-setup")}


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_each_service_restarts_and_is_health_checked(name: str) -> None:
    service = SERVICES[name]
    assert service["restart"] == "unless-stopped"
    check = service["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and check["test"][1].strip()
    assert check["retries"] >= 3 and "start_period" in check


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_one_shot_jobs_are_retried_until_they_succeed(name: str) -> None:
    assert SERVICES[name]["restart"] == "on-failure" and SERVICES[name]["depends_on"]


def test_health_checks_speak_each_protocol() -> None:
    assert "kafka-broker-api-versions.sh" in SERVICES["kafka"]["healthcheck"]["test"][1]
    assert "mosquitto_sub" in SERVICES["mosquitto"]["healthcheck"]["test"][1]
    assert "/ping" in SERVICES["influxdb"]["healthcheck"]["test"][1]
