"""Real Mosquitto and Kafka around a real bridge: helpers to run one, publish as a gateway, read topics."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from deploy.stack import StackInfo, add_bridge_accounts, add_gateways
from ingest.service import BridgeService
from ingest.settings import BridgeSettings
from riskwatch.registry import Registry, load_registry
from riskwatch.topics import Topics
from tests.waiting import wait_for


@dataclass(frozen=True)
class Plant:
    """A unique two-site plant per test, as a real registry (also written to `registry_file`).

    `gw_moved` has an MQTT account at site B but the registry puts it at site A; `gw_stranger` has an
    MQTT account at site A but is not in the registry. `gw_a2` serves `unit_a2` (with `sensor_a2`) at
    site A; `gw_a` serves `unit_a` (with `sensors_a`).
    """

    site_a: str
    site_b: str
    gw_a: str
    gw_b: str
    gw_moved: str
    gw_stranger: str
    sensors_a: tuple[str, ...]
    sensor_b: str
    registry: Registry
    registry_file: Path
    passwords: dict[str, str]

    @property
    def keys(self) -> frozenset[bytes]:
        """Kafka keys of this plant's records: its sites, and none for a message with no site."""
        return frozenset({self.site_a.encode(), self.site_b.encode(), b""})

    unit_a: str = ""
    gw_a2: str = ""
    unit_a2: str = ""
    sensor_a2: str = ""


def _site(site: str, gateways: list[str], units: dict[str, tuple[str, list[str]]]) -> dict[str, Any]:
    """`units`: unit id -> (its gateway, its sensors)."""
    return {
        "id": site,
        "region": "R1",
        "name": site,
        "industry": "hazardous_chemicals",
        "gateways": [{"id": g} for g in gateways],
        "units": [
            {
                "id": unit,
                "kind": "tank_farm",
                "gateway": gateway,
                "sensors": [{"id": s, "type": "flammable_gas"} for s in sensors],
            }
            for unit, (gateway, sensors) in units.items()
        ],
    }


@pytest.fixture
def plant(stack: StackInfo, tmp_path: Path) -> Plant:
    tag = uuid.uuid4().hex[:6]
    site_a, site_b = f"sa{tag}", f"sb{tag}"
    gw_a, gw_b, gw_moved, gw_stranger = f"ga{tag}", f"gb{tag}", f"gm{tag}", f"gx{tag}"
    gw_a2, unit_a, unit_a2 = f"gc{tag}", f"ua{tag}", f"uc{tag}"
    sensors_a = tuple(f"gt-{tag}-{i:03d}" for i in range(50))
    sensor_b, sensor_a2 = f"gt-{tag}-b", f"gt-{tag}-c"
    doc = {
        "version": 1,
        "regions": [{"id": "R1"}],
        "sites": [
            _site(
                site_a,
                [gw_a, gw_moved, gw_a2],
                {unit_a: (gw_a, list(sensors_a)), unit_a2: (gw_a2, [sensor_a2])},
            ),
            _site(site_b, [gw_b], {f"ub{tag}": (gw_b, [sensor_b])}),
        ],
    }
    registry_file = tmp_path / "registry.json"
    registry_file.write_bytes(orjson.dumps(doc))
    passwords = add_gateways(
        stack, [(site_a, gw_a), (site_b, gw_b), (site_b, gw_moved), (site_a, gw_stranger), (site_a, gw_a2)]
    )
    return Plant(
        site_a,
        site_b,
        gw_a,
        gw_b,
        gw_moved,
        gw_stranger,
        sensors_a,
        sensor_b,
        load_registry(registry_file),
        registry_file,
        passwords,
        unit_a,
        gw_a2,
        unit_a2,
        sensor_a2,
    )


def bridge_account(stack: StackInfo, name: str) -> str:
    """An MQTT account (and so a client id and session) for one test bridge; returns its password."""
    return add_bridge_accounts(stack, [name])[name]


