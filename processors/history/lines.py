"""InfluxDB line protocol for the history measurements (their layout is riskwatch/wire/history.py,
which the readers use too). A transition written twice (a replay) lands on the same series and time, so
InfluxDB keeps one point: history is idempotent like the topics. So is a minute written twice.
"""

from __future__ import annotations

from dataclasses import asdict

import orjson

from riskwatch.wire.history import AGGREGATE_MEASUREMENT, SITE_MINUTE_MEASUREMENT, TRANSITION_MEASUREMENT
from riskwatch.wire.minutes import SiteMinute
from riskwatch.wire.transitions import Transition


def _tag(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ") or "-"


def _field_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def minute_lines(m: SiteMinute) -> list[str]:
    """One point per sensor of a site's closed minute, and the site's completeness point of the minute
    (in the same record, so written and committed together)."""
    ms = int(m.start * 1000)
    site_region = f"site={_tag(m.site)},region={_tag(m.region)}"
    lines = [
        f"{AGGREGATE_MEASUREMENT},sensor={_tag(s)},{site_region} min={lo!r},max={hi!r},mean={mean!r},count={n}i {ms}"
        for s, lo, hi, mean, n in zip(m.sensor, m.min, m.max, m.mean, m.count, strict=True)
    ]
    if m.credited is not None and m.owed is not None:
        lines.append(site_minute_line(m.site, m.region, m.start, sum(m.credited), len(m.sensor), m.owed))
    return lines


def site_minute_line(site: str, region: str, start: float, credited: int, sensors: int, owed: float) -> str:
    """A site's completeness point of a minute (riskwatch/wire/history.py: site_1m)."""
    return (
        f"{SITE_MINUTE_MEASUREMENT},site={_tag(site)},region={_tag(region)} "
        f"credited={credited}i,sensors={sensors}i,owed={float(owed)!r} {int(start * 1000)}"
    )


def transition_line(t: Transition) -> str:
    tags = f"kind={t.kind},entity_type={t.entity_type},entity={_tag(t.entity)},site={_tag(t.site)},region={_tag(t.region)}"
    cause = orjson.dumps(asdict(t.cause)).decode()
    fields = (
        f"id={_field_str(t.id)},old={_field_str(t.old)},new={_field_str(t.new)},"
        f"rule={_field_str(t.cause.rule)},cause={_field_str(cause)}"
    )
    return f"{TRANSITION_MEASUREMENT},{tags} {fields} {round(t.at * 1000)}"
