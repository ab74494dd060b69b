"""Fault injection under load: every component killed, Kafka restarted and InfluxDB down for a minute,
while simulated gateways keep publishing and incidents keep happening. Nothing may be lost.

One run, faults in sequence (times from the start of publishing):
  SIGKILL the bridge, then the worker, then alerting (each restarted as a supervisor would), a Kafka
  restart, and InfluxDB stopped for 60 s. Incidents (two detectors of a unit at 80 %LEL -> red) are spread
  over the run, so some land during a fault.
Counted at the end of the path, against what was sent:
  - readings: every reading the broker acknowledged reached `rw.telemetry` (de-duplicated by gateway
    and seq) and was evaluated by the engine (the worker's per-gateway count, kept in its snapshots);
  - warnings: every incident's red reached the webhook, under one idempotency key per alert;
  - history: every transition on `rw.warnings` and `rw.alarms` is a point in InfluxDB.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy.stack import ensure_topics
from riskwatch.topics import Topics
from simulators import synthetic
from simulators.bench_e2e import ROUTES_TEMPLATE, plan_incidents
from simulators.kafka_watch import TelemetryCounter, TopicReader, TransitionReader
from simulators.load import run_load
from simulators.pipeline import Pipeline
from simulators.simulated_gateway import Broker, announce_online
from simulators.webhook import WebhookReceiver
from tests.integration.processors.test_worker import influx_query

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENSORS = 2_000  # 20 gateways of 100 sensors at 1 Hz: light enough for CI, every fault under load
PER_GATEWAY = 100
DURATION_S = 200.0
INCIDENTS = 6


def _logs(pipe: Pipeline, lines: int = 40) -> str:
    """The last lines of every service's log, for a failure message."""
    out = []
    for log in sorted((pipe.run_dir / "logs").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log.name}\n" + "\n".join(line[:300] for line in tail))
    return "\n".join(out)


def _kill(pipe: Pipeline, name: str) -> None:
    proc = pipe.services[name].proc
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


class FaultPlan:
    """Runs the faults in a thread, on the publishing clock; records what it did, and any error."""

    def __init__(self, steps: list[tuple[float, str, Callable[[], None]]]) -> None:
        self.steps = steps
        self.done: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self.t0 = 0.0
        self.thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def start(self) -> None:
        self.t0 = time.time()
        self.thread.start()

    def _run(self) -> None:
        for at, what, action in self.steps:
            time.sleep(max(0.0, self.t0 + at - time.time()))
            try:
                action()
                self.done.append((time.time() - self.t0, what))
            except Exception as exc:  # reported by the test, never swallowed
                self.errors.append(f"{what}: {type(exc).__name__}: {exc}")


