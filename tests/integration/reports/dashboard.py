"""The Grafana dashboard's queries run against real servers: its PromQL through a real Prometheus that
scrapes the running components (with the shipped scrape configuration and alert rules), its InfluxQL
against the real InfluxDB holding the history. Grafana itself is not started here (see docs/operations.md).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "riskwatch.json"


def queries(datasource: str) -> list[tuple[str, str]]:
    """(panel title, query) of every target of the dashboard on `datasource` ("prometheus" or
    "influxdb"), template variables' queries included."""
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = [
        (panel.get("title", ""), target.get("expr") or target.get("query") or "")
        for panel in doc.get("panels", [])
        for target in panel.get("targets", [])
        if (target.get("datasource") or panel.get("datasource") or {}).get("type") == datasource
    ]
    out += [
        (f"variable {v['name']}", v["query"])
        for v in doc.get("templating", {}).get("list", [])
        if v.get("datasource", {}).get("type") == datasource
    ]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """Debian's `prometheus` on a free loopback port, scraping `targets` (job -> host:port) every second
    with the shipped configuration's jobs and rule file; stopped by its own pid."""

    def __init__(self, folder: Path, targets: dict[str, str]) -> None:
        config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config.get("rule_files", [])]
        jobs = {job["job_name"] for job in config["scrape_configs"]}
        if set(targets) != jobs:
            raise AssertionError(f"the test scrapes {sorted(targets)}, the shipped config {sorted(jobs)}")
        for job in config["scrape_configs"]:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.started = time.time()
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = folder / "prometheus.log"
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        end = time.time() + 60
        while time.time() < end:
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).read()
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError(
            f"Prometheus did not become ready: {self.log.read_text(errors='replace')[-2000:]}"
        )

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # a query that does not parse: 400 with the reason
            return json.load(exc)

    def targets_up(self) -> dict[str, str]:
        doc = self.api("targets")
        return {t["labels"]["job"]: t["health"] for t in doc["data"]["activeTargets"]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def metric_names(expr: str) -> set[str]:
    """The riskwatch metric names an expression reads (a histogram's `_bucket` series by its name)."""
    return set(re.findall(r"\b(riskwatch_[a-z_]+|up)\b", expr))


def grafana_influxql(query: str, start: float, end: float, sensor: str) -> str:
    """An InfluxQL panel query as Grafana sends it: its macros and the `$sensor` variable filled in."""
    return (
        query.replace("$timeFilter", f"time >= {int(start)}s AND time <= {int(end)}s")
        .replace("$__interval", "1m")
        .replace("$sensor", re.escape(sensor))
    )
