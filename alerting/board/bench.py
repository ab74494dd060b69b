"""Board at province scale in a real browser: 5,000 sites, 500 open alerts.

    python -m alerting.board.bench --kafka HOST:PORT [--sites 5000 --alerts 500 --changes 20 --json FILE]

Runs the real alerting service (consumer, store, HTTP app with the board) against Kafka (e.g. the local
stack: `riskwatch stack up`, then `riskwatch stack info` for the address), loads `--alerts` red warnings
onto rw.warnings so that many alerts are open, opens the board in Debian's chromium (Playwright) and
measures:

- time to first full render: from the board page's navigation start to the map, counts and desk drawn
  with every site and alert (the page's own performance clock);
- warning -> page: from a warning's send to Kafka being acknowledged to its colour on the map, for
  `--changes` warnings one after the other (p50 and max).

Each figure comes with a baseline measured in the same run, against the same service, so the ratio holds
on a busy machine where the absolute times do not:

- render baseline: fetching what the page needs to start (`/api/board/state` and the map geometry) with a
  plain HTTP client — the floor under any page; `render_ratio` is the page's render over it;
- live baseline: a plain SSE client on the board's own feed, open beside the page, timing the same
  warnings to their `level` event — the floor set by Kafka, the service and the feed; `live_ratio` is the
  page's p50 over the feed's p50 (what the browser adds: parsing, the map's redraw).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import random
import ssl
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from alerting.board.screenshots import CHROMIUM, CHROMIUM_ARGS, _free_port
from alerting.config import Secret, Secrets, parse_config
from alerting.service import AlertingService, ServiceOptions
from riskwatch.kafka_access import KafkaAccess, kafka_option_help
from riskwatch.registry import load_registry
from riskwatch.tls import ClientTLS
from riskwatch.topics import Topics
from riskwatch.wire.transitions import Cause, Transition, transition_id

# Box (lat, lon) of each example region, to spread sites over the shipped map.
BOXES = {
    "CN-370500": (37.3, 38.0, 118.2, 119.0),
    "CN-140500": (35.3, 35.9, 112.2, 113.0),
    "CN-130800": (40.3, 41.9, 116.5, 118.5),
    "CN-130582": (36.8, 36.95, 114.2, 114.5),
}
TOKEN = "bench-token-0123456789abcdef"


def registry_doc(n_sites: int, seed: int = 11) -> dict[str, Any]:
    rng = random.Random(seed)
    regions = list(BOXES)
    sites = []
    for i in range(n_sites):
        region = regions[i % len(regions)]
        lat0, lat1, lon0, lon1 = BOXES[region]
        sid = f"B{i:05d}"
        sites.append({
            "id": sid, "region": region, "name": f"企业 {i}", "industry": "hazardous_chemicals",
            "static_score": float(rng.randint(55, 98)), "lat": round(rng.uniform(lat0, lat1), 5),
            "lon": round(rng.uniform(lon0, lon1), 5), "gateways": [{"id": f"{sid}-GW"}],
            "units": [{"id": f"{sid}-U1", "kind": "tank_farm", "sensors": [{"id": f"{sid}-G1", "type": "flammable_gas"}]}],
        })  # fmt: skip
    return {"version": 1, "regions": [{"id": r, "name": r} for r in regions], "sites": sites}


def warning(site: str, region: str, old: str, new: str, at: float) -> Transition:
    return Transition(
        transition_id("warning", "site", site, new, at), "warning", "site", site, old, new, at,
        Cause("bench"), site, region,
    )  # fmt: skip


class ServiceThread:
    """The real alerting service on its own event loop in a thread."""

    def __init__(self, service: AlertingService) -> None:
        self.service = service
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="alerting", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop, self.stop_event = asyncio.get_running_loop(), asyncio.Event()
            await self.service.run(self.stop_event)

        asyncio.run(main())

    def start(self) -> ServiceThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)


def run(
    kafka: KafkaAccess, n_sites: int = 5000, n_alerts: int = 500, changes: int = 20, https: Any = None
) -> dict[str, Any]:
    """With `https` (a deploy.stack.StackInfo: its HTTPS certificate and CA) the board is served and
    driven over HTTPS, chromium trusting exactly that certificate."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic
    from playwright.sync_api import sync_playwright

    topics = Topics(f"bb{uuid.uuid4().hex[:8]}")
    admin = KafkaAdminClient(**kafka.kafka_python())
    admin.create_topics([NewTopic(t, 3, 1) for t in topics.all()])
    admin.close()
    tmp = Path(tempfile.mkdtemp(prefix="board-bench-"))
    doc = registry_doc(n_sites)
    (tmp / "registry.json").write_bytes(orjson.dumps(doc))
    registry = load_registry(tmp / "registry.json")
    cfg = parse_config({
        "people": {"duty": {"name": "值班员"}},
        "channels": {"none": {"type": "webhook", "url": "http://127.0.0.1:9/none"}},
        "receivers": {"duty": {"people": ["duty"], "channels": ["none"]}},
        "route": {"receiver": "duty", "min_colour": "yellow", "group_wait": "60s", "group_interval": "60s"},
        "api_tokens": [{"user": "bench", "role": "supervisor", "token_env": "X"}],
    }, "bench")  # fmt: skip
    port = _free_port()
    certs = {"tls_certfile": https.https_certfile, "tls_keyfile": https.https_keyfile} if https else {}
    options = ServiceOptions(kafka=kafka, db=tmp / "alerting.db", topic_prefix=topics.prefix, port=port,
                             group=f"alerting-{topics.prefix}", tick_s=0.5, **certs)  # fmt: skip
    tls = options.tls
    service = AlertingService(
        options, cfg, Secrets({"api_tokens.bench": Secret(TOKEN)}), site_registry=registry
    )
    svc = ServiceThread(service).start()
    producer = KafkaProducer(**kafka.kafka_python(), acks="all", linger_ms=5)
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    context = ClientTLS(https.cafile).context() if https is not None else None
    trust: list[str] = []
    if https is not None:
        from deploy.stack.certs import chromium_trust_args

        trust = chromium_trust_args(https.https_certfile)
    sites = doc["sites"]
    try:
        now = time.time()
        for s in sites[:n_alerts]:
            producer.send(
                topics.warnings,
                warning(s["id"], s["region"], "normal", "red", now).to_bytes(),
                key=s["id"].encode(),
            )
        producer.flush()
        _wait_alerts(base, n_alerts, 120, context)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *trust])
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(base + "/board/login")
            page.fill("#token", TOKEN)
            page.click("#submit")
            page.wait_for_selector("body[data-ready='1']", timeout=120_000)
            renders, fetches = [], []
            for _ in range(3):  # a fresh navigation each time: first full render with everything
                fetches.append(fetch_start_data(port, context))
                page.goto("about:blank")
                page.goto(base + "/board/")
                page.wait_for_function(
                    "() => window.rwBoard && rwBoard.renderedAt", timeout=120_000, polling=50
                )
                renders.append(page.evaluate("rwBoard.renderedAt") / 1000)
            shown = page.evaluate("() => rwBoard.chart.getOption().series.flatMap(s => s.data).length")
            open_alerts = page.evaluate("rwBoard.alerts.size")
            feed = FeedClock(port, context)
            feed.ready.wait(30)
            delays, feed_delays = [], []
            for k in range(changes):
                s = sites[n_alerts + k]
                t = warning(s["id"], s["region"], "normal", "orange", time.time())
                future = producer.send(topics.warnings, t.to_bytes(), key=s["id"].encode())
                future.get(timeout=10)
                on_kafka = time.time()
                page.wait_for_function(
                    f"() => rwBoard.chart.getOption().series.flatMap(s => s.data).find(d => d.name === '{s['id']}').live === 'orange'",
                    timeout=30_000, polling="raf",
                )  # fmt: skip
                delays.append(time.time() - on_kafka)
                feed_delays.append(feed.wait(s["id"], "orange") - on_kafka)
            feed.close()
            browser.close()
    finally:
        producer.close()
        svc.stop()
    render, fetch = statistics.median(renders), statistics.median(fetches)
    page_p50, feed_p50 = statistics.median(delays), statistics.median(feed_delays)
    return {
        "sites": n_sites, "sites_on_map": shown, "open_alerts": open_alerts,
        "first_full_render_s": {"runs": [round(r, 3) for r in renders], "median": round(render, 3)},
        "start_data_fetch_s": {"runs": [round(f, 3) for f in fetches], "median": round(fetch, 3)},
        "render_ratio": _ratio(render, fetch),
        "warning_to_page_s": {"p50": round(page_p50, 3), "max": round(max(delays), 3), "n": len(delays)},
        "warning_to_feed_s": {"p50": round(feed_p50, 3), "max": round(max(feed_delays), 3)},
        "live_ratio": _ratio(page_p50, feed_p50),
    }  # fmt: skip


