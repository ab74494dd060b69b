"""Kafka takes only riskwatch's accounts, each for its own topics (riskwatch/kafka_accounts.py).

Checked on the real broker of the local stack with two clients that share no code: kcat (librdkafka)
and kafka-python. Every refusal is paired with a control showing the same operation succeeds for the
account it belongs to, so a test cannot pass because the broker is simply unreachable.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from deploy.stack import StackInfo
from riskwatch.topics import Topics
from tests.integration.kcat import kcat


def _marker() -> bytes:
    return f"auth-test-{uuid.uuid4().hex}".encode()


def _tools_read(stack: StackInfo, topic: str) -> list[bytes]:
    """Every record of `topic`, read by the tools account (the control reader)."""
    done = kcat(stack.kafka("tools"), stack.kafka_bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q")
    assert done.returncode == 0, done.stderr
    return [line.encode() for line in done.stdout.splitlines()]


def _kcat_produce(access: object, stack: StackInfo, topic: str, value: bytes, tmp: object) -> object:
    path = tmp / f"{uuid.uuid4().hex}.bin"  # type: ignore[operator]
    path.write_bytes(value)
    return kcat(access, stack.kafka_bootstrap, "-P", "-t", topic, "-X", "message.timeout.ms=8000", str(path))  # type: ignore[arg-type]


# -- kcat ------------------------------------------------------------------------------------------


def test_kcat_without_credentials_cannot_forge_a_warning(stack: StackInfo, topics: Topics, tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = _marker()
    done = _kcat_produce(None, stack, topics.warnings, marker, tmp_path)
    assert done.returncode != 0  # type: ignore[attr-defined]
    assert "SASL" in done.stderr or "security.protocol" in done.stderr, done.stderr  # type: ignore[attr-defined]
    assert marker not in _tools_read(stack, topics.warnings)


def test_kcat_as_the_bridge_may_write_telemetry_but_not_warnings(
    stack: StackInfo, topics: Topics, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    forged, reading = _marker(), _marker()
    denied = _kcat_produce(stack.kafka("bridge"), stack, topics.warnings, forged, tmp_path)
    assert denied.returncode != 0 and "Topic authorization failed" in denied.stderr, denied.stderr  # type: ignore[attr-defined]
    allowed = _kcat_produce(stack.kafka("bridge"), stack, topics.telemetry, reading, tmp_path)
    assert allowed.returncode == 0, allowed.stderr  # type: ignore[attr-defined]
    assert forged not in _tools_read(stack, topics.warnings)
    assert reading in _tools_read(stack, topics.telemetry)


def test_kcat_as_alerting_may_read_warnings_but_not_telemetry(
    stack: StackInfo, topics: Topics, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    assert _kcat_produce(stack.kafka("bridge"), stack, topics.telemetry, _marker(), tmp_path).returncode == 0  # type: ignore[attr-defined]
    warning = _marker()
    assert _kcat_produce(stack.kafka("worker"), stack, topics.warnings, warning, tmp_path).returncode == 0  # type: ignore[attr-defined]
    alerting = stack.kafka("alerting")
    denied = kcat(alerting, stack.kafka_bootstrap, "-C", "-t", topics.telemetry, "-o", "beginning", "-e")
    assert denied.returncode != 0 and "Topic authorization failed" in denied.stderr, denied.stderr
    assert not denied.stdout
    allowed = kcat(
        alerting, stack.kafka_bootstrap, "-C", "-t", topics.warnings, "-o", "beginning", "-e", "-q"
    )
    assert allowed.returncode == 0 and warning.decode() in allowed.stdout, allowed.stderr


# -- kafka-python ----------------------------------------------------------------------------------


def _produce(kwargs: dict[str, object], topic: str, value: bytes) -> None:
    producer = KafkaProducer(**kwargs, acks="all", max_block_ms=8000)
    try:
        producer.send(topic, value).get(timeout=15)
    finally:
        producer.close(timeout=5)


def test_kafka_python_as_the_bridge_is_refused_on_warnings(stack: StackInfo, topics: Topics) -> None:
    forged = _marker()
    with pytest.raises(TopicAuthorizationFailedError):
        _produce(stack.kafka("bridge").kafka_python(), topics.warnings, forged)
    _produce(stack.kafka("bridge").kafka_python(), topics.telemetry, _marker())  # its own topic: fine
    assert forged not in _tools_read(stack, topics.warnings)


def test_kafka_python_as_alerting_is_refused_on_telemetry(stack: StackInfo, topics: Topics) -> None:
    reading = _marker()
    _produce(stack.kafka("bridge").kafka_python(), topics.telemetry, reading)
    tps = [TopicPartition(topics.telemetry, p) for p in range(3)]
    consumer = KafkaConsumer(**stack.kafka("alerting").kafka_python(), group_id=None)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.end_offsets(tps)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got = consumer.poll(timeout_ms=3000)
        assert not any(records for records in got.values())
    finally:
        consumer.close()
    assert reading in _tools_read(stack, topics.telemetry)  # it was there to be read


def test_kafka_python_as_alerting_uses_only_its_own_consumer_groups(stack: StackInfo, topics: Topics) -> None:
    from kafka.errors import GroupAuthorizationFailedError

    _produce(stack.kafka("worker").kafka_python(), topics.warnings, _marker())
    for group, allowed in (
        (f"riskwatch-alerting-{topics.prefix}", True),
        (f"riskwatch-worker-{topics.prefix}", False),
    ):
        consumer = KafkaConsumer(
            topics.warnings, **stack.kafka("alerting").kafka_python(), group_id=group,
            auto_offset_reset="earliest", consumer_timeout_ms=20000,
        )  # fmt: skip
        try:
            if allowed:
                assert next(iter(consumer)).value.startswith(b"auth-test-")
            else:
                with pytest.raises(GroupAuthorizationFailedError):
                    next(iter(consumer))
        finally:
            consumer.close()


def test_kafka_python_without_credentials_or_with_a_wrong_password_is_not_let_in(
    stack: StackInfo, topics: Topics
) -> None:
    forged = _marker()
    wrong = dataclasses.replace(stack.kafka("worker"), password="not-the-password")
    for kwargs in ({"bootstrap_servers": stack.kafka_bootstrap}, wrong.kafka_python()):
        with pytest.raises(KafkaError):
            _produce(kwargs, topics.warnings, forged)
    assert forged not in _tools_read(stack, topics.warnings)


def test_the_controller_listener_takes_no_client_login(stack: StackInfo, stack_services: object) -> None:
    """Even the administrator's SCRAM account cannot use the controller port: only the broker's own
    PLAIN login, which no client has, is accepted there."""
    from kafka import KafkaAdminClient

    settings = stack_services.settings  # type: ignore[attr-defined]
    admin = dataclasses.replace(
        stack.kafka("admin"), bootstrap=f"{settings.host}:{settings.kafka_controller_port}"
    )
    with pytest.raises(KafkaError):
        client = KafkaAdminClient(**admin.kafka_python(), request_timeout_ms=5000)
        try:
            client.describe_cluster()
        finally:
            client.close()


def test_the_client_listener_speaks_only_tls_with_the_stack_certificate(
    stack: StackInfo, topics: Topics, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The right password over plain TCP is refused (it never crosses the wire in clear), and a client
    that trusts another CA does not accept the broker: it would not accept an impostor either."""
    from deploy.stack.certs import CertificateAuthority

    forged = _marker()
    plain = dataclasses.replace(stack.kafka("worker"), cafile="")
    done = _kcat_produce(plain, stack, topics.warnings, forged, tmp_path)
    assert done.returncode != 0, done.stdout  # type: ignore[attr-defined]
    with pytest.raises(KafkaError):
        _produce(plain.kafka_python(), topics.warnings, forged)
    other_ca = str(CertificateAuthority(tmp_path / "other-ca").ensure())
    impostor_check = dataclasses.replace(stack.kafka("worker"), cafile=other_ca)
    done = _kcat_produce(impostor_check, stack, topics.warnings, forged, tmp_path)
    assert done.returncode != 0 and "certificate verify failed" in done.stderr, done.stderr  # type: ignore[attr-defined]
    with pytest.raises(KafkaError):
        _produce(impostor_check.kafka_python(), topics.warnings, forged)
    assert forged not in _tools_read(stack, topics.warnings)
    _produce(stack.kafka("worker").kafka_python(), topics.warnings, _marker())  # the real CA: fine
