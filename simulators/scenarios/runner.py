"""Running a scenario in real time: publish every gateway's readings, apply the injections on time, and
collect the warnings the pipeline puts on `rw.warnings`.

Readings carry the runner's clock: real time, or a simulated clock (riskwatch/clock.py) that the bridge,
worker and alerting share, so a scenario measured in simulated seconds runs `speed` times faster. Slow
physics can also be sped up per site with the scenario's `speed`, timestamps staying real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeGuard

from riskwatch.clock import real_seconds, speed_of
from riskwatch.errors import ConfigError
from simulators.faults import GATEWAY_FAULTS, Fault
from simulators.kafka_watch import TransitionReader
from simulators.plants import Incident, PlantEvent
from simulators.scenarios.checker import Scope, Seen, cause_text
from simulators.scenarios.model import Injection, Scenario
from simulators.simulated_gateway import Broker, GatewayClient
from simulators.simulation import Simulation, Tick

DRAIN_S = 3.0  # after the last tick, how long late warnings may still arrive


@dataclass(slots=True)
class RunRecord:
    """What happened: each injection with when it was applied, each warning with when it arrived."""

    applied: list[tuple[float, Injection]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    readings: int = 0
    messages: int = 0
    started: float = 0.0  # wall time of scenario second 0


def apply_injection(sim: Simulation, inj: Injection, now: float) -> None:
    """Make an injection happen in the simulation (gateway connections are the runner's business)."""
    if inj.incident:
        sim.inject(inj.site, Incident(inj.incident, inj.unit, dict(inj.params)))
    elif inj.fault:
        sim.start_fault(
            Fault(inj.fault, inj.target, {k: v for k, v in inj.params.items() if _is_num(v)}), now
        )
    else:
        sim.stop_fault(inj.fault_stop, inj.target)


def _is_num(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def validate_targets(sim: Simulation, scenario: Scenario) -> None:
    """Every injection names a simulated site, unit, incident, sensor or gateway; else one clear error."""
    problems = []
    for k, inj in enumerate(scenario.injections):
        where = f"injections[{k}]"
        if inj.incident:
            plant = sim.plants.get(inj.site)
            if plant is None:
                problems.append(f"{where}: unknown site {inj.site!r}")
                continue
            if inj.unit and inj.unit not in plant.units:
                problems.append(f"{where}: site {inj.site} has no unit {inj.unit!r}")
            if inj.incident not in plant.incidents:
                known = ", ".join(plant.incidents) or "none"
                problems.append(
                    f"{where}: {inj.site} ({plant.industry}) has no incident {inj.incident!r}; known: {known}"
                )
        else:
            kind = inj.fault or inj.fault_stop
            on_gateway = kind in GATEWAY_FAULTS
            known_ids = sim.faults.gateways if on_gateway else sim.faults.position
            if inj.target not in known_ids:
                problems.append(f"{where}: unknown {'gateway' if on_gateway else 'sensor'} {inj.target!r}")
    if problems:
        raise ConfigError(scenario.source, "injections", "; ".join(problems))


def make_clients(
    sim: Simulation, broker: Broker, clock: Callable[[], float] = time.time
) -> dict[str, GatewayClient]:
    return {gw: GatewayClient(site, gw, broker, clock=clock) for gw, site in sim.site_of_gateway.items()}


def scope_of(sim: Simulation, regions: dict[str, str]) -> Scope:
    sites = frozenset(sim.plants)
    return Scope(sites, frozenset(regions[s] for s in sites if s in regions))


class ScenarioRunner:
    """Drives a Simulation through a scenario in real time over MQTT gateways."""

    def __init__(
        self,
        scenario: Scenario,
        sim: Simulation,
        broker: Broker,
        warnings: TransitionReader | None,
        scope: Scope,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        clients: dict[str, GatewayClient] | None = None,
    ) -> None:
        self.scenario, self.sim, self.broker, self.warnings = scenario, sim, broker, warnings
        self.scope, self.log, self.clock = scope, log, clock
        self.stop = stop or threading.Event()  # set it to end the run early (the demo's Ctrl-C)
        self.record = RunRecord()
        # Clients passed in stay connected after the run (the demo repeats its script without the
        # gateways flapping offline between rounds); clients made here are closed at the end.
        self.owns_clients = clients is None
        self.clients = clients if clients is not None else make_clients(sim, broker, clock)

    def run(self) -> RunRecord:
        record = self.record
        for client in self.clients.values():
            if not client.connected:
                client.connect()
        pending = self.scenario.schedule()
        tick_s = self.scenario.tick_s
        start = record.started = self.clock()
        k = 0
        try:
            while k * tick_s <= self.scenario.duration_s:
                if self.stop.wait(max(0.0, real_seconds(self.clock, start + k * tick_s - self.clock()))):
                    break
                now = self.clock()
                while pending and pending[0].at <= now - start:
                    inj = pending.pop(0)
                    self._inject(inj, now)
                    record.applied.append((now - start, inj))
                    self.log(f"{now - start:8.1f} s  inject  {inj.describe()}")
                self._publish(self.sim.tick(now, tick_s), record)
                self._poll(start, record, 0.0)
                k += 1
            deadline = self.clock() + DRAIN_S * speed_of(self.clock)  # DRAIN_S of real time
            while self.clock() < deadline and not self.stop.is_set():
                self._poll(start, record, 0.2)
        finally:
            if self.owns_clients:
                for client in self.clients.values():
                    client.close(timeout=5.0)
        return record

    def _inject(self, inj: Injection, now: float) -> None:
        apply_injection(self.sim, inj, now)
        if inj.fault == "disconnect":
            self.clients[inj.target].drop()
        elif inj.fault_stop == "disconnect":
            self.clients[inj.target].connect()

    def _publish(self, tick: Tick, record: RunRecord) -> None:
        by_gateway: dict[str, list[PlantEvent]] = {}
        for event in tick.events:
            by_gateway.setdefault(event.gateway, []).append(event)
        for batch in tick.batches:
            client = self.clients[batch.gateway]
            if client.connected:
                client.publish_batch(batch)
                record.readings += len(batch)
                record.messages += 1
        for gw, events in by_gateway.items():
            if self.clients[gw].connected:
                self.clients[gw].publish_events(events)  # events name the unit (engine contract)

    def _poll(self, start: float, record: RunRecord, timeout: float) -> None:
        if self.warnings is None:
            return
        for t in self.warnings.poll(timeout):
            seen = Seen(self.clock() - start, t)
            record.seen.append(seen)
            if t.kind == "warning" and self.scope.covers(t):
                self.log(
                    f"{seen.offset:8.1f} s  {t.entity_type:<7} {t.entity}: {t.old} -> {t.new}  ({cause_text(t)})"
                )
