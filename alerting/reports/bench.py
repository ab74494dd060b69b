"""`riskwatch bench bulletin`: the daily bulletin for a province (2,000 enterprises, 200,000 sensors).

Writes a province-day into a database of its own on the running InfluxDB (the local stack's by default):
site colour changes for two days (about 14 % of enterprises coloured, some orange and red, with causes),
2 % of gateways offline for 30 minutes (their 100 sensors each stale and back), and the whole day of the
worker's per-site minute completeness summary (`site_1m`: 2,000 × 1,440 = 2.9 M points; completeness
no longer reads the 288 M per-sensor minute points). An alert store gets an alert per coloured
enterprise, half of them acknowledged and closed.

Baseline: just reading the same data back (the three InfluxDB queries and the alert store) without
computing or drawing anything. Measured: the whole bulletin, read + computed + HTML + PDF.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

DAY = date(2026, 1, 15)
TZ = "Asia/Shanghai"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sensors", type=int, default=200_000)
    parser.add_argument("--enterprises", type=int, default=2_000)
    parser.add_argument("--minutes", type=int, default=1440, help="minutes of the day's site summary written")
    parser.add_argument("--influx-url", default=None, help="default: the local stack's")
    parser.add_argument("--stack-home", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's database")


def province(n_sensors: int, n_sites: int) -> Any:
    """A generated registry whose sites are split so that there are `n_sites` enterprises."""
    from riskwatch.registry.generate import generate_dict
    from riskwatch.registry.registry import Registry

    doc = generate_dict(n_sensors, n_regions=16)
    parts = max(1, n_sites // len(doc["sites"]))
    split: list[dict[str, Any]] = []
    for site in doc["sites"]:
        size = -(-len(site["units"]) // parts)
        for p in range(parts):
            chunk = site["units"][p * size : (p + 1) * size]
            if chunk:  # gateways renamed per part: each enterprise has its own
                units = [{**u, "gateway": f"{u['gateway']}-{p}"} for u in chunk]
                gateways = sorted({u["gateway"] for u in units})
                split.append({**site, "id": f"{site['id']}-{p}", "name": f"企业{len(split):04d}", "units": units,
                              "gateways": [{"id": g} for g in gateways]})  # fmt: skip
    doc["sites"] = split
    return Registry.from_dict(doc, source="<bench province>")


class _Influx:
    def __init__(self, url: str, token: str, database: str) -> None:
        self.url, self.database = url.rstrip("/"), database
        user, _, password = token.partition(":")
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _post(self, path: str, params: dict[str, str], body: bytes) -> None:
        request = urllib.request.Request(f"{self.url}{path}?{urllib.parse.urlencode(params)}", data=body)
        request.add_header("Authorization", self.auth)
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()

    def query(self, q: str) -> None:
        self._post("/query", {}, urllib.parse.urlencode({"q": q}).encode())

    def write(self, lines: list[str], chunk: int = 10_000) -> None:
        for i in range(0, len(lines), chunk):
            body = "\n".join(lines[i : i + chunk]).encode()
            for attempt in range(6):  # a loaded InfluxDB answers 500 "timeout" while creating new series
                try:
                    self._post("/write", {"db": self.database, "precision": "ms"}, body)
                    break
                except urllib.error.HTTPError as exc:
                    if exc.code != 500 or attempt == 5:
                        raise
                    time.sleep(2.0 * (attempt + 1))  # the same points again: InfluxDB keeps one of each


def _write_province(influx: _Influx, registry: Any, minutes: int) -> int:
    import random

    import numpy as np

    from alerting.reports.daily import day_bounds
    from processors.history.lines import site_minute_line, transition_line
    from processors.history.publish import MinutePublisher
    from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id

    rng = random.Random(3)
    start, _ = day_bounds(DAY, TZ)
    sensors = registry.sensor_list
    publisher = MinutePublisher.for_registry(registry)  # what each site owes per minute
    owed = np.array(publisher.site_owed)
    sensors_of = np.bincount(publisher.sensor_site, minlength=len(publisher.sites))
    points = 0
    for m in range(
        minutes
    ):  # what the historian writes from the worker's records: a point per site and minute
        rng_m = np.random.default_rng(m)
        credited = rng_m.binomial(np.ceil(owed).astype(np.int64), 0.98).tolist()
        lines = [
            site_minute_line(site, region, start + 60 * m, paid, int(n), due)
            for site, region, paid, n, due in zip(
                publisher.sites, publisher.regions, credited, sensors_of, owed.tolist(), strict=True
            )
        ]
        influx.write(lines)
        points += len(lines)
    transitions = []
    for day_start in (start - 86400, start):
        for site in registry.sites.values():
            r = rng.random()
            colour = "red" if r < 0.01 else "orange" if r < 0.04 else "yellow" if r < 0.14 else None
            if colour is None:
                continue
            at = day_start + rng.uniform(0, 80000)
            sensor = next(s for s in sensors if s.site == site.id)
            cause = Cause(
                "gas_l2_two_detectors",
                (CauseItem(sensor.id, sensor.quantity, "l2_high", 60.0, 50.0, sensor.uom, at),),
                "",
            )
            for new, old, t in ((colour, "normal", at), ("normal", colour, at + rng.uniform(60, 3600))):
                transitions.append(Transition(transition_id("warning", "site", site.id, new, t), "warning", "site",
                                              site.id, old, new, t, cause, site.id, site.region))  # fmt: skip
    gateways = list(registry.gateways.values())
    for g in rng.sample(gateways, max(1, len(gateways) // 50)):
        at = start + rng.uniform(0, 80000)
        for s in (s for s in sensors if s.gateway == g.id):
            for new, old, t, rule in (
                ("stale", "normal", at, "gateway_offline"),
                ("normal", "stale", at + 1800, "reading"),
            ):
                transitions.append(Transition(transition_id("alarm", "sensor", s.id, new, t), "alarm", "sensor", s.id,
                                              old, new, t, Cause(rule), s.site, registry.sites[s.site].region))  # fmt: skip
    influx.write([transition_line(t) for t in transitions])
    return points + len(transitions)


def _alert_store(path: Path, registry: Any, flagged: list[str]) -> None:
    from alerting.config import load_config
    from alerting.lifecycle.manager import AlertManager
    from alerting.reports.daily import day_bounds
    from alerting.routing.sites import SiteDirectory
    from alerting.store import Store
    from riskwatch.wire.transitions import Cause, Transition, transition_id

    routes = path.with_suffix(".yaml")
    routes.write_text(
        "receivers: {duty: {channels: []}}\nroute: {receiver: duty, min_colour: yellow}\n", encoding="utf-8"
    )
    cfg = load_config(routes)
    start, _ = day_bounds(DAY, TZ)
    now = [start + 3600.0]
    manager = AlertManager(Store(path), cfg, SiteDirectory(cfg.sites), lambda: now[0], lambda: None)
    for i, site_id in enumerate(flagged):
        site = registry.sites[site_id]
        now[0] = start + 3600 + i
        t = Transition(transition_id("warning", "site", site_id, "orange", now[0]), "warning", "site", site_id,
                       "normal", "orange", now[0], Cause("bench"), site_id, site.region)  # fmt: skip
        manager.handle(t)
        if i % 2 == 0:
            alert = manager.store.list_alerts(site=site_id)[0]
            now[0] += 100
            manager.acknowledge(alert.id, "duty", "")
            manager.close(alert.id, "duty", "处置完毕")
    manager.store.close()


def measure(args: argparse.Namespace) -> dict[str, float | int | str]:
    from alerting.history.alerts import AlertArchive
    from alerting.history.influx import InfluxConnection, InfluxHistory
    from alerting.reports import daily
    from alerting.reports.daily import day_bounds
    from riskwatch.paths import home_dir

    url, token = args.influx_url, os.environ.get("RISKWATCH_INFLUX_TOKEN", "")
    if url is None:
        from deploy.stack import Stack

        info = Stack(args.stack_home or home_dir() / "stack").info()
        url, token = info.influx_url, token or info.influx_token
    database = "rw_bench_bulletin"
    influx = _Influx(url, token, database)
    t0 = time.perf_counter()
    registry = province(args.sensors, args.enterprises)
    print(f"bulletin bench: {len(registry.sites)} enterprises, {len(registry)} sensors, "
          f"{len(registry.gateways)} gateways ({time.perf_counter() - t0:.1f} s to build)")  # fmt: skip
    influx.query(f'DROP DATABASE "{database}"')
    influx.query(f'CREATE DATABASE "{database}"')
    t0 = time.perf_counter()
    points = _write_province(influx, registry, args.minutes)
    print(f"wrote {points:,} points in {time.perf_counter() - t0:.1f} s")
    history = InfluxHistory(InfluxConnection(url, token, f"{database}/autogen"))
    start, end = day_bounds(DAY, TZ)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "alerts.db"
        flagged_rows = history.transitions(start, end, kind="warning", entity_type="site")
        _alert_store(db, registry, sorted({r.entity for r in flagged_rows if r.new in ("orange", "red")}))
        archive = AlertArchive(db)
        t0 = time.perf_counter()  # baseline: read it all back, nothing else
        history.transitions(start - 86400 - daily.COLOUR_LOOKBACK_S, end, kind="warning", entity_type="site")
        history.transitions(
            start - daily.GATEWAY_LOOKBACK_S, end, kind="alarm", entity_type="sensor", touching="stale"
        )
        credited = history.credited_per_site(start, end)
        archive.alerts(start, end)
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        bulletin = daily.gather(registry, history, archive, DAY, TZ, lambda a: 900.0, end + 3600)
        gather_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, pdf_path = daily.write(bulletin, Path(tmp) / "out")
        render_s = time.perf_counter() - t0
        described = subprocess.run(["pdfinfo", str(pdf_path)], capture_output=True, text=True).stdout
        pages = next((line.split()[-1] for line in described.splitlines() if line.startswith("Pages:")), "?")
        archive.close()
    if not args.keep:
        influx.query(f'DROP DATABASE "{database}"')
    total = gather_s + render_s
    print(f"read back only (baseline): {read_s:.2f} s ({len(credited):,} sites' completeness summed)")
    print(f"bulletin: gather {gather_s:.2f} s + HTML and PDF {render_s:.2f} s = {total:.2f} s "
          f"({len(bulletin.flagged)} enterprises orange or red, {pages} PDF pages); "
          f"{total / read_s:.2f}x the read-back")  # fmt: skip
    sensors = len(registry)
    return {
        "readings_per_s": sensors / total, "baseline_readings_per_s": sensors / read_s,
        "ratio": read_s / total, "bulletin_s": total, "gather_s": gather_s, "render_s": render_s,
        "read_back_s": read_s, "enterprises": len(registry.sites), "sensors": sensors,
        "minutes_written": args.minutes,
    }  # fmt: skip
