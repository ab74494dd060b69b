"""The local stack is real: each service answers its own protocol, security is on, lifecycle is clean."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from deploy.stack import Stack, StackInfo, add_bridge_accounts, add_gateways
from deploy.stack.process import PidFile
from deploy.stack.settings import StackSettings
from riskwatch.topics import mqtt_topic
from tests.waiting import wait_for


def _riskwatch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "riskwatch", *args], capture_output=True, text=True, timeout=timeout
    )


class _Mqtt:
    """A paho client that waits for CONNACK and records what it receives and each PUBACK's reason."""

    def __init__(self, info: StackInfo, user: str, password: str) -> None:
        self.connected = threading.Event()
        self.reason = ""
        self.received: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, str] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id=uuid.uuid4().hex
        )
        self.client.username_pw_set(user, password)
        self.client.tls_set_context(info.client_tls.context())
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.on_publish = self._on_publish
        self.client.connect(info.mqtt_host, info.mqtt_port)
        self.client.loop_start()
        self.connected.wait(10)

    def _on_connect(
        self, client: object, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self.reason = str(reason)
        self.connected.set()

    def _on_publish(self, client: object, userdata: object, mid: int, reason: object, props: object) -> None:
        self.pubacks[mid] = str(reason)

    def publish(self, topic: str, payload: bytes) -> str:
        info = self.client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 10
        while info.mid not in self.pubacks and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.pubacks.get(info.mid, "no puback")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_gateway_publishes_only_under_its_own_site_and_id(stack: StackInfo) -> None:
    site, other_site, gateway = (
        f"s{uuid.uuid4().hex[:6]}",
        f"s{uuid.uuid4().hex[:6]}",
        f"gw{uuid.uuid4().hex[:6]}",
    )
    password = add_gateways(stack, [(site, gateway)])[gateway]
    account = f"watch-{uuid.uuid4().hex[:6]}"  # its own: client ids are bound to accounts
    watcher = _Mqtt(stack, account, add_bridge_accounts(stack, [account])[account])
    watcher.client.subscribe("rw/v1/#", qos=1)
    gw = _Mqtt(stack, gateway, password)
    try:
        assert gw.reason == "Success"
        time.sleep(0.3)  # let the subscription settle
        own = mqtt_topic(site, gateway, "telemetry")
        assert gw.publish(own, b'{"ok": 1}') == "Success"
        assert wait_for(lambda: (own, b'{"ok": 1}') in watcher.received)

        foreign = mqtt_topic(other_site, gateway, "telemetry")
        assert gw.publish(foreign, b'{"spoof": 1}') == "Not authorized"
        time.sleep(0.5)
        assert all(topic != foreign for topic, _ in watcher.received)
    finally:
        gw.close()
        watcher.close()


def test_wrong_password_is_refused(stack: StackInfo) -> None:
    gateway = f"gw{uuid.uuid4().hex[:6]}"
    add_gateways(stack, [("s1", gateway)])
    client = _Mqtt(stack, gateway, "not-the-password")
    try:
        assert client.reason in ("Bad user name or password", "Not authorized")
    finally:
        client.close()


def test_anonymous_is_refused(stack: StackInfo) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    reasons: list[str] = []
    client.tls_set_context(stack.client_tls.context())
    client.on_connect = lambda c, u, f, reason, p: reasons.append(str(reason))
    client.connect(stack.mqtt_host, stack.mqtt_port)
    client.loop_start()
    try:
        assert wait_for(lambda: reasons, 10)
        assert reasons[0] != "Success"
    finally:
        client.loop_stop()


def test_kafka_record_produced_is_consumed_back(stack: StackInfo, topics: object) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic = topics.telemetry  # type: ignore[attr-defined]
    producer = KafkaProducer(**stack.kafka("tools").kafka_python(), acks="all", enable_idempotence=True)
    producer.send(topic, key=b"site-1", value=b"hello riskwatch").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        **stack.kafka("tools").kafka_python(),
        auto_offset_reset="earliest",
        group_id=f"g{uuid.uuid4().hex[:6]}",
        consumer_timeout_ms=15000,
    )
    try:
        records = [(r.key, r.value) for r in consumer]
    finally:
        consumer.close()
    assert records == [(b"site-1", b"hello riskwatch")]


