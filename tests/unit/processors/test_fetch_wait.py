"""The worker shortens the consumer's fetch wait that Faust 0.15.3 fixes at 1500 ms (agents.tune_fetcher).

The tuning reaches into Faust's and aiokafka's private attributes, so these tests use the real objects
of the pinned versions, built the way Faust and aiokafka build them, and fail loudly if an upgrade moves
or renames what the worker relies on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from types import SimpleNamespace

import faust
import pytest
from aiokafka.consumer.fetcher import Fetcher

from processors.agents import tune_fetcher


def _faust_app() -> faust.App:
    return faust.App("fetch-wait-test", broker="kafka://127.0.0.1:9", autodiscover=False, web_enabled=False)


def test_faust_builds_its_consumer_with_a_1500_ms_wait_and_the_worker_shortens_it() -> None:
    async def check() -> None:
        app = _faust_app()
        thread = app.consumer._thread  # where tune_fetcher looks: Faust's aiokafka consumer thread
        # What Faust's AIOKafkaConsumerThread.on_start does before starting the consumer.
        thread._consumer = thread._create_consumer(loop=asyncio.get_running_loop())
        consumer = thread._consumer
        assert consumer._fetch_max_wait_ms == 1500  # if Faust stops fixing it, the workaround may go
        assert tune_fetcher(app, 50)
        assert consumer._fetch_max_wait_ms == 50
        # What AIOKafkaConsumer.start() does once connected: the fetcher takes the consumer's wait.
        assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(type(consumer).start)
        fetcher = Fetcher(consumer._client, consumer._subscription, fetch_max_wait_ms=1500)
        try:
            consumer._fetcher = fetcher
            assert tune_fetcher(app, 40)
            assert fetcher._fetch_max_wait_ms == 40 and consumer._fetch_max_wait_ms == 40
        finally:
            await fetcher.close()
            await consumer._client.close()

    asyncio.run(check())


def test_aiokafka_reads_the_wait_each_time_it_builds_a_fetch() -> None:
    """Setting the attribute on a running fetcher works only because every fetch request is built from it."""
    source = inspect.getsource(Fetcher._get_actions_per_node)  # where aiokafka 0.14 builds its requests
    assert re.search(r"FetchRequest\(\s*self\._fetch_max_wait_ms,", source)


def test_an_unknown_consumer_is_reported_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    app = SimpleNamespace(consumer=SimpleNamespace(_thread=SimpleNamespace(_consumer=None)))
    with caplog.at_level(logging.WARNING):
        assert not tune_fetcher(app, 50)  # type: ignore[arg-type]
    assert "fetch wait" in caplog.text
