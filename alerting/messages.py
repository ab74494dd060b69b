"""Notification text: Chinese by default, English on request. Site, unit, colour, cause, values against set
points, time and an acknowledge link; a digest lists many alerts in one message during floods."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from alerting.lifecycle.model import Alert
from alerting.routing.sites import SiteDirectory
from riskwatch.levels import Colour

TZ = ZoneInfo("Asia/Shanghai")
# A digest lists this many alerts in full, worst first, and counts the rest by colour: it keeps a flood
# digest inside robot message limits (WeCom markdown <= 4096 bytes, docs/domain.md) while every alert is counted.
DIGEST_LINES = 20

_REASON = {
    "zh": {"opened": "新预警", "raised": "级别升高", "reactivated": "再次报警", "cleared": "已恢复正常", "raised_and_cleared": "发生后已恢复正常",
           "escalated": "超时未签收，升级通知", "renotify": "已签收未闭环，提醒处置"},
    "en": {"opened": "new", "raised": "raised", "reactivated": "active again", "cleared": "back to normal", "raised_and_cleared": "occurred, back to normal since",
           "escalated": "not acknowledged in time, escalated", "renotify": "acknowledged but not closed"},
}  # fmt: skip
_COLOUR_EN = {c.label: c.label.upper() for c in Colour}
_COLOUR_ZH = {c.label: c.label_zh for c in Colour}


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    markdown: str
    text: str
    colour: str
    link: str


def _time(epoch: float, clock_only: bool = False) -> str:
    """Shanghai time; never raises: a time no calendar can show (a gateway's clock far off) is given as
    its raw epoch value, marked invalid, so the warning itself still goes out."""
    try:
        moment = datetime.fromtimestamp(float(epoch), TZ)
    except (TypeError, ValueError, OverflowError, OSError):
        return f"{epoch!r} (invalid time)"
    return moment.strftime("%H:%M:%S" if clock_only else "%Y-%m-%d %H:%M:%S")


def _num(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _colour_name(label: str, language: str) -> str:
    return (_COLOUR_ZH if language == "zh" else _COLOUR_EN).get(label, label)


def _values(alert: Alert, language: str) -> list[str]:
    """One line per sensor in the cause: value against its set point, since when."""
    lines = []
    for item in alert.cause.get("items", ()):
        value = "-" if item.get("value") is None else _num(item["value"])
        unit = item.get("unit", "")
        setpoint = "" if item.get("setpoint") is None else _num(item["setpoint"])
        since = f" {_time(item['since'], clock_only=True)}" if item.get("since") else ""
        if language == "zh":
            sp = f"（设定值 {setpoint}{unit}）" if setpoint else ""
            lines.append(
                f"{item['sensor']} {item.get('quantity', '')} {value}{unit}{sp} {item['state']}{since}起"
            )
        else:
            sp = f" (set point {setpoint}{unit})" if setpoint else ""
            lines.append(
                f"{item['sensor']} {item.get('quantity', '')} {value}{unit}{sp} {item['state']} since{since}"
            )
    return lines


def _cause(alert: Alert) -> str:
    text, rule = alert.cause.get("text", ""), alert.cause.get("rule", "")
    return f"{text}（{rule}）" if text and rule else text or rule or "-"


def _entity(alert: Alert, language: str) -> str:
    """Region roll-ups have no site: name the region instead."""
    if alert.entity_type == "region":
        return f"区域 {alert.entity}" if language == "zh" else f"region {alert.entity}"
    return f"{alert.entity_type} {alert.entity}"


def ack_link(template: str, alert: Alert) -> str:
    """The routes file's `ack_url` with the alert filled in (checked when the file is loaded)."""
    try:
        return template.format(alert_id=alert.id, site=alert.site)
    except (KeyError, IndexError, ValueError, AttributeError):
        return template


def _single(alert: Alert, reason: str, sites: SiteDirectory, language: str, link: str) -> Rendered:
    site = sites.facts(alert.site, alert.region)
    colour = _colour_name(alert.colour, language)
    what = _REASON[language].get(reason, reason)
    unit_name = sites.unit_name(alert.unit)
    where = " ".join(x for x in (site.name, unit_name) if x) or _entity(alert, language)
    unit = "-" if not alert.unit else unit_name if unit_name == alert.unit else f"{unit_name}（{alert.unit}）"
    values = _values(alert, language)
    if language == "zh":
        title = f"【{colour}预警】{where}" if alert.colour != "normal" else f"【已恢复】{where}"
        rows = [("企业", f"{site.name}（{alert.site}）"), ("单元", unit),
                ("对象", f"{alert.entity_type} {alert.entity}"), ("级别", f"{colour}（{what}）"),
                ("原因", _cause(alert)), ("时间", _time(alert.event_at or alert.updated_at)),
                ("状态", alert.state.value)]  # fmt: skip
        label_values, ack = "测点", "确认处置"
    else:
        title = f"[{colour} warning] {where}" if alert.colour != "normal" else f"[cleared] {where}"
        rows = [("Site", f"{site.name} ({alert.site})"), ("Unit", unit.replace("（", " (").replace("）", ")")),
                ("Entity", f"{alert.entity_type} {alert.entity}"), ("Level", f"{colour} ({what})"),
                ("Cause", _cause(alert)), ("Time", _time(alert.event_at or alert.updated_at) + " CST"),
                ("State", alert.state.value)]  # fmt: skip
        label_values, ack = "Readings", "Acknowledge"
    md = [f"### {title}"] + [f"- **{k}**：{v}" if language == "zh" else f"- **{k}**: {v}" for k, v in rows]
    md += [f"- **{label_values}**：{v}" if language == "zh" else f"- **{label_values}**: {v}" for v in values]
    md.append(f"\n[{ack}]({link})")
    sep = "：" if language == "zh" else ": "
    text = "\n".join([title] + [f"{k}{sep}{v}" for k, v in rows] + values + [f"{ack}{sep}{link}"])
    return Rendered(title, "\n".join(md), text, alert.colour, link)


def render(items: Sequence[tuple[Alert, str]], sites: SiteDirectory, language: str, ack_url: str) -> Rendered:
    """One alert -> a full message; several -> a digest, worst first, one line each with its link."""
    if len(items) == 1:
        alert, reason = items[0]
        return _single(alert, reason, sites, language, ack_link(ack_url, alert))
    ordered = sorted(items, key=lambda ar: (-Colour.parse(ar[0].colour), ar[0].opened_at))
    worst = ordered[0][0].colour
    worst_name = _colour_name(worst, language)
    if language == "zh":
        title = f"【预警汇总】{len(items)} 条（最高 {worst_name}）"
    else:
        title = f"[warning digest] {len(items)} alerts (worst {worst_name})"
    md, text = [f"### {title}"], [title]
    for alert, reason in ordered[:DIGEST_LINES]:
        site = sites.facts(alert.site, alert.region)
        link = ack_link(ack_url, alert)
        line = (
            f"{_colour_name(alert.colour, language)} {site.name} {sites.unit_name(alert.unit) or alert.entity} "
            f"{_REASON[language].get(reason, reason)} {_time(alert.event_at or alert.updated_at, clock_only=True)} "
            f"{_cause(alert)}"
        )
        md.append(f"- {line} [{'确认' if language == 'zh' else 'ack'}]({link})")
        text.append(f"{line} {link}")
    if rest := ordered[DIGEST_LINES:]:
        counts = Counter(a.colour for a, _ in rest)
        by_colour = "，".join(f"{_colour_name(c, language)} {n}" for c, n in counts.most_common())
        more = f"……另有 {len(rest)} 条（{by_colour}），请到值班台查看" if language == "zh" else (
            f"... and {len(rest)} more ({by_colour.replace('，', ', ')}), see the duty board")  # fmt: skip
        md.append(more)
        text.append(more)
    return Rendered(title, "\n".join(md), "\n".join(text), worst, ack_link(ack_url, ordered[0][0]))
