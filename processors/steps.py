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
from typing import TYPE_CHECKING, NamedTuple

from processors.intake import COMPONENT
from riskwatch.wire.deadletter import DeadLetter, Reason
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


class StepOutput(NamedTuple):
    transitions: list[Transition]
    dead: list[DeadLetter]


class Steps:
    """The guarded handling of each input record of a worker."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def telemetry(self, record: Record) -> StepOutput:
        ctx, m = self.ctx, self.ctx.metrics
        try:
            accepted, dead = ctx.intake.telemetry(record.value, record.topic, ctx.states.fresh_sources)
        except Exception as exc:  # a decoder bug: the record is what we cannot use
            return StepOutput([], [self._failed(record, Reason.MALFORMED_RECORD, "decoding", exc)])
        dead = self._located(record, dead)
        if accepted is None:
            return StepOutput([], dead)
        now = ctx.clock()
        try:
            started = time.perf_counter()
            out = ctx.states.evaluate(accepted.site, accepted.readings, now)
            m.eval_seconds.observe(time.perf_counter() - started)
        except Exception as exc:
            m.evaluation_errors.labels("telemetry").inc()
            dead.append(self._failed(record, Reason.EVALUATION_ERROR, "evaluating", exc, accepted.site))
            return StepOutput([], dead)
        if accepted.duplicates:
            m.duplicates.inc(accepted.duplicates)
        if record.timestamp:
            m.record_delay.observe(max(0.0, now - record.timestamp))
        m.batches.inc()
        m.readings.inc(len(accepted.readings))
        r = accepted.readings
        try:  # history is best effort: its failure must not cost the transitions already made
            ctx.aggregator.add(accepted.global_sensor, r.value, r.ts, now)
        except Exception:
            log.exception("history aggregation failed for a batch of site %s", accepted.site)
        return StepOutput(out, dead)

    def gateway(self, record: Record) -> StepOutput:
        ctx = self.ctx
        try:
            rec, dead = ctx.intake.gateway(record.value, record.topic)
        except Exception as exc:
            return StepOutput([], [self._failed(record, Reason.MALFORMED_RECORD, "decoding", exc)])
        dead = self._located(record, dead)
        if rec is None:
            return StepOutput([], dead)
        try:
            out = ctx.states.apply_gateway(rec.site, [rec], ctx.clock())
        except Exception as exc:
            ctx.metrics.evaluation_errors.labels("gateway").inc()
            dead.append(self._failed(record, Reason.EVALUATION_ERROR, "evaluating", exc, rec.site))
            return StepOutput([], dead)
        return StepOutput(out, dead)

    def _located(self, record: Record, dead: list[DeadLetter]) -> list[DeadLetter]:
        return [dataclasses.replace(d, partition=record.partition, offset=record.offset) for d in dead]

    def _failed(
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
