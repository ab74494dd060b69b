"""`riskwatch bridge` flags become one frozen settings record; the password comes from the named env var."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ingest.cli import configure, settings_from_args
from riskwatch.errors import ConfigError


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(["--registry", "reg.yaml", *argv])


def test_password_is_read_from_the_named_variable_and_hidden_from_repr() -> None:
    args = _parse("--mqtt-password-env", "PLANT_PW", "--kafka", "k:9092", "--topic-prefix", "t1")
    env = {"PLANT_PW": "s3cret", "RISKWATCH_MQTT_PASSWORD": "other", "RISKWATCH_KAFKA_PASSWORD": "k4fka-pw"}
    settings = settings_from_args(args, env)
    assert settings.mqtt_password == "s3cret"
    assert "s3cret" not in repr(settings) and "k4fka-pw" not in repr(settings)
    assert settings.kafka is not None
    assert (settings.registry, settings.kafka.bootstrap, settings.kafka.user, settings.topic_prefix) == (
        Path("reg.yaml"),
        "k:9092",
        "riskwatch-bridge",
        "t1",
    )


def test_without_a_kafka_password_the_bridge_names_the_variables_to_set() -> None:
    with pytest.raises(
        ConfigError, match=r"RISKWATCH_KAFKA_PASSWORD.*riskwatch-bridge.*RISKWATCH_KAFKA_PASSWORD_FILE"
    ):
        settings_from_args(_parse("--kafka", "k:9092"), {"RISKWATCH_MQTT_PASSWORD": "pw"})


def test_defaults_and_unit_conversions() -> None:
    settings = settings_from_args(
        _parse(
            "--spool-max-mb",
            "2",
            "--batch-linger-ms",
            "50",
            "--codec-compression",
            "none",
            "--mqtt-client-id",
            "b1",
            "--kafka",
            "k:9092",
        ),
        {"RISKWATCH_KAFKA_PASSWORD": "k"},
    )
    assert settings.mqtt_password == ""
    assert settings.spool_max_bytes == 2 * 2**20 and settings.batch_linger_s == 0.05
    assert settings.codec_compression == "none" and settings.compression == "none"
    assert settings.mqtt_client_id == "b1" and settings.group == "riskwatch"
