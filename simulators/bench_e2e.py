"""`riskwatch bench e2e`: the whole path on this machine, MQTT -> bridge -> Kafka -> worker -> warnings ->
alerting -> webhook, with incidents injected at known times.

Measures sustained readings/s arriving in Kafka, loss (every reading the broker acknowledged must be in
`rw.telemetry`; every incident must produce its red warning), and latency from a reading's timestamp to
its warning on `rw.warnings` and to the alert's delivery at the webhook. The baseline is the target
(200,000 readings/s, a province's 200k sensors at 1 Hz), so `ratio` >= 1 means the target rate was carried.
"""

from __future__ import annotations

import argparse
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from riskwatch.paths import home_dir
from riskwatch.topics import Topics
from simulators import synthetic
from simulators.charts import GREEN, RED, Panel, Series, plot
from simulators.faults import Fault
from simulators.gateway import Broker, announce_online
from simulators.kafka_watch import TelemetryCounter, TopicReader, TransitionReader
from simulators.load import LoadResult, ScheduledFault, progress_line, run_load
from simulators.pipeline import Pipeline
from simulators.stackctl import ensure_stack, stop_stack
from simulators.webhook import WebhookReceiver

TARGET_READINGS_PER_S = 200_000.0
ROUTES_TEMPLATE = Path(__file__).parent / "demo_routes.yaml"
INCIDENT_S = 15.0  # how long an incident's detectors read high
SETTLE_S = 20.0  # after the load, how long late warnings and alerts may still arrive
# After the load and the settle: a minute closes 30 s after it ends, then the historian writes it.
HISTORY_WAIT_S = 150.0


def configure(parser: argparse.ArgumentParser) -> None:
    # The defaults are the target: a province's 200k sensors at 1 Hz for 5 minutes.
    parser.add_argument("--sensors", type=int, default=200_000, help="sensors (default 200,000)")
    parser.add_argument("--rate", type=float, default=1.0, help="readings per sensor per second (default 1)")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--processes", type=int, default=2, help="publisher processes (default 2)")
    parser.add_argument("--sensors-per-gateway", type=int, default=500, help="readings per MQTT message")
    # 20 so that p99 reading -> warning is measured over 20 samples, not decided by the worst of four
    parser.add_argument("--incidents", type=int, default=20, help="incidents injected (default 20)")
    parser.add_argument("--png", type=Path, help="plot file (default .riskwatch/bench-e2e.png)")
    parser.add_argument("--stack-home", type=Path, help="local stack folder (default .riskwatch/stack)")


