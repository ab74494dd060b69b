"""riskwatch on a locked-down 3-broker Kafka cluster (KRaft, SASL/SCRAM over TLS with the stack's accounts,
ACLs and CA, replication factor 3, min.insync.replicas 2, acks=all) with two workers sharing the
partitions, the bridge and alerting, under steady load through MQTT: one broker is SIGKILLed (by its
recorded pid), then one worker. Counted at the end of the path:
  - readings: every reading the MQTT broker acknowledged was evaluated by the engine or dead-lettered
    (sent = evaluated + dead-lettered; the surviving worker's per-site counts, kept in snapshots
    replicated on the cluster), as `bench e2e` counts them;
  - warnings: every incident red on `rw.warnings` and alerted at the webhook, no notification repeated
    under a new key;
  - recovery: reading -> warning (an incident's first high reading to its red on `rw.warnings`) is under
    RECOVERED_S for the incidents starting 30 s after each kill, and reading -> Kafka p99 by second stays
    under it from 30 s after the last kill. The issue's aim is 1 s; on the shared 2-core CI machine (three
    JVMs, Mosquitto, the bridge, two workers and alerting on two cores) the test allows RECOVERED_S and
    prints the measured figures, which docs/capacity.md records.

RISKWATCH_CLUSTER_LONG=1 runs a longer, heavier variant (more sensors, longer after each kill).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from deploy.stack.cluster import KafkaCluster
from processors.app import partition_of
from processors.timers import EXIT_RECOVERY_STUCK
from riskwatch.topics import Topics
from simulators import synthetic
from simulators.bench_e2e import ROUTES_TEMPLATE, _red_at, plan_incidents
from simulators.kafka_watch import DeadLetterCounter, TelemetryCounter, TopicReader, TransitionReader
from simulators.load import run_load
from simulators.pipeline import Pipeline
from simulators.simulated_gateway import Broker, announce_online
from simulators.webhook import WebhookReceiver
from tests.integration.faults.test_faults_under_load import FaultPlan, _kill, _logs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LONG = os.environ.get("RISKWATCH_CLUSTER_LONG") == "1"
SENSORS, ENTERPRISES = (6_000, 40) if LONG else (2_000, 20)  # ~40 gateways of 20-200 sensors at 1 Hz
RECOVERY_S = 30.0  # after a kill, latency must be back within this long
BROKER_KILL_S = 12.0
WORKER_KILL_S = BROKER_KILL_S + RECOVERY_S + (60.0 if LONG else 8.0)
# Incidents (seconds from the start of publishing): one before any fault, some in the 30 s after the
# broker's kill has healed (before the worker's), the rest after the worker's kill has healed.
INCIDENT_AT = (
    [5.0, BROKER_KILL_S + RECOVERY_S + 1, BROKER_KILL_S + RECOVERY_S + 5]
    + [WORKER_KILL_S + RECOVERY_S + 2 + 6 * k for k in range(5)]
)  # fmt: skip
INCIDENT_S = 15.0
DURATION_S = INCIDENT_AT[-1] + INCIDENT_S + 3
RECOVERED_S = 1.0 if LONG else 2.5  # see the module doc: the 1 s, and what CI's machine allows
WORKER_ARGS = ["--replication-factor", "3", "--session-timeout-s", "10"]
PARTITIONS = 6
COUNT_STALL_S = 45.0  # the end-of-path count waits while the surviving worker still makes progress


def _incidents(doc: dict[str, Any]) -> list[tuple[str, str, list[Any]]]:
    """plan_incidents' units (distinct chemical sites), at INCIDENT_AT."""
    planned = plan_incidents(doc, len(INCIDENT_AT), DURATION_S)
    assert len(planned) == len(INCIDENT_AT), "registry has too few chemical sites for the incidents"
    return [
        (site, unit, [replace(f, at=at, for_s=INCIDENT_S) for f in faults])
        for (site, unit, faults), at in zip(planned, INCIDENT_AT, strict=True)
    ]


def _kill_worker(pipe: Pipeline | None, name: str) -> None:
    """SIGKILL the worker, unless it already gave up on a rebalance it could not finish (status 75, the
    revocation watchdog in processors/timers.py): then the group already runs without it."""
    assert pipe is not None
    code = pipe.services[name].proc.poll()
    if code is not None:
        # Only the watchdog's own exit is acceptable here; a crash of any other kind fails the test.
        assert code == EXIT_RECOVERY_STUCK, f"{name} exited with status {code} before its kill"
        print(f"cluster test: {name} had already given up on a rebalance (status {code}); not killed")
        return
    _kill(pipe, name)


