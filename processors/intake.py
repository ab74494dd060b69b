"""Decode and check the worker's Kafka input; everything refused becomes a dead-letter record.

A malformed record (bad codec version, truncated) never stops the stream and is never dropped silently:
it goes to `rw.deadletter` with its original bytes. Readings of unknown sensors or of another site are
cut out of the batch (one dead-letter record names them) and the rest is evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from processors.state.sites import SiteIndex
from riskwatch.wire.batch import BatchDecodeError, Source, decode, keep_sources, remap_sensors, source_stamps
from riskwatch.wire.deadletter import DeadItem, DeadLetter, Reason, summary_reason
from riskwatch.wire.gateway import GatewayDecodeError, GatewayRecord
from riskwatch.wire.readings import Readings

COMPONENT = "processors"
MAX_ITEMS = 1000  # per dead-letter record; the detail still gives the full count


class Accepted(NamedTuple):
    """A batch ready for the engine: the site and its readings with site-local sensor indices."""

    site: str
    readings: Readings
    global_sensor: np.ndarray  # registry index of each kept reading
    n_in: int  # readings in the record before any were refused
    duplicates: int = 0  # readings of gateway messages already evaluated (left out, counted)


# (site, sources, stamps, now) -> per source: new? Marks the new ones as seen (processors/state/seen.py).
FreshSources = Callable[[str, Sequence[Source], Sequence[float], float], list[bool]]


class Intake:
    """Turns raw `rw.telemetry` and `rw.gateway` records into engine input or dead letters."""

    def __init__(self, index: SiteIndex, clock: Callable[[], float]) -> None:
        self.index = index
        self.clock = clock
        self.fingerprint = index.registry.fingerprint
        self._index_of = {s.id: s.index for s in index.registry.sensor_list}

    def telemetry(
        self, raw: bytes, source: str, fresh: FreshSources | None = None
    ) -> tuple[Accepted | None, list[DeadLetter]]:
        """Decode and check a batch; with `fresh`, leave out gateway messages already evaluated."""
        try:
            batch = decode(raw)
        except BatchDecodeError as exc:
            return None, [self._dead(Reason.BATCH_DECODE, str(exc), source, raw)]
        if batch.site not in self.index.site_number:
            detail = f"site {batch.site!r} is not in the worker's registry ({self.index.registry.source})"
            return None, [self._dead(Reason.REGISTRY_MISMATCH, detail, source, raw, site=batch.site)]
        duplicates = 0
        if fresh is not None and batch.sources:
            n_before = len(batch.readings)
            stamps = source_stamps(batch)
            batch = keep_sources(batch, fresh(batch.site, batch.sources, stamps, self.clock()))
            duplicates = n_before - len(batch.readings)
        readings = batch.readings
        dead: list[DeadLetter] = []
        if batch.fingerprint != self.fingerprint:
            try:
                readings, unknown = remap_sensors(batch, self._index_of)
            except BatchDecodeError as exc:
                detail = f"registry fingerprint {batch.fingerprint} != {self.fingerprint}: {exc}"
                return None, [self._dead(Reason.REGISTRY_MISMATCH, detail, source, raw, site=batch.site)]
            if unknown:
                items = tuple(
                    DeadItem(-1, Reason.SENSOR_UNKNOWN.value, sensor=s) for s in unknown[:MAX_ITEMS]
                )
                detail = f"{len(unknown)} sensor ids unknown to this registry"
                dead.append(self._dead(Reason.SENSOR_UNKNOWN, detail, source, raw, batch.site, items))
        split = self.index.split(batch.site, readings)
        if split.unknown_rows.size or split.foreign_rows.size:
            dead.append(
                self._rows_refused(batch.site, readings, split.unknown_rows, split.foreign_rows, source, raw)
            )
        accepted = Accepted(batch.site, split.readings, split.global_sensor, len(batch.readings), duplicates)
        return accepted, dead

    def gateway(self, raw: bytes, source: str) -> tuple[GatewayRecord | None, list[DeadLetter]]:
        try:
            record = GatewayRecord.from_bytes(raw)
        except GatewayDecodeError as exc:
            return None, [self._dead(Reason.SCHEMA, str(exc), source, raw)]
        if record.site not in self.index.site_number:
            detail = f"site {record.site!r} is not in the worker's registry ({self.index.registry.source})"
            return None, [
                self._dead(Reason.REGISTRY_MISMATCH, detail, source, raw, record.site, gateway=record.gw)
            ]
        return record, []

    def _rows_refused(
        self, site: str, readings: Readings, unknown: np.ndarray, foreign: np.ndarray, source: str, raw: bytes
    ) -> DeadLetter:
        ids = self.index.registry.sensor_ids
        items = [
            DeadItem(int(r), Reason.SENSOR_UNKNOWN.value, f"index {int(readings.sensor[r])}")
            for r in unknown[:MAX_ITEMS]
        ]
        for r in foreign[: max(0, MAX_ITEMS - len(items))]:
            sensor = ids[int(readings.sensor[r])]
            other = self.index.registry.sensors[sensor].site
            items.append(
                DeadItem(int(r), Reason.SENSOR_SITE_MISMATCH.value, f"sensor is at site {other}", sensor)
            )
        detail = f"{unknown.size} readings of unknown sensors, {foreign.size} of sensors of other sites"
        return self._dead(summary_reason(tuple(items)), detail, source, raw, site, tuple(items))

    def _dead(
        self,
        reason: str,
        detail: str,
        source: str,
        raw: bytes,
        site: str = "",
        items: tuple[DeadItem, ...] = (),
        gateway: str = "",
    ) -> DeadLetter:
        return DeadLetter(
            reason=str(reason),
            detail=detail,
            source=source,
            original=raw,
            at=self.clock(),
            component=COMPONENT,
            site=site,
            gateway=gateway,
            items=items,
        )
