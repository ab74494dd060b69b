"""Synthetic estates for load tests, as registry documents (the schema of riskwatch/registry/schema.py)
the bridge and the worker load like any other. Two shapes:

- `province_doc` (the default of the load generator and `bench e2e`): a province as it is: thousands of
  enterprises in the four industries, in the proportions of the example registry
  (deploy/examples/registry.yaml: two chemical sites, one coal mine, one tailings pond, one kiln plant),
  each with 1-3 gateways of 20-200 sensors. Each enterprise copies an example site of its industry: each
  of its gateways copies one of that site's gateways (its units' kinds and their sensor mix, cycled to
  the drawn size), so every industry's sensors, set points and rules are the real ones. At 200k
  sensors over 2,000 enterprises that is about 4,000 gateways of about 50 readings per message.
- `registry_doc` (`--shape flat`): N sensors in chemical sites of one gateway each, `sensors_per_gateway`
  readings per message; every sensor carries explicit range and set points.

`sim_sensors` gives the simulators' view of either (for the province shape through the registry loader,
so per-type defaults are resolved exactly as the bridge and the worker resolve them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml

from simulators.sensors import SimSensor, SimulatorError, from_registry

EXAMPLE_REGISTRY = Path(__file__).resolve().parent.parent / "deploy" / "examples" / "registry.yaml"
GATEWAY_SENSORS = (20, 200)  # sensors behind one gateway in a province
GATEWAYS_PER_SITE = (1, 3)

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


def province_doc(n_sensors: int, enterprises: int = 2_000, seed: int = 0,
                 example: Path = EXAMPLE_REGISTRY) -> dict[str, Any]:  # fmt: skip
    """A province: `enterprises` sites dealt in turn like the example registry's sites (so in its
    industry proportions), each with 1-3 gateways of 20-200 sensors, `n_sensors` in all (gateway sizes
    drawn, then scaled to the total)."""
    lo, hi = GATEWAY_SENSORS
    if enterprises <= 0 or not enterprises * lo <= n_sensors <= enterprises * hi:
        raise SimulatorError(
            f"{n_sensors:,} sensors cannot be spread over {enterprises:,} enterprises with gateways of "
            f"{lo}-{hi} sensors: give between {lo} and {hi} sensors per enterprise"
        )
    examples = _example_sites(example)
    rng = np.random.default_rng(seed)
    counts = rng.integers(GATEWAYS_PER_SITE[0], GATEWAYS_PER_SITE[1] + 1, enterprises)
    sizes = _sizes(rng.lognormal(np.log(60.0), 0.6, int(counts.sum())), n_sensors)
    sites: list[dict[str, Any]] = []
    g = 0
    for k in range(enterprises):
        industry, templates = examples[k % len(examples)]
        site = site_id(k)
        gateways: list[dict[str, str]] = []
        units: list[dict[str, Any]] = []
        for j in range(int(counts[k])):
            gw = gateway_id(g)
            units += _fill_units(site, gw, templates[j % len(templates)], int(sizes[g]), len(units))
            gateways.append({"id": gw})
            g += 1
        sites.append(
            {"id": site, "region": REGIONS[k % len(REGIONS)], "name": f"Load {industry} {k}",
             "industry": industry, "gateways": gateways, "units": units}
        )  # fmt: skip
    return {"version": 1, "regions": [{"id": r} for r in REGIONS], "sites": sites}


SHAPES = ("province", "flat")


def shaped_doc(shape: str, n_sensors: int, enterprises: int | None = None, sensors_per_gateway: int = 500) -> dict[str, Any]:  # fmt: skip
    """The load generator's estate: the province shape (`enterprises`, default one per 100 sensors) or
    the flat one (one gateway of `sensors_per_gateway` per site)."""
    if shape == "province":
        return province_doc(n_sensors, enterprises or max(1, n_sensors // 100))
    if shape == "flat":
        return registry_doc(n_sensors, sensors_per_gateway)
    raise SimulatorError(f"unknown load shape {shape!r}; one of {', '.join(SHAPES)}")


def _sizes(draw: Any, total: int) -> Any:
    """Gateway sizes in [lo, hi] summing to `total`: the draw scaled, clipped, then the remainder dealt
    one sensor at a time to the gateways that still have room."""
    lo, hi = GATEWAY_SENSORS
    sizes = np.clip(np.rint(draw * total / draw.sum()), lo, hi).astype(np.int64)
    while (gap := total - int(sizes.sum())) != 0:
        room = np.flatnonzero(sizes < hi) if gap > 0 else np.flatnonzero(sizes > lo)
        if len(room) == 0:
            raise SimulatorError(f"cannot place {total:,} sensors on {len(sizes):,} gateways of {lo}-{hi}")
        sizes[room[: abs(gap)]] += 1 if gap > 0 else -1
    return sizes


def _example_sites(example: Path) -> list[tuple[str, list[list[dict[str, Any]]]]]:
    """Each example site's industry and its gateways, each gateway as its list of units."""
    doc = yaml.safe_load(example.read_text())
    out = []
    for site in doc["sites"]:
        by_gateway: dict[str, list[dict[str, Any]]] = {}
        for unit in site["units"]:
            by_gateway.setdefault(unit["gateway"], []).append(unit)
        out.append((site["industry"], list(by_gateway.values())))
    return out


def _fill_units(site: str, gateway: str, template: list[dict[str, Any]], size: int, first: int) -> list[dict[str, Any]]:  # fmt: skip
    """`size` sensors behind `gateway`, in units shaped like the template gateway's: each unit a share of
    `size` proportional to its template's size, its template's sensors cycled to fill it."""
    weights = np.array([len(u["sensors"]) for u in template], dtype=np.float64)
    shares = np.floor(weights / weights.sum() * size).astype(np.int64)
    shares[0] += size - int(shares.sum())
    units = []
    for n, (unit, share) in enumerate(zip(template, shares.tolist(), strict=True)):
        if share <= 0:
            continue
        uid = f"{site}-U{first + n:02d}"
        pattern = unit["sensors"]
        sensors = [
            {**{k: v for k, v in pattern[i % len(pattern)].items() if k != "id"}, "id": f"{uid}-{i:03d}"}
            for i in range(share)
        ]
        units.append({"id": uid, "kind": unit["kind"], "gateway": gateway, "sensors": sensors})
    return units


def write_registry(doc: dict[str, Any], path: Path) -> Path:
    """Write as JSON, which is YAML too, because dumping 200k sensors as block YAML takes minutes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc))
    return path


def sim_sensors(doc: dict[str, Any], path: Path | None = None) -> tuple[tuple[SimSensor, ...], dict[str, str]]:  # fmt: skip
    """The document's sensors in file order (= registry index order) and each site's industry. A
    document whose sensors lean on per-type defaults (the province shape) is resolved by loading it
    from `path` (where `write_registry` wrote it), exactly as the bridge and the worker will."""
    industries = {site["id"]: site["industry"] for site in doc["sites"]}
    if not all(
        "range" in s and "l2_high" in s for site in doc["sites"] for u in site["units"] for s in u["sensors"]
    ):
        if path is None:
            raise SimulatorError(
                "a registry with per-type defaults is read back from its file: pass its path"
            )
        from riskwatch.registry import load_registry

        return from_registry(load_registry(path)), industries
    out: list[SimSensor] = []
    for site in doc["sites"]:
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
