"""Readings published by a gateway reach rw.telemetry exactly; bad input lands in rw.deadletter."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np

from deploy.stack import StackInfo
from deploy.stack.process import free_port
from riskwatch.topics import Topics, mqtt_topic
from riskwatch.wire.batch import decode
from riskwatch.wire.deadletter import DeadLetter
from riskwatch.wire.gateway import GatewayRecord, events_payload, status_payload, telemetry_payload
from tests.integration.ingest.conftest import GatewayClient, Plant, TopicReader, wait_for


def _readings(plant: Plant, seq: int, t0: float) -> list[dict[str, Any]]:
    return [
        {"s": s, "v": seq * 1000 + i + 0.25, "t": t0 + seq, "q": i % 2} for i, s in enumerate(plant.sensors_a)
    ]


def test_every_reading_arrives_decoded_keyed_by_site(
    stack: StackInfo, topics: Topics, plant: Plant, run_bridge: Callable[..., Any]
) -> None:
    run_bridge(plant.registry)
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    reader = TopicReader(stack, topics.telemetry)
    t0 = time.time() - 60
    sent = {}
    try:
        for seq in range(40):
            readings = _readings(plant, seq, t0)
            assert (
                gw.publish(
                    mqtt_topic(plant.site_a, plant.gw_a, "telemetry"),
                    telemetry_payload(plant.gw_a, seq, readings),
                )
                == "Success"
            )
            for r in readings:
                sent[(r["s"], r["t"])] = (r["v"], r["q"])
        records = reader.until(lambda rs: sum(len(decode(r.value).readings) for r in rs) >= len(sent))
    finally:
        gw.close()
        reader.close()
    got = {}
    seqs = []
    for record in records:
        batch = decode(record.value)
        assert record.key == plant.site_a.encode() and batch.site == plant.site_a
        assert batch.fingerprint == plant.registry.fingerprint
        seqs += [s.seq for s in batch.sources if s.gateway == plant.gw_a]
        r = batch.readings
        for sensor, value, ts, q in zip(
            r.sensor.tolist(), r.value.tolist(), r.ts.tolist(), r.quality.tolist(), strict=True
        ):
            got[(batch.sensor_ids[sensor], ts)] = (value, q)
    assert got == sent
    assert sorted(seqs) == list(range(40))


def test_each_bad_input_is_dead_lettered_with_its_reason_and_the_bridge_keeps_going(
    stack: StackInfo, topics: Topics, plant: Plant, run_bridge: Callable[..., Any]
) -> None:
    bridge = run_bridge(plant.registry, max_payload=64 * 1024)
    stranger, moved, passwords = plant.gw_stranger, plant.gw_moved, plant.passwords
    now = time.time()
    good = {"s": plant.sensors_a[0], "v": 1.0, "t": now}
    telemetry = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
    cases = [
        (telemetry, b"{not json", "malformed_json"),
        (telemetry, b'{"gw": "%s", "seq": 1}' % plant.gw_a.encode(), "schema"),
        (telemetry, b" " * (70 * 1024), "oversized_payload"),
        (mqtt_topic(plant.site_a, plant.gw_a, "firmware"), b"{}", "wrong_topic"),
        (
            telemetry,
            telemetry_payload(plant.gw_a, 2, [good, {"s": "nope", "v": 1, "t": now}]),
            "sensor_unknown",
        ),
        (
            telemetry,
            telemetry_payload(plant.gw_a, 3, [good, {"s": plant.sensor_b, "v": 1, "t": now}]),
            "sensor_site_mismatch",
        ),
        (
            telemetry,
            b'{"gw": "%s", "seq": 4, "readings": [{"s": "%s", "v": NaN, "t": 1}]}'
            % (plant.gw_a.encode(), plant.sensors_a[1].encode()),
            "non_finite_value",
        ),
        (telemetry, telemetry_payload(plant.gw_a, 5, [{**good, "u": "ppm"}]), "wrong_unit"),
        (telemetry, telemetry_payload(plant.gw_a, 6, [{**good, "t": now + 3600}]), "future_timestamp"),
    ]
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    gx = GatewayClient(stack, stranger, passwords[stranger])
    gm = GatewayClient(stack, moved, passwords[moved])
    dead = TopicReader(stack, topics.deadletter)
    telemetry_reader = TopicReader(stack, topics.telemetry)
    gateway_reader = TopicReader(stack, topics.gateway)
    try:
        for topic, payload, _ in cases:
            assert gw.publish(topic, payload) == "Success"
        assert (
            gx.publish(
                mqtt_topic(plant.site_a, stranger, "telemetry"), telemetry_payload(stranger, 1, [good])
            )
            == "Success"
        )
        assert (
            gm.publish(mqtt_topic(plant.site_b, moved, "telemetry"), telemetry_payload(moved, 1, [good]))
            == "Success"
        )
        expected = {
            (telemetry if t != mqtt_topic(plant.site_a, plant.gw_a, "firmware") else t, reason)
            for t, _, reason in cases
        }
        expected |= {(mqtt_topic(plant.site_a, stranger, "telemetry"), "gateway_unknown")}
        expected |= {(mqtt_topic(plant.site_b, moved, "telemetry"), "gateway_site_mismatch")}
        # the bridge is still alive: a good message after all that still arrives, and so do status and events
        assert gw.publish(telemetry, telemetry_payload(plant.gw_a, 99, [good])) == "Success"
        assert (
            gw.publish(mqtt_topic(plant.site_a, plant.gw_a, "status"), status_payload(plant.gw_a, "online"))
            == "Success"
        )
        assert (
            gw.publish(
                mqtt_topic(plant.site_a, plant.gw_a, "events"),
                events_payload(plant.gw_a, 1, [{"kind": "maintenance_on", "target": "unit-1", "t": now}]),
            )
            == "Success"
        )
        records = dead.until(lambda rs: len(rs) >= len(expected))
        letters = [DeadLetter.from_bytes(r.value) for r in records]
        assert {(d.source, d.reason) for d in letters} == expected
        by_reason = {d.reason: d for d in letters}
        assert by_reason["malformed_json"].original == b"{not json"
        assert [(i.index, i.reason) for i in by_reason["sensor_unknown"].items] == [(1, "sensor_unknown")]
        batches = telemetry_reader.until(
            lambda rs: any(99 in [s.seq for s in decode(r.value).sources] for r in rs)
        )
        assert any(99 in [s.seq for s in decode(r.value).sources] for r in batches)
        # good readings of partly-bad messages went on too
        assert {2, 3} <= {s.seq for r in batches for s in decode(r.value).sources}
        gateway_records = [
            GatewayRecord.from_bytes(r.value) for r in gateway_reader.until(lambda rs: len(rs) >= 2)
        ]
        assert {(g.type, g.state or g.kind) for g in gateway_records} == {
            ("status", "online"),
            ("event", "maintenance_on"),
        }
        rejects = bridge.metrics_registry.get_sample_value
        for _, reason in expected:
            assert rejects("riskwatch_bridge_rejects_total", {"reason": reason}) == 1, reason
    finally:
        for client in (gw, gx, gm):
            client.close()
        for reader in (dead, telemetry_reader, gateway_reader):
            reader.close()
    assert np.all([d.at > 0 for d in letters])


def test_a_gateway_cannot_publish_into_another_sites_topics(
    stack: StackInfo, topics: Topics, plant: Plant, run_bridge: Callable[..., Any]
) -> None:
    run_bridge(plant.registry)
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    telemetry_reader = TopicReader(stack, topics.telemetry)
    dead = TopicReader(stack, topics.deadletter)
    now = time.time()
    try:
        spoof = telemetry_payload(plant.gw_a, 1, [{"s": plant.sensor_b, "v": 9.9, "t": now}])
        # the broker refuses it: site B's topics, and gateway B's id, are not gateway A's to use
        assert gw.publish(mqtt_topic(plant.site_b, plant.gw_a, "telemetry"), spoof) == "Not authorized"
        assert gw.publish(mqtt_topic(plant.site_b, plant.gw_b, "telemetry"), spoof) == "Not authorized"
        own = telemetry_payload(plant.gw_a, 2, [{"s": plant.sensors_a[0], "v": 1.0, "t": now}])
        assert gw.publish(mqtt_topic(plant.site_a, plant.gw_a, "telemetry"), own) == "Success"
        records = telemetry_reader.until(lambda rs: len(rs) >= 1)
        time.sleep(1.0)
        records = telemetry_reader.until(lambda rs: False, timeout=1.0)
        assert [s.seq for r in records for s in decode(r.value).sources] == [2]
        assert {decode(r.value).site for r in records} == {plant.site_a}
        assert dead.until(lambda rs: False, timeout=1.0) == []
    finally:
        gw.close()
        telemetry_reader.close()
        dead.close()


def test_metrics_are_served_on_the_bridges_own_port(
    stack: StackInfo, topics: Topics, plant: Plant, run_bridge: Callable[..., Any]
) -> None:
    port = free_port()
    run_bridge(plant.registry, metrics_port=port)
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    try:
        topic = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
        assert (
            gw.publish(topic, telemetry_payload(plant.gw_a, 1, [{"s": plant.sensors_a[0], "v": 1, "t": 1}]))
            == "Success"
        )
        assert gw.publish(topic, b"nope") == "Success"
    finally:
        gw.close()

    def scrape() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    assert wait_for(lambda: "riskwatch_bridge_readings_out_total 1.0" in scrape(), 15)
    text = scrape()
    for line in (
        'riskwatch_bridge_messages_in_total{channel="telemetry"} 2.0',
        'riskwatch_bridge_rejects_total{reason="malformed_json"} 1.0',
        "riskwatch_bridge_mqtt_connected 1.0",
        "riskwatch_bridge_spool_records 0.0",
        "riskwatch_bridge_kafka_produce_latency_seconds_count",
    ):
        assert line in text, line
