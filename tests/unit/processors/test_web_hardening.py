"""The worker's HTTP: Faust's own pages are closed, every answer carries the security headers."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from processors.app import WorkerSettings, build_app
from processors.health import Health, serve_metrics
from riskwatch.httpheaders import SECURITY_HEADERS
from riskwatch.kafka_access import KafkaAccess
from riskwatch.registry import Registry

WANTED = dict(SECURITY_HEADERS)


def _has_security_headers(headers: object) -> bool:
    return all(headers.get(name) == value for name, value in WANTED.items())  # type: ignore[attr-defined]


def test_faust_builtin_pages_are_closed_and_own_views_secured(
    tmp_path: Path, registry: Registry, fake_engine: object
) -> None:
    settings = WorkerSettings(
        registry=Path("unused"),
        kafka=KafkaAccess("127.0.0.1:9", "riskwatch-worker", "pw"),
        data_dir=tmp_path,
        partitions=2,
    )
    app, _ = build_app(settings, registry, fake_engine, CollectorRegistry())  # type: ignore[arg-type]
    app.web.init_server()  # what the worker does at start: blueprints and views are mounted
    asyncio.run(_probe(app.web.web_app))


async def _probe(web_app: object) -> None:
    async with TestClient(TestServer(web_app)) as client:  # type: ignore[arg-type]
        for path in ("/table/", "/router/", "/graph/", "/assignment/", "/performance/"):
            response = await client.get(path)
            assert response.status == 404, path
            assert _has_security_headers(response.headers), path  # errors carry them too
        index = await client.get("/")
        assert "sensor" not in (await index.text()).lower()  # not Faust's statistics page
        health = await client.get("/healthz")
        assert health.status in (200, 503) and "problems" in await health.json()
        assert _has_security_headers(health.headers)


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
def test_the_worker_metrics_endpoint_sends_security_headers(path: str) -> None:
    server = serve_metrics("127.0.0.1", 0, CollectorRegistry(), Health())
    try:
        url = f"http://127.0.0.1:{server.server_port}{path}"
        try:
            response = urllib.request.urlopen(url, timeout=5)
        except urllib.error.HTTPError as exc:  # 503 while nothing has run yet is fine here
            response = exc
        assert _has_security_headers(response.headers)
    finally:
        server.shutdown()
        server.server_close()


def test_worker_metrics_bind_to_their_own_address_when_told() -> None:
    import argparse

    from processors.cli import configure
    from riskwatch.options import settings_from

    parser = argparse.ArgumentParser()
    configure(parser)
    base = ["--registry", "r.yaml", "--kafka", "k:1", "--data-dir", "d"]
    env = {"RISKWATCH_KAFKA_PASSWORD": "pw"}
    assert settings_from(WorkerSettings, parser.parse_args(base), env).metrics_host == ""  # then --host
    given = settings_from(WorkerSettings, parser.parse_args([*base, "--metrics-host", "10.0.9.1"]), env)
    assert given.metrics_host == "10.0.9.1"
    server = serve_metrics("127.0.0.2", 0, CollectorRegistry(), Health())  # a second loopback address
    try:
        assert server.server_address[0] == "127.0.0.2"
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=2)
    finally:
        server.shutdown()
        server.server_close()
