"""Each injected fault changes what the gateways send exactly as documented, and stops cleanly."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.faults import Fault
from simulators.sensors import SimulatorError
from simulators.simulation import Simulation
from tests.unit.simulators.factory import indexed, sensor

T0 = 1_790_000_000.0


def estate() -> Simulation:
    sensors = indexed(
        [
            sensor("LEL1", "flammable_gas", gateway="GA"),
            sensor("LEL2", "flammable_gas", gateway="GA"),
            sensor("PT1", "pressure", gateway="GA"),
            sensor("CH4", "methane", site="M", unit="F1", gateway="GB", location="longwall_face"),
        ]
    )
    return Simulation(sensors, {"S1": "hazardous_chemicals", "M": "coal_mine"}, seed=11)


def readings(sim: Simulation, t: float) -> dict[str, tuple[float, float]]:
    tick = sim.tick(t, 1.0)
    return {
        sid: (float(v), float(ts))
        for b in tick.batches
        for sid, v, ts in zip(b.sensor_ids, b.values, b.ts, strict=True)
    }


def test_no_faults_every_sensor_reports_at_the_tick_time_grouped_by_gateway() -> None:
    sim = estate()
    tick = sim.tick(T0, 1.0)
    assert {(b.site, b.gateway): b.sensor_ids for b in tick.batches} == {
        ("S1", "GA"): ("LEL1", "LEL2", "PT1"),
        ("M", "GB"): ("CH4",),
    }
    assert all(np.all(b.ts == T0) for b in tick.batches)


def test_stuck_sensor_repeats_one_value_then_recovers() -> None:
    sim = estate()
    sim.start_fault(Fault("stuck", "PT1"), T0)
    values = [readings(sim, T0 + k)["PT1"][0] for k in range(10)]
    assert len(set(values)) == 1
    sim.stop_fault("stuck", "PT1")
    after = [readings(sim, T0 + 10 + k)["PT1"][0] for k in range(5)]
    assert len(set(after)) == 5


def test_stuck_at_a_given_value() -> None:
    sim = estate()
    sim.start_fault(Fault("stuck", "LEL1", {"value": 60.0}), T0)
    assert readings(sim, T0)["LEL1"][0] == 60.0


def test_drift_grows_linearly_with_time() -> None:
    sim, ref = estate(), estate()
    sim.start_fault(Fault("drift", "LEL2", {"rate": 36.0}), T0)  # 36 %LEL per hour = 0.01 per second
    gap = [readings(sim, T0 + k)["LEL2"][0] - readings(ref, T0 + k)["LEL2"][0] for k in (0, 100, 1000)]
    assert gap == pytest.approx([0.0, 1.0, 10.0], abs=1e-6)


def test_spikes_jump_by_their_size_at_about_their_rate() -> None:
    sim, ref = estate(), estate()
    sim.start_fault(Fault("spikes", "PT1", {"p": 0.3, "size": 100.0}), T0)
    jumps = [readings(sim, T0 + k)["PT1"][0] - readings(ref, T0 + k)["PT1"][0] for k in range(400)]
    spiked = [j for j in jumps if abs(j) > 1e-9]
    assert all(j == pytest.approx(100.0) for j in spiked)
    assert 0.2 < len(spiked) / 400 < 0.4


def test_dropout_silences_a_sensor_and_partial_dropout_thins_it() -> None:
    sim = estate()
    sim.start_fault(Fault("dropout", "LEL1"), T0)
    assert all("LEL1" not in readings(sim, T0 + k) for k in range(20))
    sim.start_fault(Fault("dropout", "LEL1", {"p": 0.5}), T0 + 20)
    seen = sum("LEL1" in readings(sim, T0 + 20 + k) for k in range(400))
    assert 150 < seen < 250


def test_gateway_disconnect_removes_its_batches_and_reports_it() -> None:
    sim = estate()
    sim.start_fault(Fault("disconnect", "GB"), T0)
    tick = sim.tick(T0, 1.0)
    assert [b.gateway for b in tick.batches] == ["GA"] and tick.disconnected == {"GB"}
    sim.stop_fault("disconnect", "GB")
    assert {b.gateway for b in sim.tick(T0 + 1, 1.0).batches} == {"GA", "GB"}


def test_clock_skew_shifts_only_that_gateways_timestamps() -> None:
    sim = estate()
    sim.start_fault(Fault("clock_skew", "GA", {"offset_s": -90.0}), T0)
    got = readings(sim, T0)
    assert got["LEL1"][1] == T0 - 90.0 and got["CH4"][1] == T0


def test_unknown_fault_or_target_is_a_clear_error() -> None:
    sim = estate()
    with pytest.raises(SimulatorError, match="unknown fault 'melt'"):
        sim.start_fault(Fault("melt", "PT1"), T0)
    with pytest.raises(SimulatorError, match="unknown sensor 'PT9'"):
        sim.start_fault(Fault("stuck", "PT9"), T0)
    with pytest.raises(SimulatorError, match="unknown gateway 'GZ'"):
        sim.start_fault(Fault("disconnect", "GZ"), T0)
