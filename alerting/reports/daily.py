"""The daily four-colour bulletin (每日四色预警通报): gathered from history, then rendered.

Sources: the site registry (enterprises, regions, industries, static grades, gateways, sensors), the
history in InfluxDB (site colour transitions, sensor stale transitions caused by a gateway going
offline, the per-site minute completeness summary) and the alert store (alerts and their audit trail). Definitions:
docs/reports.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from alerting.history.alerts import AlertArchive, AlertHistory
from alerting.history.influx import InfluxHistory, TransitionRow
from alerting.reports import compute as c
from riskwatch.registry.registry import Registry

GRADE = {"blue": "A", "yellow": "B", "orange": "C", "red": "D"}  # static grade letters, A = lowest risk
INDUSTRY_ZH = {"hazardous_chemicals": "危险化学品", "coal_mine": "煤矿", "non_coal_mine": "非煤矿山",
               "tailings_pond": "尾矿库", "gas_kiln": "燃气窑炉"}  # fmt: skip
COLOUR_LOOKBACK_S = 30 * 86400.0  # a site's colour at midnight: its last change in the 30 days before
GATEWAY_LOOKBACK_S = 2 * 86400.0  # a gateway offline at midnight went offline in the 2 days before
DAY_S = 86400.0


def day_bounds(day: date, tz: str) -> tuple[float, float]:
    """Epoch seconds of local midnight starting `day` and the next (23 or 25 hours on a DST change)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return start.timestamp(), end.timestamp()


@dataclass(slots=True)
class Handling:
    """How one enterprise's alerts of the day were handled."""

    total: int = 0
    on_time: int = 0
    late: int = 0
    not_acked: int = 0
    closed: int = 0
    open: int = 0


@dataclass(slots=True)
class EnterpriseDay:
    site: str
    name: str
    region: str
    industry: str
    static_grade: str  # A..D or ""
    peak: str  # highest colour of the day
    seconds: dict[str, float]  # time at each colour within the day
    causes: list[str] = field(default_factory=list)
    handling: Handling = field(default_factory=Handling)
    online_rate: float = 1.0
    completeness: float = 1.0
    offline_s: float = 0.0


@dataclass(slots=True)
class Bulletin:
    day: date
    tz: str
    start: float
    end: float
    generated_at: float
    by_region: dict[str, dict[str, int]]
    by_industry: dict[str, dict[str, int]]
    totals: dict[str, int]
    totals_before: dict[str, int]
    change: dict[str, int]
    flagged: list[EnterpriseDay]  # reached orange or red, worst first
    data_quality: list[EnterpriseDay]  # every enterprise, worst online rate and completeness first
    alerts: int
    closed: int
    closed_loop_rate: float | None
    enterprises: int


def _initial_and_changes(
    rows: list[TransitionRow], start: float
) -> tuple[dict[str, str], dict[str, list[tuple[float, str]]]]:
    """Per entity: its level at `start` (last change before it) and its changes from `start` on."""
    initial: dict[str, str] = {}
    changes: dict[str, list[tuple[float, str]]] = {}
    for r in rows:
        if r.at < start:
            initial[r.entity] = r.new
        else:
            changes.setdefault(r.entity, []).append((r.at, r.new))
    return initial, changes


def _cause_text(row: TransitionRow, registry: Registry) -> str:
    try:
        cause = orjson.loads(row.cause)
    except orjson.JSONDecodeError:
        cause = {}
    parts = []
    for item in cause.get("items", ())[:3]:
        sensor = registry.sensors.get(item.get("sensor", ""))
        label = (sensor.name or sensor.id) if sensor is not None else item.get("sensor", "")
        value, setpoint = item.get("value"), item.get("setpoint")
        reading = f" {value:g}" if isinstance(value, int | float) else ""
        limit = f"/{setpoint:g}" if isinstance(setpoint, int | float) else ""
        parts.append(f"{label} {item.get('state', '')}{reading}{limit} {item.get('unit', '')}".strip())
    text = cause.get("text") or row.rule
    return f"{text}: {'; '.join(parts)}" if parts else text


def colours_of_day(
    registry: Registry, rows: list[TransitionRow], start: float, end: float
) -> dict[str, list[tuple[float, float, str]]]:
    """Each site's colour pieces within [start, end) from site warning transitions (older rows set the
    colour at `start`)."""
    initial, changes = _initial_and_changes([r for r in rows if r.at < end], start)
    return {
        site: c.level_timeline(initial.get(site, "normal"), changes.get(site, []), start, end)
        for site in registry.sites
    }


