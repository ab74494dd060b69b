"""Route tree, rosters and the `riskwatch routes test` output: table-driven with inline YAML."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerting.config import RoutingConfig
from alerting.rosters import on_call
from alerting.routing.cli import explain
from alerting.routing.recipients import recipients
from alerting.routing.sites import SiteDirectory, registry_lookup
from alerting.routing.tree import Facts, build_tree, match_routes
from riskwatch.cli import main
from riskwatch.levels import Colour

SH = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "routes.yaml"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SH).timestamp()


@pytest.mark.parametrize(
    ("facts", "receivers"),
    [
        (Facts(Colour.RED, "S1", "R1", "hazchem"), ["officer", "leader"]),  # continue: true
        (Facts(Colour.ORANGE, "S1", "R1", "hazchem"), ["officer", "leader"]),
        (Facts(Colour.YELLOW, "S1", "R1", "hazchem"), ["leader"]),  # chem needs orange
        (Facts(Colour.YELLOW, "S2", "R1", "kiln"), ["leader"]),
        (Facts(Colour.RED, "S3", "R2", "tailings"), ["default"]),  # falls back to the root
        (Facts(Colour.BLUE, "S3", "R2", "tailings"), []),  # below the root's min colour: no alert
    ],
)
def test_route_matching(config: RoutingConfig, facts: Facts, receivers: list[str]) -> None:
    assert [r.receiver for r in match_routes(build_tree(config.route), facts)] == receivers


def test_children_inherit_timing_and_escalation(config: RoutingConfig) -> None:
    tree = build_tree(config.route)
    chem = tree.children[0]
    assert (chem.group_wait, chem.escalation, chem.group_by) == (0.0, "esc", ("site",))
    assert tree.children[1].escalation is None


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-11-23T09:00", ("zhang",)),  # Monday day shift
        ("2026-11-23T21:00", ("li",)),  # Monday night shift
        ("2026-11-24T03:00", ("li",)),  # Tuesday early morning: Monday's overnight shift
        ("2026-11-23T03:00", ()),  # Monday 03:00 belongs to Sunday night, which has no overnight shift
        ("2026-11-28T12:00", ("li",)),  # Saturday, whole day
        ("2026-11-28T20:00", ("li",)),
    ],
)
def test_on_call_by_weekday_and_time_in_shanghai(
    config: RoutingConfig, moment: str, expected: tuple[str, ...]
) -> None:
    assert on_call(config.rosters["duty"], at(moment)) == expected


def test_roster_uses_shanghai_time_not_utc(config: RoutingConfig) -> None:
    # 01:00 UTC on a Monday is 09:00 in Shanghai: the day shift.
    utc = datetime(2026, 11, 23, 1, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert on_call(config.rosters["duty"], utc) == ("zhang",)


def test_recipients_combine_roster_and_people(config: RoutingConfig) -> None:
    who = recipients(config, "officer", at("2026-11-23T09:00"))
    assert who.mobiles == ("13800000001",) and who.channels == ("ding",)


def test_routes_test_cli_shows_who_would_be_notified(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["routes", "test", "--routes", str(EXAMPLE), "--site", "DY-SH01", "--level", "red",
                 "--at", "2026-11-23T22:00+08:00"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "dy-duty-officer" in out and "李娜" in out and "dy-dingtalk" in out
    assert "regulator" in out and "shift-leader" in out


def test_routes_test_explains_no_match() -> None:
    lines = explain(str(EXAMPLE), "DY-SH01", "blue", "", "", at("2026-11-23T10:00"))
    assert lines[-1] == "no route matches: no alert would be opened"


def test_routes_cli_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("receivers: {a: {channels: [x]}}\nroute: {receiver: a}\n", encoding="utf-8")
    assert main(["routes", "check", "--routes", str(bad)]) == 1
    assert "receivers.a.channels: unknown channel 'x'" in capsys.readouterr().err


REGISTRY = EXAMPLE.parent / "registry.yaml"


def test_site_registry_supplies_region_industry_and_names_when_given() -> None:
    # Not in the routes file's `sites:` labels: only the registry knows this tailings pond.
    lines = explain(
        str(EXAMPLE), "CD-WK01", "red", "", "", at("2026-11-23T10:00"), registry_lookup(str(REGISTRY))[0]
    )
    assert (
        "承德某铁矿尾矿库" in lines[0]
        and "region=CN-130800" in lines[0]
        and "industry=tailings_pond" in lines[0]
    )
    without = explain(str(EXAMPLE), "CD-WK01", "red", "", "", at("2026-11-23T10:00"))
    assert "site=CD-WK01 (CD-WK01) region=- industry=-" in without[0]


def test_registry_routes_by_industry_and_names_units(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["routes", "test", "--routes", str(EXAMPLE), "--site", "DY-LPG02", "--level", "orange",
                 "--registry", str(REGISTRY), "--at", "2026-11-23T10:00+08:00"])  # fmt: skip
    assert code == 0 and "dongying-hazchem" in capsys.readouterr().out
    sites, units = registry_lookup(str(REGISTRY))
    assert SiteDirectory({}, sites, units).unit_name("DYSH-T1") == "原油罐区"
    assert SiteDirectory({}, sites, units).unit_name("NOPE") == "NOPE"
