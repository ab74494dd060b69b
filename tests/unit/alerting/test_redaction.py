"""A robot URL's access token never reaches the audit trail, the outbox, a dead letter or the log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from alerting.channels import build_channel, channel_module
from alerting.channels.base import Message, SendResult
from alerting.dispatch.dispatcher import Dispatcher
from alerting.dispatch.outbox import Deliverer
from alerting.lifecycle.manager import AlertManager
from alerting.metrics import AlertingMetrics
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from tests.unit.alerting.conftest import FakeClock, make_config, warning

TOKEN = "SECRETaccessTOKEN0123"
SIGNING = "SECRETsigning4567"


class LeakyChannel:
    """A channel that raises with its URL in the text, as client libraries do."""

    name = "hook"

    async def send(self, message: Message) -> SendResult:
        raise RuntimeError(f"POST https://oapi.dingtalk.com/robot/send?access_token={TOKEN} failed")

    async def close(self) -> None:
        return None


def deliver(tmp: Path, clock: FakeClock, channel: object, extra: str = "") -> Store:
    cfg = make_config("route: {receiver: leader, group_wait: 0s}\n" + extra)
    store = Store(tmp / "a.db")
    directory = SiteDirectory(cfg.sites)
    manager = AlertManager(store, cfg, directory, clock)
    deliverer = Deliverer(store, {"hook": channel}, cfg.defaults, AlertingMetrics(CollectorRegistry()))  # type: ignore[dict-item]
    manager.handle(warning())
    Dispatcher(store, cfg, directory, clock()).step(clock())
    asyncio.run(deliverer.step(clock()))
    return store


def everything_recorded(store: Store, caplog: pytest.LogCaptureFixture) -> str:
    events = " ".join(f"{e.note} {e.detail}" for e in store.events_after(0))
    letters = " ".join(f"{d.detail} {d.original!r}" for d in store.deadletters())
    outbox = " ".join(str(r) for r in store._db.execute("SELECT * FROM outbox"))  # type: ignore[attr-defined]
    return f"{events} {letters} {outbox} {caplog.text}"


def test_an_exception_carrying_a_robot_url_is_recorded_without_its_token(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = deliver(tmp_path, clock, LeakyChannel())
    recorded = everything_recorded(store, caplog)
    assert "raised RuntimeError" in recorded and "https://oapi.dingtalk.com/***" in recorded
    assert [d.reason for d in store.deadletters()] == ["notification_error"]
    assert TOKEN not in recorded


def test_a_failing_dingtalk_url_never_shows_its_token_or_secret(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # An invalid port: the HTTP client's error text quotes the whole URL, token included.
    url = f"http://127.0.0.1:99999/robot/send?access_token={TOKEN}"
    settings = channel_module("dingtalk").Settings(type="dingtalk", url=url)
    channel = build_channel("hook", settings, SIGNING)
    store = deliver(tmp_path, clock, channel, "defaults: {max_attempts: 1}\n")
    recorded = everything_recorded(store, caplog)
    assert "delivery_failed" in [e.type for e in store.events_after(0)]
    assert "InvalidUrlClientError" in recorded
    assert TOKEN not in recorded and SIGNING not in recorded
