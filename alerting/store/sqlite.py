"""SQLite store. Why SQLite: one writer per site group, no extra service to run, and with WAL +
synchronous=FULL a committed transaction survives a process kill and a power cut (fsync on commit).
Alert change, audit events and notification intents are written in ONE transaction, so they never
disagree after a crash; Kafka offsets are committed only after that transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from alerting.channels.base import Message
from alerting.lifecycle.model import Alert, AlertEvent
from riskwatch.wire.deadletter import DeadLetter
from riskwatch.wire.transitions import Transition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
  id TEXT PRIMARY KEY, entity_key TEXT NOT NULL, open INTEGER NOT NULL, state TEXT NOT NULL,
  site TEXT NOT NULL, colour TEXT NOT NULL, updated_at REAL NOT NULL, timer_at REAL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_entity ON alerts(entity_key, open);
CREATE INDEX IF NOT EXISTS alerts_timer ON alerts(timer_at) WHERE timer_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, doc BLOB NOT NULL,
  published INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS audit_alert ON audit(alert_id);
CREATE INDEX IF NOT EXISTS audit_unpublished ON audit(seq) WHERE published = 0;
CREATE TABLE IF NOT EXISTS seen (transition_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS intents (
  id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, reason TEXT NOT NULL,
  receiver TEXT NOT NULL, channel TEXT NOT NULL, group_key TEXT NOT NULL, created_at REAL NOT NULL,
  wait REAL NOT NULL, interval REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', message_key TEXT);
CREATE INDEX IF NOT EXISTS intents_pending ON intents(status) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS outbox (
  key TEXT PRIMARY KEY, channel TEXT NOT NULL, doc BLOB NOT NULL, status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, created_at REAL NOT NULL,
  delivered_at REAL, last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS maintenance (
  id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, unit TEXT NOT NULL, start REAL NOT NULL,
  "end" REAL NOT NULL, reason TEXT NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deadletters (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, reason TEXT NOT NULL, key BLOB NOT NULL, doc BLOB NOT NULL,
  published INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS deadletters_unpublished ON deadletters(seq) WHERE published = 0;
CREATE TABLE IF NOT EXISTS levels (
  kind TEXT NOT NULL, entity_type TEXT NOT NULL, entity TEXT NOT NULL, site TEXT NOT NULL,
  region TEXT NOT NULL, unit TEXT NOT NULL, level TEXT NOT NULL, since REAL NOT NULL, doc BLOB NOT NULL,
  PRIMARY KEY (kind, entity_type, entity));
CREATE TABLE IF NOT EXISTS level_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, entity_type TEXT NOT NULL, entity TEXT NOT NULL,
  site TEXT NOT NULL, region TEXT NOT NULL, old TEXT NOT NULL, level TEXT NOT NULL, at REAL NOT NULL,
  doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS level_log_at ON level_log(at);
CREATE INDEX IF NOT EXISTS level_log_site ON level_log(site, at);
CREATE INDEX IF NOT EXISTS levels_site ON levels(site);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS login_links (
  id TEXT PRIMARY KEY, user TEXT NOT NULL, expires REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0);
"""


PUBLISHED, REFUSED = 1, 2  # `published` of audit events and dead letters (0 = not yet)


@dataclass(frozen=True, slots=True)
class Intent:
    id: int
    alert_id: str
    reason: str
    receiver: str
    channel: str
    group_key: str
    created_at: float
    wait: float  # group wait: how long the first notification of a group is held for company
    interval: float  # group interval: minimum time between two messages of one group


@dataclass(frozen=True, slots=True)
class OutboxRow:
    message: Message
    attempts: int
    next_attempt_at: float
    created_at: float


