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
    from deploy.stack.settings import kafka_cluster_id

    ids = [kafka_cluster_id() for _ in range(2000)]  # ~1 in 64 raw ids starts with '-'
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


# -- Kafka: accounts, ACLs, listeners -------------------------------------------------------------------


def test_kafka_compose_files_are_what_the_code_generates() -> None:
    """deploy/kafka/compose/* are generated (python -m deploy.stack.kafka_deploy); edited by hand or left
    behind by a change of riskwatch/kafka_accounts.py or deploy/stack/kafka.py, they fail here."""
    from deploy.stack import kafka_deploy

    folder = DEPLOY / "kafka" / "compose"
    assert (folder / "start.sh").read_text() == kafka_deploy.start_script()
    assert (folder / "setup.sh").read_text() == kafka_deploy.setup_script()
    assert (folder / "accounts.txt").read_text() == kafka_deploy.account_table()
    assert (folder / "acls.txt").read_text() == kafka_deploy.acl_table()
    committed = dict(
        line.split("=", 1) for line in (folder / "server.properties").read_text().splitlines() if "=" in line
    )
    assert committed == kafka_deploy.server_properties()


def test_kafka_compose_shares_the_stack_settings_and_locks_the_listeners() -> None:
    from deploy.stack import kafka_deploy

    props = kafka_deploy.server_properties()
    for key, value in kafka.SHARED_SETTINGS.items():
        assert props[key] == value, key
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:riskwatch-admin;User:riskwatch-broker"
    jaas = kafka_deploy.jaas_config("pw")
    controller = jaas.split("controller.KafkaServer", 1)[1]
    assert (
        controller.count("user_") == 1 and "user_riskwatch-broker=" in controller
    )  # no client logs in there


def test_kafka_compose_setup_applies_exactly_the_declared_topics_accounts_and_acls(tmp_path: Path) -> None:
    """Run setup.sh with bash, its Kafka tools replaced by ones that record their arguments: the commands
    it runs are exactly the declaration (topics, one SCRAM account per component, the ACLs), nothing more."""
    import shlex
    import subprocess

    from deploy.stack.kafka_deploy import CONFIG_MOUNT, SECRETS_MOUNT
    from riskwatch.kafka_accounts import Binding, bindings
    from riskwatch.topics import Topics

    tools, secrets = tmp_path / "bin", tmp_path / "secrets"
    tools.mkdir()
    secrets.mkdir()
    calls = tmp_path / "calls"
    for tool in ("kafka-topics.sh", "kafka-configs.sh", "kafka-acls.sh"):
        (tools / tool).write_text(f'#!/bin/bash\necho "{tool} $*" >> {calls}\n')
        (tools / tool).chmod(0o755)
    for account in ("bridge", "worker", "alerting", "history", "tools"):
        (secrets / f"{account}.password").write_text(f"pw-{account}")
    compose = tmp_path / "compose"  # the committed folder as mounted, the secrets where its tables say
    compose.mkdir()
    for name in ("setup.sh", "accounts.txt", "acls.txt"):
        text = (DEPLOY / "kafka" / "compose" / name).read_text()
        (compose / name).write_text(text.replace(SECRETS_MOUNT, str(secrets)))
    script = (compose / "setup.sh").read_text().replace("/opt/kafka/bin/", f"{tools}/")
    script = script.replace(CONFIG_MOUNT, str(compose))
    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    ran = [shlex.split(line) for line in calls.read_text().splitlines()]
    topics = [w[w.index("--topic") + 1] for w in ran if w[0] == "kafka-topics.sh"]
    assert topics == list(Topics("rw").all())
    scram = {
        w[w.index("--entity-name") + 1]: w[w.index("--add-config") + 1]
        for w in ran
        if w[0] == "kafka-configs.sh"
    }
    assert scram == {
        f"riskwatch-{a}": f"SCRAM-SHA-512=[password=pw-{a}]"
        for a in ("bridge", "worker", "alerting", "history", "tools")
    }
    found = set()
    for words in (w for w in ran if w[0] == "kafka-acls.sh"):
        opt = {words[i]: words[i + 1] for i in range(1, len(words) - 1) if words[i].startswith("--")}
        resource = "topic" if "--topic" in opt else "group"
        op = {"DescribeConfigs": "DESCRIBE_CONFIGS"}.get(opt["--operation"], opt["--operation"].upper())
        found.add(
            Binding(
                opt["--allow-principal"].removeprefix("User:"),
                resource,
                opt[f"--{resource}"],
                opt["--resource-pattern-type"].upper(),
                op,
            )
        )
    assert found == set(bindings(Topics("rw")))
    assert len(ran) == len(topics) + len(scram) + len(bindings(Topics("rw")))


def test_kafka_compose_service_mounts_the_generated_files_and_secrets() -> None:
    services = _compose()
    for name in ("kafka", "kafka-setup"):
        volumes = services[name]["volumes"]
        assert "./kafka/compose:/etc/riskwatch/kafka:ro" in volumes
        assert "./kafka-secrets:/etc/riskwatch/kafka-secrets:ro" in volumes
    assert services["kafka"]["command"][-1] == "/etc/riskwatch/kafka/start.sh"
    assert services["kafka-setup"]["command"][-1] == "/etc/riskwatch/kafka/setup.sh"
    assert "admin.properties" in services["kafka"]["healthcheck"]["test"][1]
    assert not any(
        k.startswith("KAFKA_") and k != "KAFKA_HEAP_OPTS" for k in services["kafka"]["environment"]
    )