def gateway_offline(
    registry: Registry, stale_rows: list[TransitionRow], start: float, end: float
) -> dict[str, list[tuple[float, float]]]:
    """Offline intervals of each gateway: from its sensors turning stale because it went offline
    (rule gateway_offline) to the first of its sensors reporting again (leaving stale)."""
    events: dict[str, list[tuple[float, bool]]] = {}
    for r in stale_rows:
        sensor = registry.sensors.get(r.entity)
        if sensor is None:
            continue
        if r.new == "stale" and r.rule == "gateway_offline":
            events.setdefault(sensor.gateway, []).append((r.at, True))
        elif r.old == "stale":
            events.setdefault(sensor.gateway, []).append((r.at, False))
    out = {}
    for gateway in registry.gateways:
        before = [e for e in events.get(gateway, []) if e[0] < start]
        offline_at_start = bool(before) and max(before)[1]
        during = [e for e in events.get(gateway, []) if start <= e[0] < end]
        out[gateway] = c.offline_intervals(during, offline_at_start, start, end)
    return out


def _handling(
    alerts: list[AlertHistory], deadline_of: Callable[[AlertHistory], float], now: float
) -> Handling:
    h = Handling(total=len(alerts))
    for a in alerts:
        verdict = c.ack_verdict(a.alert.opened_at, a.acked_at, deadline_of(a), now)
        h.on_time += verdict == c.ON_TIME
        h.late += verdict == c.LATE
        h.not_acked += verdict == c.NOT_ACKED
        closed = a.closed_at is not None and a.closed_at <= now
        h.closed += closed
        h.open += not closed
    return h


def gather(
    registry: Registry,
    history: InfluxHistory,
    archive: AlertArchive,
    day: date,
    tz: str,
    deadline_of: Callable[[AlertHistory], float],
    now: float,
    sites: set[str] | None = None,
) -> Bulletin:
    """The bulletin of `day` (local to `tz`) for these sites (default: the whole registry), as known at
    `now`: for a day not yet over, times, rates and completeness cover midnight to `now`."""
    start, day_end = day_bounds(day, tz)
    end = max(start + 1.0, min(day_end, now))
    before_start, _ = day_bounds(day - timedelta(days=1), tz)
    scope = set(registry.sites) if sites is None else sites & set(registry.sites)
    site_rows = [
        r for r in history.transitions(before_start - COLOUR_LOOKBACK_S, end, kind="warning", entity_type="site")
        if r.entity in scope
    ]  # fmt: skip
    today = colours_of_day(registry, site_rows, start, end)
    yesterday = colours_of_day(registry, site_rows, before_start, start)
    peaks = {s: c.peak(today[s]) for s in scope}
    peaks_before = {s: c.peak(yesterday[s]) for s in scope}

    stale = history.transitions(
        start - GATEWAY_LOOKBACK_S, end, kind="alarm", entity_type="sensor", touching="stale"
    )
    offline = gateway_offline(registry, stale, start, end)
    credited = history.credited_per_site(start, end)
    alerts = [a for a in archive.alerts(start, end, scope) if start <= a.alert.opened_at < end]

    owed: dict[str, float] = {}  # from the registry: a site that sent nothing owes as much
    for s in registry.sensor_list:
        if s.site in scope:
            owed[s.site] = owed.get(s.site, 0.0) + c.expected_readings(end - start, s.stale_after_s)
    gateways_of: dict[str, list[str]] = {}
    for g in registry.gateways.values():
        gateways_of.setdefault(g.site, []).append(g.id)
    alerts_of: dict[str, list[AlertHistory]] = {}
    for a in alerts:
        alerts_of.setdefault(a.alert.site, []).append(a)
    causes_of: dict[str, list[str]] = {}
    for r in site_rows:
        if start <= r.at < end and c.RANK.get(r.new, 0) >= c.RANK["orange"]:
            text = _cause_text(r, registry)
            if text not in causes_of.setdefault(r.entity, []):
                causes_of[r.entity].append(text)

    days: list[EnterpriseDay] = []
    for site_id in sorted(scope):
        site = registry.sites[site_id]
        region = registry.regions.get(site.region)
        intervals = [offline[g] for g in gateways_of.get(site_id, [])]
        rates = [c.online_rate(i, start, end) for i in intervals]
        days.append(
            EnterpriseDay(
                site_id, site.name or site_id, (region.name if region and region.name else site.region),
                site.industry, GRADE.get(site.static_grade or "", ""), peaks[site_id],
                c.time_at_level(today[site_id]), causes_of.get(site_id, []),
                _handling(alerts_of.get(site_id, []), deadline_of, now),
                sum(rates) / len(rates) if rates else 1.0, c.completeness(credited.get(site_id, 0), owed.get(site_id, 0.0)),
                sum(hi - lo for i in intervals for lo, hi in i),
            )
        )  # fmt: skip
    region_of = {d.site: d.region for d in days}
    industry_of = {d.site: INDUSTRY_ZH.get(d.industry, d.industry) for d in days}
    totals = c.count_by(dict.fromkeys(scope, "all"), peaks).get("all", dict.fromkeys(c.COLOURS, 0))
    totals_before = c.count_by(dict.fromkeys(scope, "all"), peaks_before).get(
        "all", dict.fromkeys(c.COLOURS, 0)
    )
    flagged = [d for d in days if c.RANK[d.peak] >= c.RANK["orange"]]
    flagged.sort(
        key=lambda d: (-c.RANK[d.peak], -d.seconds.get("red", 0.0), -d.seconds.get("orange", 0.0), d.site)
    )
    closed = [a.closed_at is not None and a.closed_at <= now for a in alerts]
    return Bulletin(
        day, tz, start, end, now, c.count_by(region_of, peaks), c.count_by(industry_of, peaks), totals,
        totals_before, c.colour_change(totals, totals_before), flagged,
        sorted(days, key=lambda d: (d.online_rate, d.completeness, d.site)), len(alerts), sum(closed),
        c.closed_loop_rate(closed), len(days),
    )  # fmt: skip