def test_influx_point_is_queried_back_with_flux(stack: StackInfo) -> None:
    from influxdb_client import InfluxDBClient, Point
    from influxdb_client.client.write_api import SYNCHRONOUS

    sensor = f"GT-{uuid.uuid4().hex[:6]}"
    with InfluxDBClient(url=stack.influx_url, token=stack.influx_token, org=stack.influx_org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            stack.influx_bucket, record=Point("reading").tag("sensor", sensor).field("value", 26.5)
        )
        tables = client.query_api().query(
            f'from(bucket: "{stack.influx_bucket}") |> range(start: -5m) '
            f'|> filter(fn: (r) => r._measurement == "reading" and r.sensor == "{sensor}")'
        )
    assert [rec.get_value() for table in tables for rec in table.records] == [26.5]


def test_influx_rejects_a_wrong_token(stack: StackInfo) -> None:
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS
    from influxdb_client.rest import ApiException

    with (
        InfluxDBClient(url=stack.influx_url, token="riskwatch-admin:wrong", org="-") as client,
        pytest.raises(ApiException) as caught,
    ):
        client.write_api(write_options=SYNCHRONOUS).write(stack.influx_bucket, record="m v=1")
    assert caught.value.status == 401


def test_stack_lifecycle_from_the_cli(tmp_path: Path) -> None:
    """up -> status --json all ready -> up again is harmless -> down leaves no process of ours."""
    home = tmp_path / "stack"
    up = _riskwatch("stack", "--home", str(home), "up")
    try:
        assert up.returncode == 0, up.stderr
        status = _riskwatch("stack", "--home", str(home), "status", "--json")
        assert status.returncode == 0, status.stderr
        services = orjson.loads(status.stdout)
        assert {s["name"] for s in services} == {"kafka", "mosquitto", "influxdb"}
        assert all(s["ready"] and s["pid"] and s["address"].startswith("127.0.0.1:") for s in services)
        pids = {s["name"]: s["pid"] for s in services}
        # The recorded pid is the server itself (not a `nice` wrapper), and history yields the CPU.
        assert b"influxd" in Path(f"/proc/{pids['influxdb']}/cmdline").read_bytes()
        assert os.sched_getscheduler(pids["influxdb"]) == os.SCHED_IDLE
        assert (
            os.sched_getscheduler(pids["kafka"]) == os.sched_getscheduler(pids["mosquitto"]) == os.SCHED_OTHER
        )

        again = _riskwatch("stack", "--home", str(home), "up")
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("already running") == 3
        assert {
            s["name"]: s["pid"]
            for s in orjson.loads(_riskwatch("stack", "--home", str(home), "status", "--json").stdout)
        } == pids
    finally:
        down = _riskwatch("stack", "--home", str(home), "down")
    assert down.returncode == 0, down.stderr
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    assert not list(home.glob("*/*.pid"))
    stopped = orjson.loads(_riskwatch("stack", "--home", str(home), "status", "--json").stdout)
    assert not any(s["ready"] or s["pid"] for s in stopped)


def test_port_in_use_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = _riskwatch(
            "stack", "--home", str(tmp_path / "stack"), "up", "--mqtt-port", str(port), timeout=120
        )
        elapsed = time.monotonic() - started
    try:
        assert result.returncode != 0
        assert f"port {port}" in result.stderr and "already in use" in result.stderr
        assert elapsed < 60
    finally:
        _riskwatch("stack", "--home", str(tmp_path / "stack"), "down")
    # Nothing was left running by the failed start.
    assert not any(PidFile(p).read() for p in (tmp_path / "stack").glob("*/*.pid"))


def test_stop_by_recorded_pid_ignores_a_reused_pid(tmp_path: Path) -> None:
    """A pid file whose process start time no longer matches is not ours: nothing is signalled."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = PidFile(tmp_path / "x.pid")
        pidfile.path.write_text(f"{sleeper.pid} 1\n")  # start time 1: certainly not this process
        assert pidfile.read() is None
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_settings_are_remembered_between_starts(tmp_path: Path) -> None:
    settings = StackSettings.create()
    settings.save(tmp_path / "stack.json")
    assert Stack(tmp_path).settings == settings
    assert oct((tmp_path / "stack.json").stat().st_mode & 0o777) == "0o600"
