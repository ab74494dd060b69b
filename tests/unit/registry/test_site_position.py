"""Site map positions: `lat`/`lon` are read, range-checked and given together, as `config check` reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskwatch.registry import load_registry
from riskwatch.registry.registry import RegistryError

ROOT = Path(__file__).resolve().parents[3]
SITE = """version: 1
regions: [{id: R1, name: 东营市}]
sites:
  - id: S1
    region: R1
    industry: hazardous_chemicals
    POSITION
    gateways: [{id: S1-GW1}]
    sensors: [{id: S1-G1, unit: U1, type: flammable_gas}]
    units: [{id: U1, kind: tank_farm}]
"""


def _load(tmp_path: Path, position: str):
    path = tmp_path / "registry.yaml"
    path.write_text(SITE.replace("POSITION", position), encoding="utf-8")
    return load_registry(path)


def test_position_is_read(tmp_path: Path) -> None:
    site = _load(tmp_path, "lat: 38.0766\n    lon: 118.956").sites["S1"]
    assert (site.lat, site.lon) == (38.0766, 118.956)


def test_position_is_optional(tmp_path: Path) -> None:
    site = _load(tmp_path, "name: x").sites["S1"]
    assert site.lat is None and site.lon is None


@pytest.mark.parametrize(
    ("position", "reason"),
    [
        ("lat: 91\n    lon: 118", "sites[0].lat"),
        ("lat: 38\n    lon: -181", "sites[0].lon"),
        ("lat: .nan\n    lon: 118", "sites[0].lat"),
        ("lat: 38", "`lat` is given without `lon`"),
        ("lon: 118", "`lon` is given without `lat`"),
    ],
)
def test_bad_position_is_reported(tmp_path: Path, position: str, reason: str) -> None:
    with pytest.raises(RegistryError) as err:
        _load(tmp_path, position)
    assert reason in str(err.value)


@pytest.mark.parametrize("name", ["deploy/examples/registry.yaml", "simulators/scenarios/registry.yaml"])
def test_example_sites_all_have_positions(name: str) -> None:
    registry = load_registry(ROOT / name)
    assert all(s.lat is not None and s.lon is not None for s in registry.sites.values())
