"""Shared fixtures. Integration tests get a real local stack, started once per test session.

The stack (Kafka in KRaft mode, Mosquitto with passwords and ACLs, InfluxDB 1.8.10) runs on free loopback
ports under a temporary home and is stopped by its recorded pids when the session ends. Each test gets
its own topic prefix, so tests never see each other's records.
"""

from __future__ import annotations

import shutil
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
def stack_services(stack_home: Path) -> Iterator[object]:
    """The session's `Stack`: started once, stopped by its recorded pids when the session ends."""
    from deploy.stack import Stack
    from deploy.stack.settings import StackSettings

    local = Stack(stack_home, settings=StackSettings.create())
    # A CI time-out or `kill` sends SIGTERM: turn it into KeyboardInterrupt so the stack is still stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        local.up(topics=())
        RUNNING.append(local)
        yield local
    finally:
        RUNNING.clear()
        local.down()


@pytest.fixture(scope="session")
def stack(stack_services: object) -> object:
    """The running local stack's `StackInfo` (kafka_bootstrap, mqtt_*, bridge_*, influx_*)."""
    return stack_services.info()  # type: ignore[attr-defined]


RESTARTED: list[str] = []
RUNNING: list[object] = []  # the session's Stack once started, for the liveness check below


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before each test that uses the stack, restart a service that died since the previous test.

    This runs before any of the test's fixtures, module-scoped ones included, so one dead service
    fails at most the test that was running when it died. Mosquitto 2.0.x (2.0.11 and 2.0.21 alike)
    crashed mid-suite when a session with a finite expiry that had been taken over expired
    (docs/deploy.md, "Mosquitto version"); the suite no longer leaves such sessions behind, and this
    stays as the safety net. The restart is reported in the session summary with the service's log tail,
    so a crash is never hidden.
    """
    if not RUNNING or "stack" not in getattr(item, "fixturenames", ()):
        return
    from deploy.stack.process import log_tail

    for service in RUNNING[0].services():  # type: ignore[attr-defined]
        if service.pid() is None:
            RESTARTED.append(
                f"{service.name} was not running before {item.nodeid}; restarted. "
                f"Last lines of {service.log}:\n{log_tail(service.log)}"
            )
            if service.name == "mosquitto":
                # Its saved sessions may carry the corruption it crashed on: start without them.
                shutil.rmtree(service.dir / "persist", ignore_errors=True)
            service.start()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESTARTED:
        terminalreporter.section("stack services restarted during the run")
        for line in RESTARTED:
            terminalreporter.write_line(line)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture
def topics(stack: object) -> Topics:
    """A unique topic prefix per test, with its six topics created."""
    from deploy.stack import ensure_topics

    prefix = f"t{uuid.uuid4().hex[:10]}"
    names = Topics(prefix)
    ensure_topics(stack, names, TEST_PARTITIONS)  # type: ignore[attr-defined]
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/integration needs the real stack: mark it so `-m "not integration"` works.
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)
