"""A bounded, retrying history writer on its own thread: InfluxDB slow or down never blocks the stream.

The stream thread only appends to an in-memory queue (O(1)). A background thread formats line protocol
and writes it in chunks; a failed chunk is retried with exponential back-off and stays at the head of
the queue, so order is kept and nothing is lost while the buffer has room. Points are dropped (and
counted) only when the queue would exceed `limit_points`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from processors.history.aggregate import MinuteAggregate
from processors.history.lines import aggregate_lines, transition_line
from riskwatch.wire.transitions import Transition

log = logging.getLogger(__name__)


class Sink(Protocol):
    def write(self, lines: list[str]) -> None:
        """Write the lines or raise; the writer retries."""

    def close(self) -> None: ...


class WriterHooks(Protocol):
    def written(self, points: int) -> None: ...
    def dropped(self, points: int) -> None: ...
    def retried(self) -> None: ...
    def pending(self, points: int) -> None: ...


class _NoHooks:
    def written(self, points: int) -> None:
        pass

    def dropped(self, points: int) -> None:
        pass

    def retried(self) -> None:
        pass

    def pending(self, points: int) -> None:
        pass


class HistoryWriter:
    """Queue history points and write them to `sink` from a background thread."""

    def __init__(
        self,
        sink: Sink,
        sensor_tags: Sequence[str],
        limit_points: int,
        chunk_points: int = 5000,
        backoff: tuple[float, float] = (0.5, 30.0),
        hooks: WriterHooks | None = None,
    ) -> None:
        self.sink = sink
        self.sensor_tags = sensor_tags
        self.limit = limit_points
        self.chunk = chunk_points
        self.backoff = backoff
        self.hooks = hooks or _NoHooks()
        self._queue: deque[tuple[int, Callable[[], list[str]]]] = deque()
        self._pending = 0
        self.dropped = 0
        self.written = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        self._thread.start()

    def put_transitions(self, transitions: Sequence[Transition]) -> None:
        if transitions:
            items = list(transitions)
            self._put(len(items), lambda: [transition_line(t) for t in items])

    def put_aggregate(self, agg: MinuteAggregate) -> None:
        if len(agg):
            self._put(len(agg), lambda: aggregate_lines(agg, self.sensor_tags))

    def _put(self, points: int, render: Callable[[], list[str]]) -> None:
        with self._lock:
            if self._pending + points > self.limit:
                self.dropped += points
                self.hooks.dropped(points)
                return
            self._queue.append((points, render))
            self._pending += points
            self.hooks.pending(self._pending)
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after trying to write what is queued for up to `timeout` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.sink.close()

    def _run(self) -> None:
        lines: list[str] = []
        delay = self.backoff[0]
        while True:
            if not lines:
                with self._lock:
                    render = self._queue.popleft()[1] if self._queue else None
                if render is None:
                    if self._stop.is_set():
                        return
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                lines = render()
            part = lines[: self.chunk]
            try:
                self.sink.write(part)
            except Exception as exc:  # any failure of the database or the network: retry, keep order
                self.hooks.retried()
                log.warning("history write failed (%s); retrying in %.1fs", exc, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.backoff[1])
                continue
            delay = self.backoff[0]
            done = len(part)
            lines = lines[done:]
            self.written += done
            self.hooks.written(done)
            with self._lock:
                self._pending -= done  # one line per point
                self.hooks.pending(self._pending)