def _by_colour(label: str, counts: dict[str, dict[str, int]]) -> str:
    """Enterprises per colour for each region or industry (`label`): a stacked bar chart and its table."""
    from alerting.reports import render as r  # matplotlib: loaded only when a report is drawn

    chart = r.stacked_bars(f"分{label}企业数（按当日最高预警色）", counts)
    rows = [[k, *(v[colour] for colour in r.SHOWN)] for k, v in counts.items()]
    return f'<img src="{chart}">' + r.table([label, "红", "橙", "黄", "蓝", "正常"], rows)


def _hm(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}小时{minutes % 60:02d}分" if minutes >= 60 else f"{minutes}分"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def render(b: Bulletin) -> str:
    """The bulletin as one self-contained HTML page (charts embedded)."""
    from alerting.reports import render as r

    zone = ZoneInfo(b.tz)
    made = datetime.fromtimestamp(b.generated_at, zone).strftime("%Y-%m-%d %H:%M")
    title = f"每日四色预警通报 {b.day.isoformat()}"
    meta = f"{b.enterprises} 家企业 · 时区 {b.tz} · 生成于 {made} · 颜色为当日达到的最高预警色"
    if b.end < day_bounds(b.day, b.tz)[1]:
        meta += f" · 统计截至 {datetime.fromtimestamp(b.end, zone).strftime('%H:%M')}"
    sign = {k: f"{v:+d}" for k, v in b.change.items()}
    kpis = "".join(
        f'<div class="kpi"><b>{b.totals.get(col, 0)}</b>{r.COLOUR_ZH[col]}色 ({sign[col]} 较前日)</div>'
        for col in ("red", "orange", "yellow", "blue")
    ) + (
        f'<div class="kpi"><b>{_pct(b.closed_loop_rate)}</b>闭环率 ({b.closed}/{b.alerts} 条告警已处置关闭)</div>'
    )
    summary = (
        "<h2>一、总体情况</h2>"
        + kpis
        + r.table(
            ["", "红", "橙", "黄", "蓝", "正常"],
            [
                ["当日", *(b.totals.get(k, 0) for k in r.SHOWN)],
                ["前日", *(b.totals_before.get(k, 0) for k in r.SHOWN)],
                ["变化", *(sign[k] for k in r.SHOWN)],
            ],
        )
    )
    charts = (
        "<h2>二、分地区、分行业企业预警情况</h2>"
        + _by_colour("地区", b.by_region)
        + _by_colour("行业", b.by_industry)
    )
    flagged_rows = [
        [
            d.name, d.region, INDUSTRY_ZH.get(d.industry, d.industry), d.static_grade or "—",
            r.COLOUR_ZH[d.peak], _hm(d.seconds.get("red", 0.0)), _hm(d.seconds.get("orange", 0.0)),
            _hm(d.seconds.get("yellow", 0.0)), "；".join(d.causes) or "—",
            f"{d.handling.total} 条：按时签收 {d.handling.on_time}，超时 {d.handling.late}，未签收 "
            f"{d.handling.not_acked}；已处置关闭 {d.handling.closed}，未关闭 {d.handling.open}",
        ]
        for d in b.flagged
    ]  # fmt: skip
    flagged = "<h2>三、达到橙色及以上预警的企业</h2>" + (
        r.table(["企业", "地区", "行业", "静态等级", "最高", "红色时长", "橙色时长", "黄色时长", "原因", "告警处置"],
                flagged_rows, [d.peak for d in b.flagged], nowrap=range(2, 8), wide=True)
        if flagged_rows else "<p>当日无企业达到橙色及以上预警。</p>"
    )  # fmt: skip
    quality = "<h2>四、企业在线率与数据完整率（由差到好）</h2>" + r.table(
        ["企业", "地区", "在线率", "离线时长", "完整率"],
        [
            [d.name, d.region, _pct(d.online_rate), _hm(d.offline_s), _pct(d.completeness)]
            for d in b.data_quality
        ],
    )
    return r.page(title, meta, [summary, charts, flagged, quality])


def write(b: Bulletin, out_dir: Path) -> tuple[Path, Path]:
    from alerting.reports import render as r

    return r.write(render(b), out_dir, f"bulletin-{b.day.isoformat()}")
