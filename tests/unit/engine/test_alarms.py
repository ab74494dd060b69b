"""Sensor alarm engineering: deadband, on/off delays, stale, fault, chattering, bad input."""

from __future__ import annotations

import math

import numpy as np

from processors.engine import Event, compile_model, evaluate
from riskwatch.wire.readings import Readings
from tests.unit.engine.conftest import MakeRig, Rig, site_yaml

RIG = site_yaml(
    "hazardous_chemicals",
    """
      - id: U1
        kind: process_unit
        sensors:
          - {id: GT-1, type: flammable_gas, deadband: 2}
          - {id: TT-1, type: temperature, range: [0, 500], l1_high: 300, l2_high: 350,
             on_delay_s: 30, off_delay_s: 20, stale_after_s: 3600}
          - {id: LT-1, type: level, range: [0, 20], l1_low: 2, l2_low: 1,
             on_delay_s: 0, off_delay_s: 0, deadband: 0.2}
          - {id: RAW, type: flammable_gas, deadband: 0, off_delay_s: 0}
""",
)


def test_noise_inside_the_deadband_does_not_chatter(make_rig: MakeRig) -> None:
    rig = make_rig(RIG)
    rng = np.random.default_rng(1)
    for k, noise in enumerate(rng.uniform(-1.9, 1.9, 200)):  # deadband 2 %LEL around the 25 %LEL set point
        rig.feed(float(k), {"GT-1": 25.5 + noise if k else 26.0})
    assert rig.changes("GT-1") == [("normal", "l1_high", 0.0)]
    rig.feed(300, {"GT-1": 22.9})  # clear below 25 - 2
    rig.tick(310)
    assert rig.changes("GT-1")[-1] == ("l1_high", "normal", 310.0)  # after the 10 s off-delay


def test_a_spike_shorter_than_the_on_delay_does_not_alarm(make_rig: MakeRig) -> None:
    rig = make_rig(RIG)
    rig.feed(0, {"TT-1": 320})
    rig.tick(20)
    rig.feed(29, {"TT-1": 250})
    rig.tick(100)
    assert rig.changes("TT-1") == []
    rig.feed(200, {"TT-1": 320})
    rig.feed(215, {"TT-1": 321})
    rig.tick(229.9)
    assert rig.changes("TT-1") == []
    rig.tick(230)
    assert rig.changes("TT-1") == [("normal", "l1_high", 230.0)]  # alarmed on the timer, at on-delay end


def test_escalation_uses_on_delay_and_clearing_uses_off_delay(make_rig: MakeRig) -> None:
    rig = make_rig(RIG)
    rig.feed(0, {"TT-1": 360})
    rig.feed(30, {"TT-1": 360})
    assert rig.changes("TT-1") == [("normal", "l2_high", 30.0)]
    rig.feed(40, {"TT-1": 100})
    rig.feed(59, {"TT-1": 100})
    assert rig.alarm("TT-1") == "l2_high"
    rig.feed(60, {"TT-1": 100})
    assert rig.changes("TT-1")[-1] == ("l2_high", "normal", 60.0)


def test_low_side_alarms(make_rig: MakeRig) -> None:
    rig = make_rig(RIG)
    rig.feed(1, {"LT-1": 1.9})
    rig.feed(2, {"LT-1": 0.5})
    rig.feed(3, {"LT-1": 1.1})  # inside the 0.2 m deadband above L2 low: holds
    rig.feed(4, {"LT-1": 2.3})
    expected = [("normal", "l1_low", 1.0), ("l1_low", "l2_low", 2.0), ("l2_low", "normal", 4.0)]
    assert rig.changes("LT-1") == expected


def test_stale_is_raised_with_no_input_at_all(make_rig: MakeRig) -> None:
    rig = make_rig(RIG, start=1000.0)
    rig.tick(1119)
    assert rig.log == []
    out = rig.tick(1200)
    stale = [t for t in out.transitions if t.kind == "alarm"]
    assert {t.entity for t in stale} == {"GT-1", "LT-1", "RAW"}  # TT-1 has a 3600 s stale timeout
    assert {(t.old, t.new, t.at, t.cause.rule) for t in stale} == {("normal", "stale", 1120.0, "stale")}
    assert rig.colour("U1") == "blue"


def test_stale_starts_at_the_first_evaluation_when_no_start_is_given(make_rig: MakeRig) -> None:
    rig = make_rig(RIG, start=None)
    rig.tick(500)
    assert rig.log == []
    rig.tick(620)
    assert {t.at for t in rig.log if t.kind == "alarm"} == {620.0}


def test_faults_out_of_range_nan_and_bad_quality(make_rig: MakeRig) -> None:
    rig = make_rig(RIG)
    rig.feed(1, {"GT-1": 101})
    rig.feed(2, {"TT-1": math.nan})
    rig.feed(3, {"LT-1": 10}, quality=3)
    texts = {t.entity: t.cause.text for t in rig.log if t.kind == "alarm"}
    assert texts == {
        "GT-1": "value 101 outside the sensor range 0..100",
        "TT-1": "value is not a number",
        "LT-1": "bad quality flag 3 from the gateway",
    }
    [nan] = [t for t in rig.log if t.entity == "TT-1"]
    assert nan.new == "fault" and nan.cause.items[0].value is None
    assert rig.colour("U1") == "blue"
    rig.feed(4, {"GT-1": 5})
    assert rig.alarm("GT-1") == "normal"


