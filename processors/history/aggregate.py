"""Per-sensor 1-minute aggregates (min, max, mean, count), accumulated with numpy over whole batches.

Buckets are indexed by registry sensor index. Adding a batch only keeps its arrays; a minute folds
what it kept into its buckets (`ufunc.at` for min and max, `bincount` for sum and count) once
`FOLD_READINGS` have gathered, or when it closes. Folding per batch cost four numpy calls per batch,
13 % of the worker's time with one gateway message (200 readings) per batch. No per-reading Python. A minute closes `grace_s` after it ends (wall clock), which
leaves room for readings that arrive a little late.

Open minutes travel with the site snapshot (`open_minutes` / `resume`): the readings a snapshot covers
are never read again after a crash (their offsets are committed, and a replay de-duplicates them), so a
restarted worker resumes the site's open minutes from the snapshot and adds only what it replays.

A closed minute also says which of its sensors it credits for data completeness: a sensor owes one
reading per window of its `stale_after_s` (riskwatch/wire/history.py), and is credited in the first
minute of each window in which it reported; the last window credited per sensor is kept here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from riskwatch.registry import Registry
from riskwatch.wire.history import owed_window_s

MINUTE = 60.0
FOLD_READINGS = 1 << 15
# A minute due to close that still received readings this recently stays open: a backlog (a restart, a
# burst of old records) is still bringing its readings, and a minute closed in between would be written
# again with only the rest, which replaces the first point in InfluxDB.
QUIET_S = 5.0


class MinuteAggregate(NamedTuple):
    """One closed minute: the sensors that reported in it and their statistics."""

    start: float  # epoch seconds of the minute's start
    sensor: npt.NDArray[np.int64]  # registry indices
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    count: npt.NDArray[np.int64]  # type: ignore[assignment]  # readings per minute; shadows tuple.count
    credited: npt.NDArray[np.bool_]  # the first minute of the sensor's owed window in which it reported

    def __len__(self) -> int:
        return int(self.sensor.shape[0])

    def rows(self, lo: int, hi: int) -> MinuteAggregate:
        """Sensors [lo, hi) of this minute (views, no copy)."""
        return MinuteAggregate(
            self.start,
            self.sensor[lo:hi],
            self.min[lo:hi],
            self.max[lo:hi],
            self.mean[lo:hi],
            self.count[lo:hi],
            self.credited[lo:hi],
        )


class OpenMinute(NamedTuple):
    """One site's part of a minute still open: the sensors that reported so far, as running totals."""

    minute: int  # epoch minute number (start / 60)
    sensor: npt.NDArray[np.int64]  # registry indices
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    sum: npt.NDArray[np.float64]
    count: npt.NDArray[np.int64]  # type: ignore[assignment]  # shadows tuple.count


class _Bucket:
    def __init__(self, n: int) -> None:
        self.min = np.full(n, np.inf)
        self.max = np.full(n, -np.inf)
        self.sum = np.zeros(n)
        self.count = np.zeros(n, np.int64)
        self.kept: list[tuple[npt.NDArray[np.integer], npt.NDArray[np.float64]]] = []
        self.kept_readings = 0
        self.touched = -np.inf  # when it last received readings (the worker's clock)

    def keep(self, sensor: npt.NDArray[np.integer], value: npt.NDArray[np.float64]) -> None:
        """Hold a batch's arrays (not copied: batches are read-only views of their Kafka records)."""
        self.kept.append((sensor, value))
        self.kept_readings += sensor.shape[0]
        if self.kept_readings >= FOLD_READINGS:
            self.fold()

    def fold(self) -> None:
        if not self.kept:
            return
        sensor = np.concatenate([k[0] for k in self.kept]).astype(np.intp, copy=False)
        value = np.concatenate([k[1] for k in self.kept])
        self.kept, self.kept_readings = [], 0
        n = self.count.shape[0]
        np.minimum.at(self.min, sensor, value)
        np.maximum.at(self.max, sensor, value)
        self.sum += np.bincount(sensor, weights=value, minlength=n)
        self.count += np.bincount(sensor, minlength=n)


