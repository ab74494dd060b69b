"""Which MQTT messages may be acknowledged: those whose every Kafka record is durable, in arrival order.

A message is opened when it arrives, holds one count per Kafka record made from it (a batch record
counts once for each message in it), and is sealed when validation has handed all its records on.
It is ready when sealed with no holds. Acknowledgements go out in arrival order (MQTT 3.1.1 §4.6 asks
for PUBACKs in PUBLISH order), so one slow record delays the acks behind it, never the reverse.
"""

from __future__ import annotations

import threading
from collections import deque


class Pending:
    """One received MQTT message waiting for its records to become durable."""

    __slots__ = ("holds", "mid", "qos", "sealed")

    def __init__(self, mid: int, qos: int) -> None:
        self.mid, self.qos, self.holds, self.sealed = mid, qos, 0, False


class AckTracker:
    """Thread-safe: `hold`/`seal` from the worker, `release` from Kafka callbacks, `ready` from the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Pending] = deque()

    def open(self, mid: int, qos: int) -> Pending:
        pending = Pending(mid, qos)
        with self._lock:
            self._queue.append(pending)
        return pending

    def hold(self, pending: Pending) -> None:
        with self._lock:
            pending.holds += 1

    def release(self, pendings: list[Pending]) -> None:
        with self._lock:
            for pending in pendings:
                pending.holds -= 1

    def seal(self, pending: Pending) -> None:
        with self._lock:
            pending.sealed = True

    def ready(self) -> list[Pending]:
        """Pop the acknowledgeable prefix, in arrival order."""
        out = []
        with self._lock:
            queue = self._queue
            while queue and queue[0].sealed and queue[0].holds == 0:
                out.append(queue.popleft())
        return out

    def __len__(self) -> int:
        return len(self._queue)

    def forget(self) -> int:
        """Drop everything (after an MQTT reconnect the broker redelivers unacknowledged messages)."""
        with self._lock:
            n = len(self._queue)
            self._queue.clear()
            return n
