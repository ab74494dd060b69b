"""`riskwatch run` refuses a bad configuration before starting anything, naming the file and the field (or
the option); the component command lines it builds parse with each component's own options."""

from __future__ import annotations

import argparse
import importlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from deploy.run import Endpoints, alerting_spec, bridge_spec, historian_spec, worker_spec
from riskwatch.cli import main
from riskwatch.options import settings_from
from simulators.cli import DEFAULT_REGISTRY

ROUTES = Path(__file__).resolve().parents[2] / "simulators" / "demo_routes.yaml"


@pytest.fixture
def stack_home(tmp_path: Path) -> Path:
    """A configured (not running) local stack: `riskwatch run` only reads its addresses."""
    from deploy.stack.settings import StackSettings

    home = tmp_path / "stack"
    home.mkdir()
    StackSettings.create().save(home / "stack.json")
    return home


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["run", *argv])
    return code, capsys.readouterr().err


def _argv(stack_home: Path, tmp_path: Path, **over: str) -> list[str]:
    options = {
        "--registry": str(DEFAULT_REGISTRY),
        "--routes": str(ROUTES),
        "--stack-home": str(stack_home),
        "--run-dir": str(tmp_path / "run"),
        **over,
    }
    return [x for k, v in options.items() for x in (k, v)]


@pytest.fixture(autouse=True)
def _webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKWATCH_DEMO_WEBHOOK_SECRET", "s3cret")


