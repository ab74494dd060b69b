"""The load generator through the real bridge: every reading the broker acknowledged reaches
`rw.telemetry` exactly once (de-duplicated by gateway and seq), from several publisher processes."""

from __future__ import annotations

import time

from deploy.stack import add_gateways
from riskwatch.wire.gateway_protocol import GatewayRecord
from simulators import synthetic
from simulators.kafka_watch import TelemetryCounter, TopicReader
from simulators.load import Fleet, run_load
from simulators.pipeline import Pipeline
from simulators.simulated_gateway import Broker


def _bridged(stack, topics, tmp_path, sensors: int, per_gateway: int):  # type: ignore[no-untyped-def]
    """A registry of `sensors` in gateways of `per_gateway`, their MQTT accounts, a bridge started, and a
    counter of `rw.telemetry`: (sensors, industries, broker, pipeline, counter)."""
    doc = synthetic.registry_doc(sensors, sensors_per_gateway=per_gateway)
    registry = synthetic.write_registry(doc, tmp_path / "registry.json")
    sims, industries = synthetic.sim_sensors(doc)
    passwords = add_gateways(stack, sorted({(s.site, s.gateway) for s in sims}))
    pipeline = Pipeline(tmp_path, registry, stack, topics.prefix)
    counter = TelemetryCounter(TopicReader(stack.kafka("tools"), topics.telemetry), sites=industries)
    broker = Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls)
    pipeline.start_bridge()
    pipeline.wait_ready(60)
    return sims, industries, broker, pipeline, counter


def test_load_through_the_bridge_loses_nothing(stack, topics, tmp_path) -> None:
    sensors, industries, broker, pipeline, counter = _bridged(stack, topics, tmp_path, 3_000, 250)
    try:
        lines: list[str] = []
        result, _ = run_load(
            sensors, industries, broker, counter,
            rate_hz=2.0, duration_s=6.0, processes=2, progress=lambda r, p: lines.append(str(p)),
        )  # fmt: skip
    finally:
        pipeline.stop()
        counter.reader.close()
    assert result.publish_errors == 0
    assert result.sent == result.acked == 3_000 * 12
    assert result.received == result.acked and result.lost == 0
    assert counter.undecodable == 0 and counter.other_sites == 0
    assert 0 < result.latency_p50_s <= result.latency_p99_s <= result.latency_max_s < 30
    assert lines  # a progress point every second


def test_a_fleet_stays_connected_between_runs_and_counts_each_run_alone(stack, topics, tmp_path) -> None:
    """bench capacity offers rising steps to one fleet: each run counts only its own readings, and no
    gateway goes offline between runs (a fleet that did would turn every unit blue, then back)."""
    statuses = TopicReader(stack.kafka("tools"), topics.gateway)
    sensors, industries, broker, pipeline, counter = _bridged(stack, topics, tmp_path, 2_000, 200)
    seen: list[GatewayRecord] = []
    try:
        with Fleet(sensors, industries, broker, processes=2) as fleet:
            first, _ = fleet.run(counter, rate_hz=1.0, duration_s=4.0)
            seen += [GatewayRecord.from_bytes(raw) for raw in statuses.poll(1.0)]
            time.sleep(3.0)  # a pause between runs, as bench capacity's counting makes
            second, _ = fleet.run(counter, rate_hz=2.0, duration_s=4.0)
            seen += [GatewayRecord.from_bytes(raw) for raw in statuses.poll(1.0)]
        deadline = time.time() + 30
        while time.time() < deadline and sum(r.state == "offline" for r in seen) < 10:
            seen += [GatewayRecord.from_bytes(raw) for raw in statuses.poll(0.5)]
    finally:
        pipeline.stop()
        counter.reader.close()
        statuses.close()
    for run, rate in ((first, 1.0), (second, 2.0)):
        assert run.publish_errors == 0
        assert run.sent == run.acked == run.received == int(2_000 * rate * 4), run
        assert run.messages == int(10 * rate * 4)
    # offline only once the fleet closed: each of the 10 gateways once, none between the runs
    offline = [r for r in seen if r.state == "offline"]
    assert sorted(r.gw for r in offline) == sorted({s.gateway for s in sensors})
