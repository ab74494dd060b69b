"""InfluxDB line protocol for the two history measurements (described in riskwatch/wire/history.py,
which readers use too). A transition written twice (a replay) lands on the same series and time, so
InfluxDB keeps one point: history is idempotent like the topics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import orjson

from processors.history.aggregate import MinuteAggregate
from riskwatch.wire.history import AGGREGATE_MEASUREMENT, TRANSITION_MEASUREMENT
from riskwatch.wire.transitions import Transition


def _tag(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ") or "-"


def _field_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def aggregate_lines(agg: MinuteAggregate, sensor_tags: Sequence[str]) -> list[str]:
    """`sensor_tags[i]` is the pre-escaped tag set of registry sensor i ("sensor=..,site=..,region=..")."""
    ms = int(agg.start * 1000)
    return [
        f"{AGGREGATE_MEASUREMENT},{sensor_tags[s]} min={lo!r},max={hi!r},mean={mean!r},count={n}i {ms}"
        for s, lo, hi, mean, n in zip(
            agg.sensor.tolist(),
            agg.min.tolist(),
            agg.max.tolist(),
            agg.mean.tolist(),
            agg.count.tolist(),
            strict=True,
        )
    ]


def sensor_tag_sets(sensor_ids: Sequence[str], sites: Sequence[str], regions: Sequence[str]) -> list[str]:
    return [
        f"sensor={_tag(s)},site={_tag(site)},region={_tag(r)}"
        for s, site, r in zip(sensor_ids, sites, regions, strict=True)
    ]


def transition_line(t: Transition) -> str:
    tags = f"kind={t.kind},entity_type={t.entity_type},entity={_tag(t.entity)},site={_tag(t.site)},region={_tag(t.region)}"
    cause = orjson.dumps(asdict(t.cause)).decode()
    fields = (
        f"id={_field_str(t.id)},old={_field_str(t.old)},new={_field_str(t.new)},"
        f"rule={_field_str(t.cause.rule)},cause={_field_str(cause)}"
    )
    return f"{TRANSITION_MEASUREMENT},{tags} {fields} {round(t.at * 1000)}"
