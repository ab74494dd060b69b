"""Synthetic but realistic registries of any size, for benchmarks, load tests and property tests.

The mix follows the four industries of the example registry: chemical parks (tank farms and process
units with flammable/toxic gas, pressure, temperature, level), coal mines (working faces with methane
by location and CO), tailings ponds (banded dam points) and glass-kiln plants (gas main pressure, cut-off
valve, flammable gas). Deterministic for a given seed.
"""

from __future__ import annotations

import random
from typing import Any

from riskwatch.registry.registry import Registry

SENSORS_PER_UNIT = 20
UNITS_PER_SITE = 10
SENSORS_PER_GATEWAY = 100

_CHEM = ("flammable_gas", "flammable_gas", "flammable_gas", "h2s", "co", "nh3", "cl2", "oxygen")
_PROCESS = {
    "pressure": {"range": [0, 2500], "l1_high": 1800, "l2_high": 2100},
    "temperature": {"range": [-40, 200], "l1_high": 80, "l2_high": 95},
    "level": {"range": [0, 20], "l1_high": 16, "l2_high": 18, "l1_low": 2, "l2_low": 1},
}
_METHANE_LOCATIONS = ("longwall_face", "return_corner", "face_return_airway", "shearer", "heading_face")
_TAILINGS: dict[str, dict[str, Any]] = {
    "dam_displacement": {"bands": {"blue": 20, "yellow": 40, "orange": 60, "red": 80}},
    "phreatic_depth": {"bands": {"blue": 8, "yellow": 7, "red": 5}},
    "freeboard": {"bands": {"blue": 3.0, "yellow": 2.5, "orange": 2.0, "red": 1.5}},
    "water_level": {"range": [0, 200], "bands": {"blue": 150, "yellow": 155, "orange": 158, "red": 160}},
    "rainfall": {},
}


def _sensor(rng: random.Random, industry: str, sid: str, position: int) -> dict[str, Any]:
    if industry == "hazardous_chemicals":
        if position % 4 == 3:
            kind = ("pressure", "temperature", "level")[position % 3]
            return {"id": sid, "type": kind, **_PROCESS[kind]}
        return {"id": sid, "type": rng.choice(_CHEM)}
    if industry == "coal_mine":
        if position % 5 == 4:
            return {"id": sid, "type": "co"}
        return {
            "id": sid,
            "type": "methane",
            "location": _METHANE_LOCATIONS[position % len(_METHANE_LOCATIONS)],
        }
    if industry == "tailings_pond":
        item = tuple(_TAILINGS)[position % len(_TAILINGS)]
        return {"id": sid, "type": item, **_TAILINGS[item]}
    if position == 0:
        return {"id": sid, "type": "gas_main_pressure", "l1_low": 4.0, "l2_low": 2.0}
    if position == 1:
        return {"id": sid, "type": "cutoff_valve"}
    return {
        "id": sid,
        "type": "flammable_gas" if position % 3 else "temperature",
        **({} if position % 3 else {"range": [0, 1600], "l1_high": 1450, "l2_high": 1520}),
    }


def generate_dict(n_sensors: int, n_regions: int = 4, seed: int = 7) -> dict[str, Any]:
    """A registry document with exactly `n_sensors` sensors."""
    rng = random.Random(seed)
    industries = ("hazardous_chemicals", "coal_mine", "tailings_pond", "gas_kiln")
    regions = [{"id": f"R{r:02d}", "name": f"region {r}"} for r in range(n_regions)]
    sites: list[dict[str, Any]] = []
    made = 0
    s = 0
    while made < n_sensors:
        industry = industries[s % len(industries)]
        site_id = f"S{s:05d}"
        units: list[dict[str, Any]] = []
        gateways: list[dict[str, Any]] = []
        for u in range(UNITS_PER_SITE):
            if made >= n_sensors:
                break
            count = min(SENSORS_PER_UNIT, n_sensors - made)
            gw = f"{site_id}-G{(u * SENSORS_PER_UNIT) // SENSORS_PER_GATEWAY:02d}"
            if not gateways or gateways[-1]["id"] != gw:
                gateways.append({"id": gw})
            kind = {"hazardous_chemicals": "tank_farm", "coal_mine": "working_face", "tailings_pond": "dam"}
            sensors = [_sensor(rng, industry, f"{site_id}-U{u:02d}-{k:02d}", k) for k in range(count)]
            units.append(
                {
                    "id": f"{site_id}-U{u:02d}",
                    "kind": kind.get(industry, "kiln"),
                    "gateway": gw,
                    "sensors": sensors,
                }
            )
            made += count
        sites.append(
            {
                "id": site_id,
                "region": regions[s % n_regions]["id"],
                "name": f"site {s}",
                "industry": industry,
                "static_score": float(rng.randint(55, 98)),
                "gateways": gateways,
                "units": units,
            }
        )
        s += 1
    return {"version": 1, "regions": regions, "sites": sites}


def generate(n_sensors: int, n_regions: int = 4, seed: int = 7) -> Registry:
    """A checked Registry with exactly `n_sensors` sensors (see `generate_dict`)."""
    return Registry.from_dict(generate_dict(n_sensors, n_regions, seed), source=f"<generated {n_sensors}>")
