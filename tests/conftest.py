"""Shared fixtures. Integration tests get a real local stack, started once per test session.

The stack (Kafka in KRaft mode, Mosquitto with passwords and ACLs, InfluxDB 1.8.10) runs on free loopback
ports under a temporary home and is stopped by its recorded pids when the session ends. Each test gets
its own topic prefix, so tests never see each other's records.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from riskwatch.topics import Topics

TEST_PARTITIONS = 3


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def stack(stack_home: Path) -> Iterator[object]:
    """The running local stack's `StackInfo` (kafka_bootstrap, mqtt_*, bridge_*, influx_*)."""
    from deploy.stack import Stack
    from deploy.stack.settings import StackSettings

    local = Stack(stack_home, settings=StackSettings.create())
    # A CI time-out or `kill` sends SIGTERM: turn it into KeyboardInterrupt so the stack is still stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        local.up(topics=())
        yield local.info()
    finally:
        local.down()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture
def topics(stack: object) -> Topics:
    """A unique topic prefix per test, with its six topics created."""
    from deploy.stack import ensure_topics

    prefix = f"t{uuid.uuid4().hex[:10]}"
    names = Topics(prefix)
    ensure_topics(stack.kafka_bootstrap, names.all(), TEST_PARTITIONS)  # type: ignore[attr-defined]
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/integration needs the real stack: mark it so `-m "not integration"` works.
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)
