"""Monitoring of riskwatch itself: the Prometheus config and alert rules pass `promtool check` and the
rules' own unit tests (`promtool test rules`), and every metric the rules and the Grafana dashboard
use is one the components really expose."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "riskwatch.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus; ./dev does)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_config_and_rules_pass_promtool_check() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    out = _promtool("check", "rules", "rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_alert_rules_fire_on_their_failure_and_not_on_a_healthy_series() -> None:
    out = _promtool("test", "rules", "rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "rules.test.yml").read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t.get("exp_alerts")}
    assert alerts == tested
    assert {
        "RiskwatchBridgeStalled", "RiskwatchConsumerLagGrowing", "RiskwatchWorkerNotReady",
        "RiskwatchDeadLettersRising", "RiskwatchNotificationsFailing", "RiskwatchGatewayFleetOffline",
    } <= alerts  # fmt: skip


def _exposed() -> set[str]:
    """Every sample name the components' metric registries can expose."""
    from alerting.metrics import AlertingMetrics
    from ingest.metrics import BridgeMetrics
    from processors.history.metrics import HistorianMetrics
    from processors.metrics import WorkerMetrics

    names = {"up"}  # Prometheus' own, per scrape target
    for build in (BridgeMetrics, WorkerMetrics, HistorianMetrics, AlertingMetrics):
        registry = CollectorRegistry()
        build(registry)
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(
                family.type, [""]
            )
            names |= {family.name + s for s in suffixes}
    return names


def test_rules_and_dashboard_use_only_metrics_the_code_exposes() -> None:
    exposed = _exposed()
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    exprs += [t["expr"] for p in panels for t in p.get("targets", []) if "expr" in t]
    used = {name for e in exprs for name in re.findall(r"\briskwatch_[a-z0-9_]+", e)}
    assert len(used) >= 15
    assert used <= exposed, sorted(used - exposed)
    # The history panels read the measurements the historian writes.
    from processors.history.lines import AGGREGATE_MEASUREMENT, TRANSITION_MEASUREMENT

    queries = " ".join(t["query"] for p in panels for t in p.get("targets", []) if "query" in t)
    measurements = set(re.findall(r'FROM "(\w+)"', queries))
    assert measurements == {AGGREGATE_MEASUREMENT, TRANSITION_MEASUREMENT}


def test_dashboard_panels_use_the_provisioned_data_sources() -> None:
    sources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "riskwatch.yml").read_text()
    )
    uids = {d["uid"] for d in sources["datasources"]}
    dashboard = json.loads(DASHBOARD.read_text())
    used = {p["datasource"]["uid"] for p in dashboard["panels"]} | {
        v["datasource"]["uid"] for v in dashboard["templating"]["list"]
    }
    assert used == uids == {"riskwatch-prometheus", "riskwatch-influxdb"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # secrets come from the container's environment, never from the file
    assert sources["datasources"][1]["secureJsonData"]["password"].startswith("${")


def test_compose_provisions_prometheus_and_grafana_from_these_files() -> None:
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    mounts = [m.split(":")[0] for name in ("prometheus", "grafana") for m in services[name]["volumes"]]
    for mount in mounts:
        if mount.startswith("./"):
            assert (DEPLOY / mount).exists(), mount
    assert "./prometheus/rules.yml" in mounts and "./grafana/dashboards" in mounts
    assert services["prometheus"]["image"].endswith(_promtool_version())
    assert "RISKWATCH_GRAFANA_PASSWORD" in services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]


def _promtool_version() -> str:
    if PROMTOOL is None:
        return ""
    out = subprocess.run([PROMTOOL, "--version"], capture_output=True, text=True, timeout=30)
    version = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return version.group(1) if version else ""