def test_kills_and_outages_under_load_lose_nothing(stack, stack_services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topics = Topics(f"f{uuid.uuid4().hex[:10]}")
    ensure_topics(stack, topics, 3)
    doc = synthetic.registry_doc(SENSORS, PER_GATEWAY)
    registry = synthetic.write_registry(doc, tmp_path / "registry.json")
    sensors, industries = synthetic.sim_sensors(doc)
    incidents = plan_incidents(doc, INCIDENTS, DURATION_S)
    secret = secrets.token_hex(16)
    receiver = WebhookReceiver(secret=secret).start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES_TEMPLATE.read_text().replace("{webhook_url}", receiver.url))
    alerting_env = {"RISKWATCH_DEMO_WEBHOOK_SECRET": secret}
    pipe = Pipeline(tmp_path / "run", registry, stack, topics.prefix)
    first_site = synthetic.site_id(0)
    warnings = TransitionReader(TopicReader(stack.kafka("tools"), topics.warnings))
    alarms = TransitionReader(TopicReader(stack.kafka("tools"), topics.alarms))
    counter = TelemetryCounter(TopicReader(stack.kafka("tools"), topics.telemetry), sites=industries)
    seen: list[Any] = []

    def restart(name: str, start: Callable[[], Any]) -> Callable[[], None]:
        def action() -> None:
            _kill(pipe, name)
            start()
            pipe.wait_ready(120)

        return action

    def outage(service: str, down_s: float) -> Callable[[], None]:
        def action() -> None:
            stack_services.stop_service(service)
            time.sleep(down_s)
            stack_services.start_service(service)

        return action

    plan = FaultPlan(
        [
            (20.0, "SIGKILL bridge", restart("bridge", pipe.start_bridge)),
            (45.0, "SIGKILL worker", restart("worker", lambda: pipe.start_worker(ready_site=first_site))),
            (
                80.0,
                "SIGKILL alerting",
                restart("alerting", lambda: pipe.start_alerting(routes, env=alerting_env)),
            ),
            (100.0, "Kafka restart", outage("kafka", 3.0)),
            (125.0, "InfluxDB down 60 s", outage("influxdb", 60.0)),
        ]
    )
    try:
        passwords = stack_services.add_gateways(sorted({(s.site, s.gateway) for s in sensors}))
        broker = Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls)
        announce_online({s.gateway: s.site for s in sensors}, broker)
        pipe.start_bridge()
        pipe.start_worker(ready_site=first_site)
        pipe.start_historian()
        pipe.start_alerting(routes, env=alerting_env)
        pipe.wait_ready(120)
        plan.start()
        faults = [f for _, _, fs in incidents for f in fs]
        result, _ = run_load(
            sensors, industries, broker, counter, 1.0, DURATION_S, processes=1, faults=faults,
            on_poll=lambda: seen.extend(warnings.poll(0.0)),
        )  # fmt: skip
        plan.thread.join(120)
        assert not plan.errors, plan.errors
        assert [what for _, what in plan.done] == [what for _, what, _ in plan.steps]

        # Readings: all that the broker acknowledged reached Kafka, once each after de-duplication.
        assert result.publish_errors == 0
        assert result.acked == result.sent > 0.9 * SENSORS * DURATION_S
        assert result.lost == 0, f"{result.lost} of {result.acked} acknowledged readings never reached Kafka"
        # ... and the engine evaluated every one of them, once: its per-site count lives in the site
        # snapshots, so it is exact across the worker's SIGKILL and the Kafka restart.
        sites = sorted({s.site for s in sensors})
        evaluated = pipe.evaluated(sites)
        deadline = time.time() + 60
        while evaluated != result.acked and time.time() < deadline:
            time.sleep(2)
            evaluated = pipe.evaluated(sites)
        assert evaluated == result.acked, f"engine evaluated {evaluated} of {result.acked} readings sent"

        # Warnings: every incident's unit went red on rw.warnings, and a red naming it reached the duty
        # officer.
        units = {unit for _, unit, _ in incidents}

        def alerted() -> set[str]:
            return {u for u in units for d in receiver.unique() if d.colour == "red" and d.mentions(u)}

        deadline = time.time() + 60
        while time.time() < deadline:
            seen.extend(warnings.poll(0.5))
            if units <= {t.entity for t in seen if t.new == "red"} and alerted() == units:
                break
        red_units = {t.entity for t in seen if t.new == "red"}
        assert units <= red_units, f"never red: {sorted(units - red_units)}"
        assert alerted() == units, f"red but never alerted: {sorted(units - alerted())}\n{_logs(pipe)}"
        # A warning redelivered after a crash is not notified again under another key: each notification
        # (one alert's line: colour, reason, event time, link) went out under one idempotency key.
        assert receiver.deliveries and not receiver.repeated_under_new_keys(), (
            receiver.repeated_under_new_keys()
        )

        # History: every transition is in InfluxDB once it is back.
        transitions = {t.id for t in seen} | {t.id for t in alarms.poll(5.0)}
        since = int(plan.t0 - 60)

        def missing() -> set[str]:
            got = {r[1] for r in influx_query(stack, f"SELECT id FROM transition WHERE time > {since}s")}
            return transitions - got

        deadline = time.time() + 90
        while missing() and time.time() < deadline:
            time.sleep(2)
        assert not missing(), f"{len(missing())} of {len(transitions)} transitions not in InfluxDB"
        assert not pipe.dead(), f"services died: {pipe.dead()}\n{_logs(pipe)}"
    finally:
        for reader in (warnings.reader, alarms.reader, counter.reader):
            reader.close()
        pipe.stop()
        receiver.stop()
