"""Message text: Chinese by default, English on request, digests worst first, links to acknowledge."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from alerting.config import RoutingConfig
from alerting.lifecycle.manager import AlertManager
from alerting.messages import DIGEST_LINES, render
from alerting.routing.cli import manual_warning
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from tests.unit.alerting.conftest import FakeClock, warning

ACK = "https://duty.example.cn/alerts/{alert_id}"


def alert(config: RoutingConfig, db: Path, **kw: object):  # type: ignore[no-untyped-def]
    m = AlertManager(Store(db), config, SiteDirectory(config.sites), FakeClock())
    m.handle(warning(at=1_795_000_000.0, **kw))  # type: ignore[arg-type]
    return m.store.list_alerts()[0]


def test_chinese_message_has_site_unit_colour_cause_values_time_and_link(config, db_path) -> None:
    a = alert(config, db_path, entity="U1", entity_type="unit", unit="U1")
    msg = render([(a, "opened")], SiteDirectory(config.sites), "zh", ACK)
    assert msg.title == "【红色预警】一号化工厂 U1"
    for part in ("一号化工厂（S1）", "**单元**：U1", "红色（新预警）", "两个可燃气体探测器二级报警",
                 "GT-101 flammable_gas 55%LEL（设定值 50%LEL）", "2026-11-18 19:06:40",
                 f"[确认处置](https://duty.example.cn/alerts/{a.id})"):  # fmt: skip
        assert part in msg.markdown, part
    assert msg.colour == "red" and msg.link.endswith(a.id) and "确认处置：https://" in msg.text


def test_english_option(config, db_path) -> None:
    a = alert(config, db_path)
    msg = render([(a, "escalated")], SiteDirectory(config.sites), "en", ACK)
    assert msg.title == "[RED warning] 一号化工厂"
    assert "not acknowledged in time, escalated" in msg.markdown and "(set point 50%LEL)" in msg.markdown
    assert "CST" in msg.markdown and "[Acknowledge](" in msg.markdown


def test_unknown_site_falls_back_to_its_id_and_digest_lists_worst_first(config, db_path) -> None:
    a = alert(config, db_path, entity="X9", site="X9", region="R9")
    b = replace(a, id="al-2", colour="orange", site="S2")
    msg = render([(b, "opened"), (a, "raised")], SiteDirectory(config.sites), "zh", ACK)
    assert msg.title == "【预警汇总】2 条（最高 红色）"
    lines = msg.markdown.splitlines()
    assert lines[1].startswith("- 红色 X9") and lines[2].startswith("- 橙色 二号窑炉厂")


def test_manual_test_warning_is_a_valid_transition() -> None:
    t = manual_warning("S1", "red", "R1", "", 1.0)
    assert (t.entity_type, t.entity, t.new, t.cause.rule) == ("site", "S1", "red", "manual_test")
    assert manual_warning("S1", "normal", "", "U1", 2.0).entity_type == "unit"


def test_region_roll_up_names_the_region(config, db_path) -> None:
    a = alert(config, db_path, entity="R1", entity_type="region", site="", region="R1")
    assert render([(a, "opened")], SiteDirectory(config.sites), "zh", ACK).title == "【红色预警】区域 R1"
    assert render([(a, "opened")], SiteDirectory(config.sites), "en", ACK).title == "[RED warning] region R1"


def test_a_large_digest_lists_the_worst_and_counts_the_rest(config, db_path) -> None:
    a = alert(config, db_path)
    items = [(replace(a, id=f"al-{n}", colour="red" if n < 5 else "orange"), "opened") for n in range(50)]
    msg = render(items, SiteDirectory(config.sites), "zh", ACK)
    lines = msg.markdown.splitlines()
    assert msg.title == "【预警汇总】50 条（最高 红色）" and len(lines) == 1 + DIGEST_LINES + 1
    assert lines[-1] == "……另有 30 条（橙色 30），请到值班台查看"
    assert len(msg.markdown.encode()) < 8000