class Store:
    """All durable state of the alerting service. Single connection, used from one thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The outermost call commits (one fsync) or rolls back; a nested call is a savepoint, so a
        failing inner step is undone alone and a batch of steps still costs one commit."""
        depth = self._depth
        self._db.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if depth == 0:
                self._db.execute("ROLLBACK")
            else:
                self._db.execute(f"ROLLBACK TO sp{depth}")
                self._db.execute(f"RELEASE sp{depth}")
            raise
        self._depth -= 1
        self._db.execute("COMMIT" if depth == 0 else f"RELEASE sp{depth}")

    # -- de-duplication of inputs
    def seen(self, transition_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM seen WHERE transition_id = ?", (transition_id,)).fetchone()
        return row is not None

    def mark_seen(self, transition_id: str, at: float) -> None:
        self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (transition_id, at))

    def prune_seen(self, before: float) -> int:
        """Forget transition ids older than any replay can be (Kafka retention is days, not months)."""
        return int(self._db.execute("DELETE FROM seen WHERE at < ?", (before,)).rowcount)

    # -- dead letters: kept here first, then published to rw.deadletter (an outbox, like the audit trail)
    def add_deadletter(self, letter: DeadLetter) -> None:
        """Keep what could not be used with its reason: never crash on it, never drop it silently."""
        self._db.execute(
            "INSERT INTO deadletters(reason, key, doc) VALUES (?, ?, ?)",
            (letter.reason, letter.key, letter.to_bytes()),
        )

    def unpublished_deadletters(self, limit: int = 100) -> list[tuple[int, bytes, bytes]]:
        """(seq, key, bytes) of dead letters not yet on Kafka, oldest first."""
        rows = self._db.execute(
            "SELECT seq, key, doc FROM deadletters WHERE published = 0 ORDER BY seq LIMIT ?", (limit,)
        )
        return [(int(seq), bytes(key), bytes(doc)) for seq, key, doc in rows]

    def mark_deadletters_published(self, seqs: Iterable[int], status: int = PUBLISHED) -> None:
        self._db.executemany(
            "UPDATE deadletters SET published = ? WHERE seq = ?", [(status, s) for s in seqs]
        )

    def deadletters(self) -> list[DeadLetter]:
        return [
            DeadLetter.from_bytes(doc)
            for (doc,) in self._db.execute("SELECT doc FROM deadletters ORDER BY seq")
        ]

    # -- alerts
    def put_alert(self, alert: Alert) -> None:
        timers = alert.timers()
        self._db.execute(
            "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (alert.id, alert.entity_key, int(not alert.closed), alert.state.value, alert.site, alert.colour,
             alert.updated_at, min(timers) if timers else None, orjson.dumps(alert.to_doc())),
        )  # fmt: skip

    def get_alert(self, alert_id: str) -> Alert | None:
        row = self._db.execute("SELECT doc FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return None if row is None else Alert.from_doc(orjson.loads(row[0]))

    def open_alert_for(self, entity_key: str) -> Alert | None:
        row = self._db.execute(
            "SELECT doc FROM alerts WHERE entity_key = ? AND open = 1 ORDER BY updated_at DESC LIMIT 1",
            (entity_key,),
        ).fetchone()
        return None if row is None else Alert.from_doc(orjson.loads(row[0]))

    def open_alerts_at_site(self, site: str) -> list[Alert]:
        rows = self._db.execute("SELECT doc FROM alerts WHERE site = ? AND open = 1", (site,))
        return [Alert.from_doc(orjson.loads(r[0])) for r in rows]

    def due_timers(self, now: float) -> list[Alert]:
        rows = self._db.execute("SELECT doc FROM alerts WHERE timer_at <= ? ORDER BY timer_at", (now,))
        return [Alert.from_doc(orjson.loads(r[0])) for r in rows]

    def list_alerts(
        self, state: str | None = None, site: str | None = None, colour: str | None = None, limit: int = 100,
        allow: Callable[[Alert], bool] | None = None, open_only: bool = False,
    ) -> list[Alert]:  # fmt: skip
        """Newest first; `allow` keeps only the alerts a user's scope covers (the limit counts those)."""
        where, params = (["open = 1"] if open_only else []), []
        for column, value in (("state", state), ("site", site), ("colour", colour)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT doc FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
        if allow is None:
            rows = self._db.execute(sql + " ORDER BY updated_at DESC LIMIT ?", (*params, limit))
            return [Alert.from_doc(orjson.loads(r[0])) for r in rows]
        found: list[Alert] = []
        for (doc,) in self._db.execute(sql + " ORDER BY updated_at DESC", params):
            alert = Alert.from_doc(orjson.loads(doc))
            if allow(alert):
                found.append(alert)
                if len(found) >= limit:
                    break
        return found

    # -- audit trail
    def append_event(self, event: AlertEvent) -> int:
        cursor = self._db.execute(
            "INSERT INTO audit(alert_id, doc) VALUES (?, ?)", (event.alert_id, event.to_bytes())
        )
        return int(cursor.lastrowid or 0)

    def _events(self, sql: str, params: tuple[object, ...]) -> list[AlertEvent]:
        return [AlertEvent(**{**orjson.loads(doc), "seq": seq}) for seq, doc in self._db.execute(sql, params)]

    def events_after(self, seq: int, limit: int = 500) -> list[AlertEvent]:
        return self._events("SELECT seq, doc FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))

    def events_for(self, alert_id: str) -> list[AlertEvent]:
        return self._events("SELECT seq, doc FROM audit WHERE alert_id = ? ORDER BY seq", (alert_id,))

    def unpublished_events(self, limit: int = 500) -> list[AlertEvent]:
        sql = "SELECT seq, doc FROM audit WHERE published = 0 ORDER BY seq LIMIT ?"
        return self._events(sql, (limit,))

    def mark_published(self, seqs: Iterable[int], status: int = PUBLISHED) -> None:
        """`status` REFUSED: Kafka refused the record for good; it stays here and is not retried."""
        self._db.executemany("UPDATE audit SET published = ? WHERE seq = ?", [(status, s) for s in seqs])

    def last_seq(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0])

    # -- notification intents (one per alert, receiver and channel)
    def add_intent(self, intent: Intent) -> None:
        """Record a notification to make; `intent.id` is ignored (the store assigns it)."""
        self._db.execute(
            "INSERT INTO intents(alert_id, reason, receiver, channel, group_key, created_at, wait, interval) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (intent.alert_id, intent.reason, intent.receiver, intent.channel, intent.group_key,
             intent.created_at, intent.wait, intent.interval),
        )  # fmt: skip

    def pending_intents(self) -> list[Intent]:
        rows = self._db.execute(
            "SELECT id, alert_id, reason, receiver, channel, group_key, created_at, wait, interval "
            "FROM intents "
            "WHERE status = 'pending' ORDER BY id"
        )
        return [Intent(*row) for row in rows]

    def settle_intents(self, ids: Iterable[int], status: str, message_key: str | None = None) -> None:
        self._db.executemany(
            "UPDATE intents SET status = ?, message_key = ? WHERE id = ?",
            [(status, message_key, i) for i in ids],
        )

    # -- outbox
    def add_outbox(self, message: Message, at: float) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO outbox(key, channel, doc, status, next_attempt_at, created_at) "
            "VALUES (?, ?, ?, 'pending', ?, ?)",
            (message.key, message.channel, message.to_bytes(), at, at),
        )

    def due_outbox(self, now: float, limit: int = 200) -> list[OutboxRow]:
        rows = self._db.execute(
            "SELECT doc, attempts, next_attempt_at, created_at FROM outbox "
            "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY created_at LIMIT ?",
            (now, limit),
        )
        return [OutboxRow(Message.from_bytes(d), a, n, c) for d, a, n, c in rows]

    def next_outbox_at(self) -> float | None:
        row = self._db.execute("SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'").fetchone()
        return row[0]

    def mark_delivered(self, key: str, at: float) -> None:
        self._db.execute(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1 WHERE key = ?",
            (at, key),
        )

    def mark_retry(self, key: str, next_at: float, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE key = ?",
            (next_at, error, key),
        )

    def mark_failed(self, key: str, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ? WHERE key = ?",
            (error, key),
        )

    def outbox_status(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, count(*) FROM outbox GROUP BY status")
        return {status: int(n) for status, n in rows}

    def open_alert_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM alerts WHERE open = 1").fetchone()[0])

    def sends_since(self, channel: str, since: float) -> list[float]:
        """Creation times of a channel's messages since `since`: seeds rate limiters after a restart."""
        rows = self._db.execute(
            "SELECT created_at FROM outbox WHERE channel = ? AND created_at >= ? ORDER BY created_at",
            (channel, since),
        )
        return [r[0] for r in rows]

    # -- maintenance windows
    def add_maintenance(self, site: str, unit: str, start: float, end: float, reason: str, user: str) -> int:
        cursor = self._db.execute(
            'INSERT INTO maintenance(site, unit, start, "end", reason, created_by) VALUES (?, ?, ?, ?, ?, ?)',
            (site, unit, start, end, reason, user),
        )
        return int(cursor.lastrowid or 0)

    def in_maintenance(self, site: str, unit: str, at: float) -> str | None:
        """The reason if a window covers this site (whole site, unit = '') or this unit at `at`."""
        row = self._db.execute(
            "SELECT reason FROM maintenance WHERE site = ? AND (unit = '' OR unit = ?) "
            'AND start <= ? AND "end" > ? LIMIT 1',
            (site, unit, at, at),
        ).fetchone()
        return None if row is None else str(row[0])

    # -- current level of every entity and its changes: the board's state, rebuilt from rw.warnings and
    # rw.alarms by this consumer (its offsets are committed with the store), so a board that starts at
    # any time has every colour, not only the changes since it started.
    def record_level(self, t: Transition) -> int:
        """Log one applied transition; the current level moves only forward in event time (a late,
        older record is history, not the present). Returns the log sequence number."""
        doc = t.to_bytes()
        cursor = self._db.execute(
            "INSERT INTO level_log(kind, entity_type, entity, site, region, old, level, at, doc) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (t.kind, t.entity_type, t.entity, t.site, t.region, t.old, t.new, t.at, doc),
        )
        self._db.execute(
            "INSERT INTO levels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(kind, entity_type, entity) DO UPDATE SET level = excluded.level, "
            "since = excluded.since, doc = excluded.doc, site = excluded.site, region = excluded.region, "
            "unit = excluded.unit WHERE excluded.since >= levels.since",
            (t.kind, t.entity_type, t.entity, t.site, t.region, t.unit, t.new, t.at, doc),
        )
        return int(cursor.lastrowid or 0)

    def levels(self, site: str | None = None, shown_only: bool = False) -> list[LevelRow]:
        """Current levels (normal ones included: they say since when), optionally of one site; with
        `shown_only`, colours and alarm states that are not normal (not the province's quiet sensors)."""
        sql, params = "SELECT doc FROM levels WHERE 1 = 1", []
        if site is not None:
            sql, params = sql + " AND site = ?", [site]
        if shown_only:
            sql += " AND (kind = 'warning' OR level != 'normal')"
        return [LevelRow.from_doc(bytes(doc)) for (doc,) in self._db.execute(sql, params)]

    def level_changes_after(self, seq: int, limit: int = 500) -> list[tuple[int, LevelRow]]:
        rows = self._db.execute(
            "SELECT seq, doc FROM level_log WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [(int(s), LevelRow.from_doc(bytes(d))) for s, d in rows]

    def last_level_seq(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM level_log").fetchone()[0])

    def level_history(
        self, since: float, site: str | None = None, entity_types: tuple[str, ...] = ()
    ) -> list[LevelRow]:
        """Colour changes (warnings) with event time after `since`, oldest first; optionally one site's
        and only these entity types."""
        sql = "SELECT doc FROM level_log WHERE at > ? AND kind = 'warning'"
        params: list[Any] = [since]
        if site is not None:
            sql, params = sql + " AND site = ?", [*params, site]
        if entity_types:
            sql += f" AND entity_type IN ({', '.join('?' * len(entity_types))})"
            params = [*params, *entity_types]
        return [LevelRow.from_doc(bytes(d)) for (d,) in self._db.execute(sql + " ORDER BY at, seq", params)]

    def prune_level_log(self, before: float) -> int:
        """Forget changes older than the longest window the board shows (the current level stays)."""
        return int(self._db.execute("DELETE FROM level_log WHERE at < ?", (before,)).rowcount)

    # -- board sessions and one-time login links (only hashes of the secrets are kept)
    def put_session(self, key: str, user: str, csrf: str, expires: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)", (key, user, csrf, expires))

    def session(self, key: str, now: float) -> tuple[str, str] | None:
        """(user, csrf token) of a live session."""
        row = self._db.execute(
            "SELECT user, csrf FROM sessions WHERE id = ? AND expires > ?", (key, now)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def drop_session(self, key: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE id = ?", (key,))

    def put_login_link(self, key: str, user: str, expires: float) -> None:
        """Accept a one-time link; adding it again (a restart) never revives a used one."""
        self._db.execute(
            "INSERT OR IGNORE INTO login_links(id, user, expires) VALUES (?, ?, ?)", (key, user, expires)
        )

    def use_login_link(self, key: str, now: float) -> str | None:
        """The user of a live, unused one-time link, which is used up by this call."""
        row = self._db.execute(
            "SELECT user FROM login_links WHERE id = ? AND expires > ? AND used = 0", (key, now)
        ).fetchone()
        self._db.execute("UPDATE login_links SET used = 1 WHERE id = ?", (key,))
        return None if row is None else str(row[0])

    def prune_sessions(self, now: float) -> None:
        self._db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
        self._db.execute("DELETE FROM login_links WHERE expires <= ?", (now,))


@dataclass(frozen=True, slots=True)
class LevelRow:
    """One entity's level as the board shows it: a colour (warnings) or an alarm state (alarms)."""

    kind: str
    entity_type: str
    entity: str
    site: str
    region: str
    unit: str
    old: str
    level: str
    at: float
    rule: str
    items: tuple[dict[str, object], ...]

    @classmethod
    def from_doc(cls, raw: bytes) -> LevelRow:
        doc = orjson.loads(raw)
        cause = doc.get("cause") or {}
        return cls(
            doc["kind"], doc["entity_type"], doc["entity"], doc.get("site", ""), doc.get("region", ""),
            doc.get("unit", ""), doc["old"], doc["new"], float(doc["at"]), cause.get("rule", ""),
            tuple(cause.get("items", ())),
        )  # fmt: skip

    def to_doc(self) -> dict[str, object]:
        return {
            "kind": self.kind, "type": self.entity_type, "entity": self.entity, "site": self.site,
            "region": self.region, "unit": self.unit, "old": self.old, "level": self.level, "at": self.at,
            "rule": self.rule, "items": list(self.items),
        }  # fmt: skip
