"""Engine state of the sites a worker owns: evaluate, remember open levels, hand out dirty snapshots.

Pure (no Faust): the agents feed it batches, gateway records and timer ticks, and persist what
`take_dirty` returns. A site's state is loaded lazily from `load` (the state table) the first time the
worker touches it after an assignment, so a moved partition continues from its last snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from processors.engine_port import EngineApi
from processors.history.aggregate import MinuteAggregator, OpenMinute
from processors.state.seen import RecentSeqs
from processors.state.sites import SiteIndex
from processors.state.snapshot import SiteSnapshot, SnapshotError, StoredMinute
from riskwatch.wire.batch import Source
from riskwatch.wire.gateway_protocol import GatewayRecord
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition

log = logging.getLogger(__name__)

NORMAL = "normal"  # the label of both Colour.NORMAL and AlarmState.NORMAL
EntityKey = tuple[str, str]  # (entity_type, entity)


@dataclass
class SiteSlot:
    """One site's live engine state and its currently open (non-normal) levels."""

    site: str
    model: Any
    state: Any
    open: dict[EntityKey, Transition] = field(default_factory=dict)
    seen: RecentSeqs = field(default_factory=RecentSeqs)
    evaluated: int = 0  # readings evaluated, kept in the snapshot: loss is counted against it
    dirty: bool = False


