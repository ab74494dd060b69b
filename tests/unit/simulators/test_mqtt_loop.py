"""The load generator's shared MQTT network thread settles every post, with one wake-up per burst."""

from __future__ import annotations

import threading
import time
from typing import Any

from simulators.mqtt_loop import NetworkLoop
from tests.waiting import wait_for


class _Client:
    """What the loop asks of a client with something to write: its socket (None: not connected)."""

    def __init__(self) -> None:
        self.asked = 0
        self.lock = threading.Lock()

    def socket(self) -> Any:
        with self.lock:
            self.asked += 1
        return None


class _CountingSocket:
    """The loop's wake-up socket, counting the bytes written to it."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.sent = sock, 0

    def send(self, data: bytes) -> int:
        self.sent += 1
        return int(self.sock.send(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def test_every_post_from_publishing_threads_is_settled_and_bursts_share_wakeups() -> None:
    net = NetworkLoop("test-loop")
    wake = net._wake_w = _CountingSocket(net._wake_w)  # type: ignore[assignment]
    client = _Client()
    posts_per_thread, threads = 5_000, 4

    def publish() -> None:
        for k in range(posts_per_thread):
            net._post("write", client, None)  # what paho's register-write hook does on each publish
            if k % 500 == 0:
                time.sleep(0.001)  # bursts with pauses: the loop drains and clears between them

    workers = [threading.Thread(target=publish) for _ in range(threads)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        total = posts_per_thread * threads
        assert wait_for(lambda: client.asked == total), f"{client.asked} of {total} posts settled"
        assert 1 <= wake.sent < total / 10, wake.sent  # one wake-up byte per burst, not one per publish
        # a post after everything settled (no wake-up pending) still wakes the loop
        net._post("write", client, None)
        assert wait_for(lambda: client.asked == total + 1)
    finally:
        net.stop()
    assert net.error is None
