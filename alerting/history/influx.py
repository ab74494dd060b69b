"""Reads the history in InfluxDB with InfluxQL over its HTTP `/query` endpoint (InfluxDB 1.8).

Independent of who writes the history: it reads only the measurements, tags and fields described in
riskwatch/wire/history.py. InfluxQL rather than Flux because grouping by a tag (one row per sensor for a
whole day) is done inside the database and is several times faster on 1.8. Times are epoch seconds.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from riskwatch.errors import RiskwatchError
from riskwatch.wire.history import AGGREGATE_MEASUREMENT, SITE_MINUTE_MEASUREMENT, TRANSITION_MEASUREMENT


class HistoryUnavailable(RiskwatchError):
    """InfluxDB could not be asked or refused the query."""


@dataclass(frozen=True, slots=True)
class MinuteRow:
    sensor: str
    at: float  # the minute's start
    min: float
    max: float
    mean: float
    count: int


@dataclass(frozen=True, slots=True)
class TransitionRow:
    at: float
    kind: str
    entity_type: str
    entity: str
    site: str
    region: str
    old: str
    new: str
    rule: str
    cause: str  # JSON


def _quote(text: str) -> str:
    """An InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tag(value: str | None) -> str:
    """The writer stores an empty tag as "-" (InfluxDB has no empty tags)."""
    return "" if value in (None, "-") else str(value)


def _ns(epoch_s: float) -> int:
    return round(epoch_s * 1e9)


@dataclass(frozen=True, slots=True)
class InfluxConnection:
    url: str
    token: str  # "user:password" on InfluxDB 1.8, as the writer uses it
    bucket: str = "riskwatch/autogen"  # "db/retention policy" or "db"
    timeout_s: float = 120.0

    @property
    def database(self) -> str:
        return self.bucket.split("/", 1)[0]

    @property
    def retention(self) -> str:
        parts = self.bucket.split("/", 1)
        return parts[1] if len(parts) == 2 and parts[1] else "autogen"


