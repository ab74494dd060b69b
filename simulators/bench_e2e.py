"""`riskwatch bench e2e`: the whole path on this machine, MQTT -> bridge -> Kafka -> worker -> warnings ->
alerting -> webhook, with incidents injected at known times, at the province shape by default
(synthetic.province_doc: 2,000 enterprises, ~4,000 gateways of 20-200 sensors, one message per gateway
per poll period, clocks not aligned); `--shape flat` is the older shape (sites of one gateway carrying
`--sensors-per-gateway` readings per message).

Loss is counted at the end of the path: every reading sent must be evaluated by the engine (the worker's
per-site `readings_evaluated`) or dead-lettered with a reason (`rw.deadletter`): `lost` = sent -
evaluated - dead_lettered. Every incident must be warned red on `rw.warnings` and alerted at the webhook.
Latency is from a reading's timestamp to its warning and to the alert's delivery. The baseline is the
target (200,000 readings/s), so `ratio` >= 1 means the target rate was carried.

`riskwatch bench capacity` runs the same pipeline at increasing offered rates (readings per sensor per
second) and reports the highest one that held reading -> warning p99 < 1 s with nothing lost
(`capacity_readings_per_s`).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from alerting.history.influx import HistoryUnavailable, InfluxConnection, InfluxHistory
from riskwatch.paths import home_dir
from riskwatch.topics import Topics
from simulators import synthetic
from simulators.charts import GREEN, RED, Panel, Series, plot
from simulators.cpu import CpuMeter
from simulators.faults import Fault
from simulators.kafka_watch import DeadLetterCounter, TelemetryCounter, TopicReader, TransitionReader
from simulators.load import Fleet, LoadResult, ScheduledFault, progress_line
from simulators.pipeline import Pipeline, PipelineRun
from simulators.simulated_gateway import Broker, announce_online
from simulators.stackctl import ensure_stack
from simulators.webhook import WebhookReceiver

TARGET_READINGS_PER_S = 200_000.0
ROUTES_TEMPLATE = Path(__file__).parent / "demo_routes.yaml"
INCIDENT_S = 15.0  # how long an incident's detectors read high
SETTLE_S = 20.0  # once all is evaluated, how long late warnings and alerts may still arrive
COUNT_WAIT_S = 120.0  # after the load, how long the engine may take to finish evaluating a backlog
P99_LIMIT_S = 1.0  # the capacity criterion: reading -> warning p99 under this, nothing lost
# After the load and the settle: a minute closes 30 s after it ends, then the historian writes it.
HISTORY_WAIT_S = 150.0
HISTORY_KEEP = "7d"  # how long InfluxDB keeps a run's own history database


def configure(parser: argparse.ArgumentParser) -> None:
    # The defaults are the target: a province's 200k sensors at 1 Hz for 5 minutes.
    parser.add_argument("--sensors", type=int, default=200_000, help="sensors (default 200,000)")
    parser.add_argument("--rate", type=float, default=1.0, help="readings per sensor per second (default 1)")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--processes", type=int, default=2, help="publisher processes (default 2)")
    parser.add_argument(
        "--bridges", type=int, default=1, choices=range(1, 17), metavar="N",
        help="bridge processes in one MQTT share group (default 1): a bridge's cost is per message, and one "
        "Python process tops out at a few thousand messages/s (docs/capacity.md)",
    )  # fmt: skip
    add_shape_options(parser)
    # 20 so that p99 reading -> warning is measured over 20 samples, not decided by the worst of four
    parser.add_argument("--incidents", type=int, default=20, help="incidents injected (default 20)")
    parser.add_argument("--png", type=Path, help="plot file (default .riskwatch/bench-e2e.png)")
    parser.add_argument("--stack-home", type=Path, help="local stack folder (default .riskwatch/stack)")


def add_shape_options(parser: argparse.ArgumentParser) -> None:
    """The load's shape, shared by `bench e2e`, `bench capacity` and `simulate --load`."""
    parser.add_argument(
        "--shape", choices=synthetic.SHAPES, default="province",
        help="province: enterprises of 1-3 gateways of 20-200 sensors (default); flat: one gateway per site",
    )  # fmt: skip
    parser.add_argument(
        "--enterprises",
        type=int,
        help="province shape: enterprises (default one per 100 sensors: 2,000 at 200k)",
    )
    parser.add_argument(
        "--sensors-per-gateway",
        type=int,
        default=500,
        help="flat shape: readings per MQTT message (default 500)",
    )


