"""A synthetic estate for load tests: N sensors in chemical sites of one gateway each, as a registry
document (the schema of riskwatch/registry/schema.py) the bridge and the worker load like any other.

Every sensor carries explicit range and set points, so the simulators' view (`sim_sensors`) matches
what the registry resolves without depending on its per-type defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from simulators.sensors import SimSensor

# (type, uom, range, L1 high, L2 high): GB/T 50493-2019 gas set points (docs/domain.md); process values
# carry plant-style set points.
MIX: tuple[tuple[str, str, tuple[float, float], float, float], ...] = (
    ("flammable_gas", "%LEL", (0.0, 100.0), 25.0, 50.0),
    ("flammable_gas", "%LEL", (0.0, 100.0), 25.0, 50.0),
    ("h2s", "mg/m3", (0.0, 150.0), 10.0, 20.0),
    ("co", "mg/m3", (0.0, 1000.0), 20.0, 40.0),
    ("pressure", "kPa", (0.0, 1000.0), 600.0, 800.0),
    ("temperature", "degC", (-40.0, 200.0), 60.0, 80.0),
    ("level", "m", (0.0, 20.0), 16.0, 18.0),
)
UNIT_SIZE = 50
REGIONS = ("LOAD-R1", "LOAD-R2", "LOAD-R3")


def site_id(k: int) -> str:
    return f"LOAD-S{k:05d}"


def gateway_id(k: int) -> str:
    return f"LOAD-G{k:05d}"


def registry_doc(n_sensors: int, sensors_per_gateway: int = 500) -> dict[str, Any]:
    """A registry document with `n_sensors` sensors, one site and one gateway per `sensors_per_gateway`."""
    sites = []
    made = 0
    k = 0
    while made < n_sensors:
        size = min(sensors_per_gateway, n_sensors - made)
        gw = gateway_id(k)
        units = []
        for u in range(0, size, UNIT_SIZE):
            sensors = []
            for j in range(u, min(u + UNIT_SIZE, size)):
                qtype, uom, rng, l1, l2 = MIX[j % len(MIX)]
                sensors.append(
                    {
                        "id": f"{site_id(k)}-{j:04d}",
                        "type": qtype,
                        "uom": uom,
                        "range": list(rng),
                        "l1_high": l1,
                        "l2_high": l2,
                    }
                )
            units.append(
                {
                    "id": f"{site_id(k)}-U{u // UNIT_SIZE:02d}",
                    "kind": "tank_farm",
                    "gateway": gw,
                    "sensors": sensors,
                }
            )
        sites.append(
            {
                "id": site_id(k),
                "region": REGIONS[k % len(REGIONS)],
                "name": f"Load site {k}",
                "industry": "hazardous_chemicals",
                "gateways": [{"id": gw}],
                "units": units,
            }
        )
        made += size
        k += 1
    return {"version": 1, "regions": [{"id": r} for r in REGIONS], "sites": sites}


def write_registry(doc: dict[str, Any], path: Path) -> Path:
    """Write as JSON, which is YAML too, because dumping 200k sensors as block YAML takes minutes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc))
    return path


def sim_sensors(doc: dict[str, Any]) -> tuple[tuple[SimSensor, ...], dict[str, str]]:
    """The document's sensors in file order (= registry index order) and each site's industry."""
    out: list[SimSensor] = []
    industries: dict[str, str] = {}
    for site in doc["sites"]:
        industries[site["id"]] = site["industry"]
        for unit in site["units"]:
            for s in unit["sensors"]:
                out.append(
                    SimSensor(
                        id=s["id"],
                        index=len(out),
                        site=site["id"],
                        unit=unit["id"],
                        gateway=unit["gateway"],
                        quantity=s["type"],
                        uom=s["uom"],
                        range_low=s["range"][0],
                        range_high=s["range"][1],
                        l1_high=s["l1_high"],
                        l2_high=s["l2_high"],
                    )
                )
    return tuple(out), industries
