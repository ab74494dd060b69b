"""A bounded, retrying history writer on its own thread: InfluxDB slow or down never blocks the stream.

The stream thread only appends to an in-memory queue (O(1)). A background thread formats line protocol
and writes it in chunks; a failed chunk is retried with exponential back-off and stays at the head of
the queue, so order is kept and nothing is lost while the buffer has room (an outage, a 5xx, a refused
connection). Points are dropped (and counted) only when the queue would exceed `limit_points`, and when
the database refuses them as malformed (`PointsRejected`, a 4xx such as 400 or 422): retrying those
would block every later point for good. A refused chunk is split in halves until the refused points are
found alone; the others are written (a point written twice lands on the same series and time, so
InfluxDB keeps one). Points that cannot even be rendered are dropped the same way.

A closed minute's aggregates (one point per sensor: 200k at a province's scale) are paced: written at
`pace_points_per_s`, or faster when that would take longer than `PACE_WITHIN_S`. Written in one burst,
they kept InfluxDB busy on a core for 15 s every minute, which on a small machine starved the bridge and
the worker and delayed warnings by a second. Pacing is measured from when the points were queued, so a
backlog (after an outage) is written at full speed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from processors.history.aggregate import MinuteAggregate
from processors.history.lines import aggregate_lines, transition_line
from riskwatch.wire.transitions import Transition

log = logging.getLogger(__name__)

PACE_WITHIN_S = 30.0  # a minute's aggregates are all written within this, whatever the registry's size
REFUSED_KEPT = 1000  # refused lines kept for the stream to dead-letter (the counter counts them all)


class _Item(NamedTuple):
    points: int
    render: Callable[[int, int], list[str]]  # lines of points [lo, hi)
    queued_at: float
    pace_points_per_s: float  # 0: not paced


class PointsRejected(Exception):
    """The database refused the points as malformed (not an outage): retrying cannot help."""


class Sink(Protocol):
    def write(self, lines: list[str]) -> None:
        """Write the lines or raise: PointsRejected if they are refused as such, anything else is retried."""

    def close(self) -> None: ...


class WriterHooks(Protocol):
    def written(self, points: int) -> None: ...
    def dropped(self, points: int) -> None: ...
    def retried(self) -> None: ...
    def pending(self, points: int) -> None: ...
    def rejected(self, points: int) -> None: ...


class _NoHooks:
    def written(self, points: int) -> None:
        pass

    def dropped(self, points: int) -> None:
        pass

    def retried(self) -> None:
        pass

    def pending(self, points: int) -> None:
        pass

    def rejected(self, points: int) -> None:
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
        pace_points_per_s: float = 0.0,
    ) -> None:
        self.sink = sink
        self.sensor_tags = sensor_tags
        self.limit = limit_points
        self.chunk = chunk_points
        self.pace = pace_points_per_s
        self.backoff = backoff
        self.hooks = hooks or _NoHooks()
        self._queue: deque[_Item] = deque()
        self._pending = 0
        self.dropped = 0
        self.written = 0
        self.rejected = 0
        # (line, why) of refused points, for the stream side to dead-letter: no producer in this thread
        self.refused: deque[tuple[str, str]] = deque(maxlen=REFUSED_KEPT)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        """False only if the thread was started and died before being told to stop."""
        return self._thread.ident is None or self._stop.is_set() or self._thread.is_alive()

    def put_transitions(self, transitions: Sequence[Transition]) -> None:
        if transitions:
            items = list(transitions)
            self._put(len(items), lambda lo, hi: [transition_line(t) for t in items[lo:hi]], 0.0)

    def put_aggregate(self, agg: MinuteAggregate) -> None:
        n = len(agg)
        if n:
            pace = max(self.pace, n / PACE_WITHIN_S) if self.pace > 0 else 0.0
            self._put(n, lambda lo, hi: aggregate_lines(agg.rows(lo, hi), self.sensor_tags), pace)

    def _put(self, points: int, render: Callable[[int, int], list[str]], pace: float) -> None:
        with self._lock:
            if self._pending + points > self.limit:
                self.dropped += points
                self.hooks.dropped(points)
                return
            self._queue.append(_Item(points, render, time.monotonic(), pace))
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
        try:
            self._loop()
        except BaseException:
            log.exception("the history writer thread died")  # the worker's health check sees it
            raise

    def _loop(self) -> None:
        item: _Item | None = None
        done = 0  # points of `item` written or dropped
        pieces: list[list[str]] = []  # the rendered chunk still to write, last piece first
        delay = self.backoff[0]
        while True:
            if item is None:
                with self._lock:
                    item, done = (self._queue.popleft() if self._queue else None), 0
                if item is None:
                    if self._stop.is_set():
                        return
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
            if not pieces:
                if item.pace_points_per_s and not self._stop.is_set():
                    wait = item.queued_at + done / item.pace_points_per_s - time.monotonic()
                    if wait > 0:
                        self._stop.wait(wait)  # a stop ends the pause: what is queued goes out at once
                hi = min(done + self.chunk, item.points)
                try:
                    pieces = [item.render(done, hi)]  # one line per point
                except Exception:
                    log.exception("history points %d..%d could not be rendered; dropped", done, hi)
                    self._settle(0, hi - done)
                    done = hi
                    if done >= item.points:
                        item = None
                    continue
            lines = pieces[-1]
            try:
                self.sink.write(lines)
            except PointsRejected as exc:
                if len(lines) > 1:  # find the refused points: the rest of the chunk is written
                    half = len(lines) // 2
                    pieces[-1:] = [lines[half:], lines[:half]]
                    continue
                pieces.pop()
                log.error("InfluxDB refused a history point, dropped: %s: %.300s", exc, lines[0])
                self.refused.append((lines[0], str(exc)))
                self._settle(0, 1)
                done += 1
            except Exception as exc:  # any failure of the database or the network: retry, keep order
                self.hooks.retried()
                log.warning("history write failed (%s); retrying in %.1fs", exc, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.backoff[1])
                continue
            else:
                delay = self.backoff[0]
                pieces.pop()
                self._settle(len(lines), 0)
                done += len(lines)
            if done >= item.points and not pieces:
                item = None

    def take_refused(self) -> list[tuple[str, str]]:
        """The refused points (line, why) since the last call (called from the stream's thread)."""
        out = []
        while self.refused:
            out.append(self.refused.popleft())
        return out

    def _settle(self, written: int, rejected: int) -> None:
        """Points that left the buffer: written, or refused (dropped and counted)."""
        if written:
            self.written += written
            self.hooks.written(written)
        if rejected:
            self.rejected += rejected
            self.hooks.rejected(rejected)
        with self._lock:
            self._pending -= written + rejected
            self.hooks.pending(self._pending)
