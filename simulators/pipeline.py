"""The riskwatch services as child processes, for the demo, the end-to-end benchmark and tests.

Each service is started as `python -m riskwatch COMMAND ...` with the command line `riskwatch run` uses
(deploy/run.py), its pid recorded in `run_dir/pids/NAME.pid`, its output in `run_dir/logs/NAME.log`, and
it is stopped by that pid only: SIGTERM, then SIGKILL after a grace period. With a `supervisor`
(deploy/supervisor.py, as the demo does) each service is also watched and restarted with backoff like
under `riskwatch run`; without one, a test can kill and restart services itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from deploy.run import REPO, alerting_scheme, alerting_spec, bridge_spec, historian_spec, worker_spec
from deploy.supervisor import ChildSpec, Supervisor, spawn, terminate
from riskwatch.tls import ClientTLS
from simulators.sensors import SimulatorError

__all__ = ["REPO", "Pipeline", "PipelineRun", "Service", "free_port", "wait_http"]

STOP_GRACE_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None, cafile: Path | None = None
) -> bool:
    """True once `url` answers below 500 (a 503 means "not ready yet"); False on timeout or if `proc` died.
    An https URL's certificate is verified against `cafile`."""
    context = ClientTLS(cafile).context() if url.startswith("https:") else None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1.0, context=context):
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
    metrics_url: str = ""


