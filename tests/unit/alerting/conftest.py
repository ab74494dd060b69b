"""Factories for alerting unit tests: inline routing YAML, a driven clock, transitions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.config import RoutingConfig, parse_config
from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id

BASE_YAML = """
people:
  zhang: {name: 张伟, mobile: "13800000001", email: zhang@example.cn}
  li: {name: 李娜, mobile: "13800000002", email: li@example.cn}
  wang: {name: 王强, mobile: "13800000003", email: wang@example.cn}
  chen: {name: 陈静, mobile: "13800000004"}
rosters:
  duty:
    shifts:
      - {people: [zhang], days: [mon, tue, wed, thu, fri], start: "08:00", end: "20:00"}
      - {people: [li], days: [mon, tue, wed, thu, fri], start: "20:00", end: "08:00"}
      - {people: [li], days: [sat, sun]}
channels:
  ding: {type: dingtalk, url: "http://127.0.0.1:9/robot/send?access_token=t"}
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
receivers:
  officer: {roster: duty, channels: [ding]}
  leader: {people: [wang], channels: [hook]}
  director: {people: [chen], channels: [hook]}
  default: {people: [zhang], channels: [hook]}
escalation_policies:
  esc:
    tiers: [{receiver: leader, after: 10s}, {receiver: director, after: 20s}]
    loops: 1
    ack_timeout: 60s
sites:
  S1: {name: 一号化工厂, region: R1, industry: hazchem}
  S2: {name: 二号窑炉厂, region: R1, industry: kiln}
  S3: {name: 三号尾矿库, region: R2, industry: tailings}
route:
  receiver: default
  min_colour: yellow
  group_wait: 0s
  group_interval: 0s
  routes:
    - name: chem
      match: {region: R1, industry: hazchem}
      min_colour: orange
      receiver: officer
      escalation: esc
      continue: true
    - name: r1
      match: {region: R1}
      receiver: leader
"""


def make_config(overrides: str = "", base: str = BASE_YAML) -> RoutingConfig:
    doc: dict[str, Any] = yaml.safe_load(base)
    for key, value in (yaml.safe_load(overrides) or {}).items():
        doc[key] = value
    return parse_config(doc, "test.yaml")


@pytest.fixture
def config() -> RoutingConfig:
    return make_config()


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def warning(
    entity: str = "S1", new: str = "red", old: str = "normal", at: float = 1_795_000_000.0,
    entity_type: str = "site", site: str = "S1", region: str = "R1", unit: str = "",
) -> Transition:  # fmt: skip
    item = CauseItem("GT-101", "flammable_gas", "l2_high", 55.0, 50.0, "%LEL", at - 30)
    return Transition(
        id=transition_id("warning", entity_type, entity, new, at),  # type: ignore[arg-type]
        kind="warning", entity_type=entity_type, entity=entity, old=old, new=new, at=at,  # type: ignore[arg-type]
        cause=Cause("gas_l2_two_detectors", (item,), "两个可燃气体探测器二级报警"),
        site=site, region=region, unit=unit,
    )  # fmt: skip


@pytest.fixture
def make_warning() -> Callable[..., Transition]:
    return warning


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "alerts.db"
