"""What alerting cannot use goes to `rw.deadletter` with a reason, counted, and alerting goes on.

Dead letters are written to the store first (in the caller's transaction when there is one) and published
from there with the audit trail, so Kafka being away delays them but loses none.
"""

from __future__ import annotations

import logging
import sqlite3

import orjson

from alerting.metrics import AlertingMetrics
from alerting.store import Store
from riskwatch.wire.deadletter import DeadLetter, Reason, safe_text

log = logging.getLogger("riskwatch.alerting")
COMPONENT = "alerting"


def as_bytes(doc: object) -> bytes:
    """JSON of what could not be handled, for the dead letter's `original`; never raises."""
    try:
        return orjson.dumps(doc, default=repr)
    except (TypeError, ValueError):
        return repr(doc).encode("utf-8", "backslashreplace")


def store_failed(exc: BaseException) -> bool:
    """The store itself is failing (locked, disk full, corrupt): no input is to blame, so nothing is
    dead-lettered; the task stops, health turns unhealthy and the process exits to be restarted."""
    return isinstance(exc, sqlite3.OperationalError | MemoryError) or type(exc) is sqlite3.DatabaseError


class DeadLetters:
    def __init__(self, store: Store, metrics: AlertingMetrics | None = None) -> None:
        self.store, self.metrics = store, metrics

    def record(
        self,
        reason: Reason,
        detail: str,
        source: str,
        original: bytes,
        at: float,
        site: str = "",
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        letter = DeadLetter(
            reason.value, detail, source, original, at, component=COMPONENT, site=site, partition=partition,
            offset=offset,
        )  # fmt: skip
        with self.store.transaction():
            self.store.add_deadletter(letter)
        if self.metrics is not None:
            self.metrics.deadletters.labels(reason.value).inc()
        where = f"{source}[{partition}]@{offset}" if partition is not None else source
        log.warning(
            "dead-lettered (%s) from %s: %s", reason.value, safe_text(where, 200), safe_text(detail, 300)
        )