@dataclass(slots=True)
class Pipeline:
    """Bridge, worker and alerting for one registry and topic prefix, against a running stack."""

    run_dir: Path
    registry: Path
    stack: Any  # deploy.stack.StackInfo
    topic_prefix: str = "rw"
    services: dict[str, Service] = field(default_factory=dict)
    # bridge service name -> (its command line, its MQTT password): to retire its session at stop
    bridge_sessions: dict[str, tuple[list[str], str]] = field(default_factory=dict)
    supervisor: Supervisor | None = None  # restarts crashed or unhealthy services (the demo)

    def __post_init__(self) -> None:
        if self.supervisor is not None and self.supervisor.on_start is None:
            self.supervisor.on_start = self.on_restart

    def _start(self, spec: ChildSpec, ready_url: str = "") -> Service:
        log = self.run_dir / "logs" / f"{spec.name}.log"
        proc = self.supervisor.add(spec).proc if self.supervisor is not None else spawn(spec, self.run_dir)
        service = Service(spec.name, proc, log, ready_url)  # type: ignore[arg-type]
        self.services[spec.name] = service
        return service

    def on_restart(self, child: Any) -> None:
        """The supervisor's `on_start`: keep `services[name].proc` the running process."""
        if child.name in self.services:
            self.services[child.name].proc = child.proc

    @property
    def bridge_argv(self) -> list[str]:
        """The first bridge's command line (after `python -m riskwatch`)."""
        return self.bridge_sessions["bridge"][0] if "bridge" in self.bridge_sessions else []

    def start_bridge(self, extra: list[str] | None = None, instance: int = 1) -> Service:
        """Bridge `instance` (1: "bridge" on the stack's bridge account; k > 1: "bridge-k" on an account of
        its own, its own spool, in the same share group, so the bridges split the gateways' messages)."""
        port = free_port()
        name, stack = "bridge", self.stack
        if instance > 1:
            from deploy.stack import add_bridge_accounts

            name, user = f"bridge-{instance}", f"{self.stack.bridge_user}-{instance}"
            password = add_bridge_accounts(self.stack, [user])[user]
            stack = dataclasses.replace(self.stack, bridge_user=user, bridge_password=password)
            extra = ["--spool-dir", str(self.run_dir / f"spool-{instance}"), *(extra or [])]
        # Own share group (from the prefix): a stopped bridge's persistent session stays in its group until
        # it expires and keeps receiving its round-robin share, which a new bridge would never see.
        spec = bridge_spec(
            stack, self.registry, self.topic_prefix, self.run_dir, port,
            ["--mqtt-client-id", f"riskwatch-{name}-{self.topic_prefix}", *(extra or [])],
        )  # fmt: skip
        spec = dataclasses.replace(spec, name=name)
        self.bridge_sessions[name] = (spec.argv[3:], stack.bridge_password)
        return self._start(spec, f"http://127.0.0.1:{port}/metrics")

    def start_worker(
        self, ready_site: str = "", extra: list[str] | None = None, name: str = "worker"
    ) -> Service:
        """With `ready_site`, ready means its state is restored and it serves that site's colour (the
        web view answers 503 while partitions are assigned), not merely that the process is up. Several
        workers of one pipeline (sharing its partitions) each get a `name` and a data folder of their own."""
        web, metrics = free_port(), free_port()
        spec = worker_spec(self.stack, self.registry, self.topic_prefix, self.run_dir, web, metrics, extra)
        if name != "worker":  # argparse keeps the last --data-dir
            spec = dataclasses.replace(
                spec, name=name, argv=[*spec.argv, "--data-dir", str(self.run_dir / name)]
            )
        ready = (
            f"http://127.0.0.1:{web}/site/{ready_site}/"
            if ready_site
            else f"http://127.0.0.1:{metrics}/metrics"
        )
        service = self._start(spec, ready)
        service.metrics_url = f"http://127.0.0.1:{metrics}/metrics"
        return service

    def readings_counted(self, worker: str = "worker") -> float | None:
        """The worker process's own readings counter (since it started; cheap to poll, unlike `evaluated`,
        which asks for every site)."""
        try:
            with urllib.request.urlopen(self.services[worker].metrics_url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("riskwatch_readings_total "):
                return float(line.split()[1])
        return None

    def start_historian(self, extra: list[str] | None = None) -> Service:
        """Transitions and minutes into the stack's InfluxDB; ready once its /healthz answers."""
        port = free_port()
        spec = historian_spec(self.stack, self.topic_prefix, port, extra)
        return self._start(spec, f"http://127.0.0.1:{port}/healthz")

    def start_alerting(
        self,
        routes: Path,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Service:
        port = port or free_port()
        spec = alerting_spec(
            self.stack, self.registry, routes, self.topic_prefix, self.run_dir, port, extra, env
        )
        return self._start(spec, f"{alerting_scheme(self.stack)}://127.0.0.1:{port}/")

    def start_all(
        self,
        routes: Path,
        ready_site: str,
        alerting_env: dict[str, str],
        timeout_s: float,
        alerting_port: int | None = None,
        bridges: int = 1,
    ) -> Service:
        """`bridges` bridges, worker (ready once it serves `ready_site`), historian and alerting, in the
        order data flows, then wait until each answers. Returns alerting's service: its address is the
        board's."""
        for instance in range(1, bridges + 1):
            self.start_bridge(instance=instance)
        self.start_worker(ready_site=ready_site)
        self.start_historian()
        alerting = self.start_alerting(routes, env=alerting_env, port=alerting_port)
        self.wait_ready(timeout_s)
        return alerting

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Every started service answers on its HTTP port; else a clear error naming it and its log."""
        for service in self.services.values():
            # A supervised service that died is restarted: wait for the new one rather than give up.
            proc = None if self.supervisor is not None else service.proc
            if service.ready_url and not wait_http(service.ready_url, timeout_s, proc, self.stack.cafile):
                tail = service.log.read_text(errors="replace")[-1500:] if service.log.exists() else ""
                raise SimulatorError(
                    f"{service.name} did not become ready (exit code {service.proc.poll()}); "
                    f"log {service.log}:\n{tail}"
                )

    def evaluated(self, sites: list[str], timeout_s: float = 5.0, worker: str = "worker") -> int | None:
        """Readings the engine evaluated, summed over `sites` (each site's count in the worker's site view,
        kept in its snapshots, so exact across restarts); None while the worker does not serve them
        (restoring or rebalancing)."""
        by_site = self.evaluated_by_site(sites, timeout_s, worker)
        return None if by_site is None else sum(by_site.values())

    def evaluated_by_site(
        self, sites: list[str], timeout_s: float = 5.0, worker: str = "worker"
    ) -> dict[str, int] | None:
        """`evaluated`, site by site."""
        base = self.services[worker].ready_url.split("/site/")[0]
        out = {}
        for site in sites:
            try:
                with urllib.request.urlopen(f"{base}/site/{site}/", timeout=timeout_s) as response:
                    out[site] = int(orjson.loads(response.read())["readings_evaluated"])
            except OSError:
                return None
        return out

    def dead(self) -> list[str]:
        """Services that exited (a supervised one counts only while it is not being restarted: never)."""
        if self.supervisor is not None:
            return []
        return [name for name, s in self.services.items() if s.proc.poll() is not None]

    def stop(self) -> None:
        """Stop in reverse start order, by the recorded pids only."""
        if self.supervisor is not None:
            self.supervisor.stop_all()
            self.services.clear()
        for name in reversed(list(self.services)):
            service = self.services.pop(name)
            terminate(service.proc, STOP_GRACE_S)
            with contextlib.suppress(FileNotFoundError):
                (self.run_dir / "pids" / f"{name}.pid").unlink()
        for name in list(self.bridge_sessions):
            self._retire_bridge_session(name)

    def _retire_bridge_session(self, name: str) -> None:
        """This pipeline is ephemeral: discard its bridges' persistent sessions, or the broker would go on
        queueing their share of every message (their own share group) until the sessions expire in days."""
        argv, password = self.bridge_sessions.pop(name)
        with (self.run_dir / "logs" / f"{name}.log").open("ab") as out:
            subprocess.run(
                [sys.executable, "-m", "riskwatch", *argv, "--retire"],
                cwd=REPO,
                env={**os.environ, "RISKWATCH_MQTT_PASSWORD": password},
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=30,
                check=False,
            )


class PipelineRun:
    """What the demo and the end-to-end benchmark run around a Pipeline: the local stack (stopped at the
    end only if they started it), a webhook receiver and Kafka readers. `close_run` stops them all."""

    def __init__(self, stack_home: Path) -> None:
        self.stack_home = stack_home
        self.started_stack = False
        self.receiver: Any = None  # simulators.webhook.WebhookReceiver
        self.pipeline: Pipeline | None = None
        self.readers: list[Any] = []  # simulators.kafka_watch.TopicReader

    def close_run(self) -> None:
        from simulators.stackctl import stop_stack  # stackctl imports this module

        for reader in self.readers:
            with contextlib.suppress(Exception):
                reader.close()
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.receiver is not None:
            self.receiver.stop()
        if self.started_stack:
            stop_stack(self.stack_home)
