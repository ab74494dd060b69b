"""The alarm-quality report (after ISA-18.2 and EEMUA 191), per day and per duty desk (receiver).

Sources: sensor alarm transitions and minute aggregates in InfluxDB, alerts and sent notifications in
the alert store, set points from the site registry. Definitions: docs/reports.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from alerting.history.alerts import AlertArchive
from alerting.history.influx import InfluxHistory, MinuteRow, TransitionRow
from alerting.reports import compute as c
from alerting.reports.daily import day_bounds
from riskwatch.registry.registry import Registry

ALARM_STATES = frozenset({"l1_high", "l1_low", "l2_high", "l2_low", "fault"})
STANDING_LOOKBACK_S = 7 * 86400.0
TOP = 10


@dataclass(slots=True)
class DeskDay:
    day: date
    receiver: str
    notifications: int
    max_per_10_min: int
    flood_share: float
    per_10_min: list[int]


@dataclass(slots=True)
class BadActor:
    sensor: str
    name: str
    site: str
    activations: int
    chattering: bool
    suggestion: c.Suggestion


@dataclass(slots=True)
class QualityDay:
    day: date
    crossings: int  # sensor threshold crossings: what a naive system would notify
    alarms: int  # alarm activations (sensor level)
    alerts: int
    notifications: int
    chattering: list[str] = field(default_factory=list)
    standing: list[str] = field(default_factory=list)
    alert_colours: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class QualityReport:
    first: date
    last: date
    tz: str
    generated_at: float
    days: list[QualityDay]
    desks: list[DeskDay]
    bad_actors: list[BadActor]


def activations(rows: list[TransitionRow]) -> dict[str, list[float]]:
    """Times each sensor's alarm became active (from not active to an alarm state)."""
    out: dict[str, list[float]] = {}
    for r in rows:
        if r.new in ALARM_STATES and r.old not in ALARM_STATES:
            out.setdefault(r.entity, []).append(r.at)
    return out


def active_changes(rows: list[TransitionRow]) -> dict[str, list[tuple[float, bool]]]:
    out: dict[str, list[tuple[float, bool]]] = {}
    for r in rows:
        if (r.new in ALARM_STATES) != (r.old in ALARM_STATES):
            out.setdefault(r.entity, []).append((r.at, r.new in ALARM_STATES))
    return out


def crossings(registry: Registry, minutes: dict[str, list[MinuteRow]]) -> int:
    """Onsets of minutes with a reading beyond a sensor's first set point (high or low): what a system
    that notified every crossing, without deadband or delay, would have sent (at minute resolution, so a
    lower bound)."""
    total = 0
    for sensor_id, rows in minutes.items():
        s = registry.sensors.get(sensor_id)
        if s is None or (s.l1_high is None and s.l1_low is None):
            continue
        hi = np.array([r.max for r in rows])
        lo = np.array([r.min for r in rows])
        t = np.array([r.at for r in rows])
        beyond = np.zeros(len(rows), bool)
        if s.l1_high is not None:
            beyond |= hi > s.l1_high
        if s.l1_low is not None:
            beyond |= lo < s.l1_low
        # an onset: beyond, and the previous minute (if it had data and was the minute before) was not
        prev_beyond = np.concatenate([[False], beyond[:-1]]) & np.concatenate([[False], np.diff(t) <= 60.0])
        total += int(np.count_nonzero(beyond & ~prev_beyond))
    return total


