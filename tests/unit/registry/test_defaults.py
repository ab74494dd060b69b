"""Per-type defaults from docs/domain.md: a sensor needs only its type (and location) to be set correctly."""

from __future__ import annotations

from typing import Any

import pytest

from riskwatch.levels import Colour
from riskwatch.registry import DEFAULT_RULES, Registry, generate, registry_fingerprint


def one_sensor(**spec: Any) -> Any:
    doc = {
        "regions": [{"id": "R"}],
        "sites": [
            {
                "id": "S",
                "region": "R",
                "industry": "hazardous_chemicals",
                "gateways": [{"id": "G"}],
                "units": [{"id": "U", "kind": "other", "sensors": [{"id": "X", **spec}]}],
            }
        ],
    }
    return Registry.from_dict(doc).sensors["X"]


@pytest.mark.parametrize(
    ("spec", "l1", "l2", "uom"),
    [
        ({"type": "flammable_gas"}, 25.0, 50.0, "%LEL"),  # GB/T 50493-2019 §5.5.2
        ({"type": "open_path_flammable"}, 1.0, 2.0, "LEL·m"),
        ({"type": "toxic_gas"}, 100.0, 200.0, "%OEL"),
        ({"type": "h2s"}, 10.0, 20.0, "mg/m3"),
        ({"type": "co"}, 20.0, 40.0, "mg/m3"),
        ({"type": "cl2"}, 1.0, 2.0, "mg/m3"),
        ({"type": "phosgene"}, 0.5, 1.0, "mg/m3"),
        ({"type": "methane", "location": "longwall_face"}, 1.0, 1.5, "%CH4"),
        ({"type": "methane", "location": "face_return_airway"}, 1.0, 1.0, "%CH4"),
        ({"type": "methane", "location": "intake"}, 0.5, 0.5, "%CH4"),
        ({"type": "methane", "location": "drainage_roadway"}, 2.5, 2.5, "%CH4"),
    ],
)
def test_gas_defaults(spec: dict[str, Any], l1: float, l2: float, uom: str) -> None:
    sensor = one_sensor(**spec)
    assert (sensor.l1_high, sensor.l2_high, sensor.uom) == (l1, l2, uom)
    assert sensor.l1_low is None and sensor.l2_low is None


def test_oxygen_low_and_high() -> None:
    sensor = one_sensor(type="oxygen")
    assert (sensor.l1_low, sensor.l1_high) == (19.5, 23.5)


def test_explicit_values_override_defaults_and_null_removes_one() -> None:
    sensor = one_sensor(type="flammable_gas", l1_high=20, on_delay_s=5, deadband=1.5)
    assert (sensor.l1_high, sensor.l2_high, sensor.on_delay_s, sensor.deadband) == (20, 50, 5, 1.5)
    assert one_sensor(type="oxygen", l1_high=None).l1_high is None


def test_deadband_and_delays_follow_isa_starting_points() -> None:
    pressure = one_sensor(type="pressure", range=[0, 1000], l1_high=800)
    assert (pressure.deadband, pressure.on_delay_s, pressure.off_delay_s) == (20.0, 15.0, 15.0)
    temperature = one_sensor(type="temperature", range=[0, 500], l1_high=400)
    assert (temperature.deadband, temperature.on_delay_s) == (5.0, 60.0)


def test_tailings_bands_and_derived_orange() -> None:
    phreatic = one_sensor(type="phreatic_depth", bands={"blue": 9, "yellow": 8, "red": 6})
    assert phreatic.bands == (9, 8, pytest.approx(6.6), 6) and phreatic.band_side == "low"
    assert (phreatic.l1_low, phreatic.l2_low) == (9, pytest.approx(6.6))
    landslide = one_sensor(type="landslide_displacement", bands={"red": 100})
    assert landslide.bands == (None, None, 80.0, 100)
    rain = one_sensor(type="rainfall")
    assert rain.bands == (None, 50.0, 100.0, None)


def test_default_rules_are_data() -> None:
    red = {rule.name for rule in DEFAULT_RULES if rule.colour is Colour.RED}
    assert {
        "gas_l2_two_detectors",
        "methane_power_off",
        "kiln_no_cutoff",
        "interlock_bypassed_in_alarm",
    } <= red


def test_indices_fingerprint_and_generate() -> None:
    registry = generate(1000)
    assert len(registry.sensors) == 1000
    assert [s.index for s in registry.sensor_list] == list(range(1000))
    assert registry.sensor_ids == tuple(registry.sensors)
    assert registry.fingerprint == registry_fingerprint(list(registry.sensor_ids))
    assert generate(1000).fingerprint == registry.fingerprint
    assert generate(999).fingerprint != registry.fingerprint
    assert {s.industry for s in registry.sites.values()} == {
        "hazardous_chemicals",
        "coal_mine",
        "tailings_pond",
        "gas_kiln",
    }
