"""`riskwatch config check` catches every registry mistake, naming file, path in the document and reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from riskwatch.cli import main
from riskwatch.errors import ConfigError
from riskwatch.registry import RegistryError, load_registry

Writer = Callable[[dict[str, Any]], Path]


def problems_of(path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert isinstance(info.value, ConfigError)
    return [(p.file, p.path, p.reason) for p in info.value.problems]


def sensor(doc: dict[str, Any], site: int, unit: int, k: int) -> dict[str, Any]:
    return doc["sites"][site]["units"][unit]["sensors"][k]


def test_inverted_high_set_points(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 0, 0, 2).update(l1_high=1800, l2_high=1700)
    path = write_yaml(base_doc)
    [(file, where, reason)] = problems_of(path)
    assert file == str(path)
    assert where == "sites[0].units[0].sensors[2].l2_high"
    assert "inverted set points" in reason and "1700" in reason and "1800" in reason


def test_inverted_low_set_points(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 0, 0, 2).update(l1_low=100, l2_low=200)
    [(_, where, reason)] = problems_of(write_yaml(base_doc))
    assert where == "sites[0].units[0].sensors[2].l2_low"
    assert "inverted set points: l2_low 200.0 is above l1_low 100.0" in reason


def test_set_point_outside_range_explicit_and_default(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 0, 0, 2)["l2_high"] = 3000
    sensor(base_doc, 0, 0, 1)["range"] = [0, 30]  # the default CO L2 of 40 mg/m3 no longer fits
    found = problems_of(write_yaml(base_doc))
    assert ("sites[0].units[0].sensors[2].l2_high") in [w for _, w, _ in found]
    reasons = dict((w, r) for _, w, r in found)
    assert "outside the sensor range 0.0..2500.0" in reasons["sites[0].units[0].sensors[2].l2_high"]
    assert reasons["sites[0].units[0].sensors[1].l2_high"] == (
        "l2_high 40.0 (default for co) is outside the sensor range 0.0..30.0"
    )


def test_unknown_type(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 0, 0, 0)["type"] = "flamable_gas"
    [(_, where, reason)] = problems_of(write_yaml(base_doc))
    assert where == "sites[0].units[0].sensors[0].type"
    assert "unknown sensor type 'flamable_gas'" in reason and "flammable_gas" in reason


def test_unknown_and_wrong_unit(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 0, 0, 0)["uom"] = "furlongs"
    sensor(base_doc, 0, 0, 1)["uom"] = "%LEL"
    found = {w: r for _, w, r in problems_of(write_yaml(base_doc))}
    assert "unknown unit 'furlongs'" in found["sites[0].units[0].sensors[0].uom"]
    assert (
        found["sites[0].units[0].sensors[1].uom"]
        == "unit '%LEL' does not fit type co, which is measured in mg/m3"
    )


def test_unit_aliases_are_accepted(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 0, 0, 1)["uom"] = "mg/m³"
    assert load_registry(write_yaml(base_doc)).sensors["CO-101"].uom == "mg/m3"


def test_duplicate_ids(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 1, 0, 1)["id"] = "GT-101"
    base_doc["sites"][1]["units"][0]["id"] = "U1"
    base_doc["sites"][1]["gateways"].append({"id": "G1"})
    base_doc["regions"].append({"id": "R1"})
    found = {w: r for _, w, r in problems_of(write_yaml(base_doc))}
    assert found["regions[2].id"] == "duplicate region id 'R1'"
    assert found["sites[1].units[0].id"] == "duplicate unit id 'U1' (already in site S1)"
    assert found["sites[1].gateways[1].id"] == "duplicate gateway id 'G1' (already in site S1)"


def test_duplicate_sensor_id_names_the_first(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 1, 0, 1)["id"] = "GT-101"
    [(_, where, reason)] = problems_of(write_yaml(base_doc))
    assert where == "sites[1].units[0].sensors[1].id"
    assert reason == "duplicate sensor id 'GT-101' (first at sites[0].units[0].sensors[0])"


def test_sensor_in_a_unit_of_another_site(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    base_doc["sites"][1]["sensors"] = [{"id": "GT-900", "type": "flammable_gas", "unit": "U1"}]
    [(_, where, reason)] = problems_of(write_yaml(base_doc))
    assert where == "sites[1].sensors[0].unit"
    assert reason == "unit 'U1' belongs to site S1, not S2"


def test_sensor_on_a_gateway_of_another_site(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 1, 0, 0)["gateway"] = "G1"
    [(_, where, reason)] = problems_of(write_yaml(base_doc))
    assert where == "sites[1].units[0].sensors[0].gateway"
    assert reason == "gateway 'G1' belongs to site S1, not S2"


def test_missing_references(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    base_doc["sites"][0]["region"] = "R9"
    base_doc["sites"][0]["units"][0]["gateway"] = "G9"
    base_doc["sites"][0]["sensors"] = [
        {"id": "GT-902", "type": "flammable_gas", "unit": "U9", "gateway": "G1"}
    ]
    base_doc["sites"][1]["rules"] = "nonesuch"
    found = {w: r for _, w, r in problems_of(write_yaml(base_doc))}
    assert found["sites[0].region"] == "unknown region 'R9'; regions: R1, R2"
    assert found["sites[0].units[0].gateway"].startswith("unknown gateway 'G9'")
    assert found["sites[0].sensors[0].unit"] == "unknown unit 'U9'; units of S1: U1"
    assert found["sites[1].rules"].startswith("unknown rule set 'nonesuch'")


def test_ambiguous_gateway_must_be_named(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    del base_doc["sites"][0]["units"][0]["gateway"]  # site S1 has two gateways
    found = problems_of(write_yaml(base_doc))
    assert [w for _, w, _ in found] == [f"sites[0].units[0].sensors[{k}].gateway" for k in range(3)]


def test_schema_errors_keep_their_path(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 0, 0, 2)["l2_high"] = "very high"
    sensor(base_doc, 0, 0, 0)["colour"] = "red"
    base_doc["sites"][0]["units"][0]["hazard_grade"] = 7
    found = {w: r for _, w, r in problems_of(write_yaml(base_doc))}
    assert "valid number" in found["sites[0].units[0].sensors[2].l2_high"]
    assert "Extra inputs are not permitted" in found["sites[0].units[0].sensors[0].colour"]
    assert "less than or equal to 4" in found["sites[0].units[0].hazard_grade"]


def test_methane_needs_a_known_location(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    del sensor(base_doc, 1, 0, 0)["location"]
    sensor(base_doc, 1, 0, 1)["location"] = "bathroom"
    found = {w: r for _, w, r in problems_of(write_yaml(base_doc))}
    assert found["sites[1].units[0].sensors[0].location"].startswith("methane needs a location (missing)")
    assert "'bathroom' is unknown" in found["sites[1].units[0].sensors[1].location"]


def test_process_types_need_set_points(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 0, 0, 2).clear()
    sensor(base_doc, 0, 0, 2).update(id="PT-101", type="pressure")
    found = {w: r for _, w, r in problems_of(write_yaml(base_doc))}
    assert "no default range" in found["sites[0].units[0].sensors[2].range"]


def test_tailings_bands_checked(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    base_doc["sites"][1]["units"][0]["sensors"] = [
        {"id": "DX-1", "type": "dam_displacement", "bands": {"blue": 20, "yellow": 15, "red": 60}},
        {"id": "PH-1", "type": "phreatic_depth", "bands": {"blue": 9, "red": 99}},
        {"id": "DX-2", "type": "dam_displacement"},
    ]
    found = {w: r for _, w, r in problems_of(write_yaml(base_doc))}
    assert found["sites[1].units[0].sensors[0].bands.yellow"].startswith(
        "inverted bands: yellow 15.0 must be above"
    )
    assert "outside the sensor range" in found["sites[1].units[0].sensors[1].bands.red"]
    assert "needs designer thresholds" in found["sites[1].units[0].sensors[2].bands"]


def test_every_problem_is_reported_at_once(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    sensor(base_doc, 0, 0, 0)["type"] = "nope"
    sensor(base_doc, 0, 0, 2)["l2_high"] = 1
    base_doc["sites"][1]["region"] = "R7"
    path = write_yaml(base_doc)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert len(info.value.problems) == 3
    message = str(info.value)
    assert message.startswith(f"3 problems in {path}:")
    assert f"{path}: sites[1].region: unknown region 'R7'" in message


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("regions: [\n  - {id: R1\nsites: []\n", encoding="utf-8")
    [(file, where, reason)] = problems_of(path)
    assert file == str(path) and where.startswith("line ") and reason.startswith("not valid YAML")


def test_cli_check_exit_codes_and_messages(
    base_doc: dict[str, Any], write_yaml: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_yaml(base_doc, "good.yaml")  # type: ignore[call-arg]
    sensor(base_doc, 0, 0, 2).update(l1_high=1800, l2_high=1700)
    bad = write_yaml(base_doc, "bad.yaml")  # type: ignore[call-arg]
    assert main(["config", "check", str(good)]) == 0
    assert "ok: 2 regions, 2 sites" in capsys.readouterr().out
    assert main(["config", "check", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: sites[0].units[0].sensors[2].l2_high: inverted set points" in captured.err
    assert f"{bad}: FAILED, 1 problem(s)" in captured.err
    assert f"{good}: ok" in captured.out


def test_shipped_example_registry_passes() -> None:
    registry = load_registry(Path(__file__).parents[3] / "deploy" / "examples" / "registry.yaml")
    industries = {site.industry for site in registry.sites.values()}
    assert industries == {"hazardous_chemicals", "coal_mine", "tailings_pond", "gas_kiln"}
    assert len(registry.regions) >= 2 and len(registry.sensors) >= 300


def test_rule_set_mistakes(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    base_doc["rule_sets"] = {
        "mine": [
            {"name": "x", "colour": "red", "groups": ["gass"], "states": ["l2"]},
            {"name": "y", "colour": "blue"},
            {"name": "z", "colour": "purple", "states": ["l1"]},
        ]
    }
    found = {w: r for _, w, r in problems_of(write_yaml(base_doc))}
    assert found["rule_sets.mine[0].groups"].startswith("unknown quantity group 'gass'")
    assert found["rule_sets.mine[1].states"] == "a count rule needs states: [l1, l2, fault, stale]"
    assert "rule_sets.mine[2].colour" in found


def test_the_static_grade_the_picture_reads_is_checked(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    """The four-colour picture raises live warnings by the static grade (riskwatch/picture.py): a grade
    that disagrees with its score, a score out of 0..100 or an unknown grade is refused, with its path."""
    base_doc["sites"][0].update(static_score=65, static_grade="blue")  # 65 is orange (C)
    base_doc["sites"][1].update(static_score=120)
    base_doc["sites"].append({**base_doc["sites"][1], "id": "S9", "static_grade": "purple"})
    base_doc["sites"][-1].pop("static_score")
    found = {w: r for _, w, r in problems_of(write_yaml(base_doc))}
    assert (
        "disagrees with static_score 65" in found["sites[0].static_grade"]
        and "orange" in found["sites[0].static_grade"]
    )
    assert "less than or equal to 100" in found["sites[1].static_score"]
    assert "sites[2].static_grade" in found


def test_a_score_alone_gives_the_grade_the_picture_uses(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    from riskwatch.picture import picture_colour

    for site, score in zip(base_doc["sites"], (59.9, 90), strict=False):
        site["static_score"] = score
    registry = load_registry(write_yaml(base_doc))
    grades = [registry.sites[s["id"]].static_grade for s in base_doc["sites"][:2]]
    assert grades == ["red", "blue"]
    assert [picture_colour("yellow", g) for g in grades] == ["orange", "yellow"]
