"""The province shape of the load generator: enterprises in the example registry's industry proportions,
1-3 gateways of 20-200 sensors each, the requested total, and a registry the real loader accepts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from simulators import synthetic
from simulators.sensors import SimulatorError


def test_province_has_the_requested_size_and_the_example_proportions(tmp_path: Path) -> None:
    doc = synthetic.province_doc(20_000, 200, seed=3)
    sites = doc["sites"]
    assert len(sites) == 200
    assert Counter(s["industry"] for s in sites) == {
        "hazardous_chemicals": 80, "coal_mine": 40, "tailings_pond": 40, "gas_kiln": 40,
    }  # fmt: skip
    per_gateway: Counter[str] = Counter()
    for site in sites:
        assert 1 <= len(site["gateways"]) <= 3
        for unit in site["units"]:
            per_gateway[unit["gateway"]] += len(unit["sensors"])
        assert {u["gateway"] for u in site["units"]} == {g["id"] for g in site["gateways"]}
    assert sum(per_gateway.values()) == 20_000
    assert min(per_gateway.values()) >= 20 and max(per_gateway.values()) <= 200
    assert len(set(Counter(per_gateway.values()))) > 20  # sizes vary, not one size for all
    # the bridge's and the worker's loader accept it, and the simulators see every sensor resolved
    sensors, industries = synthetic.sim_sensors(doc, synthetic.write_registry(doc, tmp_path / "r.json"))
    assert len(sensors) == 20_000 and len(industries) == 200
    assert {s.quantity for s in sensors} >= {
        "flammable_gas",
        "methane",
        "dam_displacement",
        "gas_main_pressure",
    }


def test_an_impossible_province_is_refused_with_the_reason() -> None:
    with pytest.raises(SimulatorError, match="between 20 and 200 sensors per enterprise"):
        synthetic.province_doc(1_000, 200)
