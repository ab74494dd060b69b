"""`riskwatch run` against the real stack: each component SIGKILLed in turn under load comes back healthy
within 10 s, the run's log says what was restarted and why, no reading the broker acknowledged is lost on
rw.telemetry, and Ctrl-C (SIGINT) stops everything, leaving no child behind."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from deploy.run import REPO
from deploy.stack import add_bridge_accounts, add_gateways, ensure_topics
from deploy.supervisor import probe_http
from riskwatch.topics import Topics
from simulators import synthetic
from simulators.bench_e2e import ROUTES_TEMPLATE
from simulators.kafka_watch import TelemetryCounter, TopicReader
from simulators.load import run_load
from simulators.pipeline import free_port
from simulators.simulated_gateway import Broker, announce_online
from simulators.webhook import WebhookReceiver
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENSORS = 600  # 6 gateways of 100 sensors at 1 Hz: light load, every kill under it
LOAD_S = 55.0
COMPONENTS = ("bridge", "worker", "historian", "alerting")  # start order
BACK_WITHIN_S = 10.0


def _pid(run_dir: Path, name: str) -> int | None:
    try:
        return int((run_dir / "pids" / f"{name}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_run_restarts_each_killed_component_and_loses_nothing(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topics = Topics(f"sv{uuid.uuid4().hex[:10]}")
    ensure_topics(stack, topics, 3)
    doc = synthetic.registry_doc(SENSORS, 100)
    registry = synthetic.write_registry(doc, tmp_path / "registry.json")
    sensors, industries = synthetic.sim_sensors(doc)
    secret = secrets.token_hex(16)
    receiver = WebhookReceiver(secret=secret).start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES_TEMPLATE.read_text().replace("{webhook_url}", receiver.url))
    # Client ids are bound to MQTT accounts: this run's bridge gets an account of its own.
    bridge_user = f"bridge-{topics.prefix}"
    bridge_password = add_bridge_accounts(stack, [bridge_user])[bridge_user]
    passwords = add_gateways(stack, sorted({(s.site, s.gateway) for s in sensors}))
    broker = Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls)
    announce_online({s.gateway: s.site for s in sensors}, broker)

    run_dir = tmp_path / "run"
    ports = {"bridge": free_port(), "worker": free_port(), "historian": free_port(), "alerting": free_port()}
    health = {
        "bridge": f"http://127.0.0.1:{ports['bridge']}/healthz",
        "worker": f"http://127.0.0.1:{ports['worker']}/healthz",
        "historian": f"http://127.0.0.1:{ports['historian']}/healthz",
        "alerting": f"https://127.0.0.1:{ports['alerting']}/healthz",  # the stack's certificate
    }
    argv = [
        sys.executable, "-m", "riskwatch", "run", "--registry", str(registry), "--routes", str(routes),
        "--stack-home", str(stack.home), "--mqtt-user", bridge_user, "--topic-prefix", topics.prefix,
        "--run-dir", str(run_dir), "--bridge-metrics-port", str(ports["bridge"]),
        "--worker-port", str(ports["worker"]), "--worker-metrics-port", str(free_port()),
        "--historian-metrics-port", str(ports["historian"]), "--alerting-port", str(ports["alerting"]),
    ]  # fmt: skip
    env = {
        **os.environ,
        "RISKWATCH_MQTT_PASSWORD": bridge_password,
        "RISKWATCH_DEMO_WEBHOOK_SECRET": secret,
    }
    console = tmp_path / "console.log"
    counter = TelemetryCounter(TopicReader(stack.kafka("tools"), topics.telemetry), sites=industries)
    with console.open("wb") as out:
        run = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    children: set[int] = set()

    def output() -> str:
        return console.read_text(errors="replace")

    def healthy(name: str) -> bool:
        return probe_http(health[name], 1.0, stack.cafile).ok

    try:
        assert wait_for(lambda: all(healthy(n) for n in COMPONENTS), 120, 0.5), output()
        children |= {p for n in COMPONENTS if (p := _pid(run_dir, n))}

        results: list[Any] = []
        load = threading.Thread(
            target=lambda: results.append(
                run_load(sensors, industries, broker, counter, 1.0, LOAD_S, processes=1)
            ),
            name="load",
        )
        load.start()
        time.sleep(8)
        back_in: dict[str, float] = {}
        for name in COMPONENTS:
            old = _pid(run_dir, name)
            assert old is not None and _alive(old), f"{name} not running\n{output()}"
            os.kill(old, signal.SIGKILL)
            killed = time.monotonic()

            def back(name: str = name, old: int = old) -> bool:
                new = _pid(run_dir, name)
                return new is not None and new != old and _alive(new) and healthy(name)

            assert wait_for(back, BACK_WITHIN_S, 0.2), (
                f"{name} not back and healthy within {BACK_WITHIN_S:g} s\n{output()}"
            )
            back_in[name] = time.monotonic() - killed
            children.add(_pid(run_dir, name) or 0)
            time.sleep(5)
        load.join(LOAD_S + 120)
        assert results, "the load generator did not finish"
        result, _ = results[0]

        # Nothing the broker acknowledged is lost on rw.telemetry (de-duplicated by gateway and seq).
        assert result.publish_errors == 0
        assert result.acked == result.sent > 0.9 * SENSORS * LOAD_S
        assert result.lost == 0, f"{result.lost} of {result.acked} acknowledged readings never reached Kafka"

        # The run's log says what was restarted, why, and when it was healthy again.
        text = output()
        for name in COMPONENTS:
            assert re.search(rf"{name} was killed by SIGKILL; restarting in 1 s \(restart 1\)", text), (
                f"no restart line for {name}\n{text}"
            )
            assert f"{name} is healthy again" in text, text
        kept = (run_dir / "logs" / "run.log").read_text()  # the same lines, kept on disk
        assert "worker was killed by SIGKILL; restarting in 1 s" in kept, kept
    finally:
        counter.reader.close()
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
        try:
            code = run.wait(90)
        except subprocess.TimeoutExpired:
            run.kill()
            code = None
        receiver.stop()
        children |= {p for n in COMPONENTS if (p := _pid(run_dir, n))}
        leftover = [pid for pid in children if pid and _alive(pid)]
        for pid in leftover:  # never leave a child behind, even when the test failed
            os.kill(pid, signal.SIGKILL)

    # Ctrl-C stopped everything cleanly: exit 0, each child stopped in reverse order, none left.
    text = output()
    assert code == 0, text
    assert "SIGINT: stopping" in text and "everything stopped" in text, text
    stops = [text.index(f"{n} stopped (status") for n in reversed(COMPONENTS)]
    assert stops == sorted(stops), text
    assert not leftover, f"children still running after Ctrl-C: {leftover}"
    assert not list((run_dir / "pids").glob("*.pid"))
    print(f"back healthy after SIGKILL: {back_in}")
