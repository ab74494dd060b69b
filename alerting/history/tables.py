"""The three history tables, as (headers, rows), shared by the CLI and the API."""

from __future__ import annotations

from collections.abc import Callable

from alerting.history.alerts import AlertArchive
from alerting.history.export import local_time
from alerting.history.influx import InfluxHistory
from alerting.lifecycle.model import Alert

Table = tuple[list[str], list[list[object]]]


def sensor_table(history: InfluxHistory, sensor: str, start: float, end: float, tz: str) -> Table:
    rows = history.sensor_minutes(sensor, start, end)
    return (
        ["time", "sensor", "min", "max", "mean", "count"],
        [[local_time(r.at, tz), r.sensor, r.min, r.max, r.mean, r.count] for r in rows],
    )


def colour_table(history: InfluxHistory, entity: str, start: float, end: float, tz: str) -> Table:
    """An entity's (site, unit, region, or a sensor's alarm) level changes, oldest first."""
    rows = history.transitions(start, end, entity=entity)
    return (
        ["time", "kind", "entity_type", "entity", "site", "region", "old", "new", "rule"],
        [[local_time(r.at, tz), r.kind, r.entity_type, r.entity, r.site, r.region, r.old, r.new, r.rule]
         for r in rows],
    )  # fmt: skip


ALERT_HEADERS = ["alert", "site", "region", "entity_type", "entity", "colour", "peak_colour", "opened",
                 "event_time", "event", "actor", "state", "note"]  # fmt: skip


def alert_table(
    archive: AlertArchive,
    start: float,
    end: float,
    tz: str,
    sites: set[str] | None = None,
    visible: Callable[[Alert], bool] | None = None,
) -> Table:
    """Alerts open in [start, end) with every audit event: one row per event."""
    rows: list[list[object]] = []
    for h in archive.alerts(start, end, sites):
        a = h.alert
        if visible is not None and not visible(a):
            continue
        for e in h.events:
            rows.append([a.id, a.site, a.region, a.entity_type, a.entity, a.colour, a.peak_colour,
                         local_time(a.opened_at, tz), local_time(e.at, tz), e.type, e.actor, e.state, e.note])  # fmt: skip
    return ALERT_HEADERS, rows
