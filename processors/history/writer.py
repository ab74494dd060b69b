"""One guarded InfluxDB write of a batch of points: refused points found and set aside, outages raised.

The historian calls `write_points` for the lines of the records it consumed, then commits their offsets.
A chunk InfluxDB refuses as malformed (`PointsRejected`: 400, 413, 422) is split in halves until the
refused points are alone; the others are written and the refused ones returned with the reason, for the
dead-letter topic (retrying them would block every later point for good). Anything else (a refused
connection, a 5xx, auth or a missing database) is raised: the caller retries the whole batch without
committing, and points written twice land on the same series and time, so InfluxDB keeps one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class PointsRejected(Exception):
    """The database refused the points as malformed (not an outage): retrying cannot help."""


class Sink(Protocol):
    def write(self, lines: list[str]) -> None:
        """Write the lines or raise: PointsRejected if they are refused as such, anything else is retried."""

    def close(self) -> None: ...


def write_points(
    sink: Sink, lines: list[str], chunk_points: int = 5000, after_chunk: Callable[[int], None] | None = None
) -> list[tuple[str, str]]:
    """Write `lines` in chunks; returns the refused (line, why). Raises on anything to retry.
    `after_chunk(n)` is called after each chunk of n points written (pacing, counters)."""
    refused: list[tuple[str, str]] = []
    for lo in range(0, len(lines), chunk_points):
        pieces = [lines[lo : lo + chunk_points]]  # still to write, last piece first
        while pieces:
            piece = pieces.pop()
            try:
                sink.write(piece)
            except PointsRejected as exc:
                if len(piece) > 1:  # find the refused points: the rest of the chunk is written
                    half = len(piece) // 2
                    pieces += [piece[half:], piece[:half]]
                else:
                    refused.append((piece[0], str(exc)))
                continue
            if after_chunk is not None:
                after_chunk(len(piece))
    return refused
