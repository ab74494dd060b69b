"""The e2e benchmark's incidents: distinct sites, inside the run, each one unit's two gas detectors."""

from __future__ import annotations

from simulators import synthetic
from simulators.bench_e2e import INCIDENT_S, plan_incidents


def test_incidents_are_at_distinct_sites_within_the_run() -> None:
    doc = synthetic.registry_doc(20_000, 500)
    plan = plan_incidents(doc, 20, 300.0)
    assert len(plan) == 20
    assert len({site for site, _, _ in plan}) == 20
    for site, unit, faults in plan:
        assert len(faults) == 2 and {f.fault.kind for f in faults} == {"stuck"}
        assert all(f.at > 0 and f.at + INCIDENT_S <= 300.0 for f in faults)
        assert unit.startswith(site)


def test_no_more_incidents_than_sites() -> None:
    doc = synthetic.registry_doc(1_000, 500)  # two sites
    plan = plan_incidents(doc, 20, 300.0)
    assert len(plan) == len(doc["sites"]) == 2
    assert len({site for site, _, _ in plan}) == 2


def test_province_incidents_are_at_chemical_units_with_two_gas_detectors() -> None:
    doc = synthetic.province_doc(20_000, 200)
    plan = plan_incidents(doc, 20, 300.0)
    sites = {s["id"]: s for s in doc["sites"]}
    assert len({site for site, _, _ in plan}) == 20
    for site, unit, faults in plan:
        assert sites[site]["industry"] == "hazardous_chemicals"
        types = {s["id"]: s["type"] for u in sites[site]["units"] if u["id"] == unit for s in u["sensors"]}
        assert [types[f.fault.target] for f in faults] == ["flammable_gas", "flammable_gas"]
