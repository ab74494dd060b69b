"""No loss: Kafka stopped mid-stream, and the bridge killed with SIGKILL mid-stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from deploy.stack import Stack, StackInfo
from riskwatch.topics import Topics, mqtt_topic
from riskwatch.wire.batch import decode, drop_sources
from riskwatch.wire.gateway import telemetry_payload
from tests.integration.ingest.conftest import GatewayClient, Plant, TopicReader, wait_for

MESSAGES = 300


def _publish_stream(
    gw: GatewayClient, plant: Plant, count: int, interval_s: float, progress: list[int]
) -> None:
    topic = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
    t0 = time.time()
    for seq in range(count):
        readings = [{"s": s, "v": float(seq), "t": t0 + seq * 0.01} for s in plant.sensors_a[:10]]
        gw.publish(topic, telemetry_payload(plant.gw_a, seq, readings), wait=False)
        progress.append(seq)
        time.sleep(interval_s)


def _deduplicated(records: list[Any]) -> tuple[set[int], int, int]:
    """Seqs seen, readings kept after de-duplication by (gateway, seq), duplicates dropped."""
    seen: set[tuple[str, int]] = set()
    kept = dropped = 0
    for record in records:
        batch = decode(record.value)
        readings = drop_sources(batch, lambda s, seen=seen: (s.gateway, s.seq) in seen)
        dropped += len(batch.readings) - len(readings)
        kept += len(readings)
        seen |= {(s.gateway, s.seq) for s in batch.sources}
    return {seq for _, seq in seen}, kept, dropped


def test_kafka_outage_mid_stream_loses_nothing(
    stack: StackInfo, topics: Topics, plant: Plant, run_bridge: Callable[..., Any]
) -> None:
    bridge = run_bridge(plant.registry)
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    reader = TopicReader(stack, topics.telemetry)
    local = Stack(stack.home)
    progress: list[int] = []
    publisher = threading.Thread(target=_publish_stream, args=(gw, plant, MESSAGES, 0.03, progress))
    try:
        publisher.start()
        assert wait_for(lambda: len(progress) >= 60, 30)
        local.stop_service("kafka")
        try:
            assert wait_for(lambda: bridge.sink.spooling and bridge.spool.records > 0, 40), "never spooled"
        finally:
            local.start_service("kafka")
        publisher.join(60)
        assert len(progress) == MESSAGES
        records = reader.until(lambda rs: len(_deduplicated(rs)[0]) >= MESSAGES, timeout=120)
    finally:
        gw.close()
        reader.close()
    seqs, kept, _ = _deduplicated(records)
    assert seqs == set(range(MESSAGES))
    assert kept == MESSAGES * 10
    assert wait_for(lambda: bridge.spool.empty() and not bridge.sink.spooling, 30)
    assert bridge.metrics_registry.get_sample_value("riskwatch_bridge_replayed_records_total") > 0
