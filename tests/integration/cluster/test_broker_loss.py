"""riskwatch on a 3-broker Kafka cluster (KRaft, replication factor 3, min.insync.replicas 2, acks=all,
idempotent producers) with two workers sharing the partitions, under load: one broker is SIGKILLed, then
one worker. Counted at the end of the path:
  - readings: every reading the MQTT broker acknowledged reached `rw.telemetry` and was evaluated by the
    engine (the surviving worker's per-site counts, kept in snapshots replicated on the cluster);
  - warnings: every incident red on `rw.warnings` and alerted, no notification repeated under a new key;
  - recovery: 30 s after each kill, reading -> Kafka p99 is back under 1 s for the rest of the run, and an
    incident starting then is warned within 1 s of its reading.

Not in the default run yet (set RISKWATCH_CLUSTER_TEST=1): of three runs on the shared development
machine, one passed (4 min, load average ~8), one failed only on recovery latency (load average ~30;
nothing lost, every incident alerted, no repeated key), and one found the surviving worker's count short
(170,835 of 200,000 readings evaluated 90 s after the load), a cause not yet found.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from deploy.stack.cluster import KafkaCluster
from riskwatch.topics import Topics
from simulators import synthetic
from simulators.bench_e2e import ROUTES_TEMPLATE, _red_at, plan_incidents
from simulators.kafka_watch import TelemetryCounter, TopicReader, TransitionReader
from simulators.load import run_load
from simulators.pipeline import Pipeline
from simulators.simulated_gateway import Broker, announce_online
from simulators.webhook import WebhookReceiver
from tests.integration.faults.test_faults_under_load import FaultPlan, _kill, _logs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("RISKWATCH_CLUSTER_TEST") != "1",
        reason="3-broker cluster test: set RISKWATCH_CLUSTER_TEST=1 (not yet reliable, see the module docstring)",
    ),
]

SENSORS, ENTERPRISES = 2_000, 20  # about 40 gateways of 20-200 sensors at 1 Hz
DURATION_S = 100.0
INCIDENTS = 4  # at 10, 32, 53 and 75 s: before the faults, between them, and after both have healed
BROKER_KILL_S, WORKER_KILL_S = 15.0, 40.0
RECOVERY_S = 30.0
P99_S = 1.0
WORKER_ARGS = ["--replication-factor", "3", "--session-timeout", "10"]


def test_losing_a_broker_then_a_worker_loses_nothing(stack, stack_services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = KafkaCluster(tmp_path / "cluster")
    cluster.start()
    info = dataclasses.replace(stack, kafka_bootstrap=cluster.bootstrap)
    topics = Topics(f"c{uuid.uuid4().hex[:10]}")
    cluster.ensure_topics(topics.all(), 6)
    doc = synthetic.province_doc(SENSORS, ENTERPRISES)
    registry = synthetic.write_registry(doc, tmp_path / "registry.json")
    sensors, industries = synthetic.sim_sensors(doc, registry)
    incidents = plan_incidents(doc, INCIDENTS, DURATION_S)
    secret = secrets.token_hex(16)
    receiver = WebhookReceiver(secret=secret).start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES_TEMPLATE.read_text().replace("{webhook_url}", receiver.url))
    pipe = Pipeline(tmp_path / "run", registry, info, topics.prefix)
    first_site = synthetic.site_id(0)
    readers: list[Any] = []
    seen: list[tuple[float, Any]] = []
    try:
        warnings = TransitionReader(TopicReader(cluster.bootstrap, topics.warnings))
        counter = TelemetryCounter(TopicReader(cluster.bootstrap, topics.telemetry), sites=industries)
        readers += [warnings.reader, counter.reader]
        passwords = stack_services.add_gateways(sorted({(s.site, s.gateway) for s in sensors}))
        broker = Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls)
        announce_online({s.gateway: s.site for s in sensors}, broker)
        pipe.start_bridge()
        pipe.start_worker(ready_site=first_site, extra=WORKER_ARGS)
        pipe.start_worker(ready_site=first_site, extra=WORKER_ARGS, name="worker2")
        pipe.start_alerting(routes, env={"RISKWATCH_DEMO_WEBHOOK_SECRET": secret})
        pipe.wait_ready(180)
        plan = FaultPlan(
            [
                (BROKER_KILL_S, "SIGKILL broker kafka2", lambda: cluster.kill(1)),
                (WORKER_KILL_S, "SIGKILL worker2", lambda: _kill(pipe, "worker2")),
            ]
        )
        plan.start()
        result, start_at = run_load(
            sensors, industries, broker, counter, 1.0, DURATION_S, processes=1,
            faults=[f for _, _, fs in incidents for f in fs],
            on_poll=lambda: seen.extend((time.time(), t) for t in warnings.poll(0.0)),
        )  # fmt: skip
        plan.thread.join(60)
        assert not plan.errors, plan.errors
        assert [what for _, what in plan.done] == [what for _, what, _ in plan.steps]

        # Readings: every one acknowledged by MQTT reached Kafka and was evaluated by the surviving worker.
        assert result.publish_errors == 0 and result.acked == result.sent > 0.9 * SENSORS * DURATION_S
        assert result.lost == 0, f"{result.lost} of {result.acked} acknowledged readings never reached Kafka"
        sites = sorted(industries)
        deadline = time.time() + 90
        evaluated = pipe.evaluated(sites)
        while evaluated != result.acked and time.time() < deadline:
            time.sleep(2)
            evaluated = pipe.evaluated(sites)
        assert evaluated == result.acked, f"engine evaluated {evaluated} of {result.acked} readings sent"

        # Warnings: every incident red and alerted; nothing notified again under a new key.
        units = {unit for _, unit, _ in incidents}
        deadline = time.time() + 60
        while time.time() < deadline:
            seen.extend((time.time(), t) for t in warnings.poll(0.5))
            alerted = {u for u in units for d in receiver.unique() if d.colour == "red" and d.mentions(u)}
            if units <= {t.entity for _, t in seen if t.new == "red"} and alerted == units:
                break
        assert units <= {t.entity for _, t in seen if t.new == "red"}, f"never red\n{_logs(pipe)}"
        assert alerted == units, f"red but never alerted: {sorted(units - alerted)}"
        assert not receiver.repeated_under_new_keys(), receiver.repeated_under_new_keys()

        # Recovery: from 30 s after the last kill on, reading -> Kafka p99 stays under 1 s, and the
        # incident that starts then is warned within 1 s of its reading.
        healed = [p for p in result.timeline if WORKER_KILL_S + RECOVERY_S <= p["t"] <= DURATION_S]
        before = [p["latency_p99_s"] for p in result.timeline if p["t"] < BROKER_KILL_S]
        series = [(round(p["t"]), round(p["latency_p99_s"], 2)) for p in result.timeline]
        assert healed and max(p["latency_p99_s"] for p in healed) < P99_S, (
            f"reading -> Kafka p99 not back under {P99_S} s {RECOVERY_S:.0f} s after the last kill; before any "
            f"fault it was at most {max(before, default=float('nan')):.2f} s (the machine's own load); "
            f"p99 by second: {series}; load average {os.getloadavg()}"
        )
        late = [(u, fs) for _, u, fs in incidents if fs[0].at >= WORKER_KILL_S + RECOVERY_S]
        assert late
        for unit, faults in late:
            hit = _red_at(unit, seen, start_at + faults[0].at)
            assert hit is not None and hit[0] - hit[1] < P99_S, (unit, hit)
        assert pipe.dead() == ["worker2"], _logs(pipe)
    finally:
        for reader in readers:
            reader.close()
        pipe.stop()
        receiver.stop()
        cluster.stop()
