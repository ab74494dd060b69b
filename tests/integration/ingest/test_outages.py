"""No loss: Kafka stopped mid-stream, and the bridge killed with SIGKILL mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.stack import Stack, StackInfo
from deploy.stack.process import free_port
from riskwatch.topics import Topics, mqtt_topic
from riskwatch.wire.batch import decode, drop_sources
from riskwatch.wire.gateway_protocol import telemetry_payload
from tests.integration.ingest.conftest import (
    GatewayClient,
    Plant,
    TopicReader,
    bridge_account,
    retire,
    wait_for,
)

MESSAGES = 300
BRIDGE_CLIENTS: list[str] = []  # accounts (so client ids) of the bridge processes a test started


@pytest.fixture(autouse=True)
def _retire_bridge_sessions(stack: StackInfo) -> Iterator[None]:
    yield
    while BRIDGE_CLIENTS:
        retire(stack, BRIDGE_CLIENTS.pop())


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


def _bridge_process(
    stack: StackInfo, topics: Topics, plant: Plant, spool: Path, client_id: str, *extra: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RISKWATCH_BRIDGE_PW": bridge_account(stack, client_id),
        **stack.kafka("bridge").env(),
    }
    if client_id not in BRIDGE_CLIENTS:
        BRIDGE_CLIENTS.append(client_id)
    args = _bridge_args(stack, topics, plant, spool, client_id, *extra)
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _bridge_args(
    stack: StackInfo, topics: Topics, plant: Plant, spool: Path, client_id: str, *extra: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "riskwatch",
        "bridge",
        "--registry",
        str(plant.registry_file),
        "--mqtt-host",
        stack.mqtt_host,
        "--mqtt-port",
        str(stack.mqtt_port),
        "--mqtt-cafile",
        str(stack.cafile),
        "--mqtt-user",
        client_id,  # the broker binds client ids to accounts: one account per bridge
        "--mqtt-password-env",
        "RISKWATCH_BRIDGE_PW",
        "--share-group",
        client_id,
        "--session-expiry-s",
        "300",
        "--kafka",
        stack.kafka_bootstrap,
        "--topic-prefix",
        topics.prefix,
        "--spool-dir",
        str(spool),
        "--metrics-port",
        "0",
        *extra,
    ]


def _mqtt_connected(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return "riskwatch_bridge_mqtt_connected 1.0" in r.read().decode()
    except OSError:
        return False


def _wait_subscribed(stack: StackInfo, plant: Plant, gw: GatewayClient, reader: TopicReader) -> None:
    """Publish a probe until the bridge carries it: the subprocess is up and subscribed."""
    topic = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
    probe = telemetry_payload(plant.gw_a, 10**9, [{"s": plant.sensors_a[0], "v": 0.0, "t": time.time()}])
    for _ in range(60):
        gw.publish(topic, probe)
        if reader.until(lambda rs: len(rs) > 0, timeout=1.0):
            return
    raise AssertionError("the bridge process never carried a message")


def test_sigkill_mid_stream_then_restart_loses_nothing(
    stack: StackInfo, topics: Topics, plant: Plant, tmp_path: Path
) -> None:
    client_id = f"kill-{uuid.uuid4().hex[:8]}"
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    reader = TopicReader(stack, topics.telemetry)
    bridge = _bridge_process(stack, topics, plant, tmp_path / "spool", client_id)
    progress: list[int] = []
    publisher = threading.Thread(target=_publish_stream, args=(gw, plant, MESSAGES, 0.02, progress))
    try:
        _wait_subscribed(stack, plant, gw, reader)
        publisher.start()
        assert wait_for(lambda: len(progress) >= MESSAGES // 3, 30)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(10)
        time.sleep(1.0)  # the broker notices; messages queue in the persistent session
        bridge = _bridge_process(stack, topics, plant, tmp_path / "spool", client_id)
        publisher.join(60)
        assert len(progress) == MESSAGES
        records = reader.until(lambda rs: set(range(MESSAGES)) <= _deduplicated(rs)[0], timeout=120)
    finally:
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(30)
        gw.close()
        reader.close()
    seqs, kept, _ = _deduplicated(records)
    assert set(range(MESSAGES)) <= seqs
    assert kept == MESSAGES * 10 + 1  # every reading once after de-duplication, plus the probe


def test_sigterm_flushes_what_is_in_flight(
    stack: StackInfo, topics: Topics, plant: Plant, tmp_path: Path
) -> None:
    client_id = f"term-{uuid.uuid4().hex[:8]}"
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    reader = TopicReader(stack, topics.telemetry)
    # a long linger: without the shutdown flush these readings would still be waiting in the batcher
    bridge = _bridge_process(
        stack,
        topics,
        plant,
        tmp_path / "spool",
        client_id,
        "--batch-linger-ms",
        "600000",
        "--batch-max-readings",
        "1",
    )
    try:
        _wait_subscribed(stack, plant, gw, reader)
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(30)
        port = free_port()
        bridge = _bridge_process(
            stack, topics, plant, tmp_path / "spool", client_id, "--batch-linger-ms", "600000",
            "--metrics-port", str(port),
        )  # fmt: skip
        # Connected (and so past start-up, its SIGTERM handler in place) before anything is asked of it:
        # a loaded machine can take longer than any fixed sleep to start a Python process.
        assert wait_for(lambda: _mqtt_connected(port), 60), "restarted bridge never connected to MQTT"
        topic = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
        for seq in range(5):
            readings = [{"s": plant.sensors_a[0], "v": float(seq), "t": time.time()}]
            assert gw.publish(topic, telemetry_payload(plant.gw_a, seq, readings)) == "Success"
        time.sleep(2)  # received by the bridge, held in its batcher
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(30) == 0, bridge.stderr.read().decode() if bridge.stderr else ""
        records = reader.until(lambda rs: set(range(5)) <= _deduplicated(rs)[0], timeout=15)
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)
        gw.close()
        reader.close()
    assert set(range(5)) <= _deduplicated(records)[0]


def test_bridge_rides_out_a_mosquitto_restart(
    stack: StackInfo, topics: Topics, plant: Plant, run_bridge: Callable[..., Any]
) -> None:
    bridge = run_bridge(plant.registry)
    reader = TopicReader(stack, topics.telemetry)
    local = Stack(stack.home)
    topic = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
    reading = [{"s": plant.sensors_a[0], "v": 1.0, "t": time.time()}]
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    try:
        assert gw.publish(topic, telemetry_payload(plant.gw_a, 1, reading)) == "Success"
        assert reader.until(lambda rs: 1 in _deduplicated(rs)[0], 20)
        gw.close()
        local.stop_service("mosquitto")
        try:
            assert wait_for(lambda: not bridge.source.connected, 10)
        finally:
            local.start_service("mosquitto")
        assert wait_for(lambda: bridge.source.connected, 30), "bridge did not reconnect"
        gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
        assert gw.publish(topic, telemetry_payload(plant.gw_a, 2, reading)) == "Success"
        records = reader.until(lambda rs: {1, 2} <= _deduplicated(rs)[0], 30)
    finally:
        gw.close()
        reader.close()
    assert {1, 2} <= _deduplicated(records)[0]
    assert bridge.metrics_registry.get_sample_value("riskwatch_bridge_mqtt_connected") == 1


def test_a_retired_bridge_session_is_gone_and_queues_nothing(
    stack: StackInfo, topics: Topics, plant: Plant, tmp_path: Path
) -> None:
    client_id = f"retire-{uuid.uuid4().hex[:8]}"
    bridge = _bridge_process(stack, topics, plant, tmp_path / "spool", client_id)
    gw = GatewayClient(stack, plant.gw_a, plant.passwords[plant.gw_a])
    reader = TopicReader(stack, topics.telemetry)
    try:
        _wait_subscribed(stack, plant, gw, reader)
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(30) == 0
        # Stopped, not retired: the broker keeps the session and queues for it.
        topic = mqtt_topic(plant.site_a, plant.gw_a, "telemetry")
        readings = [{"s": plant.sensors_a[0], "v": 1.0, "t": time.time()}]
        assert gw.publish(topic, telemetry_payload(plant.gw_a, 10**6, readings)) == "Success"
        env = {
            **os.environ,
            "RISKWATCH_BRIDGE_PW": bridge_account(stack, client_id),
            **stack.kafka("bridge").env(),
        }
        retired = subprocess.run(
            [*_bridge_args(stack, topics, plant, tmp_path / "spool", client_id), "--retire"],
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert retired.returncode == 0, retired.stderr.decode()
        assert not _session_present(stack, client_id)
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)
        gw.close()
        reader.close()


def _session_present(stack: StackInfo, client_id: str) -> bool:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    present: list[bool] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(client_id, bridge_account(stack, client_id))
    client.tls_set_context(stack.client_tls.context())
    client.on_connect = lambda c, u, flags, reason, p: (present.append(flags.session_present), done.set())
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0  # this probe leaves no session behind either
    client.connect(stack.mqtt_host, stack.mqtt_port, clean_start=False, properties=props)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
        return present[0]
    finally:
        client.disconnect()
        client.loop_stop()
