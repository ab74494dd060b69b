"""Kernel vocabulary and wire formats: no services."""

from __future__ import annotations

import pytest

from riskwatch.levels import AlarmState, Colour
from riskwatch.wire.transitions import (
    Cause,
    CauseItem,
    Transition,
    TransitionDecodeError,
    transition_id,
)


def test_colour_order_is_severity_and_parses_both_languages() -> None:
    assert max(Colour.BLUE, Colour.RED, Colour.YELLOW) is Colour.RED
    assert Colour.parse("Orange") is Colour.ORANGE
    assert Colour.parse("红色") is Colour.RED
    with pytest.raises(ValueError, match="unknown colour 'purple'"):
        Colour.parse("purple")


def test_alarm_state_sides() -> None:
    assert AlarmState.L2_LOW.is_l2 and not AlarmState.L2_LOW.is_l1
    assert AlarmState.parse("l1_high") is AlarmState.L1_HIGH


def test_transition_round_trip_and_key() -> None:
    cause = Cause(
        "gas_l2_two_detectors", (CauseItem("GT-101", "flammable_gas", "l2_high", 55.0, 50.0, "%LEL"),)
    )
    t = Transition(
        id=transition_id("warning", "unit", "U1", "red", 1700000000.25),
        kind="warning",
        entity_type="unit",
        entity="U1",
        old="yellow",
        new="red",
        at=1700000000.25,
        cause=cause,
        site="S1",
        region="R1",
        unit="U1",
    )
    assert Transition.from_bytes(t.to_bytes()) == t
    assert t.key == b"S1"
    region = Transition("x", "warning", "region", "R1", "normal", "red", 1.0, Cause("rollup"), region="R1")
    assert region.key == b"R1"


def test_transition_id_is_deterministic_and_distinguishes_levels() -> None:
    a = transition_id("warning", "site", "S1", "red", 10.0)
    assert a == transition_id("warning", "site", "S1", "red", 10.0)
    assert a != transition_id("warning", "site", "S1", "orange", 10.0)


@pytest.mark.parametrize("raw", [b"not json", b'{"v": 99}', b'{"v": 1, "id": "x"}'])
def test_transition_decode_errors_are_clear(raw: bytes) -> None:
    with pytest.raises(TransitionDecodeError):
        Transition.from_bytes(raw)


def test_readings_of_converts_to_wire_dtypes() -> None:
    from riskwatch.wire.readings import Readings

    r = Readings.of([1, 2], [0.5, 1.5], [10, 11])
    assert len(r) == 2
    assert (r.sensor.dtype.name, r.value.dtype.name, r.ts.dtype.name, r.quality.dtype.name) == (
        "int32",
        "float64",
        "float64",
        "uint8",
    )
    assert r.quality.tolist() == [0, 0]
    assert len(Readings.empty()) == 0