def test_a_bad_registry_is_named_with_its_field(stack_home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "registry.yaml"
    bad.write_text("regions: [{id: R1, sites: [{id: S1, industry: bakery}]}]\n")
    code, err = _run(capsys, *_argv(stack_home, tmp_path, **{"--registry": str(bad)}))
    assert code == 1
    assert err.startswith("riskwatch run: error:") and f"{bad}: regions[0].sites: " in err, err
    assert not (tmp_path / "run").exists()  # nothing started


def test_a_missing_routes_file_is_named(stack_home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nope.yaml"
    code, err = _run(capsys, *_argv(stack_home, tmp_path, **{"--routes": str(missing)}))
    assert code == 1 and f"{missing}: (file): cannot read" in err, err


def test_a_missing_channel_secret_is_named(stack_home: Path, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("RISKWATCH_DEMO_WEBHOOK_SECRET")
    code, err = _run(capsys, *_argv(stack_home, tmp_path))
    assert code == 1 and str(ROUTES) in err and "RISKWATCH_DEMO_WEBHOOK_SECRET" in err, err


def test_a_taken_port_is_named_by_its_option(stack_home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        code, err = _run(capsys, *_argv(stack_home, tmp_path, **{"--alerting-port": port}))
    assert code == 1 and f"--alerting-port: port {port} is taken" in err, err


def test_the_same_port_twice_is_refused(stack_home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, err = _run(
        capsys,
        *_argv(stack_home, tmp_path, **{"--worker-port": "18080", "--alerting-port": "18080"}),
    )
    assert code == 1 and "--alerting-port and --worker-port are both 18080" in err, err


def test_no_stack_and_no_addresses_says_what_to_do(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, err = _run(capsys, *_argv(tmp_path / "nostack", tmp_path))
    assert code == 1 and "riskwatch stack up" in err, err


def test_an_explicit_bridge_account_needs_its_password(
    stack_home: Path, tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("RISKWATCH_MQTT_PASSWORD", raising=False)
    code, err = _run(capsys, *_argv(stack_home, tmp_path, **{"--mqtt-user": "bridge-2"}))
    assert code == 1 and "set $RISKWATCH_MQTT_PASSWORD" in err, err


def test_bad_mqtt_address_is_named(stack_home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, err = _run(capsys, *_argv(stack_home, tmp_path, **{"--mqtt": "localhost"}))
    assert code == 1 and "--mqtt: expected HOST:PORT, got 'localhost'" in err, err


KAFKA_PW = {"bridge": "kb-secret", "worker": "kw-secret", "alerting": "ka-secret", "history": "kh-secret"}
EP = Endpoints("k:9092", "m", 8883, "bridge-1", "pw", "http://i:8086", "tok", kafka_passwords=KAFKA_PW)


def _kafka_env(component: str) -> dict[str, str]:
    """What a child gets to log in to Kafka as its own account: env only, never its argv."""
    return {"RISKWATCH_KAFKA_USER": f"riskwatch-{component}", "RISKWATCH_KAFKA_PASSWORD": KAFKA_PW[component],
            "RISKWATCH_KAFKA_CA": ""}  # fmt: skip


def _parses(component: str, argv: list[str], env: dict[str, str]) -> Any:
    """The settings the component's own CLI makes of `argv` and `env`, as it would run them."""
    module, model = {
        "bridge": ("ingest.cli", "ingest.settings:BridgeSettings"),
        "worker": ("processors.cli", "processors.app:WorkerSettings"),
        "alerting": ("alerting.cli", "alerting.cli:AlertingSettings"),
        "historian": ("processors.history.cli", "processors.history.cli:HistorianSettings"),
    }[component]  # fmt: skip
    assert argv[1:4] == ["-m", "riskwatch", component]
    parser = argparse.ArgumentParser()
    importlib.import_module(module).configure(parser)  # type: ignore[attr-defined]
    model_module, model_name = model.split(":")
    return settings_from(
        getattr(importlib.import_module(model_module), model_name), parser.parse_args(argv[4:]), env
    )


def test_component_command_lines_parse_and_keep_secrets_off_them(tmp_path: Path) -> None:
    reg, routes = Path("reg.yaml"), Path("routes.yaml")
    bridge = bridge_spec(EP, reg, "p1", tmp_path, 9108)
    args = _parses("bridge", bridge.argv, bridge.env)
    assert (args.mqtt_user, args.mqtt_port, args.group) == ("bridge-1", 8883, "riskwatch-p1")
    assert bridge.env == {"RISKWATCH_MQTT_PASSWORD": "pw", **_kafka_env("bridge")} and "pw" not in bridge.argv
    assert not any("secret" in arg for spec in (bridge,) for arg in spec.argv)
    assert bridge.health_url == "http://127.0.0.1:9108/healthz"
    worker = worker_spec(EP, reg, "p1", tmp_path, 6066, 9101)
    args = _parses("worker", worker.argv, worker.env)
    assert (args.group, args.port) == ("riskwatch-worker-p1", 6066)
    assert worker.env == _kafka_env("worker") and worker.health_url == "http://127.0.0.1:6066/healthz"
    assert not any("secret" in arg for arg in worker.argv)
    historian = historian_spec(EP, "p1", 9103)
    args = _parses("historian", historian.argv, historian.env)
    assert (args.group, args.influx_url, args.metrics_port) == (
        "riskwatch-history-p1",
        "http://i:8086",
        9103,
    )
    assert (
        historian.env == {"RISKWATCH_INFLUX_TOKEN": "tok", **_kafka_env("history")}
        and "tok" not in historian.argv
    )
    assert not any("secret" in arg for arg in historian.argv)
    alerting = alerting_spec(EP, reg, routes, "rw", tmp_path, 8080)
    args = _parses("alerting", alerting.argv, alerting.env)
    assert args.group == "riskwatch-alerting"  # the default prefix keeps the components' own groups
    assert alerting.health_url == "http://127.0.0.1:8080/healthz"
    # alerting reads the history for /api/history: the same InfluxDB; its tokens and Kafka password only in
    # the environment
    assert args.influx_url == "http://i:8086"
    assert alerting.env == {**_kafka_env("alerting"), "RISKWATCH_INFLUX_TOKEN": "tok"}
    assert "tok" not in json.dumps(alerting.argv) and not any("secret" in arg for arg in alerting.argv)


class _Proc:
    def __init__(self, pid: int) -> None:
        self.pid, self.code = pid, None

    def poll(self) -> int | None:
        return self.code


def test_a_supervised_pipeline_follows_restarts(tmp_path: Path) -> None:
    """The demo's Pipeline: `services[name].proc` is the running process after a restart, and a
    supervised service is never reported dead (it is being restarted)."""
    from deploy.supervisor import Backoff, Supervisor
    from simulators.pipeline import Pipeline

    pids = iter(range(100, 200))
    now = [0.0]
    lines: list[str] = []
    sup = Supervisor(
        tmp_path, lines.append, backoff=Backoff(), clock=lambda: now[0],
        spawn=lambda spec, run_dir: _Proc(next(pids)),
    )  # fmt: skip
    pipe = Pipeline(tmp_path, Path("reg.yaml"), EP, "p2", supervisor=sup)
    first = pipe.start_bridge().proc
    assert pipe.bridge_argv[0] == "bridge" and "--group" in pipe.bridge_argv
    first.code = 70  # type: ignore[union-attr]
    sup.tick()
    assert pipe.dead() == []
    now[0] = 1.5
    sup.tick()
    assert pipe.services["bridge"].proc is not first and pipe.services["bridge"].proc.pid == 101
    assert any(line.startswith("bridge exited with status 70") for line in lines)


def test_riskwatch_run_starts_the_historian_when_there_is_an_influxdb(tmp_path: Path) -> None:
    from deploy.run import RunSettings, configure, specs

    parser = argparse.ArgumentParser()
    configure(parser)
    args = settings_from(
        RunSettings, parser.parse_args(["--registry", "reg.yaml", "--routes", "routes.yaml"]), {}
    )
    assert [s.name for s in specs(args, EP, tmp_path)] == ["bridge", "worker", "historian", "alerting"]
    no_influx = Endpoints("k:9092", "m", 8883, "bridge-1", "pw", kafka_passwords=KAFKA_PW)
    assert [s.name for s in specs(args, no_influx, tmp_path)] == ["bridge", "worker", "alerting"]
    (historian,) = [s for s in specs(args, EP, tmp_path) if s.name == "historian"]
    assert historian.health_url == "http://127.0.0.1:9103/healthz"
