"""The load generator through the real bridge: every reading the broker acknowledged reaches
`rw.telemetry` exactly once (de-duplicated by gateway and seq), from several publisher processes."""

from __future__ import annotations

from deploy.stack import add_gateways
from simulators import synthetic
from simulators.kafka_watch import TelemetryCounter, TopicReader
from simulators.load import run_load
from simulators.pipeline import Pipeline
from simulators.simulated_gateway import Broker


def test_load_through_the_bridge_loses_nothing(stack, topics, tmp_path) -> None:
    doc = synthetic.registry_doc(3_000, sensors_per_gateway=250)
    registry = synthetic.write_registry(doc, tmp_path / "registry.json")
    sensors, industries = synthetic.sim_sensors(doc)
    passwords = add_gateways(stack, sorted({(s.site, s.gateway) for s in sensors}))
    pipeline = Pipeline(tmp_path, registry, stack, topics.prefix)
    counter = TelemetryCounter(TopicReader(stack.kafka("tools"), topics.telemetry), sites=industries)
    try:
        pipeline.start_bridge()
        pipeline.wait_ready(60)
        lines: list[str] = []
        result, _ = run_load(
            sensors, industries, Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls), counter,
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
