"""One network thread for many MQTT clients: how one load-generator process carries thousands of gateways.

paho's own `loop_start()` gives every client a thread, a socket pair and a `select()` loop. `select()`
cannot watch descriptors above 1023, so past about 340 clients in one process (3 descriptors each) new
clients' threads die and they never see their CONNACK; and thousands of threads waking on every PUBACK
cost more than the publishing. Here one thread per process waits on all the clients' sockets with
`selectors` (epoll: no descriptor limit) and does every read, write and keepalive for them; publishing
threads only queue packets (paho's `on_socket_register_write` hook tells this loop a client has
something to write). Connecting is paced: at most `window` CONNACKs outstanding at a time, so the broker
is never handed thousands of TCP handshakes and password checks at once.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt

MISC_EVERY_S = 1.0  # keepalive pings and timeouts, as paho's own loop does once a second
CONNECT_WINDOW = 64  # CONNACKs awaited at once while connecting many clients


class NetworkLoop:
    """Drives the sockets of every client `attach`ed to it from one daemon thread."""

    def __init__(self, name: str = "mqtt-network") -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._todo: deque[tuple[str, mqtt.Client, Any]] = deque()  # (what, client, socket) from other threads
        self._clients: set[mqtt.Client] = set()
        # A wake-up byte is on its way and the loop has not yet drained it: posts made meanwhile are
        # settled by that same wake-up, so a burst of publishes costs one send(), not one each.
        self._waking = False
        self._stop = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def attach(self, client: mqtt.Client) -> None:
        """Let this loop drive `client` (call before `client.connect`, never with `loop_start`)."""
        client.on_socket_open = lambda c, _u, sock: self._post("open", c, sock)
        client.on_socket_close = lambda c, _u, sock: self._post("close", c, sock)
        client.on_socket_register_write = lambda c, _u, sock: self._post("write", c, sock)
        client.on_socket_unregister_write = None

    def stop(self) -> None:
        self._stop = True
        self._waking = False
        self._wake()
        self._thread.join(5)

    def _post(self, what: str, client: mqtt.Client, sock: Any) -> None:
        self._todo.append((what, client, sock))
        if threading.current_thread() is not self._thread:
            self._wake()

    def _wake(self) -> None:
        # Appended before this check, a post is seen by the loop: it clears `_waking` before it settles
        # the queue (`_run`), so either this sends a byte or the pending one's settling takes the post.
        if self._waking:
            return
        self._waking = True
        with contextlib.suppress(BlockingIOError):  # the loop has wake-ups pending already
            self._wake_w.send(b"x")

    def _run(self) -> None:
        try:
            next_misc = time.monotonic() + MISC_EVERY_S
            while not self._stop:
                self._settle_todo()
                for key, _events in self._selector.select(timeout=0.2):
                    if key.data is None:
                        while True:
                            try:
                                if not self._wake_r.recv(4096):
                                    break
                            except BlockingIOError:
                                break
                        self._waking = False  # before the queue is settled below: see _wake
                        continue
                    client: mqtt.Client = key.data
                    if _events & selectors.EVENT_READ:
                        client.loop_read()
                    self._write(client)
                self._settle_todo()
                if time.monotonic() >= next_misc:
                    next_misc = time.monotonic() + MISC_EVERY_S
                    for client in list(self._clients):
                        client.loop_misc()
                        self._write(client)
        except BaseException as exc:  # the owner checks `error` and fails loudly; never a silent stop
            self.error = exc
            raise

    def _settle_todo(self) -> None:
        while self._todo:
            what, client, sock = self._todo.popleft()
            if what == "open":
                self._clients.add(client)
                self._selector.register(sock, selectors.EVENT_READ, client)
            elif what == "close":
                self._clients.discard(client)
                with contextlib.suppress(KeyError, ValueError):  # closed before its "open" was settled
                    self._selector.unregister(sock)
            else:
                self._write(client)

    def _write(self, client: mqtt.Client) -> None:
        """Write what `client` has queued; if the socket is full, wait for it to drain (EVENT_WRITE)."""
        sock = client.socket()
        if sock is None:
            return
        if client.want_write():
            client.loop_write()
            sock = client.socket()
            if sock is None:
                return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.want_write() else 0)
        try:
            if self._selector.get_key(sock).events != events:
                self._selector.modify(sock, events, client)
        except KeyError:  # its "open" is not settled yet; it will be written after
            pass


def connect_paced(
    items: Iterable[Any],
    start: Callable[[Any], None],
    connected: Callable[[Any], bool],
    failed: Callable[[Any], str],
    timeout_s: float,
    window: int = CONNECT_WINDOW,
) -> None:
    """Start connecting each item (`start`), with at most `window` not yet `connected`; raises
    RuntimeError naming the first item refused (`failed` gives a reason) or not connected in time."""
    pending: deque[tuple[Any, float]] = deque()
    for item in items:
        while len(pending) >= window:
            _settle_one(pending, connected, failed, timeout_s)
        start(item)
        pending.append((item, time.monotonic()))
    while pending:
        _settle_one(pending, connected, failed, timeout_s)


def _settle_one(
    pending: deque[tuple[Any, float]], connected: Callable[[Any], bool], failed: Callable[[Any], str],
    timeout_s: float,
) -> None:  # fmt: skip
    item, started = pending[0]
    while not connected(item):
        why = failed(item)
        if why or time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{item}: {why or f'no CONNACK within {timeout_s:.0f} s'}")
        time.sleep(0.005)
    pending.popleft()