def gather(
    registry: Registry,
    history: InfluxHistory,
    archive: AlertArchive,
    first: date,
    last: date,
    tz: str,
    now: float,
) -> QualityReport:
    days, desks = [], []
    start_all, _ = day_bounds(first, tz)
    _, end_all = day_bounds(last, tz)
    rows = history.transitions(start_all - STANDING_LOOKBACK_S, end_all, kind="alarm", entity_type="sensor")
    rows = [r for r in rows if r.entity in registry.sensors]
    acts = activations([r for r in rows if r.at >= start_all])
    changes = active_changes(rows)
    alerts = archive.alerts(start_all, end_all)
    notes = archive.notifications(start_all, end_all)
    all_minutes = history.extremes(start_all, end_all)
    day = first
    while day <= last:
        start, end = day_bounds(day, tz)
        end = max(start + 1.0, min(end, now))  # a day not yet over: up to now
        day_acts = {s: [t for t in ts if start <= t < end] for s, ts in acts.items()}
        day_acts = {s: ts for s, ts in day_acts.items() if ts}
        standing = []
        for sensor, ch in changes.items():
            past = [x for x in ch if x[0] < end]
            intervals = c.active_intervals(False, past, start_all - STANDING_LOOKBACK_S, end)
            if c.standing(intervals, end):
                standing.append(sensor)
        day_alerts = [a for a in alerts if start <= a.alert.opened_at < end]
        day_notes = [n for n in notes if start <= n.at < end]
        day_minutes = {s: [m for m in ms if start <= m.at < end] for s, ms in all_minutes.items()}
        days.append(
            QualityDay(
                day, crossings(registry, day_minutes), sum(len(ts) for ts in day_acts.values()), len(day_alerts),
                len(day_notes), sorted(s for s, ts in day_acts.items() if c.chattering(ts)), sorted(standing),
                dict(Counter(a.alert.peak_colour for a in day_alerts)),
            )
        )  # fmt: skip
        for receiver in sorted({n.receiver for n in day_notes}):
            counts = c.per_window([n.at for n in day_notes if n.receiver == receiver], start, end)
            desks.append(DeskDay(day, receiver, int(counts.sum()), int(counts.max()), c.flood_share(counts),
                                 counts.tolist()))  # fmt: skip
        day += timedelta(days=1)

    bad = []
    for sensor, times in sorted(acts.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:TOP]:
        s = registry.sensors[sensor]
        intervals = c.active_intervals(False, changes.get(sensor, []), start_all, end_all)
        durations = [hi - lo for lo, hi in intervals]
        mx = [m.max for m in all_minutes.get(sensor, [])]
        setpoint = s.l1_high if s.l1_high is not None else s.l1_low
        bad.append(BadActor(sensor, s.name or sensor, s.site, len(times), c.chattering(times),
                            c.suggest(times, durations, setpoint, s.deadband, s.on_delay_s, mx, s.uom)))  # fmt: skip
    return QualityReport(first, last, tz, now, days, desks, bad)


def render(q: QualityReport) -> str:
    from alerting.reports import render as r

    made = datetime.fromtimestamp(q.generated_at, ZoneInfo(q.tz)).strftime("%Y-%m-%d %H:%M")
    title = f"报警质量报告 {q.first.isoformat()} 至 {q.last.isoformat()}"
    meta = f"参照 ISA-18.2 / EEMUA 191 · 时区 {q.tz} · 生成于 {made}"
    chain = "<h2>一、逐级压减：越限 → 报警 → 预警告警 → 通知</h2>" + r.table(
        ["日期", "传感器越限（朴素系统）", "报警", "告警", "已发通知", "压减率（通知/越限）", "振荡报警", "常驻报警"],
        [[d.day.isoformat(), d.crossings, d.alarms, d.alerts, d.notifications,
          "—" if not d.crossings else f"{100 * (1 - d.notifications / d.crossings):.1f}%",
          len(d.chattering), len(d.standing)] for d in q.days],
    )  # fmt: skip
    colours = "<h2>二、告警颜色分布</h2>" + r.table(
        ["日期", "红", "橙", "黄", "蓝"],
        [
            [d.day.isoformat(), *(d.alert_colours.get(k, 0) for k in ("red", "orange", "yellow", "blue"))]
            for d in q.days
        ],
    )
    desk_rows = [[d.day.isoformat(), d.receiver, d.notifications, d.max_per_10_min, f"{100 * d.flood_share:.1f}%"]
                 for d in q.desks]  # fmt: skip
    desks = "<h2>三、各值班台通知负荷（每10分钟）</h2>" + (
        r.table(["日期", "值班台", "通知数", "10分钟最多", "洪泛时段占比（>10条/10分钟）"], desk_rows)
        if desk_rows
        else "<p>期间无通知。</p>"
    )
    for d in q.desks[:6]:
        labels = [f"{(i * 10) // 60:02d}:{(i * 10) % 60:02d}" for i in range(len(d.per_10_min))]
        desks += (
            f'<img src="{r.bar_series(f"{d.day} {d.receiver} 每10分钟通知数", labels, d.per_10_min, 10)}">'
        )
    lists = "<h2>四、振荡与常驻报警</h2>" + r.table(
        ["日期", "振荡报警（60秒内≥3次）", "常驻报警（持续>24小时）"],
        [[d.day.isoformat(), "、".join(d.chattering) or "—", "、".join(d.standing) or "—"] for d in q.days],
    )
    actors = "<h2>五、前十位频发报警及建议</h2>" + (
        r.table(["测点", "名称", "企业", "激活次数", "振荡", "建议", "可减少"],
                [[b.sensor, b.name, b.site, b.activations, "是" if b.chattering else "否", b.suggestion.text,
                  b.suggestion.removes] for b in q.bad_actors])
        if q.bad_actors else "<p>期间无报警。</p>"
    )  # fmt: skip
    return r.page(title, meta, [chain, colours, desks, lists, actors])


def write(q: QualityReport, out_dir: Path) -> tuple[Path, Path]:
    from alerting.reports import render as r

    return r.write(render(q), out_dir, f"quality-{q.first.isoformat()}_{q.last.isoformat()}")
