"""A simulated night across midnight through the real pipeline: every figure of the bulletin and the
quality report equals what was injected.

The bridge, worker and alerting run on one simulated clock (`--clock`, riskwatch/clock.py) from 22:00 the
evening before DAY to 02:00, at SPEED times real time (240x: the four hours take a real minute). Known
incidents, in simulated time:

- CHEM-02 orange from 23:40 the evening before to 00:20 (a detector stuck above its L2): 20 minutes of
  DAY, the colour it held at midnight counting;
- CHEM-01 red from 00:40 to 01:10 (a leak);
- COAL-01's heading-face gateway powered off from 01:20 to 01:50 (its last will): 30 minutes offline;
- the officer signs for every alert at once (on time), except CHEM-01's site alert, signed 30 minutes
  after it opened: its policy's first tier calls the next person after 20 minutes, so it is late.

The bulletin and the quality report of DAY are then made as of 02:00 (the plants fall silent and their
gateways disconnect there: the end of the simulated span, not an outage), through `riskwatch report` on
the same clock and in this process. The figures must equal the pipeline's own transitions to the
millisecond and the injected spans within TOLERANCE_S (see there). RISKWATCH_SIMULATED_DAY_SPEED runs it
at another speed, RISKWATCH_SIMULATED_DAY_FULL=1 over the whole day (20:00 the evening before to 00:30
the morning after: 28.5 simulated hours, 7 real minutes at 240x).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from alerting.history.alerts import AlertArchive
from alerting.history.influx import InfluxConnection, InfluxHistory
from alerting.history.sources import deadline_lookup
from alerting.reports import daily, quality
from deploy.stack import add_gateways
from riskwatch.clock import ClockSpec, SimulatedClock
from riskwatch.registry import load_registry
from riskwatch.tls import ClientTLS
from simulators.cli import DEFAULT_REGISTRY
from simulators.kafka_watch import TopicReader, TransitionReader
from simulators.pipeline import Pipeline
from simulators.scenarios.model import parse_scenario
from simulators.scenarios.runner import ScenarioRunner, make_clients, scope_of
from simulators.simulated_gateway import Broker, announce_online, connect_all
from simulators.simulation import Simulation
from tests.integration.reports.test_reports_e2e import (
    HOOK,
    TOKEN,
    _api,
    _everything,
    report_run,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TZ = "Asia/Shanghai"
DAY = date(2026, 11, 29)
SPEED = float(os.environ.get("RISKWATCH_SIMULATED_DAY_SPEED", "240"))
FULL = os.environ.get("RISKWATCH_SIMULATED_DAY_FULL", "") not in ("", "0")
TICK_S = 30.0  # simulated seconds between two gateway messages (the scenario's tick)
STARTUP_S = 60.0  # real seconds the services get to start before the simulated evening begins
WORKER_TICK_S = 0.25  # real seconds between the worker's timer evaluations: 60 simulated s at 240x
ACK_DEADLINE_S = 20 * 60.0
# A figure may differ from the injection by: the scenario tick in which an injection is applied and the
# one in which the next reading shows it (2 x TICK_S), the engine's off-delay (10 s) evaluated at the
# worker's next timer (WORKER_TICK_S), and the pipeline's real latency in simulated time (allowed 0.5 real
# s, on a loaded 2-core machine): 220 simulated seconds at 240x, 4 minutes in spans of 20-30.
TOLERANCE_S = 2 * TICK_S + 10.0 + (WORKER_TICK_S + 0.5) * SPEED
# Sensors promise a reading every 60-120 s: at 240x that is 0.25-0.5 real s, about the pipeline's own
# latency under load, so every sensor here promises one per hour (15 real s) instead.
STALE_AFTER_S = 3600.0


def at(hhmm: str, day: date = DAY) -> float:
    """Epoch seconds of a local time on `day`."""
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=ZoneInfo(TZ)).timestamp()


EVENING = at("20:00" if FULL else "22:00", DAY - timedelta(days=1))
DAY_END = at("00:00", DAY + timedelta(days=1))
END = at("00:30", DAY + timedelta(days=1)) if FULL else at("02:00")
INCIDENTS = [  # (simulated time, injection)
    (at("23:40", DAY - timedelta(days=1)),
     {"fault": "stuck", "target": "CHEM-02-TF1-LEL-03", "params": {"value": 60.0}}),
    (at("00:20"), {"fault_stop": "stuck", "target": "CHEM-02-TF1-LEL-03"}),
    (at("00:40"), {"site": "CHEM-01", "incident": "leak", "unit": "CHEM-01-TF1", "params": {"severity": 1.0}}),
    (at("01:10"), {"site": "CHEM-01", "incident": "leak_stop", "unit": "CHEM-01-TF1"}),
    (at("01:20"), {"fault": "disconnect", "target": "GW-COAL-01B"}),
    (at("01:50"), {"fault_stop": "disconnect", "target": "GW-COAL-01B"}),
]  # fmt: skip


def slow_sensors_registry(path: Path) -> Path:
    """The simulators' registry with every sensor promising a reading per STALE_AFTER_S."""
    doc = yaml.safe_load(DEFAULT_REGISTRY.read_text(encoding="utf-8"))
    for site in doc["sites"]:
        for unit in site.get("units", []):
            for sensor in unit.get("sensors", []):
                sensor["stale_after_s"] = STALE_AFTER_S
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_a_simulated_day_gives_the_injected_figures(stack, tmp_path: Path) -> None:
    topics, database, receiver, routes = report_run(stack, tmp_path, "d", ACK_DEADLINE_S)
    registry_path = slow_sensors_registry(tmp_path / "registry.yaml")
    registry = load_registry(registry_path)
    passwords = add_gateways(stack, [(g.site, g.id) for g in registry.gateways.values()])
    announce_online(
        {g.id: g.site for g in registry.gateways.values()},
        Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls),
    )
    # the evening begins STARTUP_S real seconds from now; until then simulated time is the day before
    spec = ClockSpec(EVENING, SPEED, anchor=time.time() + STARTUP_S)
    clock = SimulatedClock(spec)
    flag = ["--clock", str(spec)]
    (tmp_path / "run").mkdir(exist_ok=True)
    pipe = Pipeline(tmp_path / "run", registry_path, stack, topics.prefix)
    influx = InfluxHistory(InfluxConnection(stack.influx_url, stack.influx_token, f"{database}/autogen"))
    acked: dict[str, tuple[float, float]] = {}  # alert id -> (opened, acknowledged), simulated
    try:
        pipe.start_bridge(flag)
        pipe.start_worker(ready_site="CHEM-01", extra=[*flag, "--tick-every-s", str(WORKER_TICK_S)])
        pipe.start_historian(extra=["--influx-bucket", f"{database}/autogen"])
        alerting = pipe.start_alerting(
            routes, [*flag, "--tick-s", "0.1"], env={"RW_R_HOOK": HOOK, "RW_R_TOKEN": TOKEN}
        )
        pipe.wait_ready(120)
        late_by = time.time() - spec.anchor  # type: ignore[operator]
        assert late_by < (at("23:00", DAY - timedelta(days=1)) - EVENING) / SPEED, (
            f"the services took {late_by + STARTUP_S:.0f} s to start: the evening began without them"
        )
        time.sleep(max(0.0, -late_by))
        sim = Simulation.from_registry(registry)
        clients = make_clients(
            sim, Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls), clock
        )
        connect_all(list(clients.values()))
        url = alerting.ready_url.rstrip("/")
        api = functools.partial(_api, context=ClientTLS(stack.cafile).context())
        scope = scope_of(sim, {s.id: s.region for s in registry.sites.values()})
        warnings = TransitionReader(TopicReader(stack.kafka("tools"), topics.warnings))
        done = threading.Event()

        def duty_officer() -> None:
            """Signs for every alert at once, but for CHEM-01's site alert only 30 simulated minutes after
            it opened (late); closes that one once the site is back to normal."""
            while not done.is_set():
                for a in api(url, "/api/alerts?limit=1000")["alerts"]:
                    late = a["site"] == "CHEM-01" and a["entity_type"] == "site"
                    if not a["acked"] and (not late or clock() - a["opened_at"] > ACK_DEADLINE_S + 600):
                        api(url, f"/api/alerts/{a['id']}/ack", {"note": "迟到签收" if late else "收到"})
                        # the first acknowledgement (an escalation asks for another one)
                        acked.setdefault(a["id"], (a["opened_at"], clock()))
                    elif late and a["acked"] and not a["active"] and not a["closed"]:
                        api(url, f"/api/alerts/{a['id']}/close", {"note": "已关闭阀门，泄漏处置完毕"})
                done.wait(0.1)  # 24 simulated seconds at 240x: well inside the 20-minute deadline

        officer = threading.Thread(target=duty_officer, daemon=True)
        officer.start()
        try:
            broker = Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls)
            start = clock()  # scenario second 0: every injection then falls at its time
            scenario = parse_scenario({
                "name": "simulated-day", "registry": str(registry_path), "tick_s": TICK_S,
                "duration_s": END - start,
                "injections": [{"at": t - start, **inj} for t, inj in INCIDENTS],
            })  # fmt: skip
            runner = ScenarioRunner(
                scenario, sim, broker, warnings, scope, log=print, clock=clock, clients=clients
            )
            record = runner.run()
            for client in clients.values():  # the plants fall silent and their gateways say goodbye
                client.close(timeout=5.0)
        finally:
            done.set()
            officer.join(10)
            warnings.reader.close()
        all_alerts = api(url, "/api/alerts?limit=1000")["alerts"]
        # the span's last minutes close 5 real seconds after they end, then reach InfluxDB
        deadline = time.monotonic() + 60
        last = "CHEM-01-TF1-LEL-01"
        while not influx.sensor_minutes(last, min(END, DAY_END) - 180, min(END, DAY_END) - 60):
            assert time.monotonic() < deadline, "DAY's last minutes never reached InfluxDB"
            time.sleep(1)
    finally:
        pipe.stop()
        receiver.stop()
    assert not pipe.dead()
    # when each injection was applied (in the scenario's tick at or after its time), in INCIDENTS' order
    assert [inj.describe() for _, inj in record.applied] == [inj.describe() for inj in scenario.schedule()]
    applied = [record.started + offset for offset, _ in record.applied]
    for (t, _), when in zip(INCIDENTS, applied, strict=True):
        assert 0 <= when - t <= TICK_S + 0.5 * SPEED, (t, when)
    orange_from, orange_to, red_from, red_to, offline_from, offline_to = applied
    warned, alarms = _everything(stack, topics.warnings), _everything(stack, topics.alarms)

    # the reports through the command line on the same clock, from the same history and store
    cli = [sys.executable, "-m", "riskwatch", "report"]
    env = {**os.environ, "RISKWATCH_INFLUX_TOKEN": stack.influx_token}
    where = ["--registry", str(registry_path), "--routes", str(routes), "--influx-url", stack.influx_url,
             "--influx-bucket", f"{database}/autogen", "--db", str(tmp_path / "run" / "alerting.db"),
             "--tz", TZ, "--clock", str(spec), "--out", str(tmp_path / "out")]  # fmt: skip
    daily_cli = ["daily", "--date", str(DAY)], registry.sites["CHEM-01"].name  # the red enterprise
    quality_cli = ["quality", "--from", str(DAY), "--to", str(DAY)], "CHEM-01-TF1"  # its bad actors
    for report, shown in (daily_cli, quality_cli):
        made = subprocess.run([*cli, *report, *where], env=env, capture_output=True, text=True, check=True)
        pdf = next(Path(line) for line in made.stdout.split() if line.endswith(".pdf"))
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert shown in text and str(DAY) in text, report
    # the figures, as of the end of the simulated span (then the plants fall silent)
    archive = AlertArchive(tmp_path / "run" / "alerting.db")
    now = record.started + scenario.duration_s
    assert now == pytest.approx(END)
    bulletin = daily.gather(registry, influx, archive, DAY, TZ, deadline_lookup(routes, 900.0), now)
    assert (bulletin.start, bulletin.end) == (at("00:00"), min(DAY_END, now))  # the day so far

    # enterprises per colour: CHEM-01 red, CHEM-02 orange (held at midnight), COAL-01 blue (offline)
    peak = {d.site: d.peak for d in bulletin.data_quality}
    assert peak == {
        "CHEM-01": "red",
        "CHEM-02": "orange",
        "COAL-01": "blue",
        **{s: "normal" for s in registry.sites if s not in ("CHEM-01", "CHEM-02", "COAL-01")},
    }, peak
    expected = dict.fromkeys(daily.c.COLOURS, 0)
    for colour in peak.values():
        expected[colour] += 1
    assert bulletin.totals == expected
    assert [d.site for d in bulletin.flagged] == ["CHEM-01", "CHEM-02"]
    chem1, chem2 = bulletin.flagged

    # time at colour: equal to the injected spans, and to the pipeline's own transitions to the millisecond
    def time_at(site: str, colour: str) -> float:
        changes = [
            (t.at, t.new) for t in warned if t.entity_type == "site" and t.entity == site and t.at < now
        ]
        timeline = daily.c.level_timeline("normal", changes, bulletin.start, min(bulletin.end, now))
        return daily.c.time_at_level(timeline)[colour]

    injected_red = red_to - red_from
    assert orange_from < bulletin.start
    injected_orange = orange_to - bulletin.start  # held at midnight: from midnight to the repair
    print(f"red {chem1.seconds['red']:.0f} s (injected {injected_red:.0f} s), orange "
          f"{chem2.seconds['orange']:.0f} s (injected {injected_orange:.0f} s), tolerance {TOLERANCE_S:.0f} s")  # fmt: skip
    assert abs(chem1.seconds["red"] - time_at("CHEM-01", "red")) < 0.01
    assert abs(chem2.seconds["orange"] - time_at("CHEM-02", "orange")) < 0.01
    assert abs(chem1.seconds["red"] - injected_red) <= TOLERANCE_S, chem1.seconds
    assert abs(chem2.seconds["orange"] - injected_orange) <= TOLERANCE_S, chem2.seconds

    # acknowledged late (CHEM-01's site alert) and on time (every other), closed-loop rate
    chem_alerts = [a for a in all_alerts if a["site"] == "CHEM-01"]
    assert chem1.handling.total == len(chem_alerts) >= 2
    assert (chem1.handling.late, chem1.handling.on_time) == (1, len(chem_alerts) - 1)
    assert chem1.handling.closed == 1
    # CHEM-02's alerts opened the evening before: they belong to that day's handling, not DAY's
    chem2_alerts = [a for a in all_alerts if a["site"] == "CHEM-02"]
    assert chem2_alerts and all(a["opened_at"] < bulletin.start for a in chem2_alerts)
    assert chem2.handling.total == 0
    for alert, (opened, signed) in acked.items():  # the officer's own view agrees with the bulletin's
        is_late = any(a["id"] == alert and a["entity_type"] == "site" and a["site"] == "CHEM-01"
                      for a in all_alerts)  # fmt: skip
        assert (signed - opened > ACK_DEADLINE_S) == is_late, (alert, signed - opened)
    opened_in_day = [a for a in all_alerts if bulletin.start <= a["opened_at"] < bulletin.end]
    assert bulletin.closed_loop_rate == pytest.approx(1 / len(opened_in_day))  # CHEM-01's site alert

    # online rate of COAL-01: its heading-face gateway offline for the 30 injected minutes
    coal = next(d for d in bulletin.data_quality if d.site == "COAL-01")
    injected_offline = offline_to - offline_from
    print(f"COAL-01 offline {coal.offline_s:.0f} s (injected {injected_offline:.0f} s), online rate "
          f"{coal.online_rate:.5f}")  # fmt: skip
    assert abs(coal.offline_s - injected_offline) <= TOLERANCE_S
    gateways = [g for g in registry.gateways.values() if g.site == "COAL-01"]
    assert coal.online_rate == pytest.approx(
        1 - coal.offline_s / (bulletin.end - bulletin.start) / len(gateways)
    )
    assert all(d.online_rate == 1.0 for d in bulletin.data_quality if d.site != "COAL-01")
    assert bulletin.data_quality[0].site == "COAL-01"

    # the quality report: alarms, alerts and notifications equal what the pipeline reported
    report = quality.gather(registry, influx, archive, DAY, DAY, TZ, now)
    archive.close()
    q = report.days[0]
    in_day = lambda t: bulletin.start <= t.at < min(bulletin.end, now)  # noqa: E731
    activations = [t for t in alarms if t.entity_type == "sensor" and t.new in quality.ALARM_STATES
                   and t.old not in quality.ALARM_STATES and in_day(t)]  # fmt: skip
    assert q.alarms == len(activations) >= 1
    assert q.alerts == len(
        [a for a in all_alerts if bulletin.start <= a["opened_at"] < min(bulletin.end, now)]
    )
    assert q.alert_colours.get("red", 0) >= 1 and sum(q.alert_colours.values()) == len(opened_in_day)
    assert q.crossings >= len({t.entity for t in activations if t.new != "fault"}) >= 1
