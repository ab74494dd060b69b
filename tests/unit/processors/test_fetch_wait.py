"""The worker shortens the consumer's fetch wait that Faust 0.15.3 fixes at 1500 ms (agents.tune_fetcher)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import aiokafka
import pytest

from processors.agents import tune_fetcher


def _app(consumer: object) -> SimpleNamespace:
    return SimpleNamespace(consumer=SimpleNamespace(_thread=SimpleNamespace(_consumer=consumer)))


def test_sets_the_wait_on_a_real_aiokafka_consumer_and_its_fetcher() -> None:
    async def check() -> None:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", fetch_max_wait_ms=1500)
        consumer._fetcher = SimpleNamespace(_fetch_max_wait_ms=1500)  # what start() makes
        assert tune_fetcher(_app(consumer), 50)  # type: ignore[arg-type]
        assert consumer._fetch_max_wait_ms == 50 and consumer._fetcher._fetch_max_wait_ms == 50

    asyncio.run(check())


def test_an_unknown_consumer_is_reported_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert not tune_fetcher(_app(None), 50)  # type: ignore[arg-type]
    assert "fetch wait" in caplog.text
