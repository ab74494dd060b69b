"""The scenario runner publishes every gateway of the registry on time and applies injections,
against the real Mosquitto of the stack (no pipeline needed for what is checked here)."""

from __future__ import annotations

import orjson

from deploy.stack import add_gateways
from riskwatch.registry import load_registry
from riskwatch.wire.gateway_protocol import parse_telemetry
from simulators.cli import DEFAULT_REGISTRY
from simulators.scenarios.model import parse_scenario
from simulators.scenarios.runner import ScenarioRunner, scope_of
from simulators.simulated_gateway import Broker
from simulators.simulation import Simulation
from tests.integration.simulators.mqtt_watch import Watch


def test_runner_publishes_all_gateways_and_drops_and_restores_one(stack) -> None:
    registry = load_registry(DEFAULT_REGISTRY)
    passwords = add_gateways(stack, [(g.site, g.id) for g in registry.gateways.values()])
    scenario = parse_scenario(
        {
            "name": "short",
            "duration_s": 4,
            "tick_s": 0.5,
            "injections": [
                {"at": 1.0, "fault": "disconnect", "target": "GW-COAL-01B"},
                {"at": 2.5, "fault_stop": "disconnect", "target": "GW-COAL-01B"},
                {"at": 1.0, "fault": "stuck", "target": "CHEM-02-TF1-LEL-03", "params": {"value": 60.0}},
            ],
        },
        str(DEFAULT_REGISTRY.parent / "short.yaml"),
    )
    sim = Simulation.from_registry(registry)
    watch = Watch(stack)
    logs: list[str] = []
    try:
        runner = ScenarioRunner(
            scenario, sim, Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls), None,
            scope_of(sim, {}), log=logs.append,
        )  # fmt: skip
        record = runner.run()
        assert all(inj.at <= at < inj.at + 0.6 for at, inj in record.applied)  # on the next tick
        assert len(record.applied) == 3
        assert logs[0].endswith("inject  fault disconnect on GW-COAL-01B")
        telemetry = watch.wait_for(lambda m: m[0].endswith("/telemetry"))
        by_gateway: dict[str, list[int]] = {}
        stuck = []
        for _topic, payload, _ in telemetry:
            msg = parse_telemetry(payload)
            by_gateway.setdefault(msg.gateway, []).append(msg.seq)
            stuck += [v for s, v in zip(msg.sensor, msg.value, strict=True) if s == "CHEM-02-TF1-LEL-03"]
        assert set(by_gateway) == set(registry.gateways)
        assert all(seqs == sorted(set(seqs)) for seqs in by_gateway.values())  # strictly increasing
        # 9 ticks; the dropped gateway missed the ticks while it was away.
        assert len(by_gateway["GW-CHEM-01A"]) == 9 and 4 <= len(by_gateway["GW-COAL-01B"]) <= 7
        assert stuck.count(60.0) >= 5
        states = [
            orjson.loads(p)["state"]
            for t, p, retained in watch.wait_for(lambda m: m[0] == "rw/v1/COAL-01/GW-COAL-01B/status")
            if not retained  # the status an earlier test's gateway left in the broker, not this run's
        ]
        assert states[:3] == ["online", "offline", "online"]
        assert record.readings == sum(len(parse_telemetry(p).sensor) for _, p, _ in telemetry)
    finally:
        watch.close()
