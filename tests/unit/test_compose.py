"""deploy/docker-compose.yml stays consistent with the local stack's versions and settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from deploy.stack import kafka, mosquitto
from deploy.stack.settings import INFLUX_ADMIN, INFLUX_DATABASE, INFLUXDB_VERSION, KAFKA_VERSION

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]


def test_same_versions_as_the_local_stack() -> None:
    services = _compose()
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["influxdb"]["image"] == f"influxdb:{INFLUXDB_VERSION}"
    assert services["mosquitto"]["image"].split(":")[1].startswith("2.0.")


def test_kafka_settings_match() -> None:
    env = _compose()["kafka"]["environment"]
    for key, value in kafka.SHARED_SETTINGS.items():
        assert env.get(f"KAFKA_{key.upper().replace('.', '_')}") == value, key


def test_mosquitto_settings_match() -> None:
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    options = [tuple(line.split(None, 1)) for line in conf if line.strip() and not line.startswith("#")]
    for option, value, _why in mosquitto.SHARED_SETTINGS + mosquitto.TLS_SETTINGS:
        assert (option, value) in options, option
    assert any(o[0] == "password_file" for o in options) and any(o[0] == "acl_file" for o in options)


def test_mosquitto_deployment_listens_with_tls_only() -> None:
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    options = dict(tuple(line.split(None, 1)) for line in conf if line.strip() and not line.startswith("#"))
    listeners = [line for line in conf if line.startswith("listener ")]
    assert listeners == ["listener 8883 0.0.0.0"]  # one listener, and it has the certificate below
    assert {"cafile", "certfile", "keyfile"} <= options.keys()
    service = _compose()["mosquitto"]
    assert service["ports"] == ["127.0.0.1:8883:8883"]
    assert "--cafile" in service["healthcheck"]["test"][1]


def test_influxdb_settings_match() -> None:
    env = _compose()["influxdb"]["environment"]
    assert env["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    assert env["INFLUXDB_HTTP_FLUX_ENABLED"] == "true"
    assert env["INFLUXDB_DB"] == INFLUX_DATABASE
    assert env["INFLUXDB_ADMIN_USER"] == INFLUX_ADMIN
    assert "RISKWATCH_INFLUX_PASSWORD" in env["INFLUXDB_ADMIN_PASSWORD"]  # a secret from the environment


def test_mosquitto_password_hash_format() -> None:
    """Mosquitto 2.0's $7$ format: PBKDF2-SHA512, iterations, base64 salt and hash."""
    import base64
    import hashlib

    line = mosquitto.hash_password("s3cret", salt=b"0123456789ab")
    _, seven, iterations, salt, digest = line.split("$")
    assert (seven, iterations) == ("7", "101")
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret", base64.b64decode(salt), 101)
    assert base64.b64decode(digest) == expected


def test_gateway_acl_limits_a_gateway_to_its_site() -> None:
    assert mosquitto.gateway_acl("site-a", "gw-1") == "user gw-1\ntopic write rw/v1/site-a/gw-1/#\n"


def test_kafka_cluster_ids_never_look_like_an_option() -> None:
    from deploy.stack.settings import _kafka_cluster_id

    ids = [_kafka_cluster_id() for _ in range(2000)]  # ~1 in 64 raw ids starts with '-'
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
