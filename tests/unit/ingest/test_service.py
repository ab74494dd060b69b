"""The bridge's health: a dead internal thread makes /healthz 503 and the process exit non-zero."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from ingest.cli import EXIT_TASK_DIED, supervise
from ingest.service import BridgeService
from ingest.settings import BridgeSettings
from tests.unit.ingest.conftest import small_registry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _no_kafka(settings: BridgeSettings) -> None:
    raise RuntimeError("Kafka is not part of this test")


@pytest.fixture
def service(tmp_path: Path) -> BridgeService:
    settings = BridgeSettings(
        registry=tmp_path / "unused",
        mqtt_port=_free_port(),  # nobody listens: paho keeps retrying, which is healthy
        spool_dir=tmp_path / "spool",
        metrics_port=_free_port(),
        shutdown_timeout_s=2.0,
    )
    return BridgeService(settings, small_registry(), producer_factory=_no_kafka)  # type: ignore[arg-type]


def test_a_dead_worker_thread_makes_healthz_fail_and_the_bridge_exit_non_zero(service: BridgeService) -> None:
    service.start()
    port = service.settings.metrics_port
    try:
        status, body = _healthz(port)
        assert status == 200 and body["ok"] and body["threads"]["worker"]

        def broken_tick() -> None:
            raise RuntimeError("a bug outside any message")

        service.bridge.tick = broken_tick  # type: ignore[method-assign]
        deadline = time.monotonic() + 5
        while service._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        status, body = _healthz(port)
        assert status == 503 and body == {
            "ok": False,
            "threads": {"worker": False, "kafka-sink": True, "mqtt": True, "http": True},
        }
        code: list[int] = []
        runner = threading.Thread(target=lambda: code.append(supervise(service, threading.Event(), 0.05)))
        runner.start()
        runner.join(10)
        assert code == [EXIT_TASK_DIED]
    finally:
        service.abort()


def test_metrics_are_still_served(service: BridgeService) -> None:
    service.start()
    url = f"http://127.0.0.1:{service.settings.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert b"riskwatch_bridge_messages_in" in response.read()
    stop = threading.Event()
    stop.set()
    assert supervise(service, stop, 0.05) in (0, 1)  # a requested stop is a flushed, ordinary exit