class MinuteAggregator:
    """Open minute buckets over `n_sensors`; readings older than `max_age_s` are counted, not aggregated."""

    def __init__(
        self,
        n_sensors: int,
        grace_s: float = 30.0,
        max_age_s: float = 3600.0,
        window_s: npt.NDArray[np.float64] | None = None,
    ) -> None:
        self.n = n_sensors
        # per sensor: seconds per owed reading (default: one a minute) and the last window credited
        self.window_s = np.full(n_sensors, MINUTE) if window_s is None else np.asarray(window_s, np.float64)
        self.credited_window = np.full(n_sensors, -1, np.int64)
        self.grace_s = grace_s
        self.max_age_s = max_age_s
        self.buckets: dict[int, _Bucket] = {}
        self.too_old = 0
        self.repaired = 0  # means that overflowed (huge values) and were clipped to the minute's range

    @classmethod
    def for_registry(cls, registry: Registry, **limits: float) -> MinuteAggregator:
        """Over the registry's sensors, each owing a reading per its `stale_after_s`; `limits`: grace_s,
        max_age_s."""
        windows = np.array([owed_window_s(s.stale_after_s) for s in registry.sensor_list], np.float64)
        return cls(len(windows), window_s=windows, **limits)

    def add(
        self,
        sensor: npt.NDArray[np.integer],
        value: npt.NDArray[np.float64],
        ts: npt.NDArray[np.float64],
        now: float,
    ) -> None:
        ok = np.isfinite(value) & np.isfinite(ts) & (ts >= now - self.max_age_s)
        if not ok.all():
            self.too_old += int((~ok).sum())
            sensor, value, ts = sensor[ok], value[ok], ts[ok]
        if sensor.shape[0] == 0:
            return
        minute = (ts // MINUTE).astype(np.int64)
        first = int(minute[0])
        if (minute == first).all():  # the common case: the whole batch is in one minute
            self._add(first, sensor, value, now)
            return
        for m in np.unique(minute).tolist():
            rows = minute == m
            self._add(int(m), sensor[rows], value[rows], now)

    def _add(
        self, minute: int, sensor: npt.NDArray[np.integer], value: npt.NDArray[np.float64], now: float
    ) -> None:
        b = self.buckets.get(minute)
        if b is None:
            b = self.buckets[minute] = _Bucket(self.n)
        b.keep(sensor, value)
        b.touched = now

    def open_minutes(self, sensors: npt.NDArray[np.intp]) -> list[OpenMinute]:
        """The open minutes' running totals of `sensors` (registry indices: one site's), oldest first."""
        out = []
        for minute in sorted(self.buckets):
            b = self.buckets[minute]
            b.fold()
            rows = sensors[b.count[sensors] > 0]
            if rows.shape[0]:
                out.append(
                    OpenMinute(
                        minute, rows.astype(np.int64), b.min[rows], b.max[rows], b.sum[rows], b.count[rows]
                    )
                )
        return out

    def resume(self, sensors: npt.NDArray[np.intp], minutes: list[OpenMinute]) -> None:
        """Replace what is open for `sensors` by `minutes` (a restored snapshot's; rows not among `sensors`
        are ignored), so that the readings replayed after the snapshot complete them."""
        self.forget(sensors)
        mine = np.zeros(self.n, bool)
        mine[sensors] = True
        for m in minutes:
            keep = (m.sensor >= 0) & (m.sensor < self.n)
            keep[keep] = mine[m.sensor[keep]]
            if not keep.any():
                continue
            b = self.buckets.get(m.minute)
            if b is None:
                b = self.buckets[m.minute] = _Bucket(self.n)
            rows = m.sensor[keep]
            b.min[rows], b.max[rows] = m.min[keep], m.max[keep]
            b.sum[rows], b.count[rows] = m.sum[keep], m.count[keep]

    def credits(self, sensors: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
        """(sensors, last window credited) of `sensors` that owe less than a reading a minute and were
        credited: what a restarted worker needs so as not to credit their current window again. A sensor
        owing one a minute cannot be credited twice (its window is its minute, which closes once)."""
        slow = sensors[(self.window_s[sensors] > MINUTE) & (self.credited_window[sensors] >= 0)]
        return slow, self.credited_window[slow]

    def resume_credits(
        self, sensors: npt.NDArray[np.intp], credited: npt.NDArray[np.intp], windows: npt.NDArray[np.int64]
    ) -> None:
        """Replace the last windows credited of `sensors` (one site's) by a restored snapshot's."""
        self.credited_window[sensors] = -1
        self.credited_window[credited] = windows

    def forget(self, sensors: npt.NDArray[np.intp]) -> None:
        """Drop what is open for `sensors` (their site moved to another worker, which resumes it)."""
        for minute in list(self.buckets):
            b = self.buckets[minute]
            b.fold()
            b.min[sensors], b.max[sensors], b.sum[sensors], b.count[sensors] = np.inf, -np.inf, 0.0, 0
            if not b.count.any():
                del self.buckets[minute]

    def _credit(self, minute: int, idx: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        """Which sensors of a closing minute pay a reading they owe: those whose window (of this minute's
        start) is later than the last one credited. A minute of an earlier window closed late (a
        backlog) pays nothing: that window was credited or is past."""
        window = (minute * MINUTE // self.window_s[idx]).astype(np.int64)
        credited = window > self.credited_window[idx]
        self.credited_window[idx[credited]] = window[credited]
        return credited

    def close_due(self, now: float, everything: bool = False, late_s: float = 0.0) -> list[MinuteAggregate]:
        """Close and return the minutes that ended more than `grace_s` (+ `late_s`) ago and have received
        no reading for `QUIET_S` (or all, on shutdown)."""
        out = []
        for minute in sorted(self.buckets):
            ended = (minute + 1) * MINUTE + self.grace_s + late_s <= now
            due = ended and now - self.buckets[minute].touched >= QUIET_S
            if not everything and not due:
                continue
            b = self.buckets.pop(minute)
            b.fold()
            idx = np.flatnonzero(b.count)
            count = b.count[idx]
            lo, hi = b.min[idx], b.max[idx]
            mean = b.sum[idx] / count
            bad = ~np.isfinite(mean)  # the sum of finite values can overflow (two readings of 1.7e308)
            if bad.any():
                # InfluxDB refuses an infinite field; the true mean lies between the finite min and max
                self.repaired += int(np.count_nonzero(bad))
                mean[bad] = np.clip(lo[bad] / 2 + hi[bad] / 2, lo[bad], hi[bad])
            out.append(MinuteAggregate(minute * MINUTE, idx, lo, hi, mean, count, self._credit(minute, idx)))
        return out
