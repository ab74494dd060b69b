"""Readings published by a gateway reach rw.telemetry exactly; bad input lands in rw.deadletter."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from deploy.stack import StackInfo
from deploy.stack.process import free_port
from riskwatch.topics import Topics, mqtt_topic
from riskwatch.wire.batch import decode
from riskwatch.wire.deadletter import DeadLetter
from riskwatch.wire.gateway_protocol import GatewayRecord, events_payload, status_payload, telemetry_payload
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
    bridge = run_bridge(plant.registry, max_payload=64 * 1024, max_readings=100)
    stranger, moved, passwords = plant.gw_stranger, plant.gw_moved, plant.passwords
    now = time.time()
    good = {"s": plant.sensors_a[0], "v": 1.0, "t": now}
    telemetry = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
    events = mqtt_topic(plant.site_a, plant.gw_a, "events")
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
        # hostile inputs: none of them may stop the bridge
        (
            telemetry,
            b'{"gw": "%s", "seq": 7, "readings": [{"s": "x\\ud800", "v": 1, "t": %d}]}'
            % (plant.gw_a.encode(), int(now)),
            "malformed_json",
        ),
        (telemetry, telemetry_payload(plant.gw_a, 8, [good, {**good, "t": -1e11}]), "old_timestamp"),
        (
            telemetry,
            b'{"gw": "%s", "seq": 9, "readings": [{"s": "%s", "v": 1, "t": %s}]}'
            % (plant.gw_a.encode(), plant.sensors_a[0].encode(), b"9" * 400),
            "schema",
        ),
        (
            telemetry,
            telemetry_payload(plant.gw_a, 10, [good, {"s": plant.sensor_a2, "v": 1, "t": now}]),
            "sensor_gateway_mismatch",
        ),
        (telemetry, telemetry_payload(plant.gw_a, 11, [good] * 101), "too_many_items"),
        (
            events,
            events_payload(plant.gw_a, 12, [{"kind": "maintenance_on", "target": plant.unit_a2, "t": now}]),
            "target_not_served",
        ),
        (
            events,
            events_payload(plant.gw_a, 13, [{"kind": "maintenance_on", "target": "unit-1", "t": now}]),
            "target_unknown",
        ),
    ]
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    gx = GatewayClient(stack, stranger, passwords[stranger])
    gm = GatewayClient(stack, moved, passwords[moved])
    dead = TopicReader(stack, topics.deadletter, plant.keys)
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
        expected = {(t, reason) for t, _, reason in cases}
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
                events_payload(plant.gw_a, 1, [{"kind": "maintenance_on", "target": plant.unit_a, "t": now}]),
            )
            == "Success"
        )
        records = dead.until(lambda rs: len(rs) >= len(cases) + 2)
        letters = [DeadLetter.from_bytes(r.value) for r in records]
        assert {(d.source, d.reason) for d in letters} == expected
        by_reason: dict[str, DeadLetter] = {}
        for letter in letters:
            by_reason.setdefault(letter.reason, letter)
        assert by_reason["malformed_json"].original == b"{not json"
        assert any("surrogate" in d.detail for d in letters if d.reason == "malformed_json")
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
        counts = Counter(reason for _, _, reason in cases)
        counts.update(["gateway_unknown", "gateway_site_mismatch"])
        for reason, count in counts.items():
            counted = rejects("riskwatch_bridge_rejects_total", {"reason": reason})
            if reason == "gateway_unknown":  # also other tests' retained statuses, see TopicReader
                assert counted is not None and counted >= count, reason
            else:
                assert counted == count, reason
        assert rejects("riskwatch_bridge_rejects_total", {"reason": "internal_error"}) is None
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
    dead = TopicReader(stack, topics.deadletter, plant.keys)
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
            gw.publish(
                topic, telemetry_payload(plant.gw_a, 1, [{"s": plant.sensors_a[0], "v": 1, "t": time.time()}])
            )
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


def test_client_ids_are_bound_to_accounts(
    stack: StackInfo, topics: Topics, plant: Plant, run_bridge: Callable[..., Any]
) -> None:
    """Nobody can take over the bridge's persistent session, or kick another gateway off, by its client id."""
    bridge = run_bridge(plant.registry)
    account = bridge.settings.mqtt_user
    drops: list[float] = []
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    reader = TopicReader(stack, topics.telemetry)
    impostors = []
    try:
        for client_id in (account, bridge.settings.client_id, plant.gw_a):
            impostors.append(GatewayClient(stack, plant.gw_a2, plant.passwords[plant.gw_a2], client_id))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # a taken-over session would show as a dropped connection
            if not bridge.source.connected:
                drops.append(time.monotonic())
            time.sleep(0.01)
        assert drops == [] and gw.disconnects == 0
        topic = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
        payload = telemetry_payload(plant.gw_a, 1, [{"s": plant.sensors_a[0], "v": 1.0, "t": time.time()}])
        assert gw.publish(topic, payload) == "Success"
        assert reader.until(lambda rs: len(rs) >= 1)
    finally:
        for client in (gw, *impostors):
            client.close()
        reader.close()


def test_the_broker_refuses_packets_beyond_what_the_bridge_accepts(
    stack: StackInfo, topics: Topics, plant: Plant, run_bridge: Callable[..., Any]
) -> None:
    bridge = run_bridge(plant.registry)
    dead = TopicReader(stack, topics.deadletter, plant.keys)
    topic = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
    big = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    try:
        # a little over the bridge's limit reaches it and is dead-lettered
        assert big.publish(topic, b" " * (300 * 1024)) == "Success"
        letters = [DeadLetter.from_bytes(r.value) for r in dead.until(lambda rs: len(rs) >= 1)]
        assert [(d.reason, d.original_length) for d in letters] == [("oversized_payload", 300 * 1024)]
        # far over it, the broker disconnects the sender; the bridge never sees it
        big.publish(topic, b" " * (400 * 1024), wait=False)
        assert wait_for(lambda: big.disconnects > 0, 10)
        assert bridge.source.connected
    finally:
        big.client.disconnect()
        big.client.loop_stop()
        dead.close()
