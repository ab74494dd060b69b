"""Reads the alert store (SQLite) for history and reports: alerts with their audit trail, sent
notifications. A read-only connection: a report never blocks or changes the running service."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import orjson

from alerting.lifecycle.model import Alert, AlertEvent
from riskwatch.errors import RiskwatchError


class StoreUnavailable(RiskwatchError):
    """The alert store file is missing or unreadable."""


@dataclass(frozen=True, slots=True)
class AlertHistory:
    """One alert and what happened to it, with the times a report needs."""

    alert: Alert
    events: tuple[AlertEvent, ...]

    def first(self, event_type: str) -> float | None:
        return next((e.at for e in self.events if e.type == event_type), None)

    @property
    def acked_at(self) -> float | None:
        return self.first("acknowledged")

    @property
    def closed_at(self) -> float | None:
        return self.first("closed")


@dataclass(frozen=True, slots=True)
class Notification:
    """One message sent to one receiver (duty desk) about one or more alerts."""

    receiver: str
    channel: str
    at: float  # when it was delivered (or, not yet delivered, queued)
    delivered: bool
    alert_ids: tuple[str, ...]


class AlertArchive:
    def __init__(self, path: Path | str) -> None:
        path = Path(path)
        if not path.is_file():
            raise StoreUnavailable(f"{path}: no alert store there (give --db, the alerting service's --db)")
        try:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("SELECT 1 FROM alerts LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{path}: not an alert store: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def alerts(self, start: float, end: float, sites: set[str] | None = None) -> list[AlertHistory]:
        """Alerts that were open at some time in [start, end) (opened before `end`, not closed before
        `start`), oldest first, each with its audit trail; only these sites when given."""
        out = []
        # an alert closed before `start` was last updated (closed) before it: only open ones and those
        # changed since can have been open in the range
        rows = self._db.execute(
            "SELECT id, doc FROM alerts WHERE open = 1 OR updated_at >= ? ORDER BY rowid", (start,)
        ).fetchall()
        for alert_id, doc in rows:
            alert = Alert.from_doc(orjson.loads(doc))
            if alert.opened_at >= end or (sites is not None and alert.site not in sites):
                continue
            events = tuple(
                AlertEvent(**{**orjson.loads(d), "seq": seq})
                for seq, d in self._db.execute(
                    "SELECT seq, doc FROM audit WHERE alert_id = ? ORDER BY seq", (alert_id,)
                )
            )
            history = AlertHistory(alert, events)
            closed = history.closed_at
            if closed is not None and closed < start:
                continue
            out.append(history)
        out.sort(key=lambda h: h.alert.opened_at)
        return out

    def notifications(self, start: float, end: float) -> list[Notification]:
        """Messages to receivers with their time in [start, end): one per receiver and message."""
        rows = self._db.execute(
            "SELECT i.receiver, o.channel, coalesce(o.delivered_at, o.created_at), o.status, o.doc "
            "FROM intents i JOIN outbox o ON o.key = i.message_key "
            "WHERE coalesce(o.delivered_at, o.created_at) >= ? AND coalesce(o.delivered_at, o.created_at) < ? "
            "GROUP BY i.receiver, o.key ORDER BY 3",
            (start, end),
        )
        return [
            Notification(receiver, channel, float(at), status == "delivered",
                         tuple(orjson.loads(doc).get("alert_ids", ())))
            for receiver, channel, at, status, doc in rows
        ]  # fmt: skip
