"""A simulated plant gateway on MQTT, speaking exactly the gateway protocol (docs/gateway-protocol.md).

Payloads come from `riskwatch.wire.gateway_protocol` (never redefined here). The gateway connects with MQTT v5
and a retained last will "offline" on its status topic, announces "online" (retained), publishes
telemetry batches with QoS 1 and an increasing `seq`, and reports discrete events. `drop()` leaves
the broker with reason code 4 "disconnect with will message", so the broker publishes the will exactly
as when a real gateway loses power.
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from riskwatch.tls import ClientTLS
from riskwatch.topics import mqtt_topic
from riskwatch.wire.gateway_protocol import events_payload, status_payload, telemetry_payload
from simulators.mqtt_loop import NetworkLoop, connect_paced
from simulators.plants import PlantEvent
from simulators.sensors import SimulatorError
from simulators.simulation import GatewayBatch

QOS = 1
SESSION_EXPIRY_S = 300


@dataclass(frozen=True, slots=True)
class Broker:
    """Where gateways connect (over TLS, verifying the broker with `tls`), each gateway's password
    (username = gateway id) and, optionally, a gateway's own client certificate (`client_certs`)."""

    host: str
    port: int
    passwords: dict[str, str]
    tls: ClientTLS
    root: str = "rw"
    client_certs: Mapping[str, ClientTLS] = field(default_factory=dict)

    def tls_for(self, gateway: str) -> ClientTLS:
        return self.client_certs.get(gateway, self.tls)


def announce_online(gateways: dict[str, str], broker: Broker) -> None:
    """Connect each gateway (id -> site) once and leave its retained status "online".

    Start a pipeline after this: a bridge subscribing to `.../status` is handed the retained status,
    and an "offline" left by an earlier run would reach the engine as news and mark the gateway down.
    """
    net = NetworkLoop("announce-online")
    try:
        clients = [GatewayClient(site, gw, broker, net=net) for gw, site in gateways.items()]
        connect_all(clients)
        for client in clients:
            client.leave_online()
        for client in clients:
            client.wait_closed(15.0)
    finally:
        net.stop()


def connect_all(clients: Sequence[GatewayClient], timeout: float = 30.0) -> None:
    """Connect many gateways, a window of CONNACKs at a time; SimulatorError naming the first that fails."""
    try:
        connect_paced(
            clients, GatewayClient.start_connect, lambda c: c.connected, lambda c: c.connect_error, timeout
        )
    except RuntimeError as exc:
        raise SimulatorError(f"gateway could not connect to MQTT: {exc}") from None


@functools.lru_cache(maxsize=64)
def shared_context(tls: ClientTLS) -> ssl.SSLContext:
    """One SSL context per TLS setting: loading the CA once, not once per simulated gateway."""
    return tls.context()


