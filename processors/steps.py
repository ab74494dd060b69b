"""One Kafka record, one guarded step: decode, validate and evaluate it, or dead-letter it and go on.

The agents hand every `rw.telemetry` and `rw.gateway` record to `Steps`, which never raises on account of
the record: what cannot be decoded or validated is dead-lettered (`batch_decode`, `malformed_record`,
`registry_mismatch`, ...), and if evaluating it raises, it is dead-lettered as `evaluation_error`. Every
dead letter names the record's topic (`source`), partition and offset. The agent then marks the record
processed and holds it for the next snapshot's ack like any other, so its offset is committed and the
partition moves on: a record that fails is never retried forever, and no other site of its partition
waits behind it. (Before, an exception restarted the agent, whose offset check sought back to the same
record, and that partition's sites were never evaluated again.)

Sending the transitions and dead letters stays outside the guard: a record cannot make a send fail, and
a send that fails (Kafka unreachable) must stop the worker rather than lose what it was sending.
Pure of Faust, so it is tested without a broker.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from processors.intake import COMPONENT, Accepted
from riskwatch.wire.deadletter import DeadLetter, Reason
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition

if TYPE_CHECKING:
    from processors.app import WorkerContext

log = logging.getLogger(__name__)


class Record(NamedTuple):
    """What a step needs of a Kafka record."""

    topic: str
    partition: int
    offset: int
    value: bytes
    timestamp: float | None = None  # Kafka timestamp in epoch seconds (when the bridge sent it)
    key: bytes | None = None


class Decoded(NamedTuple):
    """A record that decoded, and what of it the engine is to evaluate."""

    record: Record
    accepted: Accepted


class StepOutput(NamedTuple):
    transitions: list[Transition]
    dead: list[DeadLetter]


class Steps:
    """The guarded handling of each input record of a worker."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def telemetry(self, record: Record) -> StepOutput:
        """One record alone: decoded, then evaluated (`telemetry_many` of one record)."""
        return self.telemetry_many([record])

    def telemetry_many(self, records: Sequence[Record]) -> StepOutput:
        """Records taken together: each decoded in its own guarded step, then every site's batches
        evaluated in one engine call, in offset order (`decode`, then `evaluate` per site)."""
        by_site, dead = self.decode(records)
        transitions: list[Transition] = []
        for group in by_site.values():
            out = self.evaluate(group)
            transitions += out.transitions
            dead += out.dead
        return StepOutput(transitions, dead)

    def decode(self, records: Iterable[Record]) -> tuple[dict[str, list[Decoded]], list[DeadLetter]]:
        """Each record decoded and checked on its own (one bad record is dead-lettered alone, with its
        place), the accepted ones grouped by site in offset order. Dedup marks gateway messages seen here,
        so a message repeated within the same take is left out too."""
        ctx = self.ctx
        by_site: dict[str, list[Decoded]] = {}
        dead: list[DeadLetter] = []
        for record in records:
            try:
                accepted, refused = ctx.intake.telemetry(record.value, record.topic, ctx.states.fresh_sources)
            except Exception as exc:  # a decoder bug: the record is what we cannot use
                dead.append(self.failed(record, Reason.MALFORMED_RECORD, "decoding", exc))
                continue
            dead += self._located(record, refused)
            if accepted is not None:
                by_site.setdefault(accepted.site, []).append(Decoded(record, accepted))
        return by_site, dead

    def evaluate(self, group: Sequence[Decoded]) -> StepOutput:
        """One site's decoded records, in offset order, in one engine call where that gives the same
        transitions as one call per record (SiteStates.evaluate_many). If evaluating them together
        raises, they are evaluated one by one, so that only the record that raises is dead-lettered."""
        if len(group) > 1:
            try:
                return self._evaluated(group)
            except Exception:
                log.warning(
                    "site %s: evaluating %d records together raised; evaluating them one by one",
                    group[0].accepted.site,
                    len(group),
                )
        transitions: list[Transition] = []
        dead: list[DeadLetter] = []
        for one in group:
            try:
                transitions += self._evaluated([one]).transitions
            except Exception as exc:
                self.ctx.metrics.evaluation_errors.labels("telemetry").inc()
                dead.append(
                    self.failed(one.record, Reason.EVALUATION_ERROR, "evaluating", exc, one.accepted.site)
                )
        return StepOutput(transitions, dead)

    def _evaluated(self, group: Sequence[Decoded]) -> StepOutput:
        ctx, m = self.ctx, self.ctx.metrics
        site = group[0].accepted.site
        # The engine works on the input's clock; the record delay and the minutes' "still receiving" on
        # the wall clock (a minute closed while its late readings still come would be written twice).
        now = ctx.clock()
        started = time.perf_counter()
        out = ctx.states.evaluate_many(site, [d.accepted.readings for d in group], ctx.engine_clock())
        m.eval_seconds.observe(time.perf_counter() - started)
        n = 0
        newest = -np.inf
        for d in group:
            n += len(d.accepted.readings)
            if len(d.accepted.readings):
                newest = max(newest, float(d.accepted.readings.ts.max()))
            if d.accepted.duplicates:
                m.duplicates.inc(d.accepted.duplicates)
            if d.record.timestamp:
                m.record_delay.observe(max(0.0, now - d.record.timestamp))
        m.batches.inc(len(group))
        m.readings.inc(n)
        if newest > -np.inf:
            ctx.engine_clock.observe(site, newest, now)
        try:  # history is best effort: its failure must not cost the transitions already made
            if len(group) == 1:
                r, sensor = group[0].accepted.readings, group[0].accepted.global_sensor
            else:
                r = Readings(
                    *(np.concatenate(c) for c in zip(*(d.accepted.readings for d in group), strict=True))
                )
                sensor = np.concatenate([d.accepted.global_sensor for d in group])
            ctx.aggregator.add(sensor, r.value, r.ts, now)
        except Exception:
            log.exception("history aggregation failed for a batch of site %s", site)
        return StepOutput(out, [])

    def gateway(self, record: Record) -> StepOutput:
        ctx = self.ctx
        try:
            rec, dead = ctx.intake.gateway(record.value, record.topic)
        except Exception as exc:
            return StepOutput([], [self.failed(record, Reason.MALFORMED_RECORD, "decoding", exc)])
        dead = self._located(record, dead)
        if rec is None:
            return StepOutput([], dead)
        try:
            out = ctx.states.apply_gateway(rec.site, [rec], ctx.engine_clock())
        except Exception as exc:
            ctx.metrics.evaluation_errors.labels("gateway").inc()
            dead.append(self.failed(record, Reason.EVALUATION_ERROR, "evaluating", exc, rec.site))
            return StepOutput([], dead)
        return StepOutput(out, dead)

    def _located(self, record: Record, dead: list[DeadLetter]) -> list[DeadLetter]:
        return [dataclasses.replace(d, partition=record.partition, offset=record.offset) for d in dead]

    def failed(
        self, record: Record, reason: Reason, doing: str, exc: BaseException, site: str = ""
    ) -> DeadLetter:
        log.error(
            "%s partition %d offset %d: %s raised; dead-lettered (%s) and skipped",
            record.topic,
            record.partition,
            record.offset,
            doing,
            reason.value,
            exc_info=exc,
        )
        where = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return DeadLetter(
            reason=reason.value,
            detail=f"{doing} the record raised {where}",
            source=record.topic,
            original=bytes(record.value) if record.value is not None else b"",
            at=self.ctx.clock(),
            component=COMPONENT,
            site=site,
            partition=record.partition,
            offset=record.offset,
        )
