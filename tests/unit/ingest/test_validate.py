"""The bridge's validation: every bad input gets its stable reason, good readings go on."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.lookup import SensorTable
from ingest.validate import Validator
from riskwatch.wire.deadletter import Reason
from riskwatch.wire.gateway_protocol import events_payload, status_payload, telemetry_payload

NOW = 1_700_000_000.0
TOPIC = "rw/v1/site-A/gw-a1/telemetry"


def _msg(*readings: dict[str, object], gw: str = "gw-a1", seq: int = 1) -> bytes:
    return telemetry_payload(gw, seq, list(readings))


def test_good_message_becomes_indexed_readings(table: SensorTable) -> None:
    out = Validator(table).validate(
        TOPIC, _msg({"s": "gas-1", "v": 12.5, "t": NOW, "q": 1}, {"s": "pt-1", "v": 0.4, "t": NOW}), NOW
    )
    assert out.deadletter is None and out.rejected == () and out.readings_in == 2
    assert (out.site, out.gateway, out.seq) == ("site-A", "gw-a1", 1)
    assert out.readings is not None
    np.testing.assert_array_equal(out.readings.sensor, [1, 0])
    np.testing.assert_array_equal(out.readings.value, [12.5, 0.4])
    np.testing.assert_array_equal(out.readings.quality, [1, 0])


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TOPIC, b"{oops", Reason.MALFORMED_JSON),
        (TOPIC, b'{"gw": "gw-a1"}', Reason.SCHEMA),
        (TOPIC, b" " * 300_000, Reason.OVERSIZED_PAYLOAD),
        ("rw/v1/site-A/gw-a1/firmware", b"{}", Reason.WRONG_TOPIC),
        ("rw/v1/site-A/gw-zz/telemetry", b"{}", Reason.GATEWAY_UNKNOWN),
        ("rw/v1/site-B/gw-a1/telemetry", b"{}", Reason.GATEWAY_SITE_MISMATCH),
        (
            "rw/v1/site-A/gw-a2/telemetry",
            telemetry_payload("gw-a1", 1, [{"s": "pt-1", "v": 1, "t": NOW}]),
            Reason.GATEWAY_TOPIC_MISMATCH,
        ),
    ],
)
def test_whole_message_rejects(table: SensorTable, topic: str, payload: bytes, reason: Reason) -> None:
    out = Validator(table).validate(topic, payload, NOW)
    assert out.readings is None and out.records == ()
    assert out.deadletter is not None and out.deadletter.reason == reason
    assert out.deadletter.original == payload and out.deadletter.source == topic and out.deadletter.at == NOW
    assert out.rejected == (reason.value,)


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        ({"s": "nope", "v": 1, "t": NOW}, Reason.SENSOR_UNKNOWN),
        ({"s": "pt-b", "v": 1, "t": NOW}, Reason.SENSOR_SITE_MISMATCH),
        ({"s": "pt-1", "v": 1, "t": NOW, "u": "bar"}, Reason.WRONG_UNIT),
        ({"s": "pt-1", "v": 1, "t": NOW + 301}, Reason.FUTURE_TIMESTAMP),
        ({"s": "pt-1", "v": "high", "t": NOW}, Reason.SCHEMA),
    ],
)
def test_bad_reading_is_dead_lettered_and_the_good_one_goes_on(
    table: SensorTable, reading: dict, reason: Reason
) -> None:
    out = Validator(table).validate(TOPIC, _msg({"s": "gas-1", "v": 3, "t": NOW}, reading), NOW)
    assert out.readings is not None
    np.testing.assert_array_equal(out.readings.sensor, [1])
    assert out.deadletter is not None and out.deadletter.reason == reason
    assert [(i.index, i.reason) for i in out.deadletter.items] == [(1, reason.value)]
    assert out.deadletter.items[0].detail
    assert out.deadletter.detail == "1 of 2 readings rejected"
    assert (out.deadletter.site, out.deadletter.gateway) == ("site-A", "gw-a1")
    assert out.rejected == (reason.value,)


def test_non_finite_value_from_a_python_json_gateway(table: SensorTable) -> None:
    payload = (
        b'{"gw": "gw-a1", "seq": 4, "readings": [{"s": "pt-1", "v": NaN, "t": 1700000000},'
        b' {"s": "pt-1", "v": Infinity, "t": 1700000001}, {"s": "pt-1", "v": 1, "t": 1700000002}]}'
    )
    out = Validator(table).validate(TOPIC, payload, NOW)
    assert out.deadletter is not None and out.deadletter.reason == Reason.NON_FINITE_VALUE
    assert [i.index for i in out.deadletter.items] == [0, 1]
    assert out.readings is not None and len(out.readings) == 1


def test_several_reasons_in_one_message_are_mixed_with_per_item_reasons(table: SensorTable) -> None:
    out = Validator(table).validate(
        TOPIC, _msg({"s": "nope", "v": 1, "t": NOW}, {"s": "pt-1", "v": 1, "t": NOW + 1e6}), NOW
    )
    assert out.readings is None
    assert out.deadletter is not None and out.deadletter.reason == Reason.MIXED
    assert [(i.index, i.reason) for i in out.deadletter.items] == [
        (0, "sensor_unknown"),
        (1, "future_timestamp"),
    ]


def test_tolerance_is_configurable(table: SensorTable) -> None:
    payload = _msg({"s": "pt-1", "v": 1, "t": NOW + 10})
    assert Validator(table, future_tolerance_s=5).validate(TOPIC, payload, NOW).deadletter is not None
    assert Validator(table).validate(TOPIC, payload, NOW).deadletter is None


def test_status_and_events_become_gateway_records(table: SensorTable) -> None:
    v = Validator(table)
    status = v.validate("rw/v1/site-A/gw-a1/status", status_payload("gw-a1", "offline"), NOW)
    assert [(r.type, r.site, r.gw, r.state) for r in status.records] == [
        ("status", "site-A", "gw-a1", "offline")
    ]
    events = v.validate(
        "rw/v1/site-A/gw-a1/events",
        events_payload(
            "gw-a1",
            9,
            [
                {"kind": "interlock_bypassed", "target": "u1", "t": NOW},
                {"kind": "valve_closed", "target": "u1", "t": NOW + 1e5},
            ],
        ),
        NOW,
    )
    assert [(r.kind, r.seq, r.index) for r in events.records] == [("interlock_bypassed", 9, 0)]
    assert events.deadletter is not None and events.deadletter.reason == Reason.FUTURE_TIMESTAMP
    assert events.deadletter.detail == "1 of 2 events rejected"
    assert (events.deadletter.site, events.deadletter.gateway) == ("site-A", "gw-a1")
    assert events.rejected == ("future_timestamp",)


def _events(*events: dict[str, object], gw: str = "gw-a1") -> bytes:
    return events_payload(gw, 5, list(events))


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        ({"s": "pt-1", "v": 1, "t": -1e11}, Reason.OLD_TIMESTAMP),
        ({"s": "pt-1", "v": 1, "t": NOW - 8 * 86400}, Reason.OLD_TIMESTAMP),
        ({"s": "pt-a2", "v": 1, "t": NOW}, Reason.SENSOR_GATEWAY_MISMATCH),
        ({"s": "x" * 129, "v": 1, "t": NOW}, Reason.SCHEMA),
        ({"s": "pt-1", "v": 1, "t": NOW, "u": "M" * 33}, Reason.SCHEMA),
    ],
)
def test_bounds_and_bindings_of_readings(table: SensorTable, reading: dict, reason: Reason) -> None:
    out = Validator(table).validate(TOPIC, _msg({"s": "gas-1", "v": 3, "t": NOW}, reading), NOW)
    assert out.readings is not None and out.readings.sensor.tolist() == [1]
    assert out.deadletter is not None and [(i.index, i.reason) for i in out.deadletter.items] == [
        (1, reason.value)
    ]
    assert out.deadletter.items[0].detail


def test_max_age_is_configurable(table: SensorTable) -> None:
    payload = _msg({"s": "pt-1", "v": 1, "t": NOW - 3600})
    assert Validator(table).validate(TOPIC, payload, NOW).deadletter is None
    out = Validator(table, max_age_s=600).validate(TOPIC, payload, NOW)
    assert out.readings is None and out.deadletter is not None
    assert (
        out.deadletter.reason == Reason.OLD_TIMESTAMP
        and "maximum age 600 s" in out.deadletter.items[0].detail
    )


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TOPIC, _msg(*[{"s": "pt-1", "v": 1, "t": NOW}] * 11), Reason.TOO_MANY_ITEMS),
        (
            "rw/v1/site-A/gw-a1/events",
            _events(*[{"kind": "valve_closed", "target": "u1", "t": NOW}] * 4),
            Reason.TOO_MANY_ITEMS,
        ),
        (
            TOPIC,
            b'{"gw": "gw-a1", "seq": 1, "readings": [{"s": "pt-1", "v": 1e999999, "t": 1700000000}]}',
            Reason.NON_FINITE_VALUE,
        ),
        (
            TOPIC,
            b'{"gw": "gw-a1", "seq": 1, "readings": [{"s": "pt-1", "v": 1, "t": ' + b"9" * 400 + b"}]}",
            Reason.SCHEMA,
        ),
        (
            TOPIC,
            b'{"gw": "gw-a1", "seq": ' + b"9" * 30 + b', "readings": [{"s": "pt-1", "v": 1, "t": 1}]}',
            Reason.SCHEMA,
        ),
        (
            TOPIC,
            b'{"gw": "gw-a1", "seq": 1, "readings": [{"s": "pt-\\udc00", "v": 1, "t": 1}]}',
            Reason.MALFORMED_JSON,
        ),
        (
            "rw/v1/site-A/gw-a1/status",
            b'{"gw": "gw-a1", "state": "online", "t": -1e11}',
            Reason.OLD_TIMESTAMP,
        ),
        (
            "rw/v1/site-A/gw-a1/status",
            b'{"gw": "gw-a1", "state": "online", "t": NaN}',
            Reason.NON_FINITE_TIMESTAMP,
        ),
        (
            "rw/v1/site-A/gw-a1/status",
            b'{"gw": "gw-a1", "state": "online", "t": ' + b"9" * 400 + b"}",
            Reason.SCHEMA,
        ),
        (
            "rw/v1/site-A/gw-a1/status",
            b'{"gw": "gw-a1", "state": "online", "t": ' + b"9" * 30 + b"}",
            Reason.FUTURE_TIMESTAMP,
        ),
    ],
)
def test_limits_of_whole_messages(table: SensorTable, topic: str, payload: bytes, reason: Reason) -> None:
    out = Validator(table, max_readings=10, max_events=3).validate(topic, payload, NOW)
    assert out.readings is None and out.records == ()
    assert out.deadletter is not None and out.deadletter.reason == reason, out.deadletter
    assert out.deadletter.detail


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"kind": "maintenance_on", "target": "u2", "t": NOW}, Reason.TARGET_NOT_SERVED),  # gw-a2's unit
        ({"kind": "maintenance_on", "target": "u3", "t": NOW}, Reason.TARGET_NOT_SERVED),  # nobody's
        ({"kind": "maintenance_on", "target": "ub", "t": NOW}, Reason.TARGET_NOT_SERVED),  # another site's
        ({"kind": "maintenance_on", "target": "pt-a2", "t": NOW}, Reason.TARGET_NOT_SERVED),  # gw-a2's sensor
        ({"kind": "maintenance_on", "target": "nowhere", "t": NOW}, Reason.TARGET_UNKNOWN),
        ({"kind": "valve_closed", "target": "u1", "t": -1e11}, Reason.OLD_TIMESTAMP),
        ({"kind": "valve_closed", "target": "u1", "t": NOW, "note": "n" * 1001}, Reason.SCHEMA),
        ({"kind": "valve_closed", "target": "u" * 129, "t": NOW}, Reason.SCHEMA),
    ],
)
def test_events_are_bound_to_what_their_gateway_serves(
    table: SensorTable, event: dict, reason: Reason
) -> None:
    good = [
        {"kind": "valve_closed", "target": "u1", "t": NOW},
        {"kind": "valve_opened", "target": "gas-1", "t": NOW},
    ]
    out = Validator(table).validate("rw/v1/site-A/gw-a1/events", _events(*good, event), NOW)
    assert [(r.kind, r.target) for r in out.records] == [("valve_closed", "u1"), ("valve_opened", "gas-1")]
    assert out.deadletter is not None and [(i.index, i.reason) for i in out.deadletter.items] == [
        (2, reason.value)
    ]
    assert out.deadletter.items[0].detail


def test_long_gateway_id_in_the_payload_is_schema(table: SensorTable) -> None:
    out = Validator(table).validate(TOPIC, _msg({"s": "pt-1", "v": 1, "t": NOW}, gw="g" * 129), NOW)
    assert out.deadletter is not None and out.deadletter.reason == Reason.SCHEMA
