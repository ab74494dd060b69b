"""Each component's options are declared once (riskwatch.options): the command line, the environment and the
docs tables all come from that declaration, spelled the same in every command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from alerting.cli import AlertingSettings
from deploy.run import RunSettings
from ingest.settings import BridgeSettings
from processors.app import WorkerSettings
from processors.history.cli import HistorianSettings
from riskwatch.cli import main
from riskwatch.errors import ConfigError
from riskwatch.options import Options, add_arguments, flag, options_of, rendered_docs, settings_from

ROOT = Path(__file__).resolve().parents[2]
MODELS: list[type[Options]] = [WorkerSettings, BridgeSettings, HistorianSettings, AlertingSettings]
KAFKA_ENV = {"RISKWATCH_KAFKA_PASSWORD": "k4fka-pw"}
WORKER_ARGV = ["--registry", "r.yaml", "--kafka", "k:9092", "--data-dir", "d"]


def _worker(argv: list[str], env: dict[str, str]) -> WorkerSettings:
    parser = argparse.ArgumentParser(prog="riskwatch worker")
    add_arguments(parser, WorkerSettings)
    return settings_from(WorkerSettings, parser.parse_args(argv), {**KAFKA_ENV, **env})


def test_a_flag_beats_its_variable_which_beats_the_default() -> None:
    assert _worker(WORKER_ARGV, {}).tick_every_s == 1.0
    assert _worker(WORKER_ARGV, {"RISKWATCH_WORKER_TICK_EVERY_S": "0.5"}).tick_every_s == 0.5
    given = _worker([*WORKER_ARGV, "--tick-every-s", "2"], {"RISKWATCH_WORKER_TICK_EVERY_S": "0.5"})
    assert given.tick_every_s == 2.0
    # Every option, required ones included, can come from the environment alone.
    env = {
        "RISKWATCH_WORKER_REGISTRY": "r.yaml",
        "RISKWATCH_WORKER_KAFKA": "k:1",
        "RISKWATCH_WORKER_DATA_DIR": "d",
    }
    only_env = _worker([], env)
    assert (only_env.registry, only_env.kafka.bootstrap, only_env.kafka.user) == (
        Path("r.yaml"),
        "k:1",
        "riskwatch-worker",
    )


def test_the_worker_group_defaults_to_its_prefix() -> None:
    assert _worker(WORKER_ARGV, {}).group == "riskwatch-worker-rw"
    assert _worker([*WORKER_ARGV, "--topic-prefix", "t1"], {}).group == "riskwatch-worker-t1"
    assert _worker([*WORKER_ARGV, "--group", "g"], {}).group == "g"


def test_a_bad_value_names_its_source_the_option_and_why() -> None:
    with pytest.raises(ConfigError) as from_env:
        _worker(WORKER_ARGV, {"RISKWATCH_WORKER_TICK_EVERY_S": "soon"})
    assert str(from_env.value).startswith(
        "environment variable RISKWATCH_WORKER_TICK_EVERY_S: --tick-every-s:"
    )
    assert "'soon'" in str(from_env.value)
    with pytest.raises(ConfigError, match=r"^flag --port: --port: .*less than or equal to 65535"):
        _worker([*WORKER_ARGV, "--port", "70000"], {})
    with pytest.raises(ConfigError, match=r"^flag --tick-every-s: --tick-every-s: .*greater than 0"):
        _worker([*WORKER_ARGV, "--tick-every-s", "0"], {})
    with pytest.raises(
        ConfigError, match=r"--data-dir: required: give --data-dir or set RISKWATCH_WORKER_DATA_DIR"
    ):
        _worker(["--registry", "r.yaml", "--kafka", "k:9092"], {})
    with pytest.raises(ConfigError, match=r"--log-level: .*'debug', 'info', 'warning' or 'error'"):
        _worker([*WORKER_ARGV, "--log-level", "loud"], {})


def test_a_wrong_option_is_reported_before_a_missing_password() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, WorkerSettings)
    with pytest.raises(ConfigError, match="--registry: required"):
        settings_from(WorkerSettings, parser.parse_args(["--kafka", "k:1", "--data-dir", "d"]), {})
    with pytest.raises(ConfigError, match="RISKWATCH_KAFKA_PASSWORD: empty"):
        settings_from(WorkerSettings, parser.parse_args(WORKER_ARGV), {})


def test_options_checked_together_say_which() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, AlertingSettings)
    args = parser.parse_args(["--routes", "r.yaml", "--kafka", "k:1", "--tls-certfile", "c.pem"])
    with pytest.raises(ConfigError, match="--tls-certfile and --tls-keyfile go together"):
        settings_from(AlertingSettings, args, KAFKA_ENV)


def test_one_spelling_per_concept_in_every_command() -> None:
    flags = {model.__name__: {flag(name) for name in options_of(model)} for model in MODELS}
    for name, spelled in flags.items():
        assert {"--log-level", "--group", "--metrics-host", "--metrics-port", "--kafka"} <= spelled, name
    retired = {
        "--loglevel",
        "--bind",
        "--http-host",
        "--http-port",
        "--web-port",
        "--group-id",
        "--share-group",
    }
    assert not retired & set().union(*flags.values())
    assert {"--host", "--port"} <= flags["WorkerSettings"] & flags["AlertingSettings"]


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("--loglevel", "--log-level", "info"),
        ("--bind", "--host", "0.0.0.0"),
        ("--web-port", "--port", "7000"),
        ("--tick-every", "--tick-every-s", "3"),
        ("--recovery-timeout", "--recovery-timeout-s", "0"),
    ],
)
def test_an_old_spelling_still_works_and_says_it_is_deprecated(
    old: str, new: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = _worker([*WORKER_ARGV, new, value], {})
    assert "deprecated" not in capsys.readouterr().err
    before = _worker([*WORKER_ARGV, old, value], {})
    err = capsys.readouterr().err
    assert f"riskwatch worker: warning: {old} is deprecated" in err and f"use {new}" in err, err
    assert before == now


def test_routes_file_is_routes_in_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    example = str(ROOT / "deploy" / "examples" / "routes.yaml")
    assert main(["routes", "check", "--routes", example]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(["routes", "check", "--config", example]) == 0
    err = capsys.readouterr().err
    assert "--config is deprecated" in err and "use --routes" in err


@pytest.mark.parametrize("command", ["worker", "bridge", "historian", "alerting"])
def test_help_names_each_variable_and_shows_no_secret(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("RISKWATCH_KAFKA_PASSWORD", "RISKWATCH_MQTT_PASSWORD", "RISKWATCH_INFLUX_TOKEN"):
        monkeypatch.setenv(var, "s3cret-value")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert f"RISKWATCH_{'HISTORIAN' if command == 'historian' else command.upper()}_LOG_LEVEL" in out
    assert "s3cret-value" not in out


def test_settings_never_show_a_password() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, BridgeSettings)
    settings = settings_from(
        BridgeSettings, parser.parse_args(["--registry", "r", "--kafka", "k:1"]), KAFKA_ENV
    )
    assert "k4fka-pw" not in repr(settings) and "k4fka-pw" not in str(settings)


def test_docs_tables_match_the_declarations() -> None:
    """`python -m riskwatch.options docs/*.md` regenerates them; run it when this fails."""
    covered = set()
    for path in sorted((ROOT / "docs").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        assert rendered_docs(text) == text, f"{path.name}: options table stale"
        covered |= {model.__name__ for model in [*MODELS, RunSettings] if f":{model.__name__} -->" in text}
    assert covered == {model.__name__ for model in [*MODELS, RunSettings]}


def test_a_stale_table_is_caught() -> None:
    stale = "<!-- options: processors.history.cli:HistorianSettings -->\n| old |\n<!-- end options -->"
    fresh = rendered_docs(stale)
    assert fresh != stale and "`RISKWATCH_HISTORIAN_PACE`" in fresh and rendered_docs(fresh) == fresh
