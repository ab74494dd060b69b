"""The bulletin and the alarm-quality report from a compressed day through the real pipeline.

Simulated plants publish over MQTT to the bridge, the worker and alerting (real Kafka, Mosquitto and
InfluxDB, history in a database of this test's own). Known incidents: a flammable leak makes CHEM-01 red
for about a minute; COAL-01's heading-face gateway is cut off for 30 s; a duty officer signs for the
unit's alerts at once and for the site's alert after its policy's 20 s, then closes it. The pipeline runs
in real time, so the "day" is the few minutes of the test, placed inside one local day by choosing a
time zone in which it is about noon. Every figure is then compared with what was injected and with what
the pipeline itself reported on its topics, the webhook and the API.

With RISKWATCH_REPORT_SCREENSHOTS=docs/reports, the first page of each PDF is saved there as a PNG
(docs/reports.md shows them).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from alerting.history.alerts import AlertArchive
from alerting.history.influx import InfluxConnection, InfluxHistory
from alerting.history.sources import deadline_lookup
from alerting.reports import daily, quality
from deploy.stack import add_gateways, ensure_topics
from riskwatch.registry import load_registry
from riskwatch.tls import ClientTLS
from riskwatch.topics import Topics
from simulators.cli import DEFAULT_REGISTRY
from simulators.kafka_watch import TopicReader, TransitionReader
from simulators.pipeline import Pipeline
from simulators.scenarios.model import load_scenario
from simulators.scenarios.runner import ScenarioRunner, scope_of
from simulators.simulated_gateway import Broker, announce_online
from simulators.simulation import Simulation
from simulators.webhook import WebhookReceiver
from tests.integration.processors.harness import produce
from tests.integration.reports import dashboard

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKEN = "reports-token-0123456789"
HOOK = "reports-hook-secret"
ACK_DEADLINE_S = 20.0
SCENARIO = {
    "name": "reports-day",
    "description": "a leak at CHEM-01 and COAL-01's heading-face gateway cut off",
    "registry": str(DEFAULT_REGISTRY),
    "duration_s": 125,
    "injections": [
        {"at": 10, "site": "CHEM-01", "incident": "leak", "unit": "CHEM-01-TF1", "params": {"severity": 1.0}},
        {"at": 15, "fault": "disconnect", "target": "GW-COAL-01B"},
        {"at": 45, "fault_stop": "disconnect", "target": "GW-COAL-01B"},
        {"at": 70, "site": "CHEM-01", "incident": "leak_stop", "unit": "CHEM-01-TF1"},
    ],
    "expect": [{"entity": "CHEM-01", "colour": "red", "after": 10, "by": 65}],
}


def _noon_zone() -> str:
    """A fixed-offset zone in which it is now about noon: the test stays inside one local day."""
    offset = round(12 - datetime.now(ZoneInfo("UTC")).hour)
    offset = max(-12, min(14, offset))
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT-8 is UTC+8


def _influx_admin(stack, query: str) -> None:
    user, _, password = stack.influx_token.partition(":")
    body = urllib.parse.urlencode({"q": query}).encode()
    request = urllib.request.Request(f"{stack.influx_url}/query", data=body)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _host_port(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _influxql(stack, database: str, query: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """The series InfluxDB answers to `query` in `database` (an error in the query fails the test)."""
    user, _, password = stack.influx_token.partition(":")
    url = f"{stack.influx_url}/query?" + urllib.parse.urlencode({"db": database, "q": query, "epoch": "s"})
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as response:
        result = json.load(response)["results"][0]
    assert "error" not in result, (query, result)
    return list(result.get("series") or [])


def _api(url: str, path: str, body: dict | None = None, context: ssl.SSLContext | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return json.loads(response.read())


def _everything(stack, topic: str) -> list:  # type: ignore[no-untyped-def]
    """Every transition on a topic from its beginning (the pipeline put them there, start-up included)."""
    reader = TransitionReader(TopicReader(stack.kafka("tools"), topic, from_beginning=True))
    out, quiet = [], 0
    try:
        while quiet < 5:
            got = reader.poll(1.0)
            out += got
            quiet = 0 if got else quiet + 1
    finally:
        reader.reader.close()
    return list({t.id: t for t in out}.values())


def report_run(
    stack, tmp_path: Path, letter: str, ack_deadline_s: float
) -> tuple[Topics, str, WebhookReceiver, Path]:  # type: ignore[no-untyped-def]
    """A run of its own: topics, an InfluxDB database named after them, a started webhook receiver and
    the duty desk's routes file on it."""
    topics = Topics(f"{letter}{uuid.uuid4().hex[:10]}")
    ensure_topics(stack, topics, 3)
    database = f"rw_{topics.prefix}"
    _influx_admin(stack, f'CREATE DATABASE "{database}"')
    receiver = WebhookReceiver(secret=HOOK).start()
    return topics, database, receiver, duty_routes(tmp_path / "routes.yaml", receiver.url, ack_deadline_s)