def _shortfall(pipe: Pipeline, counter: TelemetryCounter) -> str:
    """Where the end-of-path count falls short: readings on Kafka against readings evaluated, by partition
    (the worker's unit of ownership, snapshots and offsets) and site."""
    by_site = pipe.evaluated_by_site(sorted(counter.by_site)) or {}
    short: dict[int, dict[str, int]] = {}
    for site, arrived in counter.by_site.items():
        if arrived != by_site.get(site):
            short.setdefault(partition_of(site, PARTITIONS), {})[site] = arrived - by_site.get(site, 0)
    return "arrived - evaluated, by partition and site: " + "; ".join(
        f"partition {p}: {sum(sites.values())} over {len(sites)} sites {dict(sorted(sites.items())[:5])}"
        for p, sites in sorted(short.items())
    )


def _steps_of(
    units: set[str], incidents: list[tuple[str, str, list[Any]]], seen: list[tuple[float, Any]]
) -> str:
    """What `rw.warnings` said of the units' sites (the site, its units and sensors), for a unit never red."""
    sites = {site for site, unit, _ in incidents if unit in units}
    steps = [(t.entity, t.old, t.new, t.at) for _, t in seen if t.site in sites]
    return f"{sorted(units)}; their sites' warnings {steps}"


def _missed(seen: list[tuple[float, Any]], fresh: TransitionReader, until: float) -> list[tuple[float, Any]]:
    """Transitions on the topic (read by `fresh` from its beginning), stored by `until` (just before the
    live reader's last poll), that are not in `seen`."""
    try:
        ids = {t.id for _, t in seen}
        return [(stored, t) for stored, t in fresh.read_to_end() if stored <= until and t.id not in ids]
    finally:
        fresh.reader.close()


