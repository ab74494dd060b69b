"""The riskwatch services as child processes, for the demo and the end-to-end benchmark.

Each service is started as `python -m riskwatch COMMAND ...` (the flags of ingest/cli.py,
processors/cli.py, alerting/cli.py), its pid recorded in `run_dir/pids/NAME.pid`, its output in
`run_dir/logs/NAME.log`, and it is stopped by that pid only: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.sensors import SimulatorError

REPO = Path(os.path.abspath(__file__)).parents[1]  # the checkout the services run from (cwd)
STOP_GRACE_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """True once `url` answers below 500 (a 503 means "not ready yet"); False on timeout or if `proc` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return True
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return True
            time.sleep(0.5)
        except OSError:
            time.sleep(0.2)
    return False


@dataclass(slots=True)
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    ready_url: str = ""


@dataclass(slots=True)
class Pipeline:
    """Bridge, worker and alerting for one registry and topic prefix, against a running stack."""

    run_dir: Path
    registry: Path
    stack: Any  # deploy.stack.StackInfo
    topic_prefix: str = "rw"
    services: dict[str, Service] = field(default_factory=dict)
    bridge_argv: list[str] = field(default_factory=list)  # to retire its MQTT session at stop

    def _start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, ready_url: str = ""
    ) -> Service:
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "pids").mkdir(parents=True, exist_ok=True)
        log = self.run_dir / "logs" / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "riskwatch", *argv],
                cwd=REPO,
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the demo reaches us, and we stop children in order
            )
        (self.run_dir / "pids" / f"{name}.pid").write_text(str(proc.pid))
        service = Service(name, proc, log, ready_url)
        self.services[name] = service
        return service

    def start_bridge(self, extra: list[str] | None = None) -> Service:
        port = free_port()
        argv = [
            "bridge", "--registry", str(self.registry), "--mqtt-host", self.stack.mqtt_host,
            "--mqtt-port", str(self.stack.mqtt_port), "--mqtt-user", self.stack.bridge_user,
            "--mqtt-password-env", "RISKWATCH_MQTT_PASSWORD", "--kafka", self.stack.kafka_bootstrap,
            "--topic-prefix", self.topic_prefix, "--spool-dir", str(self.run_dir / "spool"),
            "--metrics-port", str(port), "--client-id", f"riskwatch-bridge-{self.topic_prefix}",
            # Own share group: a stopped bridge's persistent session stays in its group until it
            # expires and keeps receiving its round-robin share, which a new bridge would never see.
            "--share-group", f"riskwatch-{self.topic_prefix}",
            *(extra or []),
        ]  # fmt: skip
        env = {"RISKWATCH_MQTT_PASSWORD": self.stack.bridge_password}
        self.bridge_argv = argv
        return self._start("bridge", argv, env, f"http://127.0.0.1:{port}/metrics")

    def start_worker(self, ready_site: str = "", extra: list[str] | None = None) -> Service:
        """With `ready_site`, ready means its state is restored and it serves that site's colour (the
        web view answers 503 while partitions are assigned), not merely that the process is up."""
        web, metrics = free_port(), free_port()
        argv = [
            "worker", "--registry", str(self.registry), "--kafka", self.stack.kafka_bootstrap,
            "--topic-prefix", self.topic_prefix, "--data-dir", str(self.run_dir / "worker"),
            "--web-port", str(web), "--metrics-port", str(metrics),
            "--influx-url", self.stack.influx_url, "--influx-token-env", "RISKWATCH_INFLUX_TOKEN",
            "--influx-org", self.stack.influx_org, "--influx-bucket", self.stack.influx_bucket,
            "--group", f"riskwatch-worker-{self.topic_prefix}",
            *(extra or []),
        ]  # fmt: skip
        env = {"RISKWATCH_INFLUX_TOKEN": self.stack.influx_token}
        ready = (
            f"http://127.0.0.1:{web}/site/{ready_site}/"
            if ready_site
            else f"http://127.0.0.1:{metrics}/metrics"
        )
        return self._start("worker", argv, env, ready)

    def start_alerting(
        self, routes: Path, extra: list[str] | None = None, env: dict[str, str] | None = None
    ) -> Service:
        port = free_port()
        argv = [
            "alerting", "--routes", str(routes), "--kafka", self.stack.kafka_bootstrap,
            "--topic-prefix", self.topic_prefix, "--db", str(self.run_dir / "alerting.db"),
            "--http-port", str(port), "--registry", str(self.registry),
            "--group-id", f"riskwatch-alerting-{self.topic_prefix}", *(extra or []),
        ]  # fmt: skip
        return self._start("alerting", argv, env, f"http://127.0.0.1:{port}/")

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Every started service answers on its HTTP port; else a clear error naming it and its log."""
        for service in self.services.values():
            if service.ready_url and not wait_http(service.ready_url, timeout_s, service.proc):
                tail = service.log.read_text(errors="replace")[-1500:] if service.log.exists() else ""
                raise SimulatorError(
                    f"{service.name} did not become ready (exit code {service.proc.poll()}); "
                    f"log {service.log}:\n{tail}"
                )

    def dead(self) -> list[str]:
        return [name for name, s in self.services.items() if s.proc.poll() is not None]

    def stop(self) -> None:
        """Stop in reverse start order, by the recorded pids only."""
        for name in reversed(list(self.services)):
            service = self.services.pop(name)
            proc = service.proc
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            with contextlib.suppress(FileNotFoundError):
                (self.run_dir / "pids" / f"{name}.pid").unlink()
        if self.bridge_argv:
            self._retire_bridge_session()

    def _retire_bridge_session(self) -> None:
        """This pipeline is ephemeral: discard its bridge's persistent session, or the broker would go on
        queueing every message for it (its own share group) until the session expires in days."""
        log = self.run_dir / "logs" / "bridge.log"
        with log.open("ab") as out:
            subprocess.run(
                [sys.executable, "-m", "riskwatch", *self.bridge_argv, "--retire"],
                cwd=REPO,
                env={**os.environ, "RISKWATCH_MQTT_PASSWORD": self.stack.bridge_password},
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=30,
                check=False,
            )
        self.bridge_argv = []
