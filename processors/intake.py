"""Decode and check the worker's Kafka input; everything refused becomes a dead-letter record.

Every record on `rw.telemetry` and `rw.gateway` is untrusted (anything with access to Kafka can write
there), so it is decoded and validated before use. A malformed record (bad codec version, truncated,
wrong field types) never stops the stream and is never dropped silently: it goes to `rw.deadletter` with
its original bytes. Readings of unknown sensors or of another site, or stamped before the maximum age,
are cut out of the batch (one dead-letter record names them) and the rest is evaluated. A reading or
event stamped beyond the worker's clock + `future_tolerance_s` is taken at that bound instead (counted):
the engine ignores readings older than a sensor's newest, so one far-future stamp would otherwise blind
that sensor until the real clock caught up with it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from processors.state.sites import SiteIndex
from riskwatch.wire.batch import BatchDecodeError, Source, decode, keep_sources, remap_sensors, source_stamps
from riskwatch.wire.deadletter import DeadItem, DeadLetter, Reason, summary_reason
from riskwatch.wire.gateway_protocol import EVENT_KINDS, STATUS_STATES, GatewayDecodeError, GatewayRecord
from riskwatch.wire.readings import Readings

COMPONENT = "processors"
MAX_ITEMS = 1000  # per dead-letter record; the detail still gives the full count
# Readings and events stamped later than the worker's clock + this are taken at that bound: a sensor's
# real readings are then ignored (as older than its newest) for at most this long after a false stamp.
DEFAULT_FUTURE_TOLERANCE_S = 5.0
DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0  # older readings are dead-lettered (`old_timestamp`), as by the bridge


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

    def __init__(
        self,
        index: SiteIndex,
        clock: Callable[[], float],
        future_tolerance_s: float = DEFAULT_FUTURE_TOLERANCE_S,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        on_clamped: Callable[[str, int], None] | None = None,
    ) -> None:
        self.index = index
        # ("reading" | "event", n): stamps beyond clock + tolerance taken at that bound (for a metric)
        self.on_clamped = on_clamped or (lambda kind, n: None)
        self.clock = clock
        self.future_tolerance_s = future_tolerance_s
        self.max_age_s = max_age_s
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
                readings, unknown_ids = remap_sensors(batch, self._index_of)
            except BatchDecodeError as exc:
                detail = f"registry fingerprint {batch.fingerprint} != {self.fingerprint}: {exc}"
                return None, [self._dead(Reason.REGISTRY_MISMATCH, detail, source, raw, site=batch.site)]
            if unknown_ids:
                items = tuple(
                    DeadItem(-1, Reason.SENSOR_UNKNOWN.value, sensor=s) for s in unknown_ids[:MAX_ITEMS]
                )
                detail = f"{len(unknown_ids)} sensor ids unknown to this registry"
                dead.append(self._dead(Reason.SENSOR_UNKNOWN, detail, source, raw, batch.site, items))
        readings, clamped, old = self._times(readings)
        kept, rows = readings, None
        if old is not None:  # rare: readings older than the maximum age are cut out before the split
            rows = np.flatnonzero(~old)
            kept = Readings(
                readings.sensor[rows], readings.value[rows], readings.ts[rows], readings.quality[rows]
            )
        split = self.index.split(batch.site, kept)
        unknown, foreign = split.unknown_rows, split.foreign_rows
        too_old = _NONE
        if rows is not None and old is not None:
            unknown, foreign, too_old = rows[unknown], rows[foreign], np.flatnonzero(old)
        if unknown.size or foreign.size or too_old.size:
            dead.append(self._rows_refused(batch.site, readings, unknown, foreign, too_old, source, raw))
        if clamped:
            self.on_clamped("reading", clamped)
        accepted = Accepted(batch.site, split.readings, split.global_sensor, len(batch.readings), duplicates)
        return accepted, dead

    def _times(self, readings: Readings) -> tuple[Readings, int, np.ndarray | None]:
        """Readings with future stamps taken at clock + tolerance, how many were, and a mask of the rows
        older than the maximum age (None if there are none)."""
        now = self.clock()
        ts = readings.ts
        limit, oldest = now + self.future_tolerance_s, now - self.max_age_s
        # The usual batch has neither: two reductions tell (fmax/fmin skip NaN, as the masks below do).
        if not ts.size or (np.fmax.reduce(ts) <= limit and not np.fmin.reduce(ts) < oldest):
            return readings, 0, None
        over = ts > limit  # NaN compares False: the engine rejects non-finite times itself
        clamped = int(np.count_nonzero(over))
        if clamped:
            ts = np.where(over, limit, ts)
            readings = Readings(readings.sensor, readings.value, ts, readings.quality)
        old = ts < oldest
        return readings, clamped, old if np.count_nonzero(old) else None

    def event_time(self, t: float) -> tuple[float, bool]:
        """An event's time, taken at clock + tolerance if later (and whether it was)."""
        limit = self.clock() + self.future_tolerance_s
        return (limit, True) if t > limit else (t, False)

    def gateway(self, raw: bytes, source: str) -> tuple[GatewayRecord | None, list[DeadLetter]]:
        """Decode and check a `rw.gateway` record against the registry (site, gateway, event target)."""
        try:
            record = GatewayRecord.from_bytes(raw)
        except GatewayDecodeError as exc:
            return None, [self._dead(Reason.MALFORMED_RECORD, str(exc), source, raw)]
        problem = _record_problem(record)
        if problem:
            return None, [self._dead(Reason.MALFORMED_RECORD, problem, source, raw)]
        reg = self.index.registry
        if record.site not in self.index.site_number:
            detail = f"site {record.site!r} is not in the worker's registry ({reg.source})"
            return None, [
                self._dead(Reason.REGISTRY_MISMATCH, detail, source, raw, record.site, gateway=record.gw)
            ]
        refused = self._gateway_refusal(record)
        if refused is not None:
            reason, detail = refused
            return None, [self._dead(reason, detail, source, raw, record.site, gateway=record.gw)]
        at = record.t if record.t is not None else record.received
        t, clamped = self.event_time(at)
        if clamped:
            self.on_clamped("event", 1)
            record = dataclasses.replace(record, t=t)
        return record, []

    def _gateway_refusal(self, record: GatewayRecord) -> tuple[Reason, str] | None:
        reg = self.index.registry
        gateway = reg.gateways.get(record.gw)
        if gateway is None:
            return Reason.GATEWAY_UNKNOWN, f"gateway {record.gw!r} is not in the registry"
        if gateway.site != record.site:
            return Reason.GATEWAY_SITE_MISMATCH, f"gateway {record.gw!r} is at site {gateway.site}"
        if record.type == "event":
            unit = reg.units.get(record.target)
            if unit is None:
                return Reason.TARGET_UNKNOWN, f"event target {record.target!r} is not a unit of the registry"
            if unit.site != record.site:
                return Reason.TARGET_NOT_SERVED, f"unit {record.target!r} is at site {unit.site}"
        return None

    def _rows_refused(
        self,
        site: str,
        readings: Readings,
        unknown: np.ndarray,
        foreign: np.ndarray,
        too_old: np.ndarray,
        source: str,
        raw: bytes,
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
        n = len(ids)
        for r in too_old[: max(0, MAX_ITEMS - len(items))]:
            index = int(readings.sensor[r])
            items.append(
                DeadItem(
                    int(r),
                    Reason.OLD_TIMESTAMP.value,
                    f"t={float(readings.ts[r])!r} is older than {self.max_age_s:.0f} s",
                    ids[index] if 0 <= index < n else "",
                )
            )
        detail = (
            f"{unknown.size} readings of unknown sensors, {foreign.size} of sensors of other sites, "
            f"{too_old.size} older than the maximum age"
        )
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


_NONE = np.zeros(0, np.int64)
_TEXT_FIELDS = ("site", "gw", "state", "kind", "target", "note")


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _record_problem(r: GatewayRecord) -> str:
    """Why a decoded `rw.gateway` record is unusable ("" if it is fine): the JSON decodes into any types."""
    for name in _TEXT_FIELDS:
        if type(getattr(r, name)) is not str:
            return f"{name!r} must be a string"
    if not r.site or not r.gw:
        return "'site' and 'gw' must be non-empty"
    if not _number(r.received) or (r.t is not None and not _number(r.t)):
        return "'received' and 't' must be finite numbers of epoch seconds"
    for name in ("seq", "index"):
        value = getattr(r, name)
        if type(value) is not int or not 0 <= value < 2**64:
            return f"{name!r} must be an integer in [0, 2^64)"
    if r.type == "status":
        if r.state not in STATUS_STATES:
            return f"status 'state' must be one of {STATUS_STATES}"
    elif r.type == "event":
        if r.kind not in EVENT_KINDS:
            return f"event 'kind' must be one of {EVENT_KINDS}"
        if not r.target:
            return "event 'target' must be a non-empty unit id"
    else:
        return "'type' must be 'status' or 'event'"
    return ""
