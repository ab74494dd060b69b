"""Scenario files are validated with file/path/reason, and the checker judges a run as a user would."""

from __future__ import annotations

import pytest
import yaml

from riskwatch.errors import ConfigError
from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id
from simulators.scenarios.checker import Scope, Seen, check, timeline
from simulators.scenarios.model import parse_scenario

DOC = """
name: leak
duration_s: 120
injections:
  - {at: 30, site: CHEM-01, incident: leak, unit: TF1, params: {severity: 1.0}}
expect:
  - {entity: TF1, colour: red, after: 30, by: 90}
forbid:
  - {entity: CHEM-02, colours: [yellow, orange, red], from: 10}
  - {entity: "*", colours: [blue], from: 100}
"""
SCOPE = Scope(frozenset({"CHEM-01", "CHEM-02"}), frozenset({"R1"}))


def warning(entity: str, new: str, site: str, old: str = "normal", etype: str = "unit") -> Transition:
    return Transition(
        id=transition_id("warning", etype, entity, new, 1.0),
        kind="warning",
        entity_type=etype,  # type: ignore[arg-type]
        entity=entity,
        old=old,
        new=new,
        at=1.0,
        site=site,
        cause=Cause(
            "gas_l2_two_detectors", (CauseItem("LEL1", "flammable_gas", "l2_high", 61.0, 50.0, "%LEL"),)
        ),
    )


def test_met_expectation_and_clean_forbids_all_pass() -> None:
    scenario = parse_scenario(yaml.safe_load(DOC), "leak.yaml")
    seen = [
        Seen(12.0, warning("TF1", "normal", "CHEM-01", old="blue")),
        Seen(41.5, warning("TF1", "red", "CHEM-01")),
    ]
    outcomes = check(scenario, seen, SCOPE)
    assert [o.ok for o in outcomes] == [True, True, True]
    assert outcomes[0].text == "TF1 turned red at 41.5 s (by 90 s)"


def test_late_wrong_and_forbidden_warnings_are_each_listed() -> None:
    scenario = parse_scenario(yaml.safe_load(DOC), "leak.yaml")
    seen = [
        Seen(35.0, warning("TF1", "orange", "CHEM-01")),
        Seen(95.0, warning("TF1", "red", "CHEM-01")),  # too late
        Seen(50.0, warning("CHEM-02", "yellow", "CHEM-02", etype="site")),
        Seen(105.0, warning("CHEM-01", "blue", "CHEM-01", etype="site")),
        Seen(106.0, warning("OTHER-U", "blue", "ELSEWHERE")),  # not this scenario's site: ignored
    ]
    failed = [o.text for o in check(scenario, seen, SCOPE) if not o.ok]
    assert failed == [
        "TF1 did not turn red between 30 s and 90 s: it went orange at 35.0 s, red at 95.0 s",
        "CHEM-02 turned yellow at 50.0 s, forbidden in 10-end s (rule gas_l2_two_detectors: LEL1 l2_high 61%LEL)",
        "CHEM-01 turned blue at 105.0 s, forbidden in 100-end s (rule gas_l2_two_detectors: LEL1 l2_high 61%LEL)",
    ]


def test_nothing_arrived_says_so() -> None:
    scenario = parse_scenario(yaml.safe_load(DOC), "leak.yaml")
    assert check(scenario, [], SCOPE)[0].text.endswith("no warning for it arrived at all")


def test_timeline_interleaves_injections_and_warnings() -> None:
    scenario = parse_scenario(yaml.safe_load(DOC), "leak.yaml")
    lines = timeline([(30.0, scenario.injections[0])], [Seen(41.5, warning("TF1", "red", "CHEM-01"))], SCOPE)
    assert lines[0] == "    30.0 s  inject  incident leak at CHEM-01/TF1 severity=1.0"
    assert lines[1].startswith("    41.5 s  unit    TF1: normal -> red  (rule gas_l2_two_detectors")


@pytest.mark.parametrize(
    ("patch", "where", "why"),
    [
        ({"duration_s": -1}, "duration_s", "greater than 0"),
        (
            {"injections": [{"at": 5, "site": "S"}]},
            "injections[0]",
            "exactly one of incident, fault, fault_stop",
        ),
        (
            {"injections": [{"at": 5, "fault": "melt", "target": "X"}]},
            "injections[0]",
            "unknown fault 'melt'",
        ),
        ({"injections": [{"at": 500, "site": "S", "incident": "leak"}]}, "(top)", "after the end"),
        ({"expect": [{"entity": "U", "colour": "purple", "by": 10}]}, "expect[0]", "unknown colour 'purple'"),
        ({"expect": [{"entity": "U", "colour": "red", "after": 20, "by": 10}]}, "expect[0]", "must be later"),
        ({"forbid": [{"entity": "U", "colours": []}]}, "forbid[0]", "at least one colour"),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ],
)
def test_bad_scenarios_name_file_path_and_reason(patch: dict, where: str, why: str) -> None:
    doc = {**yaml.safe_load(DOC), **patch}
    with pytest.raises(ConfigError) as err:
        parse_scenario(doc, "bad.yaml")
    assert err.value.file == "bad.yaml" and err.value.path == where and why in err.value.reason
