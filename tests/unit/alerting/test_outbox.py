"""Outbox delivery: back-off on retryable failures, give up audited, notify audited. Injected clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from alerting.channels.base import Message, SendResult
from alerting.dispatch.dispatcher import Dispatcher
from alerting.dispatch.outbox import Deliverer, backoff
from alerting.lifecycle.manager import AlertManager
from alerting.metrics import AlertingMetrics
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from tests.unit.alerting.conftest import FakeClock, make_config, warning


class ScriptedChannel:
    """A channel whose answers are given in advance: the pipeline's view of a flaky receiver."""

    def __init__(self, name: str, answers: list[SendResult]) -> None:
        self.name, self.answers, self.sent = name, answers, []

    async def send(self, message: Message) -> SendResult:
        self.sent.append(message.key)
        return self.answers.pop(0) if self.answers else SendResult.ok()

    async def close(self) -> None:
        return None


def pipeline(tmp: Path, clock: FakeClock, answers: list[SendResult], extra: str = ""):  # type: ignore[no-untyped-def]
    cfg = make_config("route: {receiver: leader, group_wait: 0s}\n" + extra)
    store = Store(tmp / "a.db")
    directory = SiteDirectory(cfg.sites)
    manager = AlertManager(store, cfg, directory, clock)
    channel = ScriptedChannel("hook", answers)
    metrics = AlertingMetrics(CollectorRegistry())
    deliverer = Deliverer(store, {"hook": channel}, cfg.defaults, metrics)  # type: ignore[dict-item]
    return manager, Dispatcher(store, cfg, directory, clock()), deliverer, channel


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n, 1.0, 5.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_retryable_failures_back_off_then_deliver_once(tmp_path: Path, clock: FakeClock) -> None:
    answers = [SendResult.retryable("503"), SendResult.retryable("503")]
    manager, dispatcher, deliverer, channel = pipeline(tmp_path, clock, answers)
    manager.handle(warning())
    dispatcher.step(clock())
    attempts_at = []
    for _ in range(8):
        result = asyncio.run(deliverer.step(clock()))
        if result.ok or result.retrying:
            attempts_at.append((round(clock() - 1_795_000_000.0, 1), result.ok))
        clock.advance(0.5)
    assert attempts_at == [(0.0, 0), (1.0, 0), (3.0, 1)]  # retry after 1 s, then after 2 s
    assert len(set(channel.sent)) == 1  # the same message (key) every time
    alert_id = manager.store.list_alerts()[0].id
    assert [e.type for e in manager.store.events_for(alert_id)] == ["opened", "notified"]
    assert manager.store.outbox_status() == {"delivered": 1}
    sample = deliverer.metrics.registry.get_sample_value
    assert sample("riskwatch_alerting_notifications_total", {"channel": "hook", "outcome": "retryable"}) == 2
    assert sample("riskwatch_alerting_notifications_total", {"channel": "hook", "outcome": "ok"}) == 1


def test_permanent_error_and_exhausted_retries_are_audited_as_failed(
    tmp_path: Path, clock: FakeClock
) -> None:
    manager, dispatcher, deliverer, _ = pipeline(
        tmp_path, clock, [SendResult.error("HTTP 400: bad robot")] + [SendResult.retryable("down")] * 3,
        "defaults: {max_attempts: 3, retry_initial: 1s}",
    )  # fmt: skip
    manager.handle(warning(entity="S1"))
    manager.handle(warning(entity="S2", site="S2"))
    dispatcher.step(clock())
    for _ in range(10):
        asyncio.run(deliverer.step(clock()))
        clock.advance(1)
    assert manager.store.outbox_status() == {"failed": 2}
    failures = [e for e in manager.store.events_after(0) if e.type == "delivery_failed"]
    assert sorted(e.note for e in failures) == ["HTTP 400: bad robot", "down"]
    assert {e.detail["attempts"] for e in failures} == {1, 3}