def bridge_settings(stack: StackInfo, topics: Topics, spool: Path, **overrides: Any) -> BridgeSettings:
    tag = uuid.uuid4().hex[:8]
    account = f"bridge-{tag}"
    base = BridgeSettings(
        registry=Path("unused"),
        mqtt_host=stack.mqtt_host,
        mqtt_port=stack.mqtt_port,
        mqtt_cafile=stack.client_tls.cafile,
        mqtt_user=account,
        mqtt_password=bridge_account(stack, account),
        group=f"g{tag}",  # a test's bridge never shares with an earlier test's lingering session
        session_expiry_s=120,
        kafka=stack.kafka("bridge"),
        topic_prefix=topics.prefix,
        spool_dir=spool,
        metrics_port=0,
        delivery_timeout_s=6.0,
        shutdown_timeout_s=20.0,
    )
    return base.model_copy(update=overrides)


@pytest.fixture
def run_bridge(stack: StackInfo, topics: Topics, tmp_path: Path) -> Iterator[Callable[..., BridgeService]]:
    started: list[BridgeService] = []

    def start(registry: Any, **overrides: Any) -> BridgeService:
        service = BridgeService(bridge_settings(stack, topics, tmp_path / "spool", **overrides), registry)
        service.start()
        assert wait_for(lambda: service.source.connected, 15), "bridge did not connect to MQTT"
        time.sleep(0.3)  # SUBACK
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
        retire(stack, service.settings.mqtt_user)


def retire(stack: StackInfo, account: str) -> None:
    """Discard a finished test bridge's persistent session, so the broker stops queueing for it."""
    from ingest.mqtt import retire_session

    settings = BridgeSettings(
        registry=Path("unused"),
        mqtt_host=stack.mqtt_host,
        mqtt_port=stack.mqtt_port,
        mqtt_cafile=stack.client_tls.cafile,
        mqtt_user=account,
        mqtt_password=bridge_account(stack, account),
    )
    assert retire_session(settings), f"could not retire the MQTT session of {account!r}"


class GatewayClient:
    """A paho MQTT v5 client logged in as a gateway; `publish` waits for the PUBACK and returns its reason."""

    def __init__(self, stack: StackInfo, user: str, password: str, client_id: str = "") -> None:
        self.pubacks: dict[int, str] = {}
        self.disconnects = 0
        self._lock = threading.Lock()
        connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id=client_id or uuid.uuid4().hex
        )
        self.client.username_pw_set(user, password)
        self.client.tls_set_context(stack.client_tls.context())
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = lambda *a: connected.set()
        self.client.on_disconnect = lambda *a: setattr(self, "disconnects", self.disconnects + 1)
        self.client.on_publish = self._on_publish
        self.client.connect(stack.mqtt_host, stack.mqtt_port)
        self.client.loop_start()
        assert connected.wait(10)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self.pubacks[mid] = str(reason)

    def publish(self, topic: str, payload: bytes, wait: bool = True) -> str:
        info = self.client.publish(topic, payload, qos=1)
        if not wait:
            return ""
        wait_for(lambda: info.mid in self.pubacks, 10)
        return self.pubacks.get(info.mid, "no puback")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class TopicReader:
    """Reads a Kafka topic from the beginning, accumulating records across calls.

    With `keys`, only records with one of those keys are kept: a test's bridge subscribes to every
    gateway topic and so also receives the retained status messages other tests' gateways left in the
    broker (dead-lettered as `gateway_unknown` under their own sites)."""

    def __init__(self, stack: StackInfo, topic: str, keys: frozenset[bytes] | None = None) -> None:
        from kafka import KafkaConsumer

        self.keys = keys
        self.records: list[Any] = []
        self.consumer = KafkaConsumer(
            topic,
            **stack.kafka("tools").kafka_python(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=f"r{uuid.uuid4().hex[:8]}",
        )

    def until(self, predicate: Callable[[list[Any]], bool], timeout: float = 30.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while not predicate(self.records) and time.monotonic() < deadline:
            for batch in self.consumer.poll(timeout_ms=500).values():
                self.records.extend(r for r in batch if self.keys is None or r.key in self.keys)
        return self.records

    def close(self) -> None:
        self.consumer.close()
