"""Collects valid readings per site into columnar `rw.telemetry` batches.

A site's batch is cut when it holds `max_readings` or its oldest reading has waited `linger_s`, so a
quiet site still ships within the linger and a busy one ships big batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

import numpy as np

from riskwatch.wire.batch import BodyCodec, SensorIdTable, encode
from riskwatch.wire.readings import Readings

T = TypeVar("T")


class Cut(NamedTuple, Generic[T]):
    """A finished batch: its Kafka key and value, the messages it carries, its reading count.

    `error` says why the batch could not be encoded (then `value` is empty): its messages must still be
    settled, or their acknowledgements would wait forever.
    """

    key: bytes
    value: bytes
    tokens: list[T]
    readings: int
    error: str = ""


@dataclass(slots=True)
class _Open(Generic[T]):
    since: float
    parts: list[Readings] = field(default_factory=list)
    sources: list[tuple[str, int, int]] = field(default_factory=list)
    tokens: list[T] = field(default_factory=list)
    count: int = 0


class SiteBatcher(Generic[T]):
    """Not thread-safe: owned by the bridge's worker thread."""

    def __init__(
        self,
        fingerprint: str,
        sensor_ids: tuple[str, ...],
        max_readings: int,
        linger_s: float,
        compress: BodyCodec = "none",
    ) -> None:
        # ids pre-encoded once: each batch's id table is then a gather, not a Python step per sensor
        self.fingerprint, self.sensor_ids, self.compress = fingerprint, SensorIdTable(sensor_ids), compress
        self.max_readings, self.linger_s = max_readings, linger_s
        self._open: dict[str, _Open[T]] = {}

    def add(
        self, site: str, gateway: str, seq: int, readings: Readings, token: T, now: float
    ) -> Cut[T] | None:
        """Add one message's readings; returns the site's batch if this filled it."""
        batch = self._open.get(site)
        if batch is None:
            batch = self._open[site] = _Open(now)
        batch.parts.append(readings)
        batch.sources.append((gateway, seq, len(readings)))
        batch.tokens.append(token)
        batch.count += len(readings)
        return self._cut(site) if batch.count >= self.max_readings else None

    def due(self, now: float) -> list[Cut[T]]:
        """Batches whose oldest reading has waited the linger."""
        return [self._cut(site) for site, b in list(self._open.items()) if now - b.since >= self.linger_s]

    def next_due(self) -> float | None:
        """When the oldest open batch falls due (None if nothing is open)."""
        return min((b.since for b in self._open.values()), default=None)

    def cut_all(self) -> list[Cut[T]]:
        return [self._cut(site) for site in list(self._open)]

    def _cut(self, site: str) -> Cut[T]:
        b = self._open.pop(site)
        key = site.encode(errors="backslashreplace")
        parts = b.parts
        try:
            readings = (
                parts[0]
                if len(parts) == 1
                else Readings(*(np.concatenate(col) for col in zip(*parts, strict=True)))
            )
            value = encode(site, self.fingerprint, b.sources, readings, self.sensor_ids, self.compress)
        except Exception as exc:
            return Cut(key, b"", b.tokens, b.count, f"{type(exc).__name__}: {exc}")
        return Cut(key, value, b.tokens, b.count)
