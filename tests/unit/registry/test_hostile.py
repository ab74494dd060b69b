"""Hostile registry files are refused with file, place and reason; none crashes or hangs the loader."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from riskwatch.registry import Registry, RegistryError, load_registry

Writer = Callable[[dict[str, Any]], Path]


def only_problem(path: Path) -> tuple[str, str, str]:
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    [problem] = info.value.problems
    return problem


def test_deep_flow_nesting_is_refused_fast_without_crashing(tmp_path: Path) -> None:
    # libyaml's composer recursed until the process segfaulted (~30,000 levels) and its scanner took
    # 77 s on 100,000; the depth is now checked on the event stream and stops at the first level too many.
    path = tmp_path / "deep.yaml"
    path.write_text("regions: " + "[" * 100_000 + "]" * 100_000 + "\nsites: []\n")
    started = time.monotonic()
    file, where, reason = only_problem(path)
    assert time.monotonic() - started < 5
    assert (file, where) == (str(path), "line 1, column 73")
    assert reason == "nested deeper than 64 levels (a registry needs 8)"


def test_deep_block_nesting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("sites:\n" + "".join(" " * i + "-\n" for i in range(1, 200)))
    _, where, reason = only_problem(path)
    assert where.startswith("line 65,") and "nested deeper than 64 levels" in reason


def test_alias_bomb_is_refused_before_it_is_walked(tmp_path: Path) -> None:
    lines = ["a: &a [{id: x}, {id: x}, {id: x}, {id: x}, {id: x}, {id: x}, {id: x}, {id: x}, {id: x}]"]
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join([*lines, "regions: *h", "sites: *h", ""]))
    started = time.monotonic()
    _, where, reason = only_problem(path)
    assert time.monotonic() - started < 5
    assert where == "(document)"
    assert reason.startswith("aliases expand the document to ") and "refused" in reason


def test_aliases_within_bounds_still_load(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    path = write_yaml(base_doc)
    text = path.read_text().replace("regions:\n", "regions: &regions\n", 1)
    path.write_text(text)
    assert len(load_registry(path).regions) == 2


def test_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("regions: [{id: R1, name: Zürich}]\nsites: []\n".encode("latin-1"))
    assert only_problem(path) == (str(path), "byte offset 26", "not UTF-8 text: invalid start byte")


def test_integer_past_pythons_digit_limit_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(
        "regions: [{id: R1}]\nsites:\n  - {id: S1, region: R1, static_score: " + "9" * 5000 + "}\n"
    )
    _, where, reason = only_problem(path)
    assert where == "line 3, column 40"
    assert reason.startswith("not usable YAML: Exceeds the limit (4300 digits)")
    assert "set_int_max_str_digits" not in reason


def test_impossible_date_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "date.yaml"
    path.write_text("regions:\n  - {id: R1, name: 2024-02-30}\nsites: []\n")
    assert only_problem(path) == (
        str(path),
        "line 2, column 20",
        "not usable YAML: day is out of range for month",
    )


def test_site_level_sensor_naming_a_list_as_its_unit(base_doc: dict[str, Any], write_yaml: Writer) -> None:
    # An unhashable unit id raised TypeError while it was looked up among the site's units.
    base_doc["sites"][0]["sensors"] = [{"id": "X-1", "type": "co", "unit": ["U1"]}]
    _, where, reason = only_problem(write_yaml(base_doc))
    assert (where, reason) == ("sites[0].sensors[0].unit", "expected a hazard source id, got list")


def test_problems_escape_lone_surrogates_and_stay_short(base_doc: dict[str, Any]) -> None:
    base_doc["\ud800"] = 1
    base_doc["sites"][0]["units"][0]["sensors"][0]["type"] = "x" * 100_000
    with pytest.raises(RegistryError) as info:
        Registry.from_dict(base_doc, source="<doc>")
    lines = [str(p) for p in info.value.problems]
    assert "<doc>: \\ud800: unknown key; expected version, regions, sites, rule_sets" in lines
    for line in lines:
        line.encode("utf-8")  # strict: would raise on a lone surrogate
        assert len(line) < 1500
    str(info.value).encode("utf-8")


def test_empty_unknown_key_still_names_a_place(base_doc: dict[str, Any]) -> None:
    base_doc[""] = 1
    with pytest.raises(RegistryError) as info:
        Registry.from_dict(base_doc, source="<doc>")
    assert [p.path for p in info.value.problems] == ["''"]