def test_losing_a_broker_then_a_worker_loses_nothing(stack, stack_services, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    # The test's own readers' position resets and truncation checks, shown if it fails.
    caplog.set_level(logging.INFO, logger="kafka.consumer.fetcher")
    cluster = KafkaCluster(tmp_path / "cluster", stack)
    readers: list[Any] = []
    pipe: Pipeline | None = None
    receiver = None
    try:
        cluster.start()
        info = cluster.info
        topics = Topics(f"c{uuid.uuid4().hex[:10]}")
        cluster.ensure_topics(topics, PARTITIONS)
        doc = synthetic.province_doc(SENSORS, ENTERPRISES)
        registry = synthetic.write_registry(doc, tmp_path / "registry.json")
        sensors, industries = synthetic.sim_sensors(doc, registry)
        incidents = _incidents(doc)
        secret = secrets.token_hex(16)
        receiver = WebhookReceiver(secret=secret).start()
        routes = tmp_path / "routes.yaml"
        routes.write_text(ROUTES_TEMPLATE.read_text().replace("{webhook_url}", receiver.url))
        pipe = Pipeline(tmp_path / "run", registry, info, topics.prefix)
        first_site = synthetic.site_id(0)
        seen: list[tuple[float, Any]] = []
        killed: dict[str, int] = {}
        plan = FaultPlan(
            [
                (BROKER_KILL_S, "SIGKILL broker kafka2", lambda: killed.update(kafka2=cluster.kill(1))),
                (WORKER_KILL_S, "SIGKILL worker2", lambda: _kill_worker(pipe, "worker2")),
            ]
        )
        tools = info.kafka("tools")
        warnings = TransitionReader(TopicReader(tools, topics.warnings))
        counter = TelemetryCounter(TopicReader(tools, topics.telemetry), sites=industries)
        dead = DeadLetterCounter(TopicReader(tools, topics.deadletter))
        readers += [warnings.reader, counter.reader, dead.reader]
        notes_from = len(caplog.records)  # the readers' own start (their seek to the end) is no news

        def poll() -> None:
            if not plan.t0:
                plan.start()  # on the publishing clock: run_load polls only once publishing started
            seen.extend((time.time(), t) for t in warnings.poll(0.0))
            dead.poll(0.0)

        passwords = stack_services.add_gateways(sorted({(s.site, s.gateway) for s in sensors}))
        broker = Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls)
        announce_online({s.gateway: s.site for s in sensors}, broker)
        pipe.start_bridge()
        pipe.start_worker(ready_site=first_site, extra=WORKER_ARGS)
        pipe.start_worker(ready_site=first_site, extra=WORKER_ARGS, name="worker2")
        pipe.start_alerting(routes, env={"RISKWATCH_DEMO_WEBHOOK_SECRET": secret})
        pipe.wait_ready(180)
        result, start_at = run_load(
            sensors, industries, broker, counter, 1.0, DURATION_S, processes=1,
            faults=[f for _, _, fs in incidents for f in fs], on_poll=poll,
        )  # fmt: skip
        plan.thread.join(60)
        assert not plan.errors, plan.errors
        assert [what for _, what in plan.done] == [what for _, what, _ in plan.steps]
        assert cluster.pid(1) is None and killed["kafka2"] > 0

        # Readings: every one the MQTT broker acknowledged reached Kafka (replicated, acks=all) ...
        assert result.publish_errors == 0 and result.acked == result.sent > 0.9 * SENSORS * DURATION_S
        assert result.lost == 0, f"{result.lost} of {result.acked} acknowledged readings never reached Kafka"
        # ... and the engine evaluated it or dead-lettered it with a reason: sent = evaluated + dead-lettered.
        sites = sorted(industries)
        evaluated, last, last_change = None, None, time.time()
        while time.time() - last_change < COUNT_STALL_S:
            poll()
            evaluated = pipe.evaluated(sites)  # None while the worker rebalances
            if evaluated is not None and evaluated + dead.readings >= result.acked:
                break
            if evaluated != last:
                last, last_change = evaluated, time.time()
            time.sleep(2)
        counts = f"sent {result.acked}, evaluated {evaluated}, dead-lettered {dead.readings} {dead.reasons}"
        print(f"cluster test: {counts}")
        if evaluated is not None and evaluated + dead.readings != result.acked:
            counts += f"\n{_shortfall(pipe, counter)}"
        assert evaluated is not None and evaluated + dead.readings == result.acked, f"{counts}\n{_logs(pipe)}"

        # Warnings: every incident red and alerted; nothing notified again under a new key.
        units = {unit for _, unit, _ in incidents}

        def alerted() -> set[str]:
            return {u for u in units for d in receiver.unique() if d.colour == "red" and d.mentions(u)}

        deadline = time.time() + 60
        while time.time() < deadline:
            seen.extend((time.time(), t) for t in warnings.poll(0.5))
            if units <= {t.entity for _, t in seen if t.new == "red"} and alerted() == units:
                break
        # The live reader's view, checked against the topic read afresh: a warning it missed is still
        # counted (at the time Kafka stored it) and reported, since the reader is the test's, not riskwatch's.
        fresh = TransitionReader(TopicReader(tools, topics.warnings, from_beginning=True))
        missed = _missed(seen, fresh, until=time.time() - 2.0)  # not the records still in flight
        seen.extend(missed)
        print(f"cluster test: warnings the live reader missed: {[(t.entity, t.new) for _, t in missed]} "
              f"(it re-read {warnings.reader.rewinds} holes)")  # fmt: skip
        notes = [
            r.getMessage()
            for r in caplog.records[notes_from:]
            if r.name == "kafka.consumer.fetcher" and r.levelno == logging.INFO
        ]
        print(f"cluster test: the test's readers: {counter.reader.rewinds} telemetry holes re-read; "
              f"position resets and truncation checks {notes[:10]}")  # fmt: skip
        never = units - {t.entity for _, t in seen if t.new == "red"}
        assert not never, f"never red: {_steps_of(never, incidents, seen)}\n{_logs(pipe)}"
        assert alerted() == units, f"red but never alerted: {sorted(units - alerted())}"
        assert receiver.deliveries and not receiver.repeated_under_new_keys(), (
            receiver.repeated_under_new_keys()
        )

        # Recovery: reading -> warning of each incident (its first high reading to its red on Kafka).
        latency = {}
        for _, unit, faults in incidents:
            hit = _red_at(unit, seen, start_at + faults[0].at)
            assert hit is not None, unit
            latency[faults[0].at] = round(hit[0] - hit[1], 3)
        telemetry_p99 = [(round(p["t"]), round(p["latency_p99_s"], 2)) for p in result.timeline]
        print(f"cluster test: reading -> warning by incident start (s): {latency}")
        print(f"cluster test: reading -> Kafka p99 by second: {telemetry_p99}")
        print(f"cluster test: load average {os.getloadavg()}")
        late = {at: s for at, s in latency.items() if at >= BROKER_KILL_S + RECOVERY_S}
        assert max(late.values()) < RECOVERED_S, (
            f"reading -> warning not back under {RECOVERED_S} s {RECOVERY_S:.0f} s after a kill: {latency} "
            f"(before any fault: {latency[INCIDENT_AT[0]]} s); load average {os.getloadavg()}"
        )
        healed = [p["latency_p99_s"] for p in result.timeline if p["t"] >= WORKER_KILL_S + RECOVERY_S]
        assert healed and max(healed) < RECOVERED_S, f"reading -> Kafka p99 by second: {telemetry_p99}"
        assert pipe.dead() == ["worker2"], _logs(pipe)
    finally:
        for reader in readers:
            reader.close()
        if pipe is not None:
            pipe.stop()
        if receiver is not None:
            receiver.stop()
        cluster.stop()