def plan_incidents(
    doc: dict[str, Any], count: int, duration_s: float
) -> list[tuple[str, str, list[ScheduledFault]]]:
    """`count` incidents at distinct chemical sites (at most one per site), evenly spread over the run:
    two flammable detectors of one unit stuck at 80 %LEL (above the 50 %LEL L2) -> that unit red (rule
    gas_l2_two_detectors). A site used twice would still be red from its previous incident."""
    candidates = []
    for site in doc["sites"]:
        if site["industry"] != "hazardous_chemicals":
            continue
        for unit in site["units"]:
            detectors = [s["id"] for s in unit["sensors"] if s["type"] == "flammable_gas"][:2]
            if len(detectors) == 2:
                candidates.append((site["id"], unit["id"], detectors))
                break
    count = min(count, len(candidates))
    if count <= 0:
        return []
    step = max(1, len(candidates) // count)
    margin = min(10.0, duration_s / 4)
    times = np.linspace(margin, max(margin, duration_s - margin - INCIDENT_S), count)
    out = []
    for k in range(count):
        site, unit, detectors = candidates[(k * step) % len(candidates)]
        faults = [
            ScheduledFault(float(times[k]), INCIDENT_S, Fault("stuck", d, {"value": 80.0})) for d in detectors
        ]
        out.append((site, unit, faults))
    return out


def estate(args: argparse.Namespace, run_dir: Path) -> tuple[dict[str, Any], Path, Any, dict[str, str]]:
    """The run's registry document, its file, and the simulators' sensors and industries."""
    doc = synthetic.shaped_doc(args.shape, args.sensors, args.enterprises, args.sensors_per_gateway)
    registry = synthetic.write_registry(doc, run_dir / "registry.json")
    sensors, industries = synthetic.sim_sensors(doc, registry)
    return doc, registry, sensors, industries


class E2E(PipelineRun):
    """A running pipeline (stack, bridge, worker, alerting, webhook) that load steps are offered to."""

    def __init__(self, args: argparse.Namespace, name: str = "bench-e2e") -> None:
        self.args = args
        self.home = home_dir()
        super().__init__(args.stack_home or self.home / "stack")
        self.run_dir = self.home / name / time.strftime("%Y%m%d-%H%M%S")
        self.doc, self.registry, self.sensors, self.industries = estate(args, self.run_dir)
        self.gateways = len({s.gateway for s in self.sensors})
        self.sites = sorted(self.industries)
        self.fleet: Fleet | None = None  # connected at the first step, kept connected between steps

    def __enter__(self) -> E2E:
        info, self.started_stack = ensure_stack(self.stack_home)
        try:
            self._start(info)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, info: Any) -> None:
        secret = secrets.token_hex(16)
        self.receiver = WebhookReceiver(secret=secret).start()
        routes = self.run_dir / "routes.yaml"
        # No group wait: the benchmark measures delivery, not the grouping delay a deployment chooses.
        template = ROUTES_TEMPLATE.read_text().replace("group_wait: 1s", "group_wait: 0s")
        routes.write_text(template.replace("{webhook_url}", self.receiver.url))
        topics = Topics(f"bench{uuid.uuid4().hex[:8]}")
        from deploy.stack import Stack, ensure_topics
        from deploy.stack.influxdb import InfluxDB

        ensure_topics(info, topics, 3)
        # The run's history goes to a database of its own, so its minutes can be counted exactly there.
        influx = Stack(self.stack_home).service("influxdb")
        assert isinstance(influx, InfluxDB)
        info = replace(info, influx_bucket=influx.create_database(topics.prefix, HISTORY_KEEP))
        self.history = InfluxHistory(InfluxConnection(info.influx_url, info.influx_token, info.influx_bucket))
        self.pipeline = Pipeline(self.run_dir, self.registry, info, topics.prefix)
        passwords = Stack(self.stack_home).add_gateways(sorted({(s.site, s.gateway) for s in self.sensors}))
        self.broker = Broker(info.mqtt_host, info.mqtt_port, passwords, info.client_tls)
        announce_online(
            {s.gateway: s.site for s in self.sensors}, self.broker
        )  # before the bridge subscribes
        self.pipeline.start_all(
            routes, self.sites[0], {"RISKWATCH_DEMO_WEBHOOK_SECRET": secret}, 300.0, bridges=self.args.bridges
        )
        self.counter = TelemetryCounter(
            TopicReader(info.kafka("tools"), topics.telemetry), sites=self.industries
        )
        self.warnings = TransitionReader(TopicReader(info.kafka("tools"), topics.warnings))
        self.deadletters = DeadLetterCounter(TopicReader(info.kafka("tools"), topics.deadletter))
        self.readers = [self.counter.reader, self.warnings.reader, self.deadletters.reader]
        self.cpu = CpuMeter(self._processes)
        self.seen: list[tuple[float, Any]] = []
        self.evaluated_before = 0
        self.dead_before = 0
        self.counted_before = 0.0

    def _processes(self) -> dict[str, list[int]]:
        """Every process on the path, by name: the stack's servers and riskwatch's services."""
        from deploy.stack import Stack

        assert self.pipeline is not None
        out = {s.name: [pid] for s in Stack(self.stack_home).services() if (pid := s.pidfile.read())}
        for name, service in self.pipeline.services.items():
            out.setdefault(_process_group(name), []).append(service.proc.pid)
        if self.fleet is not None:
            out["load generator"] = self.fleet.pids
        # This process reads rw.telemetry to time reading -> Kafka, and the warnings, the dead letters
        # and the webhook: not part of the path, but on the same cores.
        out["bench (measuring)"] = [os.getpid()]
        return out

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.fleet is not None:
                self.fleet.__exit__(*exc)
        finally:
            self.close_run()

    def poll(self) -> None:
        self.seen.extend((time.time(), t) for t in self.warnings.poll(0.0))
        self.deadletters.poll(0.0)

    def step(
        self, rate_hz: float, duration_s: float, incidents_wanted: int, warmup_s: float = 0.0
    ) -> tuple[dict[str, Any], LoadResult]:
        """Offer `rate_hz` per sensor for `warmup_s` + `duration_s` with incidents in the last `duration_s`,
        then count to the end of the path."""
        assert self.pipeline is not None and self.receiver is not None
        incidents = [
            (site, unit, [replace(f, at=f.at + warmup_s) for f in faults])
            for site, unit, faults in plan_incidents(self.doc, incidents_wanted, duration_s)
        ]
        faults = [f for _, _, fs in incidents for f in fs]
        if self.fleet is None:
            self.fleet = Fleet(self.sensors, self.industries, self.broker, self.args.processes).__enter__()
        self.seen.clear()
        self.cpu.start()
        result, start_at = self.fleet.run(
            self.counter, rate_hz, warmup_s + duration_s,
            progress=lambda r, p: print(progress_line(r, p), flush=True), faults=faults, on_poll=self.poll,
        )  # fmt: skip
        evaluated, dead = self._count_to_the_end(result.sent)
        # Only once the engine has evaluated everything can every incident's warning be expected: a backlog
        # can hold the last incident's readings past any fixed wait after the load.
        settle = time.time() + SETTLE_S
        while time.time() < settle and not _all_warned(incidents, self.seen, self.receiver):
            self.poll()
            time.sleep(0.2)
        cpu = self.cpu.stop()
        figures = _figures(result, incidents, self.seen, self.receiver, start_at)
        figures.update(
            shape=self.args.shape, sensors=len(self.sensors), gateways=self.gateways, sites=len(self.sites),
            offered_rate_hz=rate_hz, evaluated=evaluated, dead_lettered=dead,
            lost=result.sent - evaluated - dead, lost_before_kafka=result.lost,
            dead_letter_reasons=dict(self.deadletters.reasons), cpu_s=cpu,
            readings_by_bridge={  # since the pipeline started: how the share group split the messages
                name: _metric(service.ready_url, "riskwatch_bridge_readings_out_total")
                for name, service in self.pipeline.services.items()
                if _process_group(name) == "bridge"
            },
            cpu_s_per_million_readings={k: round(v * 1e6 / max(result.sent, 1), 2) for k, v in cpu.items()},
            machine_cpu_busy=round(self.cpu.machine_busy, 3),
        )  # fmt: skip
        dead_services = self.pipeline.dead()
        if dead_services:
            figures["error_services_died"] = ",".join(dead_services)
        return figures, result

    def _count_to_the_end(self, sent: int) -> tuple[int, int]:
        """This step's readings evaluated by the engine and dead-lettered. Waits, on the worker's cheap
        readings counter, while it still works through a backlog (up to COUNT_WAIT_S without progress),
        then counts exactly, site by site (the per-site counts survive restarts; the counter does not)."""
        assert self.pipeline is not None
        last, last_change = -1.0, time.time()
        while time.time() - last_change < COUNT_WAIT_S:
            self.poll()
            counted = self.pipeline.readings_counted()
            dead = self.deadletters.readings - self.dead_before
            if counted is not None and counted - self.counted_before + dead >= sent:
                break
            if counted is not None and counted != last:
                last, last_change = counted, time.time()
            time.sleep(1.0)
        self.counted_before = self.pipeline.readings_counted() or self.counted_before
        total = None
        for _ in range(10):  # the worker answers 503 while rebalancing
            total = self.pipeline.evaluated(self.sites)
            if total is not None:
                break
            time.sleep(2.0)
        self.poll()
        evaluated = (total or 0) - self.evaluated_before
        dead = self.deadletters.readings - self.dead_before
        self.evaluated_before += evaluated
        self.dead_before += dead
        return evaluated, dead


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with E2E(args) as run:
        print(f"bench e2e: {args.shape} shape, {len(run.sensors):,} sensors behind {run.gateways:,} gateways at "
              f"{len(run.sites):,} sites, x {args.rate:g} Hz for {args.duration:g} s, {args.incidents} incidents, "
              f"{args.bridges} bridge process(es); "
              f"run folder {run.run_dir}", flush=True)  # fmt: skip
        figures, result = run.step(args.rate, args.duration, args.incidents)
        figures.update(_history_held(run.history, run.counter.minutes.totals(), time.time() + HISTORY_WAIT_S))
        incidents = plan_incidents(run.doc, args.incidents, args.duration)
        png = args.png or run.home / "bench-e2e.png"
        _plot(png, result, incidents)
        figures["png"] = str(png)
        _report(figures)
        return figures


