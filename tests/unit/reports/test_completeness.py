"""The bulletin's completeness (完整率) from the worker's per-site minute summary (`site_1m`) equals the
per-sensor definition computed from every sensor's minutes (`sensor_1m`), on a day of readings with mixed
cadences, gaps and a sensor reporting faster than it owes. Both come out of the worker's own aggregation
path: MinuteAggregator -> MinutePublisher -> the rw.history record -> the historian's line protocol."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date

import numpy as np
import pytest

from alerting.reports import compute as c
from alerting.reports import daily
from processors.history.aggregate import QUIET_S, MinuteAggregator
from processors.history.lines import minute_lines
from processors.history.publish import MinutePublisher
from riskwatch.registry.registry import Registry
from riskwatch.wire.minutes import SiteMinute

# (id, stale_after_s, seconds between readings, gaps as (from, to) offsets into the day in seconds)
SENSORS = {
    "S1": [
        ("every-minute", 60, 60, [(3_000, 5_220)]),
        ("owes-5min-reports-20s", 300, 20, [(40_000, 40_700)]),  # faster than owed
        ("owes-90s-reports-2min", 90, 120, []),  # a window not a whole number of minutes
        ("owes-hour-reports-7min", 3600, 420, [(10_000, 30_000)]),
    ],
    "S2": [
        ("owes-10min-reports-10min", 600, 600, [(-3_000, 2_000)]),  # silent across midnight
        ("never-reports", 300, 0, []),
        ("owes-2min-jittery", 120, 97, [(60_000, 61_000), (80_000, 86_400)]),
    ],
}
REGISTRY = Registry.from_dict({
    "regions": [{"id": "R1"}],
    "sites": [
        {"id": site, "region": "R1", "industry": "hazardous_chemicals", "gateways": [{"id": f"{site}-G"}], "units": [{
            "id": f"{site}-U", "kind": "tank_farm", "gateway": f"{site}-G",
            "sensors": [{"id": sid, "type": "flammable_gas", "stale_after_s": stale} for sid, stale, _, _ in sensors],
        }]}
        for site, sensors in SENSORS.items()
    ],
})  # fmt: skip
DAY = date(2026, 11, 23)
START, END = daily.day_bounds(DAY, "Asia/Shanghai")


def _readings(rng: random.Random) -> list[tuple[float, int]]:
    """(time, registry index) of every reading from an hour before the day to its end, time ordered."""
    out = []
    for sensors in SENSORS.values():
        for sid, _, every, gaps in sensors:
            if not every:
                continue
            t = START - 3600 + rng.uniform(0, every)
            while t < END:
                if not any(START + lo <= t < START + hi for lo, hi in gaps):
                    out.append((t, REGISTRY.sensors[sid].index))
                t += every + rng.uniform(-3, 3)
    return sorted(out)


def _worker_history(readings: list[tuple[float, int]]) -> list[str]:
    """The line protocol the historian writes for these readings, closed minute by minute as the
    worker does (each record through its wire format)."""
    aggregator = MinuteAggregator.for_registry(REGISTRY)
    publisher = MinutePublisher.for_registry(REGISTRY)
    lines: list[str] = []
    times = np.array([t for t, _ in readings])
    sensor = np.array([i for _, i in readings], np.int64)
    minute = (times // 60).astype(np.int64)
    for m in np.unique(minute).tolist():
        rows = minute == m
        now = (m + 1) * 60.0
        aggregator.add(sensor[rows], np.full(int(rows.sum()), 1.0), times[rows], now)
        for agg in aggregator.close_due(now + aggregator.grace_s + QUIET_S):
            for record in publisher.records(agg):
                lines += minute_lines(SiteMinute.from_bytes(record.to_bytes()))
    for agg in aggregator.close_due(END + 3600, everything=True):
        for record in publisher.records(agg):
            lines += minute_lines(SiteMinute.from_bytes(record.to_bytes()))
    return lines


def _parse(line: str) -> tuple[str, dict[str, str], dict[str, str], float]:
    head, fields, ms = line.split(" ")
    measurement, *tags = head.split(",")
    tag = dict(t.split("=", 1) for t in tags)
    field = dict(f.split("=", 1) for f in fields.split(","))
    return measurement, tag, field, int(ms) / 1000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_site_summary_gives_the_per_sensor_completeness(seed: int) -> None:
    lines = _worker_history(_readings(random.Random(seed)))
    minutes_of: dict[str, list[float]] = defaultdict(list)  # what sensor_1m holds
    credited_of: dict[str, int] = defaultdict(int)  # what the bulletin's query sums from site_1m
    for line in lines:
        measurement, tag, field, at = _parse(line)
        if measurement == "sensor_1m":
            minutes_of[tag["sensor"]].append(at)
        elif START <= at < END:
            assert measurement == "site_1m"
            credited_of[tag["site"]] += int(field["credited"].rstrip("i"))
    for site, sensors in SENSORS.items():
        owed = {sid: c.expected_readings(END - START, stale) for sid, stale, _, _ in sensors}
        paid = {sid: c.credited_windows(minutes_of[sid], stale, START, END) for sid, stale, _, _ in sensors}
        per_sensor = c.completeness(sum(paid.values()), sum(owed.values()))
        from_summary = c.completeness(credited_of[site], sum(owed.values()))
        assert from_summary == per_sensor, site
        assert 0.3 < from_summary < 1.0  # gaps and a silent sensor: neither empty nor full
    # the fast sensor pays each 5-minute window once (288 a day) but the one its gap covers, not 1,440
    assert paid_of("owes-5min-reports-20s", minutes_of) == 288 - 1


def paid_of(sid: str, minutes_of: dict[str, list[float]]) -> int:
    return c.credited_windows(minutes_of[sid], REGISTRY.sensors[sid].stale_after_s, START, END)


def test_a_site_that_sent_nothing_owes_all_it_should() -> None:
    assert c.completeness(0, c.expected_readings(END - START, 300)) == 0.0
