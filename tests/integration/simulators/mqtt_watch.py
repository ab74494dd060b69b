"""An MQTT subscriber for tests on a bridge-like account of its own (client ids are bound to accounts, so
sharing the bridge's would take over its session): collects what gateways publish under rw/v1/#."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt


class Watch:
    def __init__(self, stack: Any, pattern: str = "rw/v1/#") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        from deploy.stack import add_bridge_accounts

        account = f"watch-{uuid.uuid4().hex[:8]}"
        password = add_bridge_accounts(stack, [account])[account]
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=account, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(account, password)
        self.client.tls_set_context(stack.client_tls.context())

        def on_connect(client: mqtt.Client, *_: Any) -> None:
            client.subscribe(pattern, qos=1)

        def on_subscribe(*_: Any) -> None:
            ready.set()

        def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
            with self._lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

        self.client.on_connect, self.client.on_subscribe, self.client.on_message = (
            on_connect,
            on_subscribe,
            on_message,
        )
        self.client.connect(stack.mqtt_host, stack.mqtt_port)
        self.client.loop_start()
        assert ready.wait(10), "watcher could not subscribe"

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[tuple[str, bytes, bool]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = [m for m in self.messages if predicate(m)]
            if got:
                return got
            time.sleep(0.02)
        return []

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
