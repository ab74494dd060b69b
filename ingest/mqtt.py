"""The MQTT side: a persistent MQTT v5 session on a shared subscription, with manual acknowledgements.

Mosquitto keeps the session (and queues QoS 1 messages) for `session_expiry_s` while the bridge is
down; messages received but not acknowledged are redelivered on the next connection, so acknowledging
only durable messages is what makes a crash lose nothing.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.metrics import BridgeMetrics
from ingest.settings import BridgeSettings
from riskwatch.topics import MQTT_VERSION

log = logging.getLogger(__name__)


class Inbound(NamedTuple):
    """One received MQTT message, stamped when it arrived."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float  # wall clock, epoch seconds


def subscription(settings: BridgeSettings) -> str:
    """$share/{group}/{root}/v1/+/+/+ : every site, gateway and channel, load split across the group."""
    return f"$share/{settings.group}/{settings.topic_root}/{MQTT_VERSION}/+/+/+"


def retire_session(settings: BridgeSettings, timeout_s: float = 10.0) -> bool:
    """End the bridge's persistent session at the broker (decommissioning a bridge); True on success.

    With client ids bound to accounts the session is the account's: run this only once no bridge is
    connected on that account (it would take the connection over).

    A stopped bridge's session keeps its shared subscription: the broker goes on queueing messages for
    it (in its own share group, every message; in a shared group, its round-robin share, which no other
    bridge then receives) until the session expires. Connecting once with clean start and a session
    expiry of 0 discards the session and its queue at once.
    """
    import threading

    done = threading.Event()
    outcome: list[str] = []

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.append(str(reason))
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(settings.mqtt_user, settings.mqtt_password or None)
    client.tls_set_context(settings.mqtt_tls.context())
    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    try:
        client.connect(
            settings.mqtt_host, settings.mqtt_port, keepalive=10, clean_start=True, properties=props
        )
    except OSError as exc:  # ssl.SSLError too: a broker whose certificate does not verify
        log.error(
            "cannot reach MQTT %s:%s to retire the session: %s", settings.mqtt_host, settings.mqtt_port, exc
        )
        return False
    client.loop_start()
    try:
        if not done.wait(timeout_s) or outcome[0] != "Success":
            log.error("MQTT broker refused to retire %r: %s", settings.client_id, outcome or "no answer")
            return False
        return True
    finally:
        client.disconnect()
        client.loop_stop()


class MqttSource:
    """Feeds received messages into `inbox`; `ack` is safe to call from another thread."""

    def __init__(
        self,
        settings: BridgeSettings,
        inbox: queue.SimpleQueue[Inbound],
        metrics: BridgeMetrics,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.inbox, self.metrics, self.wall_clock = settings, inbox, metrics, wall_clock
        self.accepting = True
        self.connected = False
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.username_pw_set(settings.mqtt_user, settings.mqtt_password or None)
        client.tls_set_context(settings.mqtt_tls.context())  # the broker's certificate is always verified
        client.reconnect_delay_set(0.5, 10)  # type: ignore[arg-type]  # seconds; paho takes a float
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self.settings.receive_maximum
        # connect_async: the loop thread retries until the broker answers, so a bridge can start first
        self.client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=30,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def alive(self) -> bool:
        """Whether paho's network thread runs (it retries connections itself; it ends only on `stop`)."""
        thread = getattr(self.client, "_thread", None)
        return thread is not None and thread.is_alive()

    def ack(self, mid: int, qos: int) -> None:
        if qos > 0:
            self.client.ack(mid, qos)

    def stop(self) -> None:
        """Disconnect normally; the session (and anything not acknowledged) stays with the broker."""
        self.accepting = False
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error(
                "MQTT broker refused the bridge: %s (check --mqtt-user and the password variable "
                "named by --mqtt-password-env); retrying",
                reason,
            )
            return
        self.connected = True
        self.metrics.mqtt_connected.set(1)
        assigned = getattr(props, "AssignedClientIdentifier", None) if props is not None else None
        log.info(
            "connected to MQTT %s:%s as %r (session present: %s)",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            assigned or self.settings.client_id,
            flags.session_present,
        )
        client.subscribe(subscription(self.settings), qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected = False
        self.metrics.mqtt_connected.set(0)
        if self.accepting:
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if not self.accepting:  # shutting down: leave it unacknowledged, the broker redelivers it
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:  # still dead-lettered (wrong_topic), never dropped
            topic = message._topic.decode(errors="replace")
        payload = message.payload  # bytes from paho's reader; annotated as bytes | bytearray
        self.inbox.put(Inbound(message.mid, message.qos, topic, payload, self.wall_clock()))  # type: ignore[arg-type]
