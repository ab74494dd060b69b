"""`riskwatch bridge` flags become one frozen settings record; the password comes from the named env var."""

from __future__ import annotations

import argparse
from pathlib import Path

from ingest.cli import configure, settings_from_args


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(["--registry", "reg.yaml", *argv])


def test_password_is_read_from_the_named_variable_and_hidden_from_repr() -> None:
    args = _parse("--mqtt-password-env", "PLANT_PW", "--kafka", "k:9092", "--topic-prefix", "t1")
    settings = settings_from_args(args, {"PLANT_PW": "s3cret", "RISKWATCH_MQTT_PASSWORD": "other"})
    assert settings.mqtt_password == "s3cret"
    assert "s3cret" not in repr(settings)
    assert (settings.registry, settings.kafka_bootstrap, settings.topic_prefix) == (
        Path("reg.yaml"),
        "k:9092",
        "t1",
    )


def test_defaults_and_unit_conversions() -> None:
    settings = settings_from_args(
        _parse(
            "--spool-max-mb", "2", "--batch-linger-ms", "50", "--no-codec-compression", "--client-id", "b1"
        ),
        {},
    )
    assert settings.mqtt_password == ""
    assert settings.spool_max_bytes == 2 * 2**20 and settings.batch_linger_s == 0.05
    assert settings.codec_compression is False and settings.compression == "none"
    assert settings.mqtt_client_id == "b1" and settings.share_group == "riskwatch"