def plan_incidents(
    doc: dict[str, Any], count: int, duration_s: float
) -> list[tuple[str, str, list[ScheduledFault]]]:
    """`count` incidents at distinct sites (at most one per site), evenly spread over the run: two
    flammable detectors of one unit stuck at 80 %LEL (above the 50 %LEL L2) -> that unit red (rule
    gas_l2_two_detectors). A site used twice would still be red from its previous incident."""
    sites = doc["sites"]
    count = min(count, len(sites))
    if count <= 0:
        return []
    step = max(1, len(sites) // count)
    margin = min(10.0, duration_s / 4)
    times = np.linspace(margin, max(margin, duration_s - margin - INCIDENT_S), count)
    out = []
    for k in range(count):
        site = sites[(k * step) % len(sites)]
        unit = site["units"][0]
        detectors = [s["id"] for s in unit["sensors"] if s["type"] == "flammable_gas"][:2]
        faults = [
            ScheduledFault(float(times[k]), INCIDENT_S, Fault("stuck", d, {"value": 80.0})) for d in detectors
        ]
        out.append((site["id"], unit["id"], faults))
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    home = home_dir()
    stack_home = args.stack_home or home / "stack"
    run_dir = home / "bench-e2e" / time.strftime("%Y%m%d-%H%M%S")
    doc = synthetic.registry_doc(args.sensors, args.sensors_per_gateway)
    registry = synthetic.write_registry(doc, run_dir / "registry.json")
    sensors, industries = synthetic.sim_sensors(doc)
    incidents = plan_incidents(doc, args.incidents, args.duration)
    print(f"bench e2e: {args.sensors:,} sensors x {args.rate:g} Hz for {args.duration:g} s, "
          f"{len(incidents)} incidents; run folder {run_dir}", flush=True)  # fmt: skip
    info, started_stack = ensure_stack(stack_home)
    secret = secrets.token_hex(16)
    receiver = WebhookReceiver(secret=secret).start()
    routes = run_dir / "routes.yaml"
    # No group wait: the benchmark measures delivery, not the grouping delay a deployment chooses.
    template = ROUTES_TEMPLATE.read_text().replace("group_wait: 1s", "group_wait: 0s")
    routes.write_text(template.replace("{webhook_url}", receiver.url))
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}")
    from deploy.stack import Stack, ensure_topics

    ensure_topics(info.kafka_bootstrap, topics.all(), 3)
    pipeline = Pipeline(run_dir, registry, info, topics.prefix)
    try:
        passwords = Stack(stack_home).add_gateways(sorted({(s.site, s.gateway) for s in sensors}))
        broker = Broker(info.mqtt_host, info.mqtt_port, passwords, info.client_tls)
        announce_online({s.gateway: s.site for s in sensors}, broker)  # before the bridge subscribes
        pipeline.start_bridge()
        pipeline.start_worker(ready_site=synthetic.site_id(0))
        pipeline.start_historian()
        pipeline.start_alerting(routes, extra=[], env={"RISKWATCH_DEMO_WEBHOOK_SECRET": secret})
        pipeline.wait_ready(120.0)
        counter = TelemetryCounter(TopicReader(info.kafka_bootstrap, topics.telemetry), sites=industries)
        warnings = TransitionReader(TopicReader(info.kafka_bootstrap, topics.warnings))
        seen: list[tuple[float, Any]] = []

        def poll_warnings() -> None:
            seen.extend((time.time(), t) for t in warnings.poll(0.0))

        faults = [f for _, _, fs in incidents for f in fs]
        result, start_at = run_load(
            sensors, industries, broker, counter, args.rate, args.duration, args.processes,
            progress=lambda r, p: print(progress_line(r, p), flush=True), faults=faults, on_poll=poll_warnings,
        )  # fmt: skip
        settle = time.time() + SETTLE_S
        while time.time() < settle and not _all_warned(incidents, seen, receiver):
            poll_warnings()
            time.sleep(0.2)
        figures = _figures(result, incidents, seen, receiver, start_at)
        figures.update(_history_caught_up(pipeline, time.time() + HISTORY_WAIT_S))
        png = args.png or home / "bench-e2e.png"
        _plot(png, result, incidents)
        figures["png"] = str(png)
        dead = pipeline.dead()
        if dead:
            figures["error_services_died"] = ",".join(dead)
        _report(figures)
        counter.reader.close()
        warnings.reader.close()
        return figures
    finally:
        pipeline.stop()
        receiver.stop()
        if started_stack:
            stop_stack(stack_home)


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


def _history_caught_up(pipeline: Pipeline, deadline: float) -> dict[str, Any]:
    """Does the historian keep up? Minute points the worker published against those the historian wrote
    to InfluxDB, waiting for the minutes still closing; and how long after the load it took."""

    def url(name: str) -> str:
        argv = [str(a) for a in pipeline.services[name].proc.args]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{argv[argv.index('--metrics-port') + 1]}/metrics"

    worker, historian = url("worker"), url("historian")
    started = time.time()
    while True:
        published = _metric(worker, "riskwatch_history_points_published_total")
        written = _metric(historian, "riskwatch_history_points_written_total", measurement="sensor_1m")
        if (published and written >= published) or time.time() > deadline:
            break
        time.sleep(2.0)
    return {
        "history_points_published": int(published),
        "history_points_written": int(written),
        "history_caught_up_after_s": round(time.time() - started, 1) if written >= published else None,
    }


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
    for site, unit, faults in incidents:
        hit = _red_at(unit, seen, start_at + faults[0].at)
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
        "sent": result.sent,
        "acked": result.acked,
        "received": result.received,
        "lost": result.lost,
        "duplicates": result.duplicates,
        "incidents": len(incidents),
        "incidents_warned": len(warn_lat),
        "incidents_alerted": len(alert_lat),
        "latency_p50_s": _round(np.percentile(w, 50)),
        "latency_p99_s": _round(np.percentile(w, 99)),
        "latency_max_s": _round(np.max(w)),
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
        f"\nreadings/s {f['readings_per_s']:,.0f} (target {TARGET_READINGS_PER_S:,.0f}, ratio {f['ratio']:.3f}); "
        f"sent {f['sent']:,}, lost {f['lost']:,}; incidents {f['incidents_warned']}/{f['incidents']} warned, "
        f"{f['incidents_alerted']}/{f['incidents']} alerted; reading->warning p50 {f['latency_p50_s']} s "
        f"p99 {f['latency_p99_s']} s max {f['latency_max_s']} s; reading->alert p50 {f['alert_latency_p50_s']} s; "
        f"history: {f['history_points_written']:,} of {f['history_points_published']:,} minute points written "
        f"(caught up {f['history_caught_up_after_s']} s after the load); plot {f['png']}",
        flush=True,
    )