def duty_routes(path: Path, webhook_url: str, ack_deadline_s: float) -> Path:
    """One duty desk on a webhook (secret in $RW_R_HOOK) for yellow and above, whose escalation policy
    calls the next person `ack_deadline_s` after an alert opens; a supervisor token in $RW_R_TOKEN."""
    path.write_text(yaml.safe_dump({
        "people": {"duty": {"name": "值班员", "mobile": "13800000000"}},
        "channels": {"hook": {"type": "webhook", "url": webhook_url, "secret_env": "RW_R_HOOK"}},
        "receivers": {"duty": {"people": ["duty"], "channels": ["hook"]}},
        "escalation_policies": {"p": {"tiers": [{"receiver": "duty", "after": f"{ack_deadline_s:g}s"}]}},
        "route": {"receiver": "duty", "min_colour": "yellow", "escalation": "p", "group_wait": "0s",
                  "group_interval": "0s"},
        "api_tokens": [{"user": "centre", "role": "supervisor", "token_env": "RW_R_TOKEN"}],
    }, allow_unicode=True), encoding="utf-8")  # fmt: skip
    return path


def test_bulletin_and_quality_report_equal_what_was_injected(stack, tmp_path: Path) -> None:
    tz = _noon_zone()
    topics, database, receiver, routes = report_run(stack, tmp_path, "r", ACK_DEADLINE_S)
    registry = load_registry(DEFAULT_REGISTRY)
    passwords = add_gateways(stack, [(g.site, g.id) for g in registry.gateways.values()])
    announce_online(
        {g.id: g.site for g in registry.gateways.values()},
        Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls),
    )
    (tmp_path / "run").mkdir(exist_ok=True)
    pipe = Pipeline(tmp_path / "run", DEFAULT_REGISTRY, stack, topics.prefix)
    scenario_file = tmp_path / "day.yaml"
    scenario_file.write_text(yaml.safe_dump(SCENARIO), encoding="utf-8")
    influx = InfluxHistory(InfluxConnection(stack.influx_url, stack.influx_token, f"{database}/autogen"))
    acked_at_once: dict[str, float] = {}
    prometheus = None
    try:
        pipe.start_bridge()
        pipe.start_worker(ready_site="CHEM-01")
        pipe.start_historian(extra=["--influx-bucket", f"{database}/autogen"])
        alerting_metrics = dashboard.free_port()
        alerting = pipe.start_alerting(
            routes, ["--metrics-port", str(alerting_metrics)], env={"RW_R_HOOK": HOOK, "RW_R_TOKEN": TOKEN}
        )
        pipe.wait_ready(120)
        prometheus = dashboard.Prometheus(tmp_path / "prometheus", {
            "riskwatch-bridge": _host_port(pipe.services["bridge"].ready_url),
            "riskwatch-worker": _host_port(pipe.services["worker"].metrics_url),
            "riskwatch-historian": _host_port(pipe.services["historian"].ready_url),
            "riskwatch-alerting": f"127.0.0.1:{alerting_metrics}",
        })  # fmt: skip
        # one record the worker cannot decode: the dashboard's dead-letter panel must have it to show
        produce(stack.kafka("tools"), topics.telemetry, [(b"CHEM-01", b"not a batch")])
        url = alerting.ready_url.rstrip("/")  # https: alerting serves the stack's certificate
        api = functools.partial(_api, context=ClientTLS(stack.cafile).context())

        scenario = load_scenario(scenario_file)
        sim = Simulation.from_registry(registry, seed=scenario.seed, speed=scenario.speed)
        scope = scope_of(sim, {s.id: s.region for s in registry.sites.values()})
        warnings = TransitionReader(TopicReader(stack.kafka("tools"), topics.warnings))
        done = threading.Event()

        closed: list[str] = []

        def duty_officer() -> None:
            """Signs for unit alerts as soon as they appear (on time) and for the site's alert only
            after its deadline (late), then closes that one once the site is back to normal."""
            while not done.is_set():
                for a in api(url, "/api/alerts?site=CHEM-01")["alerts"]:
                    if a["closed"]:
                        continue
                    if a["entity_type"] != "site" and not a["acked"]:
                        api(url, f"/api/alerts/{a['id']}/ack", {"note": "收到"})
                        acked_at_once[a["id"]] = time.time()
                    elif a["entity_type"] == "site" and not a["acked"]:
                        if time.time() - a["opened_at"] > ACK_DEADLINE_S + 5:
                            api(url, f"/api/alerts/{a['id']}/ack", {"note": "迟到签收"})
                    elif a["entity_type"] == "site" and not a["active"]:
                        api(url, f"/api/alerts/{a['id']}/close", {"note": "已关闭阀门，泄漏处置完毕"})
                        closed.append(a["id"])
                done.wait(1.0)

        officer = threading.Thread(target=duty_officer, daemon=True)
        officer.start()
        try:
            broker = Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls)
            record = ScenarioRunner(scenario, sim, broker, warnings, scope, log=print).run()
        finally:
            done.set()
            officer.join(10)
            warnings.reader.close()
        # "now" for the bulletin: the last tick the plants published (then they fall silent and their
        # gateways disconnect, which is the end of this compressed day, not an outage)
        as_of = record.started + scenario.duration_s
        assert len(closed) == 1, "the site's alert was acknowledged late and closed during the run"
        all_alerts = api(url, "/api/alerts?limit=1000")["alerts"]
        time.sleep(40)  # the last minute's aggregates close (30 s grace) and reach InfluxDB
        # every PromQL expression of the Grafana dashboard, through Prometheus scraping the components
        assert set(prometheus.targets_up().values()) == {"up"}, prometheus.targets_up()
        answers = {
            expr: prometheus.api(
                "query_range", query=expr, start=str(prometheus.started), end=str(time.time()), step="2"
            )
            for _, expr in dashboard.queries("prometheus")
        }  # over the whole run, as the dashboard's time range shows it (a red site was red for a minute)
    finally:
        pipe.stop()
        receiver.stop()
        if prometheus is not None:
            prometheus.stop()
    assert len(answers) >= 15
    assert all(answer["status"] == "success" for answer in answers.values()), answers
    empty = {
        expr: dashboard.metric_names(expr) for expr, answer in answers.items() if not answer["data"]["result"]
    }
    assert not empty, f"dashboard expressions without series (and the metrics they read): {empty}"

    assert not pipe.dead()
    warned, alarms = _everything(stack, topics.warnings), _everything(stack, topics.alarms)
    now = as_of
    day = datetime.now(ZoneInfo(tz)).date()
    archive = AlertArchive(tmp_path / "run" / "alerting.db")
    bulletin = daily.gather(registry, influx, archive, day, tz, deadline_lookup(routes, 900.0), now)

    # enterprises per colour: CHEM-01 red (the leak), COAL-01 blue (its face's gateway offline), the rest quiet
    seen_sites = [
        t for t in warned if t.entity_type == "site" and t.at < as_of
    ]  # after it the plants fall silent
    assert {t.id for t in seen_sites} >= {
        s.transition.id for s in record.seen if s.transition.entity_type == "site" and s.transition.at < as_of
    }
    peak_seen: dict[str, str] = {}
    for t in seen_sites:
        if daily.c.RANK[t.new] > daily.c.RANK.get(peak_seen.get(t.entity, "normal"), 0):
            peak_seen[t.entity] = t.new
    expected = dict.fromkeys(daily.c.COLOURS, 0)
    for site in registry.sites:
        expected[peak_seen.get(site, "normal")] += 1
    assert peak_seen.get("CHEM-01") == "red"
    assert bulletin.totals == expected
    assert [d.site for d in bulletin.flagged] == ["CHEM-01"]
    chem = bulletin.flagged[0]

    # time at red: from the site's own transitions on rw.warnings, to the millisecond; and the leak lasted 60 s
    chem_changes = [(t.at, t.new) for t in seen_sites if t.entity == "CHEM-01"]
    red = daily.c.time_at_level(daily.c.level_timeline("normal", chem_changes, bulletin.start, bulletin.end))[
        "red"
    ]
    assert abs(chem.seconds["red"] - red) < 0.01
    assert 20 <= chem.seconds["red"] <= 75, chem.seconds

    # acknowledged late (the site's alert) and on time (the unit alerts the officer signed for at once)
    chem_alerts = [a for a in all_alerts if a["site"] == "CHEM-01"]
    on_time = sum(1 for a in chem_alerts if a["id"] in acked_at_once)
    assert chem.handling.total == len(chem_alerts)
    assert chem.handling.late >= 1 and chem.handling.on_time == on_time
    assert chem.handling.closed == 1 and chem.handling.open == len(chem_alerts) - 1
    assert bulletin.closed_loop_rate == pytest.approx(1 / len(all_alerts))

    # online rate of COAL-01: one of its gateways offline for the 30 s cut (plus reconnecting)
    coal = next(d for d in bulletin.data_quality if d.site == "COAL-01")
    gateways = [g for g in registry.gateways.values() if g.site == "COAL-01"]
    assert 25 <= coal.offline_s <= 50, coal.offline_s
    assert coal.online_rate == pytest.approx(
        1 - coal.offline_s / (bulletin.end - bulletin.start) / len(gateways)
    )
    assert bulletin.data_quality[0].site == "COAL-01"  # worst first

    # the PDF: pages rendered with pdftoppm are not blank and the text holds the enterprises' names
    html_path, pdf_path = daily.write(bulletin, tmp_path / "out")
    text = subprocess.run(
        ["pdftotext", str(pdf_path), "-"], capture_output=True, text=True, check=True
    ).stdout
    for site in ("CHEM-01", "COAL-01"):
        assert registry.sites[site].name in text
    assert "每日四色预警通报" in text and registry.sites["CHEM-01"].name in html_path.read_text(
        encoding="utf-8"
    )
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf_path), str(tmp_path / "page")], check=True)
    from PIL import Image

    pages = sorted(tmp_path.glob("page*.png"))
    assert pages
    for page in pages:
        lo, hi = Image.open(page).convert("L").getextrema()
        assert hi - lo > 100, f"{page} looks blank"

    # the quality report's reduction chain equals what the pipeline reported on its topics, API and webhook
    report = quality.gather(registry, influx, archive, day, day, tz, now)
    q = report.days[0]
    activations = [t for t in alarms if t.entity_type == "sensor" and t.new in quality.ALARM_STATES
                   and t.old not in quality.ALARM_STATES and t.at < as_of]  # fmt: skip
    assert q.alarms == len(activations)
    assert q.alerts == len(all_alerts)
    assert q.notifications == len({d.key for d in receiver.deliveries if d.at < as_of}) > 0
    # every sensor that alarmed crossed its set point at least once (its own minute onsets)
    assert q.crossings >= len({t.entity for t in activations if t.new != "fault"}) >= 1
    assert q.alert_colours.get("red", 0) >= 1
    assert report.desks and report.desks[0].receiver == "duty"
    assert report.bad_actors and report.bad_actors[0].site == "CHEM-01"
    _, qpdf = quality.write(report, tmp_path / "out")
    assert (
        "报警质量报告" in subprocess.run(["pdftotext", str(qpdf), "-"], capture_output=True, text=True).stdout
    )
    archive.close()
    # the same history through the command line: a sensor's minutes from InfluxDB, the site's alerts to Excel
    cli = [sys.executable, "-m", "riskwatch", "history"]
    env = {**os.environ, "RISKWATCH_INFLUX_TOKEN": stack.influx_token}
    where = ["--influx-url", stack.influx_url, "--influx-bucket", f"{database}/autogen", "--tz", tz,
             "--from", str(bulletin.start), "--to", str(bulletin.end)]  # fmt: skip
    sensor = "CHEM-01-TF1-LEL-01"
    out = subprocess.run([*cli, "sensor", sensor, *where, "--format", "csv"], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    minutes = [line for line in out.splitlines()[1:] if sensor in line]
    assert len(minutes) == len(influx.sensor_minutes(sensor, bulletin.start, bulletin.end)) >= 2
    xlsx = tmp_path / "chem-alerts.xlsx"
    subprocess.run([*cli, "alerts", "--site", "CHEM-01", *where, "--db", str(tmp_path / "run" / "alerting.db"),
                    "--format", "xlsx", "--out", str(xlsx)], env=env, check=True, capture_output=True)  # fmt: skip
    from openpyxl import load_workbook

    cells = [c for row in load_workbook(xlsx).active.iter_rows(values_only=True) for c in row]
    assert "迟到签收" in cells and "已关闭阀门，泄漏处置完毕" in cells
    # every InfluxQL query of the dashboard (as Grafana fills in its macros) against the day's history
    for title, query in dashboard.queries("influxdb"):
        filled = dashboard.grafana_influxql(query, bulletin.start, bulletin.end, sensor)
        series = _influxql(stack, database, filled)
        assert series, f"{title}: no series for {filled}"
        if title == "variable sensor":
            assert [sensor] in [row[1:] for s in series for row in s["values"]], series
    if shots := os.environ.get("RISKWATCH_REPORT_SCREENSHOTS"):  # docs/reports.md's pictures
        for name, pdf in (("bulletin", pdf_path), ("quality", qpdf)):
            out = Path(shots) / name
            subprocess.run(
                ["pdftoppm", "-r", "70", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(out)],
                check=True,
            )