def test_chattering_is_reported_once_instead_of_flooding(make_rig: MakeRig) -> None:
    rig = make_rig(RIG)
    for k in range(20):  # deadband 0, no delays: 24/26 flips the alarm every 2 s
        rig.feed(2.0 * k, {"RAW": 26.0 if k % 2 == 0 else 24.0})
    changes = [t for t in rig.log if t.entity == "RAW"]
    assert [(t.old, t.new, t.cause.rule) for t in changes] == [
        ("normal", "l1_high", "set_point"),
        ("l1_high", "normal", "set_point"),
        ("normal", "l1_high", "chattering"),
    ]
    rig.feed(40, {"RAW": 24.0})
    rig.tick(97.9)
    assert len([t for t in rig.log if t.entity == "RAW"]) == 3
    rig.tick(98)  # 60 s after the last on/off change (t=38): settled normal, reported once
    last = [t for t in rig.log if t.entity == "RAW"][-1]
    assert (last.old, last.new, last.at, last.cause.rule) == ("l1_high", "normal", 98.0, "chattering_cleared")


def test_a_gateway_dropping_off_and_back_is_not_chattering(make_rig: MakeRig) -> None:
    """Stale and back is communication, not the process: a real alarm right after is reported at once."""
    rig = make_rig(RIG)
    rig.feed(0, {"RAW": 5.0})
    rig.tick(10, events=[Event("gateway_offline", "G1", 10.0)])
    rig.tick(20, events=[Event("gateway_online", "G1", 20.0)])
    rig.feed(21, {"RAW": 5.0})
    rig.feed(30, {"RAW": 60.0})  # a real L2 within 60 s of two stale/normal changes
    rig.feed(40, {"RAW": 5.0})
    assert [(t.old, t.new, t.at, t.cause.rule) for t in rig.log if t.entity == "RAW"] == [
        ("normal", "stale", 10.0, "gateway_offline"),
        ("stale", "normal", 21.0, "set_point"),
        ("normal", "l2_high", 30.0, "set_point"),
        ("l2_high", "normal", 40.0, "set_point"),
    ]


def test_readings_sent_before_a_gateways_last_will_do_not_bring_it_back(make_rig: MakeRig) -> None:
    """Readings and the gateway's status travel on different topics: its last batch can arrive after its
    last will. Older than the moment the sensor went stale, it is out of order, not the gateway back."""
    rig = make_rig(RIG)
    rig.feed(0, {"RAW": 5.0})
    rig.tick(10, events=[Event("gateway_offline", "G1", 10.0)])
    out = rig.feed(8, {"RAW": 5.0}, now=11)  # sent at 8 s, before the will (10 s), arrives after it
    assert out.out_of_order == 1 and rig.alarm("RAW") == "stale"
    rig.feed(40, {"RAW": 5.0})  # the gateway is back
    assert [(t.old, t.new, t.at) for t in rig.log if t.entity == "RAW"] == [
        ("normal", "stale", 10.0),
        ("stale", "normal", 40.0),
    ]


def test_out_of_order_readings_are_counted_and_ignored(make_rig: MakeRig) -> None:
    rig = make_rig(RIG)
    rig.feed(10, {"GT-1": 5})
    out = rig.feed(9, {"GT-1": 60})
    assert out.out_of_order == 1 and rig.out_of_order == 1
    assert rig.alarm("GT-1") == "normal" and out.transitions == []


def test_a_never_seen_sensors_first_reading_is_taken_even_if_older_than_the_state(make_rig: MakeRig) -> None:
    rig = make_rig(RIG, start=1000.0)
    out = rig.feed(990, {"GT-1": 60}, now=1000)  # a backlog, or a gateway whose clock is a little behind
    assert out.out_of_order == 0 and rig.out_of_order == 0
    assert rig.changes("GT-1") == [("normal", "l2_high", 990.0)]
    assert rig.alarm("GT-1") == "l2_high" and rig.colour("U1") == "orange"


def test_warnings_from_a_first_reading_older_than_the_state_carry_the_readings_time(
    make_rig: MakeRig,
) -> None:
    # The unit's time is the latest of its sensors' report times; sensors that never reported have none,
    # so the ids do not depend on when the state happened to be started (the worker's clock).
    for start in (1000.0, 1003.0):
        rig = make_rig(RIG, start=start)
        rig.feed(990, {"GT-1": 60}, now=start)
        assert rig.changes("U1") == [("normal", "orange", 990.0)]
        assert rig.changes("S1") == [("normal", "orange", 990.0)]