class InfluxHistory:
    def __init__(self, conn: InfluxConnection) -> None:
        self.conn = conn
        self._from = f'"{conn.database}"."{conn.retention}"'

    def _series(self, query: str) -> Iterator[dict[str, Any]]:
        """Every series of the answer: {"tags": {...}, "columns": [...], "values": [[...]]}."""
        params = urllib.parse.urlencode(
            {"db": self.conn.database, "q": query, "epoch": "ms", "chunked": "true", "chunk_size": "50000"}
        )
        request = urllib.request.Request(f"{self.conn.url.rstrip('/')}/query?{params}")
        user, _, password = self.conn.token.partition(":")
        if user:
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {basic}")
        try:
            with urllib.request.urlopen(request, timeout=self.conn.timeout_s) as response:
                for line in response:  # chunked: one JSON document per line
                    if not line.strip():
                        continue
                    doc = orjson.loads(line)
                    for result in doc.get("results", ()):
                        if "error" in result:
                            raise HistoryUnavailable(f"InfluxDB refused the query: {result['error']}")
                        yield from result.get("series", ())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300].decode(errors="replace")
            raise HistoryUnavailable(
                f"InfluxDB at {self.conn.url} answered HTTP {exc.code}: {body}"
            ) from None
        except OSError as exc:
            raise HistoryUnavailable(f"cannot reach InfluxDB at {self.conn.url}: {exc}") from None

    def _rows(self, query: str) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
        for series in self._series(query):
            tags = series.get("tags") or {}
            columns = series["columns"]
            for values in series.get("values", ()):
                yield tags, dict(zip(columns, values, strict=True))

    def _range(self, start: float, end: float) -> str:
        return f"time >= {_ns(start)} AND time < {_ns(end)}"

    def sensor_minutes(self, sensor: str, start: float, end: float) -> list[MinuteRow]:
        """One sensor's minute aggregates in [start, end), oldest first."""
        q = (
            f'SELECT "min", "max", "mean", "count" FROM {self._from}."{AGGREGATE_MEASUREMENT}" '
            f'WHERE "sensor" = {_quote(sensor)} AND {self._range(start, end)} ORDER BY time'
        )
        return [
            MinuteRow(sensor, v["time"] / 1000, float(v["min"]), float(v["max"]), float(v["mean"]),
                      int(v["count"]))
            for _, v in self._rows(q)
        ]  # fmt: skip

    def credited_per_site(self, start: float, end: float) -> dict[str, int]:
        """Owed readings each site's sensors paid in [start, end): the numerator of data completeness,
        summed inside InfluxDB over the worker's per-site minute summary (one point per site and minute,
        not one per sensor)."""
        q = (
            f'SELECT sum("credited") FROM {self._from}."{SITE_MINUTE_MEASUREMENT}" '
            f'WHERE {self._range(start, end)} GROUP BY "site"'
        )
        return {tags["site"]: int(v["sum"]) for tags, v in self._rows(q)}

    def minute_totals(self, start: float, end: float) -> dict[float, tuple[int, int]]:
        """Per minute in [start, end) that has any: how many sensors have an aggregate for it and how many
        readings those hold (the sum of their counts), counted inside InfluxDB. Keyed by the minute's
        start."""
        q = (
            f'SELECT count("count"), sum("count") FROM {self._from}."{AGGREGATE_MEASUREMENT}" '
            f"WHERE {self._range(start, end)} GROUP BY time(1m) fill(none)"
        )
        # A row can come back with null aggregates (seen while the historian was still writing the
        # minute): it holds nothing yet, so 0 rather than a TypeError that ended the caller.
        return {v["time"] / 1000: (int(v["count"] or 0), int(v["sum"] or 0)) for _, v in self._rows(q)}

    def extremes(
        self, start: float, end: float, sensors: list[str] | None = None
    ) -> dict[str, list[MinuteRow]]:
        """Minute aggregates of many sensors (all, or these), grouped by sensor, oldest first."""
        where = self._range(start, end)
        if sensors is not None:
            if not sensors:
                return {}
            where += " AND (" + " OR ".join(f'"sensor" = {_quote(s)}' for s in sensors) + ")"
        q = (
            f'SELECT "min", "max", "mean", "count" FROM {self._from}."{AGGREGATE_MEASUREMENT}" '
            f'WHERE {where} GROUP BY "sensor" ORDER BY time'
        )
        out: dict[str, list[MinuteRow]] = {}
        for tags, v in self._rows(q):
            out.setdefault(tags["sensor"], []).append(
                MinuteRow(tags["sensor"], v["time"] / 1000, float(v["min"]), float(v["max"]),
                          float(v["mean"]), int(v["count"]))
            )  # fmt: skip
        return out

    def transitions(
        self,
        start: float,
        end: float,
        kind: str | None = None,
        entity_type: str | None = None,
        entity: str | None = None,
        site: str | None = None,
        touching: str | None = None,
    ) -> list[TransitionRow]:
        """Transitions with event time in [start, end), oldest first, filtered by tags; with `touching`,
        only those entering or leaving that level (e.g. "stale")."""
        where = [self._range(start, end)]
        if touching is not None:
            where.append(f'("new" = {_quote(touching)} OR "old" = {_quote(touching)})')
        for tag, value in (("kind", kind), ("entity_type", entity_type), ("entity", entity), ("site", site)):
            if value is not None:
                where.append(f'"{tag}" = {_quote(value)}')
        q = (
            f'SELECT "old", "new", "rule", "cause" FROM {self._from}."{TRANSITION_MEASUREMENT}" '
            f'WHERE {" AND ".join(where)} GROUP BY "kind", "entity_type", "entity", "site", "region"'
        )
        rows = [
            TransitionRow(
                v["time"] / 1000, tags["kind"], tags["entity_type"], tags["entity"], _tag(tags.get("site")),
                _tag(tags.get("region")), str(v["old"]), str(v["new"]), str(v["rule"] or ""), str(v["cause"] or "{}"),
            )
            for tags, v in self._rows(q)
        ]  # fmt: skip
        rows.sort(key=lambda r: (r.at, r.entity))
        return rows

    def ping(self) -> None:
        list(self._series(f'SHOW MEASUREMENTS ON "{self.conn.database}" LIMIT 1'))
