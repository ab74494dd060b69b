"""How clients log in to Kafka (riskwatch/kafka_access.py) and what the accounts may do (kafka_accounts.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from riskwatch.errors import ConfigError, RiskwatchError
from riskwatch.kafka_access import KafkaAccess
from riskwatch.kafka_accounts import bindings, super_users
from riskwatch.secrets import redact
from riskwatch.topics import Topics


def test_the_password_comes_from_the_environment_and_never_shows() -> None:
    access = KafkaAccess.from_env("k:9093", "bridge", {"RISKWATCH_KAFKA_PASSWORD": "pw-from-env-123"})
    assert (access.user, access.password, access.protocol) == (
        "riskwatch-bridge",
        "pw-from-env-123",
        "SASL_PLAINTEXT",
    )
    assert "pw-from-env-123" not in repr(access)
    assert redact("login failed for pw-from-env-123") == "login failed for ***"  # remembered for redaction


def test_a_password_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "worker.password"
    secret.write_text("from-a-file-456\n")
    os.chmod(secret, 0o600)
    env = {"RISKWATCH_KAFKA_PASSWORD_FILE": str(secret), "RISKWATCH_KAFKA_USER": "other-user"}
    access = KafkaAccess.from_env("k:9093", "worker", env)
    assert (access.user, access.password) == ("other-user", "from-a-file-456")
    os.chmod(secret, 0o640)
    with pytest.raises(RiskwatchError, match="chmod 600"):
        KafkaAccess.from_env("k:9093", "worker", env)


def test_no_password_names_what_to_set() -> None:
    with pytest.raises(ConfigError, match=r"RISKWATCH_KAFKA_PASSWORD.*riskwatch-alerting"):
        KafkaAccess.from_env("k:9093", "alerting", {})


def test_tls_settings_for_each_client_library(tmp_path: Path) -> None:
    from deploy.stack.certs import CertificateAuthority

    ca = str(CertificateAuthority(tmp_path).ensure())
    access = KafkaAccess("k:9093", "riskwatch-tools", "pw", ca)
    assert access.protocol == "SASL_SSL"
    kp = access.kafka_python()
    assert (kp["security_protocol"], kp["sasl_mechanism"], kp["ssl_cafile"], kp["ssl_check_hostname"]) == (
        "SASL_SSL", "SCRAM-SHA-512", ca, True,
    )  # fmt: skip
    aio = access.aiokafka()
    assert aio["ssl_context"].check_hostname and aio["sasl_plain_username"] == "riskwatch-tools"
    assert access.sasl()["ssl_context"] is not None and access.sasl()["mechanism"] == "SCRAM-SHA-512"
    kcat = dict(line.split("=", 1) for line in access.kcat_config().splitlines())
    assert kcat["security.protocol"] == "sasl_ssl" and kcat["ssl.ca.location"] == ca
    assert access.env() == {
        "RISKWATCH_KAFKA_USER": "riskwatch-tools", "RISKWATCH_KAFKA_PASSWORD": "pw", "RISKWATCH_KAFKA_CA": ca,
    }  # fmt: skip


def test_the_declared_rights_follow_the_topic_prefix() -> None:
    entries = bindings(Topics("t1"))
    bridge = {(b.resource, b.name, b.operation) for b in entries if b.user == "riskwatch-bridge"}
    assert bridge == {("topic", f"t1.{t}", "WRITE") for t in ("telemetry", "gateway", "deadletter")}
    alerting = {
        (b.name, b.operation) for b in entries if b.user == "riskwatch-alerting" and b.resource == "topic"
    }
    assert ("t1.telemetry", "READ") not in alerting and ("t1.warnings", "READ") in alerting
    assert ("t1.warnings", "WRITE") not in alerting
    writers_of_warnings = {b.user for b in entries if b.name == "t1.warnings" and b.operation == "WRITE"}
    assert writers_of_warnings == {"riskwatch-worker"}  # and the tools account, through its wildcard
    assert super_users() == "User:riskwatch-admin;User:riskwatch-broker"


def test_a_client_is_started_once_kafka_answers_and_a_stop_ends_the_retries() -> None:
    import asyncio

    from riskwatch.kafka_access import start_when_reachable

    class Client:
        def __init__(self, failures: int) -> None:
            self.failures, self.tries = failures, 0

        async def start(self) -> None:
            self.tries += 1
            if self.tries <= self.failures:
                raise ConnectionError("not yet")

    async def run() -> tuple[bool, int, bool, int, int]:
        late = Client(failures=2)
        beats: list[int] = []
        started = await start_when_reachable(
            late, "consumer", ConnectionError, beat=lambda: beats.append(1), retry_s=0.01
        )
        stop = asyncio.Event()
        never = Client(failures=10**9)
        asyncio.get_running_loop().call_later(0.05, stop.set)
        stopped = await start_when_reachable(never, "producer", ConnectionError, stop, retry_s=10.0)
        return started, late.tries, stopped, len(beats), never.tries

    started, tries, stopped, beats, never_tries = asyncio.run(run())
    assert (started, tries, beats) == (True, 3, 3)
    assert (stopped, never_tries) == (False, 1)  # the stop cut the 10 s wait short