def test_after_the_first_reading_older_readings_are_still_out_of_order(make_rig: MakeRig) -> None:
    rig = make_rig(RIG, start=1000.0)
    i = rig.index("GT-1")
    batch = Readings.of([i, i], [60.0, 5.0], [990.0, 980.0])  # the second is older than the first
    out = rig.evaluate(batch, 1000.0)
    assert out.out_of_order == 1
    out = rig.feed(985, {"GT-1": 5}, now=1001)
    assert out.out_of_order == 1 and rig.out_of_order == 2
    assert rig.alarm("GT-1") == "l2_high" and rig.changes("GT-1") == [("normal", "l2_high", 990.0)]


def test_a_never_seen_sensor_still_turns_stale_at_the_state_start_plus_its_timeout(make_rig: MakeRig) -> None:
    rig = make_rig(RIG, start=1000.0)
    rig.feed(990, {"GT-1": 5.0}, now=1000)  # taken: GT-1's stale timer now runs from its reading
    rig.tick(1109.9)
    assert rig.log == []
    rig.tick(1110)
    assert rig.changes("GT-1") == [("normal", "stale", 1110.0)]
    rig.tick(1120)  # the sensors that never reported: the state's start + 120 s (TT-1 has 3600 s)
    stale = {(t.entity, t.new, t.at) for t in rig.log if t.kind == "alarm"}
    assert stale == {("GT-1", "stale", 1110.0), ("LT-1", "stale", 1120.0), ("RAW", "stale", 1120.0)}


def test_unknown_sensors_and_bad_times_are_rejected_with_a_reason(make_rig: MakeRig) -> None:
    rig = make_rig(RIG)
    batch = Readings.of([0, 99, -1, 1], [5.0, 5.0, 5.0, 5.0], [1.0, 1.0, 1.0, math.inf])
    out = rig.evaluate(batch, 2.0)
    assert [(r.source, r.position, r.reason) for r in out.rejects] == [
        ("reading", 1, "unknown sensor index 99 (registry has 4 sensors)"),
        ("reading", 2, "unknown sensor index -1 (registry has 4 sensors)"),
        ("reading", 3, "timestamp inf is not a finite epoch time"),
    ]
    assert rig.rejected == 3
    assert rig.last_reading_at("GT-1") == 1.0  # the one good reading of the batch was taken


def test_several_readings_of_one_sensor_in_a_batch_are_taken_in_order(make_rig: MakeRig) -> None:
    rig = make_rig(RIG)
    i = rig.index("RAW")
    batch = Readings.of([i, i, i], [30.0, 60.0, 10.0], [1.0, 2.0, 3.0])
    out = rig.evaluate(batch, 3.0).transitions
    expected = [("l1_high", 1.0), ("l2_high", 2.0), ("normal", 3.0)]
    assert [(t.new, t.at) for t in out if t.entity == "RAW"] == expected


def test_bad_events_are_rejected(make_rig: MakeRig) -> None:
    from processors.engine import Event

    rig = make_rig(RIG)
    out = rig.tick(1, events=[Event("valve_closed", "NOPE", 1.0), Event("gateway_offline", "G9", 1.0)])
    assert [r.reason for r in out.rejects] == ["unknown unit (hazard source) 'NOPE'", "unknown gateway 'G9'"]


def test_compile_model_of_the_example_registry() -> None:
    from pathlib import Path

    from riskwatch.registry import load_registry

    registry = load_registry(Path(__file__).parents[3] / "deploy" / "examples" / "registry.yaml")
    model = compile_model(registry)
    assert model.n_sensors == len(registry.sensors) and model.fingerprint == registry.fingerprint


def test_a_malformed_batch_is_refused_loudly() -> None:
    import pytest

    rig = Rig(RIG)
    bad = Readings(np.array([0, 1], np.int32), np.array([1.0]), np.array([1.0, 2.0]), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="same length"):
        evaluate(rig.model, rig.state, bad, 2.0)


def test_engine_events_take_the_gateway_protocol_event_kinds() -> None:
    from processors.engine import EVENT_KINDS
    from processors.engine_reference import EVENT_KINDS as REFERENCE_KINDS
    from riskwatch.wire.gateway_protocol import EVENT_KINDS as WIRE_KINDS
    from riskwatch.wire.gateway_protocol import STATUS_STATES

    assert set(WIRE_KINDS) | {f"gateway_{state}" for state in STATUS_STATES} == set(EVENT_KINDS)
    assert set(EVENT_KINDS) == set(REFERENCE_KINDS)


def test_gateway_records_from_the_bridge_drive_events() -> None:
    from processors.engine import apply_gateway
    from riskwatch.wire.gateway_protocol import GatewayRecord

    rig = Rig(RIG)
    records = [
        GatewayRecord("status", "S1", "G1", None, received=50.0, state="offline"),
        GatewayRecord("event", "S1", "G1", 51.0, received=52.0, kind="maintenance_on", target="U1"),
        GatewayRecord("event", "S1", "G1", 51.0, received=52.0, kind="maintenance_on", target="NOPE"),
    ]
    rig.state, out = apply_gateway(rig.model, rig.state, records, 55.0)
    assert {t.at for t in out if t.kind == "alarm"} == {50.0}  # received time when the device sent none
    assert rig.colour("U1") == "normal"  # maintenance holds the stale unit normal
    assert rig.state.rejected == 1  # the unknown unit is counted, not lost