class FeedClock:
    """A plain SSE client on the board's feed, in a thread: when each site's `level` event arrived."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.seen: dict[tuple[str, str], float] = {}
        self.ready = threading.Event()
        self.conn = _connection(port, context, 300)
        threading.Thread(target=self._read, name="feed-clock", daemon=True).start()

    def _read(self) -> None:
        self.conn.request("GET", "/api/board/events", headers={"Authorization": f"Bearer {TOKEN}"})
        response = self.conn.getresponse()
        self.ready.set()
        kind = ""
        try:
            for raw in response:
                line = raw.rstrip(b"\r\n")
                if line.startswith(b"event: "):
                    kind = line[7:].decode()
                elif line.startswith(b"data: ") and kind == "level":
                    doc = orjson.loads(line[6:])
                    if doc.get("type") == "site":
                        self.seen.setdefault((doc["entity"], doc["level"]), time.time())
        except (OSError, ValueError, AttributeError):
            pass  # the connection was closed under the reader at the end of the run

    def wait(self, site: str, level: str, timeout_s: float = 30.0) -> float:
        deadline = time.time() + timeout_s
        while (site, level) not in self.seen:
            if time.time() > deadline:
                raise TimeoutError(f"the board's feed did not show {site} {level} within {timeout_s:.0f} s")
            time.sleep(0.005)
        return self.seen[(site, level)]

    def close(self) -> None:
        self.conn.close()


def _connection(port: int, context: ssl.SSLContext | None, timeout: float) -> http.client.HTTPConnection:
    """To the board's port, over HTTPS (verified with `context`) when the board is served so."""
    if context is not None:
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


def fetch_start_data(port: int, context: ssl.SSLContext | None = None) -> float:
    """Seconds for a plain client to fetch what a board page needs to start: its state and the map."""
    started = time.perf_counter()
    for path in ("/api/board/state", "/api/board/map.json"):
        conn = _connection(port, context, 60)
        conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")
        response.read()
        conn.close()
    return time.perf_counter() - started


def _ratio(figure: float, baseline: float) -> float:
    return round(figure / baseline, 2) if baseline > 0 else float("inf")


def _wait_alerts(base: str, n: int, timeout_s: float, context: ssl.SSLContext | None = None) -> None:
    import urllib.request

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            req = urllib.request.Request(
                base + "/api/alerts?limit=1000", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            with urllib.request.urlopen(req, timeout=5, context=context) as r:
                if len(orjson.loads(r.read())["alerts"]) >= n:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"alerting did not open {n} alerts within {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kafka", required=True, help=kafka_option_help("tools") + " (riskwatch stack info)")
    parser.add_argument("--sites", type=int, default=5000)
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(KafkaAccess.from_env(args.kafka, "tools"), args.sites, args.alerts, args.changes)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
