"""Readiness probes that talk each service's own protocol, the way a real client would."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from riskwatch.errors import StackError
from riskwatch.tls import ClientTLS


def mqtt_connack(
    host: str, port: int, username: str, password: str, tls: ClientTLS, timeout: float = 5.0
) -> None:
    """Connect over TLS with credentials and wait for a successful CONNACK; raise with the broker's reason."""
    done = threading.Event()
    outcome: list[str] = []

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        outcome.append(str(reason))
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id="")
    client.username_pw_set(username, password)
    client.tls_set_context(tls.context())
    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=10)
        client.loop_start()
        if not done.wait(timeout):
            raise StackError(f"no CONNACK from MQTT broker {host}:{port} within {timeout:.0f} s")
        if outcome[0] != "Success":
            raise StackError(f"MQTT broker {host}:{port} refused {username!r}: {outcome[0]}")
    finally:
        client.loop_stop()
        client.disconnect()
