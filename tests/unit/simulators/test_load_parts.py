"""The load generator's pure parts: the synthetic registry loads as a real registry and agrees with
the simulators' view of it; gateways are dealt whole to publisher processes; CLI errors are clear."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from riskwatch.cli import main
from riskwatch.registry import load_registry
from simulators import synthetic
from simulators.load import _Shared, _wait_connected, schedule, split_by_gateway, split_whole
from simulators.sensors import SimulatorError, from_registry


def test_synthetic_registry_loads_and_matches_the_simulated_sensors(tmp_path: Path) -> None:
    doc = synthetic.registry_doc(1_234, sensors_per_gateway=500)
    registry = load_registry(synthetic.write_registry(doc, tmp_path / "load.json"))
    mine, industries = synthetic.sim_sensors(doc)
    theirs = from_registry(registry)
    assert len(registry.sensors) == 1_234 and len(registry.gateways) == 3 == len(industries)
    assert [(s.id, s.index, s.gateway, s.l1_high, s.l2_high) for s in mine] == [
        (s.id, s.index, s.gateway, s.l1_high, s.l2_high) for s in theirs
    ]
    assert {s.kind for s in theirs} == {"flammable", "toxic", "pressure", "temperature", "level"}


def test_gateways_are_dealt_whole_and_round_robin() -> None:
    sensors, _ = synthetic.sim_sensors(synthetic.registry_doc(1_000, sensors_per_gateway=100))
    parts = split_by_gateway(sensors, 3)
    assert [len(p) for p in parts] == [400, 300, 300]
    gateways = [{s.gateway for s in p} for p in parts]
    assert not (gateways[0] & gateways[1]) and not (gateways[1] & gateways[2])
    assert len(split_by_gateway(sensors[:150], 8)) == 2  # never more processes than gateways


def test_sites_are_spread_whole_over_the_phases_of_a_period() -> None:
    sensors, _ = synthetic.sim_sensors(synthetic.registry_doc(2_000, sensors_per_gateway=100))
    phases = split_whole(sensors, 4, lambda s: s.site)
    assert [len(p) for p in phases] == [500] * 4
    assert sum(len({s.site for s in p}) for p in phases) == 20  # no site in two phases
    moments = list(schedule(100.0, 1.0, 4, 102.0))
    assert moments == [(100.0 + k + j / 4, j) for k in range(2) for j in range(4)]
    assert list(schedule(100.0, 0.5, 2, 100.6)) == [(100.0, 0), (100.25, 1), (100.5, 0)]


def test_simulate_with_a_broken_scenario_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nduration_s: 10\nexpect:\n  - {entity: U, colour: purple, by: 5}\n")
    assert main(["simulate", "--scenario", str(bad), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: expect[0]: " in err and "unknown colour 'purple'" in err


class _FakeProcess:
    def __init__(self, exitcode: int | None = None) -> None:
        self.exitcode, self.terminated = exitcode, False

    def is_alive(self) -> bool:
        return self.exitcode is None

    def terminate(self) -> None:
        self.terminated = True


def test_the_fleet_waits_until_every_publisher_has_connected() -> None:
    shared = _Shared.create(mp.get_context("spawn"))
    shared.ready.value = 2  # both publishers connected
    before = time.time()
    _wait_connected([_FakeProcess(), _FakeProcess()], shared)
    assert time.time() - before < 1.0


def test_a_publisher_dying_before_it_connects_is_a_clear_error() -> None:
    shared = _Shared.create(mp.get_context("spawn"))
    shared.ready.value = 1
    procs = [_FakeProcess(), _FakeProcess(exitcode=1)]
    with pytest.raises(SimulatorError, match=r"exit codes \[1\]"):
        _wait_connected(procs, shared, timeout_s=5)
    assert all(p.terminated for p in procs)


def test_each_run_counts_from_zero() -> None:
    shared = _Shared.create(mp.get_context("spawn"))
    for value, n in ((shared.sent, 470), (shared.messages, 10), (shared.acked, 470), (shared.errors, 1)):
        _Shared.add(value, n)
    _Shared.add(shared.finished, 2)
    shared.begin_run()
    assert (shared.sent.value, shared.messages.value, shared.acked.value, shared.errors.value) == (0, 0, 0, 0)
    assert shared.finished.value == 2  # the bursts finished so far are how the fleet knows a run ended