class GatewayClient:
    """One gateway's MQTT connection; thread-safe counters of what the broker acknowledged."""

    def __init__(
        self,
        site: str,
        gateway: str,
        broker: Broker,
        on_acked: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
        net: NetworkLoop | None = None,
    ) -> None:
        if gateway not in broker.passwords:
            raise SimulatorError(f"no MQTT password for gateway {gateway}; create its account first")
        self.site, self.gateway, self.broker, self.clock = site, gateway, broker, clock
        self.seq = 0
        self.event_seq = 0
        self.sent_readings = 0
        self.acked_readings = 0
        self._pending: dict[int, int] = {}  # mid -> readings in that message
        # PUBACKs arrive on paho's thread while paho holds its own mutex: the callback only appends here
        # (lock-free), and the publishing side settles them under `_lock`. Taking `_lock` in the callback
        # would deadlock against publish(), which takes paho's mutex while we hold `_lock`.
        self._acked_mids: deque[int] = deque()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._on_acked = on_acked
        self.connect_error = ""
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{gateway}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(gateway, broker.passwords[gateway])
        self.client.tls_set_context(shared_context(broker.tls_for(gateway)))
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)  # unbounded: a slow broker delays, never drops
        self.client.will_set(self.topic("status"), status_payload(gateway, "offline"), qos=QOS, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self.net = net  # one thread drives many clients' sockets; else paho's own thread per client
        if net is not None:
            net.attach(self.client)

    def topic(self, channel: str) -> str:
        return mqtt_topic(self.site, self.gateway, channel, self.broker.root)

    # -- paho callbacks (network thread) -----------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.connect_error = str(reason)
            return
        client.publish(self.topic("status"), status_payload(self.gateway, "online", self.clock()), QOS, True)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acked_mids.append(mid)

    def _settle_acks(self) -> None:
        """Count the acknowledged messages; called with `_lock` held, never from paho's thread."""
        acked = 0
        while self._acked_mids:
            acked += self._pending.pop(self._acked_mids.popleft(), 0)
        self.acked_readings += acked
        if acked and self._on_acked is not None:
            self._on_acked(acked)

    # -- the gateway's life ------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.gateway

    def start_connect(self) -> None:
        """Open the connection and send CONNECT; `connected` turns true on the CONNACK."""
        self.connect_error = ""
        self.client.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=True)
        if self.net is None:
            self.client.loop_start()

    def connect(self, timeout: float = 15.0) -> None:
        """Connect, wait for CONNACK, announce online; raises SimulatorError if refused or unreachable."""
        self.start_connect()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            why = self.connect_error or "no CONNACK"
            raise SimulatorError(f"gateway {self.gateway} could not connect to MQTT: {why}")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish_batch(self, batch: GatewayBatch) -> int:
        """Publish one telemetry message; returns its seq."""
        rows = [
            {"s": s, "v": v, "t": t}
            for s, v, t in zip(batch.sensor_ids, batch.values.tolist(), batch.ts.tolist(), strict=True)
        ]
        return self.publish_rows(rows)

    def publish_rows(self, rows: list[dict[str, Any]]) -> int:
        """Publish already-built reading rows as one telemetry message; returns its seq."""
        self.seq = self._next_seq(self.seq)
        payload = telemetry_payload(self.gateway, self.seq, rows)
        with self._lock:  # register before settling: the PUBACK may beat publish()'s return
            info = self.client.publish(self.topic("telemetry"), payload, qos=QOS)
            self._pending[info.mid] = len(rows)
            self.sent_readings += len(rows)
            self._settle_acks()
        return self.seq

    def publish_events(self, events: Sequence[PlantEvent], targets: dict[str, str] | None = None) -> None:
        """Report plant events; `targets` maps a unit to the sensor id an event names, else the unit."""
        if not events:
            return
        self.event_seq = self._next_seq(self.event_seq)
        rows = [
            {"kind": e.kind, "target": (targets or {}).get(e.unit, e.unit), "t": e.t, "note": e.detail}
            for e in events
        ]
        self.client.publish(self.topic("events"), events_payload(self.gateway, self.event_seq, rows), qos=QOS)

    def _next_seq(self, last: int) -> int:
        """A millisecond clock, kept strictly increasing (docs/gateway-protocol.md): a new client for a
        gateway (a restart) never reuses a seq of the one before, as a counter from 0 would."""
        return max(last + 1, int(self.clock() * 1000))

    @property
    def in_flight(self) -> int:
        with self._lock:
            self._settle_acks()
            return len(self._pending)

    def wait_acked(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every message published so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_flight == 0:
                return True
            time.sleep(0.01)
        return self.in_flight == 0

    def drop(self) -> None:
        """Vanish as a powered-off gateway would: the broker publishes the retained 'offline' will."""
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        self.client.loop_stop()
        self._connected.clear()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until the connection is gone (a driven client's DISCONNECT is written by its loop)."""
        deadline = time.monotonic() + timeout
        while self.client.socket() is not None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.client.socket() is None

    def leave_online(self) -> None:
        """Disconnect cleanly without the offline message, so the retained status stays "online"."""
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    def close(self, timeout: float = 10.0) -> None:
        """Orderly shutdown: wait for acks, announce offline (retained), disconnect."""
        self.wait_acked(timeout)
        if self.connected:
            info = self.client.publish(
                self.topic("status"), status_payload(self.gateway, "offline"), QOS, True
            )
            info.wait_for_publish(timeout)
            self.client.disconnect()
        self.client.loop_stop()