def _process_group(service: str) -> str:
    """The process group a pipeline service's CPU counts under: "bridge-2" is one of the bridges."""
    name, _, instance = service.rpartition("-")
    return name if name and instance.isdigit() else service


def _metric(url: str, family: str, **labels: str) -> float:
    """Sum of a Prometheus family's samples (with `labels`) at `url`; 0 if unreachable."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    pattern = re.compile(rf"^{re.escape(family)}(\{{[^}}]*\}})?\s+(\S+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def _history_held(
    history: InfluxHistory, expected: dict[float, tuple[int, int]], deadline: float
) -> dict[str, Any]:
    """Does InfluxDB hold every minute of every sensor? `expected`: per minute, the sensors with readings
    on rw.telemetry in it and how many (simulators/kafka_watch.py, `MinuteTally`); against it, per minute,
    the sensors with an aggregate in the run's own database and the readings those count. Waits until
    they agree or `deadline`: a minute closes 30 s after it ends, then the historian writes it."""
    started = time.time()
    written: dict[float, tuple[int, int]] = {}
    error = None
    while expected:
        try:
            written, error = history.minute_totals(min(expected), max(expected) + 60.0), None
        except HistoryUnavailable as exc:  # reported; the figures then show the minutes as missing
            error = str(exc)
        if written == expected or time.time() > deadline:
            break
        time.sleep(2.0)
    short = []  # [minute start, sensors missing, readings missing]; negative: more than was sent
    for minute in sorted(expected.keys() | written.keys()):
        want, got = expected.get(minute, (0, 0)), written.get(minute, (0, 0))
        if want != got:
            short.append([minute, want[0] - got[0], want[1] - got[1]])
    figures: dict[str, Any] = {
        "history_minutes": len(expected),
        "history_sensor_minutes": sum(n for n, _ in expected.values()),
        "history_sensor_minutes_written": sum(n for n, _ in written.values()),
        "history_readings": sum(r for _, r in expected.values()),
        "history_readings_written": sum(r for _, r in written.values()),
        "history_minutes_short": short,
        "history_complete_after_s": None if short else round(time.time() - started, 1),
    }
    if error is not None:
        figures["error_history"] = error
    return figures


def _red_at(unit: str, seen: list[tuple[float, Any]], after: float) -> tuple[float, float] | None:
    for arrived, t in seen:
        if t.entity == unit and t.new == "red" and t.at >= after - 1.0:
            return arrived, t.at
    return None


def _all_warned(incidents: list[Any], seen: list[tuple[float, Any]], receiver: WebhookReceiver) -> bool:
    units = {unit for _, unit, _ in incidents}
    got = {t.entity for _, t in seen if t.new == "red"}
    alerted = {
        site
        for site, _, _ in incidents
        if any(d.colour == "red" and d.mentions(site) for d in receiver.unique())
    }
    return units <= got and len(alerted) == len(incidents)


def _figures(result: LoadResult, incidents: list[Any], seen: list[tuple[float, Any]], receiver: WebhookReceiver,
             start_at: float) -> dict[str, Any]:  # fmt: skip
    warn_lat, alert_lat = [], []
    by_incident: list[list[float | None]] = []  # [seconds into the run, reading -> warning or None]
    for site, unit, faults in incidents:
        hit = _red_at(unit, seen, start_at + faults[0].at)
        by_incident.append([round(faults[0].at, 1), None if hit is None else round(hit[0] - hit[1], 3)])
        if hit is None:
            continue
        arrived, at = hit
        warn_lat.append(arrived - at)
        deliveries = [
            d.at for d in receiver.unique() if d.colour == "red" and d.mentions(site) and d.at >= at
        ]
        if deliveries:
            alert_lat.append(min(deliveries) - at)
    w = np.array(warn_lat) if warn_lat else np.array([np.nan])
    a = np.array(alert_lat) if alert_lat else np.array([np.nan])
    return {
        "readings_per_s": round(result.readings_per_s, 1),
        "baseline_readings_per_s": TARGET_READINGS_PER_S,
        "ratio": round(result.readings_per_s / TARGET_READINGS_PER_S, 4),
        "offered_readings_per_s": round(result.sent / max(result.publish_s, 1e-9), 1),
        "messages_per_s": round(result.messages_per_s, 1),
        "readings_per_message": round(result.sent / max(result.messages, 1), 1),
        "sent": result.sent,
        "messages": result.messages,
        "acked": result.acked,
        "received": result.received,
        "duplicates": result.duplicates,
        "incidents": len(incidents),
        "incidents_warned": len(warn_lat),
        "incidents_alerted": len(alert_lat),
        "latency_p50_s": _round(np.percentile(w, 50)),
        "latency_p99_s": _round(np.percentile(w, 99)),
        "latency_max_s": _round(np.max(w)),
        "latency_by_incident_s": by_incident,
        "alert_latency_p50_s": _round(np.percentile(a, 50)),
        "alert_latency_p99_s": _round(np.percentile(a, 99)),
        "alert_latency_max_s": _round(np.max(a)),
        "telemetry_latency_p50_s": round(result.latency_p50_s, 4),
        "telemetry_latency_p99_s": round(result.latency_p99_s, 4),
        "telemetry_latency_max_s": round(result.latency_max_s, 4),
        "duration_s": result.publish_s,
        "elapsed_s": round(result.elapsed_s, 2),
    }


def _round(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 4)


def _plot(path: Path, result: LoadResult, incidents: list[Any]) -> None:
    t = [p["t"] for p in result.timeline]
    marks = [faults[0].at for _, _, faults in incidents]
    plot(path, [
        Panel("readings/s received in kafka", [Series("received", t, [p["received_per_s"] for p in result.timeline])], marks),
        Panel("reading -> kafka latency s", [
            Series("p50", t, [p["latency_p50_s"] for p in result.timeline], GREEN),
            Series("p99", t, [p["latency_p99_s"] for p in result.timeline], RED),
        ], marks),
    ])  # fmt: skip


def _report(f: dict[str, Any]) -> None:
    print(
        f"\n{f['shape']} shape: readings/s {f['readings_per_s']:,.0f} (target {TARGET_READINGS_PER_S:,.0f}, "
        f"ratio {f['ratio']:.3f}) in {f['messages_per_s']:,.0f} messages/s; sent {f['sent']:,}, evaluated "
        f"{f['evaluated']:,}, dead-lettered {f['dead_lettered']:,}, lost {f['lost']:,}; incidents {f['incidents_warned']}/{f['incidents']} warned, "
        f"{f['incidents_alerted']}/{f['incidents']} alerted; reading->warning p50 {f['latency_p50_s']} s "
        f"p99 {f['latency_p99_s']} s max {f['latency_max_s']} s; reading->alert p50 {f['alert_latency_p50_s']} s; "
        f"history: {f['history_sensor_minutes_written']:,} of {f['history_sensor_minutes']:,} sensor-minutes and "
        f"{f['history_readings_written']:,} of {f['history_readings']:,} readings in InfluxDB over "
        f"{f['history_minutes']} minutes (complete {f['history_complete_after_s']} s after the load); plot {f['png']}",
        flush=True,
    )
    per = f["cpu_s_per_million_readings"]
    print("CPU seconds per million readings sent: " + ", ".join(f"{k} {v:g}" for k, v in per.items())
          + f"; the machine's cores {f['machine_cpu_busy']:.0%} busy")  # fmt: skip
