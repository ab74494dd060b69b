"""Benchmark helpers run in their own processes: gateway publishers and the naive baseline bridge.

The naive bridge is what one writes first: auto-acknowledged MQTT, `json.loads`, one JSON Kafka message
per reading, no batching, no registry indexing. It is the baseline `riskwatch bench bridge` compares to.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
import time
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from riskwatch.kafka_access import KafkaAccess
from riskwatch.tls import ClientTLS
from riskwatch.topics import mqtt_topic
from riskwatch.wire.gateway_protocol import telemetry_payload


class GatewayLoad(NamedTuple):
    site: str
    gateway: str
    password: str
    sensors: tuple[str, ...]


class Broker(NamedTuple):
    host: str
    port: int
    tls: ClientTLS  # the broker is verified against it (MQTT over TLS)


def publish(
    broker: Broker,
    gateways: list[GatewayLoad],
    messages: int,
    per_message: int,
    rate_msgs_per_s: float,
    seq_start: int,
    done: Any,
) -> None:
    """Publish `messages` telemetry messages round-robin over `gateways` (QoS 1), as fast as allowed."""
    clients = []
    for g in gateways:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"load-{g.gateway}-{seq_start}", protocol=mqtt.MQTTv5
        )
        client.username_pw_set(g.gateway, g.password)
        client.tls_set_context(broker.tls.context())
        client.max_inflight_messages_set(2000)
        client.max_queued_messages_set(0)
        client.connect(broker.host, broker.port)
        client.loop_start()
        clients.append(client)
    time.sleep(0.5)
    topics = [mqtt_topic(g.site, g.gateway, "telemetry") for g in gateways]
    started = time.perf_counter()
    infos = []
    for i in range(messages):
        k = i % len(gateways)
        g = gateways[k]
        offset = (i // len(gateways)) * per_message % max(1, len(g.sensors) - per_message + 1)
        now = time.time()
        readings = [{"s": s, "v": 1.5, "t": now} for s in g.sensors[offset : offset + per_message]]
        infos.append(
            clients[k].publish(topics[k], telemetry_payload(g.gateway, seq_start + i, readings), qos=1)
        )
        if rate_msgs_per_s:
            ahead = (i + 1) / rate_msgs_per_s - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
    for info in infos:
        info.wait_for_publish(60)
    for client in clients:
        client.disconnect()
        client.loop_stop()
    done.put(time.perf_counter() - started)


def start_publishers(
    broker: Broker,
    gateways: list[GatewayLoad],
    processes: int,
    messages: int,
    per_message: int,
    rate_msgs_per_s: float,
    seq_start: int,
) -> tuple[list[mp.process.BaseProcess], Any]:
    """Split gateways and messages over `processes` publisher processes (spawned, no inherited threads)."""
    ctx = mp.get_context("spawn")
    done = ctx.Queue()
    procs: list[mp.process.BaseProcess] = []
    for p in range(processes):
        mine = gateways[p::processes]
        proc = ctx.Process(
            target=publish,
            args=(
                broker,
                mine,
                messages // processes,
                per_message,
                rate_msgs_per_s / processes,
                seq_start + p * messages,
                done,
            ),
            daemon=True,
        )
        proc.start()
        procs.append(proc)
    return procs, done


def naive_bridge(
    broker: Broker, user: str, password: str, kafka: KafkaAccess, topic: str, group: str, ready: Any
) -> None:
    """The baseline: one JSON Kafka message per reading, straight from the MQTT callback."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka.kafka_python(), acks="all")  # otherwise the library defaults
    lock = threading.Lock()

    def on_message(client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        doc = json.loads(msg.payload)
        with lock:
            for r in doc["readings"]:
                record = {"site": parts[2], "gw": doc["gw"], "seq": doc["seq"], **r}
                producer.send(topic, key=parts[2].encode(), value=json.dumps(record).encode())

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=group, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.tls_set_context(broker.tls.context())
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(f"$share/{group}/rw/v1/+/+/telemetry", qos=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    ready.put(True)
    while True:
        time.sleep(1)
