"""Physical plausibility of the plant models: directions, bounds, lags and the incidents' effects."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.plants import CoalMine, Incident, KilnPlant, TailingsPond, TankFarm
from simulators.sensors import SimulatorError
from tests.unit.simulators.factory import indexed, sensor

T0 = 1_790_000_000.0


def run(plant, seconds: float, dt: float = 1.0, t0: float = T0) -> list[np.ndarray]:
    out = []
    for k in range(1, int(seconds / dt) + 1):
        out.append(plant.step(t0 + k * dt, dt))
    return out


def tank_farm(seed: int = 1) -> TankFarm:
    sensors = indexed(
        [sensor(f"LEL{k}", "flammable_gas") for k in range(4)]
        + [
            sensor("H2S1", "h2s"),
            sensor("LT1", "level"),
            sensor("TT1", "temperature"),
            sensor("PT1", "pressure"),
        ]
        + [sensor("LEL-B", "flammable_gas", unit="U2")]
    )
    return TankFarm("S1", sensors, seed=seed)


def test_same_seed_same_readings_and_different_seed_differs() -> None:
    a, b, c = tank_farm(1), tank_farm(1), tank_farm(2)
    ra, rb, rc = run(a, 30), run(b, 30), run(c, 30)
    assert np.array_equal(np.array(ra), np.array(rb))
    assert not np.array_equal(np.array(ra), np.array(rc))


def test_tank_farm_is_quiet_in_normal_operation() -> None:
    plant = tank_farm()
    values = np.array(run(plant, 3600, dt=10))
    gas = values[:, :4]
    assert gas.max() < 25.0 * 0.2  # background far below the 25 %LEL first alarm (GB/T 50493)
    level = values[:, 5]
    assert level.min() > 2.0 and level.max() < 17.0  # filling and emptying between the alarms
    assert np.ptp(level) > 0.5  # the tank actually moves


def test_tank_farm_leak_reaches_l2_on_the_nearest_detectors_only_in_its_unit() -> None:
    plant = tank_farm()
    run(plant, 10)
    plant.apply(Incident("leak", "U1", {"severity": 1.0}))
    first = run(plant, 5)[-1]
    assert first[0] < 50.0  # the plume builds up: not at L2 within 5 s
    final = run(plant, 120)[-1]
    assert final[0] > 50.0 and final[1] > 50.0  # two detectors at L2 (DOMAIN: red rule)
    assert final[0] > final[1] > final[2] > final[3]  # exposure falls with distance
    assert final[8] < 5.0  # the other unit's detector sees nothing
    plant.apply(Incident("leak_stop", "U1"))
    assert run(plant, 180)[-1][0] < 5.0


def test_tank_temperature_follows_a_daily_cycle() -> None:
    plant = tank_farm()
    day = np.array(run(plant, 86400, dt=600))[:, 6]
    assert 5.0 < np.ptp(day) < 7.0  # +-3 degC plus noise
    assert plant.temp_base[6] - 4 < day.mean() < plant.temp_base[6] + 4


def test_overfill_keeps_filling_to_the_high_alarm() -> None:
    plant = tank_farm()
    plant.apply(Incident("overfill", "U1"))
    level = np.array(run(plant, 4 * 3600, dt=30))[:, 5]
    rising = level[: int(np.argmax(level > 19.5))]
    assert level[-1] > 18.5 and np.all(np.diff(rising[::20]) > 0)  # every 10 min higher, through noise


def coal_mine() -> CoalMine:
    sensors = indexed(
        [
            sensor("CH4-FACE", "methane", location="longwall_face"),
            sensor("CH4-CORNER", "methane", location="return_corner"),
            sensor("CH4-RET", "methane", location="face_return_airway", l2_high=1.0),
            sensor("CH4-IN", "methane", location="intake", l1_high=0.5, l2_high=0.5),
            sensor("CH4-F2", "methane", unit="U2", location="longwall_face"),
        ]
    )
    return CoalMine("M1", sensors, seed=3)


def test_methane_follows_ventilation_with_a_lag_and_by_location() -> None:
    mine = coal_mine()
    normal = run(mine, 60)[-1]
    assert 0.25 < normal[0] < 0.45 and normal[3] < 0.1
    mine.apply(Incident("ventilation_failure", "U1", {"airflow": 0.25}))
    soon = run(mine, 5)[-1]
    assert soon[0] < 1.0  # mixing takes time
    high = run(mine, 180)[-1]
    assert 1.0 <= high[0] < 1.5  # face at its alarm, below power-off
    assert high[1] >= 1.5  # the return corner reaches power-off
    assert high[2] >= 1.0  # the return airway at its 1.0 % power-off
    assert high[4] < 0.5  # the other face is ventilated
    mine.apply(Incident("ventilation_restore", "U1"))
    assert run(mine, 300)[-1][0] < 0.5


def kiln(cutoff: bool) -> tuple[KilnPlant, list[float]]:
    sensors = indexed(
        [
            sensor("PT-MAIN", "gas_main_pressure", unit="K1"),
            sensor("XV-CUT", "cutoff_valve", unit="K1"),
            sensor("LEL-K", "flammable_gas", unit="K1"),
        ]
    )
    plant = KilnPlant("K", sensors, seed=4)
    run(plant, 10)
    plant.apply(Incident("pressure_drop", "K1", {"drop": 0.8, "cutoff": cutoff, "cutoff_delay_s": 2.0}))
    return plant, []


def test_kiln_pressure_drop_with_cutoff_confirms_closed_and_reports_it() -> None:
    plant, _ = kiln(cutoff=True)
    values = np.array(run(plant, 20, dt=0.5, t0=T0 + 10))
    assert values[-1, 0] < 4.0  # below the low-low set point
    assert values[-1, 1] == 1.0  # valve confirmed closed
    low_at = np.argmax(values[:, 0] < 6.0) * 0.5
    closed_at = np.argmax(values[:, 1] == 1.0) * 0.5
    assert 1.5 <= closed_at - low_at <= 3.0  # confirmation about cutoff_delay_s after the alarm
    events = plant.drain_events()
    assert [e.kind for e in events] == ["valve_closed"] and events[0].unit == "K1"
    assert values[:, 2].max() < 25.0  # the cut-off stops the gas from escaping


def test_kiln_pressure_drop_without_cutoff_never_confirms_and_gas_builds_up() -> None:
    plant, _ = kiln(cutoff=False)
    values = np.array(run(plant, 60, dt=0.5, t0=T0 + 10))
    assert np.all(values[:, 1] == 0.0)
    assert plant.drain_events() == []
    assert values[-1, 2] > 25.0


def tailings(speed: float) -> TailingsPond:
    sensors = indexed(
        [
            sensor("WL", "water_level"),
            sensor("FB", "freeboard"),
            sensor("BEACH", "dry_beach_length"),
            sensor("PZ", "phreatic_depth"),
            sensor("DISP", "dam_displacement"),
            sensor("RAIN", "rainfall"),
        ]
    )
    return TailingsPond("T", sensors, seed=5, speed=speed)


def test_rainstorm_raises_the_pond_and_the_phreatic_line_lags() -> None:
    pond = tailings(speed=60.0)  # an hour of hydrology per simulated minute
    before = run(pond, 60)[-1]
    assert (
        before[5] == 0.0 and before[0] < 1200.0 and before[1] > 3.0 and before[2] > 150.0 and before[3] > 12.0
    )
    creep_before = pond.creep_mm
    pond.apply(Incident("rainstorm", params={"intensity_mm_h": 80.0}))
    series = np.array(run(pond, 90))
    wl, fb, beach, pz, disp, rain = series.T
    assert rain[-1] > 100.0  # over 100 mm in ~1.5 h of storm: the orange rainfall band
    assert wl[-1] > 1201.5 and fb[-1] < 1.5 and beach[-1] < 100.0  # all at red after ~1.5 h at 80 mm/h
    assert pz[-1] > 8.0  # the phreatic line lags the pond
    # Creep only goes forward, and faster once the phreatic line rose (90 s here = 1.5 h of the pond).
    assert pond.creep_mm - creep_before > 1.5 / 24 * 0.2 * 2
    assert abs(disp.mean() - pond.disp_base[4]) < 3.0  # GNSS noise of a couple of mm around the trend
    pond.apply(Incident("rain_stop"))
    after = np.array(run(pond, 600))
    assert after[-1, 0] < wl[-1]  # the decant lowers the pond
    assert after[:, 3].min() < pz[-1]  # while the phreatic line keeps rising for a while


def test_unknown_incident_and_unit_are_clear_errors() -> None:
    with pytest.raises(SimulatorError, match="has no incident 'rainstorm'; known: leak"):
        tank_farm().apply(Incident("rainstorm"))
    with pytest.raises(SimulatorError, match="has no unit 'U9'"):
        tank_farm().apply(Incident("leak", "U9"))
    with pytest.raises(SimulatorError, match="severity must be a number"):
        tank_farm().apply(Incident("leak", "U1", {"severity": "big"}))