class SiteStates:
    """The live state of every loaded site; region roll-up happens downstream, so region output is dropped."""

    def __init__(
        self,
        index: SiteIndex,
        engine: EngineApi,
        load: Callable[[str], bytes | None],
        on_ignored: Callable[[str, int], None] | None = None,
        minutes: MinuteAggregator | None = None,
    ) -> None:
        self.index = index
        # The worker's open history minutes: a site's part goes into its snapshot and comes back with it.
        self.minutes = minutes
        self.engine = engine
        self.load = load
        # (reason, count): inputs the engine evaluated without effect (out of order, rejected)
        self.on_ignored = on_ignored or (lambda reason, n: None)
        self.slots: dict[str, SiteSlot] = {}
        self._models: dict[str, Any] = {}
        self.restore_failures = 0
        self.tick_errors = 0

    def slot(self, site: str, start: float | None = None) -> SiteSlot:
        """The site's live state, restored from its snapshot or started fresh at `start` (default: now).

        A fresh state's sensors turn stale `stale_after_s` after `start` unless they report; their first
        readings are taken whatever their time, so a backlog older than `start` is not lost.
        """
        slot = self.slots.get(site)
        if slot is None:
            slot = self.slots[site] = self._restore(site, start)
        return slot

    def evaluate(self, site: str, readings: Readings, now: float) -> list[Transition]:
        slot = self.slot(site, now)
        before = self.engine.ignored(slot.state)
        slot.dirty = True  # before evaluating: a state updated in place and then raising is stored too
        slot.state, out = self.engine.evaluate(slot.model, slot.state, readings, now)
        slot.evaluated += len(readings)
        self._count_ignored(before, slot.state)
        return self._record(slot, out)

    def evaluate_many(self, site: str, batches: Sequence[Readings], now: float) -> list[Transition]:
        """Consecutive batches of a site, with the transitions of one `evaluate` per batch.

        They are evaluated in one engine call first (its fixed cost paid once). The engine sees every
        reading either way, but decides unit and site colours once per call: if any sensor changed level
        in the call, a colour held only between two batches (a red that cleared in the next one) could
        be missed, so the state goes back to before the call and the batches are evaluated one by one."""
        if len(batches) == 1:
            return self.evaluate(site, batches[0], now)
        slot = self.slot(site, now)
        before, evaluated = self.engine.copy_state(slot.state), slot.evaluated
        ignored = self.engine.ignored(slot.state)
        slot.dirty = True
        together = Readings(*(np.concatenate(c) for c in zip(*batches, strict=True)))
        try:
            slot.state, out = self.engine.evaluate(slot.model, slot.state, together, now)
        except BaseException:  # the caller evaluates them one by one: from the state before the call
            slot.state = before
            raise
        if not any(t.entity_type == "sensor" for t in out):  # no level changed: colours as one by one
            slot.evaluated += len(together)
            self._count_ignored(ignored, slot.state)
            return self._record(slot, out)
        slot.state, slot.evaluated = before, evaluated
        return [t for batch in batches for t in self.evaluate(site, batch, now)]

    def _count_ignored(self, before: dict[str, int], state: Any) -> None:
        for reason, total in self.engine.ignored(state).items():
            if total > before.get(reason, 0):
                self.on_ignored(reason, total - before.get(reason, 0))

    def fresh_sources(
        self, site: str, sources: Sequence[Source], stamps: Sequence[float], now: float
    ) -> list[bool]:
        """For each gateway message of a batch: True if new (now remembered), False if a duplicate."""
        slot = self.slot(site, now)
        flags = [
            slot.seen.check_and_add(src.gateway, src.seq, t) for src, t in zip(sources, stamps, strict=True)
        ]
        slot.dirty = True
        return flags

    def apply_gateway(self, site: str, records: Sequence[GatewayRecord], now: float) -> list[Transition]:
        slot = self.slot(site, now)
        before = self.engine.ignored(slot.state)
        slot.dirty = True
        slot.state, out = self.engine.apply_gateway(slot.model, slot.state, records, now)
        self._count_ignored(before, slot.state)
        return self._record(slot, out)

    def tick(self, sites: Iterable[str], now: float, empty: Readings | None = None) -> list[Transition]:
        """Evaluate each site with an empty batch: stale sensors, off-delays, persistence rules.

        A site whose evaluation raises is logged, counted in `tick_errors` and skipped: the other sites'
        timers go on (one bad state must not stop every site's stale detection)."""
        batch = empty if empty is not None else Readings.empty()
        out: list[Transition] = []
        for site in sites:
            try:
                slot = self.slot(site, now)
                slot.state, found = self.engine.evaluate(slot.model, slot.state, batch, now)
            except Exception:
                self.tick_errors += 1
                log.exception("site %s: timer evaluation failed; skipped this tick", site)
                continue
            if found:
                slot.dirty = True
                out.extend(self._record(slot, found))
        return out

    def take_dirty(self, sites: Iterable[str] | None = None) -> list[tuple[str, bytes]]:
        """Snapshots of the changed sites (all, or those in `sites`), marking them clean."""
        chosen = self.slots.values() if sites is None else (self.slots[s] for s in sites if s in self.slots)
        out = []
        for slot in chosen:
            if slot.dirty:
                snap = SiteSnapshot(
                    self.engine.to_bytes(slot.state),
                    tuple(slot.open.values()),
                    slot.seen,
                    slot.evaluated,
                    self._open_minutes(slot.site),
                    self._credits(slot.site),
                )
                out.append((slot.site, snap.to_bytes()))
                slot.dirty = False
        return out

    def mark_dirty(self, sites: Iterable[str]) -> None:
        """Snapshots taken but not stored (the write failed): take them again next time."""
        for site in sites:
            slot = self.slots.get(site)
            if slot is not None:
                slot.dirty = True

    def drop(self, sites: Iterable[str]) -> None:
        """Forget sites whose partition left this worker; their next owner restores them (with their
        open minutes, which this worker must then not close half-full)."""
        sites = list(sites)
        for site in sites:
            self.slots.pop(site, None)
        if self.minutes is not None and sites:
            self.minutes.forget(np.concatenate([self._sensors(site) for site in sites]))

    def compile_all(self) -> None:
        """Compile every site's model up front, so the first batch of a site does not pay for it."""
        for site in self.index.site_ids:
            self._model(site)

    def evaluated(self, site: str) -> int:
        """Readings of the site the engine evaluated (duplicates left out), across restarts: live if
        loaded, else from its stored snapshot (not loading it)."""
        slot = self.slots.get(site)
        if slot is not None:
            return slot.evaluated
        raw = self.load(site)
        try:
            return SiteSnapshot.from_bytes(raw).evaluated if raw is not None else 0
        except SnapshotError:
            return 0

    def open_levels(self, site: str) -> dict[EntityKey, Transition]:
        """The site's non-normal levels: live if loaded, else from its stored snapshot (not loading it)."""
        slot = self.slots.get(site)
        if slot is not None:
            return dict(slot.open)
        raw = self.load(site)
        if raw is None:
            return {}
        try:
            return self._still_there(site, SiteSnapshot.from_bytes(raw).open)
        except SnapshotError:
            return {}

    def _model(self, site: str) -> Any:
        model = self._models.get(site)
        if model is None:
            model = self._models[site] = self.engine.compile_model(self.index.sub_registry(site))
        return model

    def _restore(self, site: str, start: float | None) -> SiteSlot:
        model = self._model(site)
        raw = self.load(site)
        start = start if start is not None else time.time()
        if raw is not None:
            try:
                snap = SiteSnapshot.from_bytes(raw)
                # Fitted to the registry in use: after an edit, kept by id, new entities start at `start`.
                state = self.engine.restore(model, snap.state, start)
                opened = self._still_there(site, snap.open)
                log.info(
                    "site %s: restored from its snapshot; last seqs %s",
                    site,
                    snap.seen.last_seqs() if snap.seen else {},
                )
                self._resume_minutes(site, snap.minutes)
                self._resume_credits(site, snap.credited)
                return SiteSlot(site, model, state, opened, snap.seen or RecentSeqs(), snap.evaluated)
            except Exception as exc:
                # A snapshot from an incompatible build, or one that cannot be migrated to this registry:
                # start fresh rather than stop the worker (or fail on every record of the site).
                self.restore_failures += 1
                log.error("site %s: snapshot not restorable (%s); starting from the initial state", site, exc)
        return SiteSlot(site, model, self.engine.initial(model, start))

    def _sensors(self, site: str) -> npt.NDArray[np.intp]:
        """The site's sensors' registry indices."""
        return np.asarray(self.index.sensors_of_site[site], np.intp)

    def _open_minutes(self, site: str) -> tuple[StoredMinute, ...]:
        if self.minutes is None:
            return ()
        ids = self.index.sensor_id_array
        # numpy columns as they are: the snapshot encodes them whole (no Python step per sensor)
        return tuple(
            StoredMinute(m.minute, ids[m.sensor], m.min, m.max, m.sum, m.count)
            for m in self.minutes.open_minutes(self._sensors(site))
        )

    def _resume_minutes(self, site: str, stored: tuple[StoredMinute, ...]) -> None:
        """Put the snapshot's open minutes back; sensors the registry no longer has at this site are dropped."""
        if self.minutes is None:
            return
        sensors = self.index.registry.sensors
        minutes = []
        for m in stored:
            rows = [k for k, sid in enumerate(m.sensor) if sid in sensors and sensors[sid].site == site]
            minutes.append(
                OpenMinute(
                    m.minute,
                    np.array([sensors[m.sensor[k]].index for k in rows], np.int64),
                    np.array([m.min[k] for k in rows], np.float64),
                    np.array([m.max[k] for k in rows], np.float64),
                    np.array([m.sum[k] for k in rows], np.float64),
                    np.array([m.count[k] for k in rows], np.int64),
                )
            )
        self.minutes.resume(self._sensors(site), minutes)

    def _credits(self, site: str) -> tuple[tuple[str, int], ...]:
        if self.minutes is None:
            return ()
        sensors, windows = self.minutes.credits(self._sensors(site))
        return tuple(zip(self.index.sensor_id_array[sensors].tolist(), windows.tolist(), strict=True))

    def _resume_credits(self, site: str, stored: tuple[tuple[str, int], ...]) -> None:
        """Put the snapshot's credited windows back (sensors no longer at this site are dropped)."""
        if self.minutes is None:
            return
        sensors = self.index.registry.sensors
        kept = [(sensors[sid].index, w) for sid, w in stored if sid in sensors and sensors[sid].site == site]
        self.minutes.resume_credits(
            self._sensors(site),
            np.array([i for i, _ in kept], np.intp),
            np.array([w for _, w in kept], np.int64),
        )

    def _still_there(self, site: str, opened: Iterable[Transition]) -> dict[EntityKey, Transition]:
        """Open levels of the entities the registry still has (an edit may have removed some)."""
        reg = self.index.registry
        keep = {
            "sensor": lambda e: e in reg.sensors and reg.sensors[e].site == site,
            "unit": lambda e: e in reg.units and reg.units[e].site == site,
            "site": lambda e: e == site,
        }
        return {
            (t.entity_type, t.entity): t
            for t in opened
            if t.entity_type in keep and keep[t.entity_type](t.entity)
        }

    def _record(self, slot: SiteSlot, transitions: list[Transition]) -> list[Transition]:
        kept = [t for t in transitions if t.entity_type != "region"]
        for t in kept:
            key = (t.entity_type, t.entity)
            if t.new == NORMAL:
                slot.open.pop(key, None)
            else:
                slot.open[key] = t
        return kept
