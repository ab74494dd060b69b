"""`riskwatch demo`: the whole pipeline with simulated plants, a scripted incident sequence and a live view.

Starts the local stack if it is not running (`riskwatch stack up`), then the bridge, the worker and
alerting as child processes supervised as under `riskwatch run` (restarted with backoff when one exits or
turns unhealthy; pids in .riskwatch/demo/PREFIX/pids/, what the supervisor did in logs/run.log), a local
webhook receiver that alerting routes to, and the plants of simulators/scenarios/registry.yaml playing simulators/demo_script.yaml.
Each run uses fresh topics (prefix demoYYYYmmddHHMMSS) and its own folder .riskwatch/demo/PREFIX/.
Ctrl-C (or `--duration`) stops everything it started, by pid, and prints a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from deploy.run import alerting_scheme
from deploy.supervisor import Child, Supervisor, say_to
from riskwatch.paths import home_dir
from riskwatch.topics import Topics
from simulators.kafka_watch import TelemetryCounter, TopicReader, TransitionReader
from simulators.pipeline import Pipeline, PipelineRun, free_port
from simulators.scenarios.checker import Scope, Seen, check
from simulators.scenarios.model import load_scenario
from simulators.scenarios.runner import ScenarioRunner, make_clients, scope_of
from simulators.simulated_gateway import Broker
from simulators.simulation import Simulation
from simulators.stackctl import ensure_stack
from simulators.view import DemoState, render, summary
from simulators.webhook import WebhookReceiver

HERE = Path(__file__).parent
SCRIPT = HERE / "demo_script.yaml"
ROUTES_TEMPLATE = HERE / "demo_routes.yaml"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--script", type=Path, default=SCRIPT, help="incident sequence (scenario YAML)")
    parser.add_argument("--plain", action="store_true", help="print lines instead of the live view")
    parser.add_argument("--stack-home", type=Path, help="local stack folder (default .riskwatch/stack)")
    parser.add_argument(
        "--topic-prefix",
        help="Kafka topic prefix (default: a fresh demoYYYYmmddHHMMSS per run, so every run starts clean)",
    )


class Demo(PipelineRun):
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = home_dir()
        super().__init__(args.stack_home or self.home / "stack")
        # A fresh prefix per run: no replayed backlog, restored worker state or open alerts from an
        # earlier run leak into this one (each run has its own topics, worker state and alert store).
        self.prefix = args.topic_prefix or f"demo{time.strftime('%Y%m%d%H%M%S')}"
        self.run_dir = self.home / "demo" / self.prefix
        self.script = load_scenario(args.script)
        self.registry_path = self.script.registry_path()
        self.stop = threading.Event()
        self.plain = args.plain or not sys.stdout.isatty()
        self.supervisor: Supervisor | None = None
        self.state: DemoState | None = None
        self.records: list[Any] = []
        self.clients: dict[str, Any] = {}

    def say(self, text: str) -> None:
        if self.plain:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def start(self) -> DemoState:
        from deploy.stack import Stack, ensure_topics
        from riskwatch.registry import load_registry

        registry = load_registry(self.registry_path)
        print(f"demo: registry {self.registry_path}; starting the stack if needed ...", flush=True)
        info, self.started_stack = ensure_stack(self.stack_home, self.registry_path)
        topics = Topics(self.prefix)
        ensure_topics(info, topics, 3)
        secret = secrets.token_hex(16)
        state = DemoState.for_sites({s.id: (s.name, s.industry) for s in registry.sites.values()})
        self.receiver = WebhookReceiver(secret=secret, on_delivery=lambda d: self._alert(state, d)).start()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        routes = self.run_dir / "routes.yaml"
        # Acknowledge links in messages open the board's desk over HTTPS on the port alerting will use.
        http_port = free_port()
        doc = yaml.safe_load(ROUTES_TEMPLATE.read_text().replace("{webhook_url}", self.receiver.url))
        doc["defaults"]["ack_url"] = f"{alerting_scheme(info)}://127.0.0.1:{http_port}/alerts/{{alert_id}}"
        routes.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        # The board's demo user (a province supervisor) and a one-time login link for it.
        board_token, login_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with routes.open("a", encoding="utf-8") as f:
            f.write("api_tokens:\n  - {user: demo, role: supervisor, token_env: RISKWATCH_DEMO_TOKEN}\n")
        # Gateways connect before the bridge subscribes: their retained "online" replaces any retained
        # "offline" a previous run left in Mosquitto, which the bridge would otherwise deliver as news.
        passwords = Stack(self.stack_home).add_gateways((g.site, g.id) for g in registry.gateways.values())
        self.broker = Broker(info.mqtt_host, info.mqtt_port, passwords, info.client_tls)
        self.sim = Simulation.from_registry(registry, seed=self.script.seed, speed=self.script.speed)
        self.clients = make_clients(self.sim, self.broker)
        for client in self.clients.values():
            client.connect()
        # In the live view the supervisor's lines go to logs/run.log only; restarts show in the header.
        self.state = state
        keep = say_to(None, self.run_dir / "logs" / "run.log")

        def supervisor_says(text: str) -> None:
            keep(text)
            self.say(text)

        self.supervisor = Supervisor(self.run_dir, supervisor_says, on_start=self._started)
        self.pipeline = Pipeline(
            self.run_dir, self.registry_path, info, topics.prefix, supervisor=self.supervisor
        )
        self.supervisor.start_thread()  # a service dying while the others start is restarted too
        print("demo: starting bridge, worker, historian and alerting (supervised) ...", flush=True)
        board = self.pipeline.start_all(routes, next(iter(registry.sites)), {
            "RISKWATCH_DEMO_WEBHOOK_SECRET": secret, "RISKWATCH_DEMO_TOKEN": board_token,
            "RISKWATCH_LOGIN_LINK": f"demo:{login_secret}",
        }, 120.0, alerting_port=http_port)  # fmt: skip
        state.services = {name: f"pid {s.proc.pid}" for name, s in self.pipeline.services.items()}
        print(
            "demo: "
            + ", ".join(f"{k} {v}" for k, v in state.services.items())
            + f"; logs in {self.run_dir}/logs"
        )
        board_url = board.ready_url.rstrip("/")
        print(
            f"demo: the board is at {board_url}/board/ ; log in once with {board_url}/board/login#once={login_secret}"
        )
        self.warnings = TransitionReader(TopicReader(info.kafka("tools"), topics.warnings))
        self.telemetry = TelemetryCounter(
            TopicReader(info.kafka("tools"), topics.telemetry), sites=registry.sites
        )
        self.readers = [self.warnings.reader, self.telemetry.reader]
        self.registry = registry
        state.started = time.time()
        return state

    def _started(self, child: Child) -> None:
        """A service (re)started: keep the pipeline's process and the view's header current."""
        if self.pipeline is not None:
            self.pipeline.on_restart(child)
        if self.state is not None and child.proc is not None:
            again = f", restarted {child.restarts}x" if child.restarts else ""
            self.state.services[child.name] = f"pid {child.proc.pid}{again}"

    def _alert(self, state: DemoState, delivery: Any) -> None:
        state.on_alert(delivery)
        if not delivery.duplicate:
            self.say(f"ALERT  {delivery.colour:<7} {delivery.title}")

    def play(self, state: DemoState) -> None:
        """Repeat the incident script until stopped, keeping the gateways connected across rounds."""
        sim, clients = self.sim, self.clients
        scope = scope_of(sim, {s.id: s.region for s in self.registry.sites.values()})
        round_no = 0
        try:
            while not self.stop.is_set():
                round_no += 1

                def log(line: str, n: int = round_no) -> None:
                    state.injections.append(f"round {n} {line.strip()}")
                    self.say(f"round {n} {line.strip()}")

                runner = ScenarioRunner(self.script, sim, self.broker, None, scope, log=log, stop=self.stop,
                                        clients=clients)  # fmt: skip
                self.records.append(runner.record)
                runner.run()
                sim = Simulation.from_registry(
                    self.registry, seed=self.script.seed + round_no, speed=self.script.speed
                )
        finally:
            for client in clients.values():
                client.close(timeout=5.0)
            self.clients = {}

    def watch(self, state: DemoState, until: float) -> None:
        """Poll Kafka and refresh the view until `until` or Ctrl-C."""
        live = None
        if not self.plain:
            from rich.live import Live

            live = Live(render(state), refresh_per_second=4, screen=False)
            live.start()
        last, last_count = time.time(), 0
        try:
            while time.time() < until and not self.stop.is_set():
                for t in self.warnings.poll(0.1):
                    state.on_transition(t, time.time())
                    if t.kind == "warning" and t.entity_type in ("unit", "site"):
                        self.say(f"WARN   {t.entity_type} {t.entity}: {t.old} -> {t.new}")
                self.telemetry.poll(0.05)
                now = time.time()
                if now - last >= 1.0:
                    state.readings_per_s = (self.telemetry.readings - last_count) / (now - last)
                    state.readings_total = self.telemetry.readings
                    last, last_count = now, self.telemetry.readings
                if live is not None:
                    live.update(render(state))
        finally:
            if live is not None:
                live.stop()

    def close(self) -> None:
        self.stop.set()
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                client.close(timeout=5.0)
        self.close_run()


def run(args: argparse.Namespace) -> int:
    demo = Demo(args)
    state: DemoState | None = None
    player: threading.Thread | None = None
    try:
        state = demo.start()
        player = threading.Thread(target=demo.play, args=(state,), name="plants", daemon=True)
        player.start()
        until = time.time() + args.duration if args.duration else float("inf")
        demo.watch(state, until)
    except KeyboardInterrupt:
        print("\ndemo: Ctrl-C, stopping everything ...", flush=True)
    finally:
        ran_s = time.time() - state.started if state is not None else 0.0
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        demo.stop.set()
        if player is not None:
            player.join(timeout=15)
        demo.close()
        signal.signal(signal.SIGINT, previous)
    if state is None:
        return 1
    for line in summary(state, ran_s):
        print(line)
    if demo.records:
        # Judge the first round against the script's expectations (offsets from that round's start).
        first = demo.records[0]
        seen = [Seen(arrived - first.started, t) for arrived, t in state.history]
        scope = Scope(
            frozenset(demo.registry.sites), frozenset(s.region for s in demo.registry.sites.values())
        )
        print("incident checks, first round (expectations later than the run time cannot be met):")
        for o in check(demo.script, seen, scope):
            print(f"  {'ok  ' if o.ok else 'miss'}  {o.text}")
    return 0
