"""Gateway protocol parsing: good messages become columns, bad ones get stable reasons, never raise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskwatch.wire.deadletter import Reason
from riskwatch.wire.gateway_protocol import (
    GatewayDecodeError,
    GatewayRecord,
    Rejected,
    TelemetryMessage,
    TopicParts,
    events_payload,
    parse_events,
    parse_status,
    parse_telemetry,
    parse_topic,
    status_payload,
    telemetry_payload,
)


def test_topic_parts_and_wrong_topics() -> None:
    assert parse_topic("rw/v1/site-A/gw-1/telemetry") == TopicParts("site-A", "gw-1", "telemetry")
    for bad in [
        "rw/v2/a/b/telemetry",
        "rw/v1/a/b/metrics",
        "rw/v1/a/telemetry",
        "x/v1/a/b/status",
        "rw/v1//b/events",
    ]:
        result = parse_topic(bad)
        assert isinstance(result, Rejected) and result.reason is Reason.WRONG_TOPIC


def test_good_telemetry_becomes_columns() -> None:
    payload = telemetry_payload(
        "gw-1", 5, [{"s": "pt-1", "v": 1.5, "t": 100}, {"s": "pt-2", "v": 3, "t": 101.5, "q": 2}]
    )
    msg = parse_telemetry(payload)
    assert isinstance(msg, TelemetryMessage)
    assert (msg.gateway, msg.seq, msg.sensor, msg.bad, msg.unit) == ("gw-1", 5, ["pt-1", "pt-2"], [], None)
    np.testing.assert_array_equal(msg.value, [1.5, 3.0])
    np.testing.assert_array_equal(msg.ts, [100.0, 101.5])
    np.testing.assert_array_equal(msg.quality, [0, 2])


def test_units_are_carried_when_present() -> None:
    msg = parse_telemetry(
        telemetry_payload("g", 1, [{"s": "a", "v": 1, "t": 1, "u": "MPa"}, {"s": "b", "v": 1, "t": 1}])
    )
    assert isinstance(msg, TelemetryMessage) and msg.unit == ["MPa", None]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", Reason.MALFORMED_JSON),
        (b"\xff\xfe", Reason.MALFORMED_JSON),
        (b"[1, 2]", Reason.SCHEMA),
        (b'{"seq": 1, "readings": [{"s": "a", "v": 1, "t": 1}]}', Reason.SCHEMA),
        (b'{"gw": "g", "seq": -1, "readings": [{"s": "a", "v": 1, "t": 1}]}', Reason.SCHEMA),
        (b'{"gw": "g", "seq": true, "readings": [{"s": "a", "v": 1, "t": 1}]}', Reason.SCHEMA),
        (b'{"gw": "g", "seq": 1, "readings": []}', Reason.SCHEMA),
        (b'{"gw": "g", "seq": 1}', Reason.SCHEMA),
    ],
)
def test_whole_message_rejects(payload: bytes, reason: Reason) -> None:
    result = parse_telemetry(payload)
    assert isinstance(result, Rejected) and result.reason is reason and result.detail


def test_bad_readings_are_marked_and_good_ones_kept() -> None:
    payload = (
        b'{"gw": "g", "seq": 1, "readings": [{"s": "a", "v": 1, "t": 1}, {"s": "b", "v": "1.5", "t": 1},'
        b' {"s": "c", "v": true, "t": 1}, 7, {"s": "", "v": 1, "t": 1}, {"s": "d", "v": 2, "t": 2, "q": 300},'
        b' {"s": "e", "v": NaN, "t": 3}]}'
    )
    msg = parse_telemetry(payload)
    assert isinstance(msg, TelemetryMessage)
    assert [(b.index, b.reason) for b in msg.bad] == [(i, Reason.SCHEMA) for i in (1, 2, 3, 4, 5)]
    assert msg.sensor[0] == "a" and msg.sensor[6] == "e"
    assert msg.value[0] == 1.0 and np.isnan(msg.value[6])  # NaN parsed, left for non_finite_value


_ROWS = st.lists(
    st.fixed_dictionaries(
        {"s": st.text("abc-1", min_size=1, max_size=8), "v": st.one_of(st.integers(-9, 9), st.floats(-1e6, 1e6)),
         "t": st.floats(0, 2e9)},
        optional={"q": st.integers(0, 255), "u": st.one_of(st.none(), st.sampled_from(["MPa", "%LEL", ""]))},
    ),
    min_size=1, max_size=20,
)  # fmt: skip


@given(_ROWS)
def test_a_reading_is_taken_or_refused_the_same_whatever_its_neighbours(
    rows: list[dict[str, object]],
) -> None:
    """A message of well-formed readings takes the fast path; one malformed neighbour sends the same
    readings through the row-by-row path. Each reading's fate and columns must not depend on which."""
    fast = parse_telemetry(telemetry_payload("g", 1, rows))
    slow = parse_telemetry(telemetry_payload("g", 1, [*rows, {"s": "bad", "v": "not a number", "t": 1}]))
    assert isinstance(fast, TelemetryMessage) and isinstance(slow, TelemetryMessage)
    assert fast.bad == [] and [b.index for b in slow.bad] == [len(rows)]
    n = len(rows)
    assert slow.sensor[:n] == fast.sensor
    np.testing.assert_array_equal(slow.value[:n], fast.value)
    np.testing.assert_array_equal(slow.ts[:n], fast.ts)
    np.testing.assert_array_equal(slow.quality[:n], fast.quality)
    assert (slow.unit or [None] * (n + 1))[:n] == (fast.unit or [None] * n)


def test_a_null_unit_is_a_unit_not_given() -> None:
    for rows in (
        [{"s": "a", "v": 1, "t": 1, "u": None}],
        [{"s": "a", "v": 1, "t": 1, "u": None}, {"s": "b"}],
    ):
        msg = parse_telemetry(telemetry_payload("g", 1, rows))
        assert (
            isinstance(msg, TelemetryMessage) and msg.sensor[0] == "a" and 0 not in [b.index for b in msg.bad]
        )


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    for parse in (parse_telemetry, parse_status, parse_events):
        parse(payload)


def test_status_and_events() -> None:
    status = parse_status(status_payload("gw-1", "offline"))
    assert status == ("gw-1", "offline", None)
    assert isinstance(parse_status(b'{"gw": "g", "state": "sleepy"}'), Rejected)
    events = parse_events(
        events_payload(
            "gw-1",
            3,
            [
                {"kind": "valve_closed", "target": "unit-7", "t": 10},
                {"kind": "exploded", "target": "x", "t": 1},
            ],
        )
    )
    assert not isinstance(events, Rejected)
    assert events.events[0] == ("valve_closed", "unit-7", 10.0, "") and events.events[1] is None
    assert [(b.index, b.reason) for b in events.bad] == [(1, Reason.SCHEMA)]


def test_gateway_record_round_trip() -> None:
    rec = GatewayRecord(
        "event", "site-A", "gw-1", 10.0, 11.0, seq=3, index=1, kind="maintenance_on", target="u1"
    )
    assert GatewayRecord.from_bytes(rec.to_bytes()) == rec
    with pytest.raises(GatewayDecodeError):
        GatewayRecord.from_bytes(b'{"v": 9}')
    with pytest.raises(GatewayDecodeError):
        GatewayRecord.from_bytes(b"garbage")


@pytest.mark.parametrize(
    ("payload", "reason", "words"),
    [
        (
            b'{"gw": "g", "seq": 1, "readings": [{"s": "\\ud800", "v": 1, "t": 1}]}',
            Reason.MALFORMED_JSON,
            "surrogate",
        ),
        (b'{"gw": "g\\udfff", "state": "online"}', Reason.MALFORMED_JSON, "surrogate"),
        (
            b'{"gw": "g", "seq": 1, "events": [{"kind": "valve_closed", "target": "u", "t": 1, "note": "\\ud83d"}]}',
            Reason.MALFORMED_JSON,
            "surrogate",
        ),
        (
            b'{"gw": "g", "seq": 1, "readings": [{"s": "a", "v": ' + b"9" * 500 + b', "t": 1}]}',
            Reason.SCHEMA,
            "64 bits",
        ),
        (
            b'{"gw": "g", "seq": 1, "readings": [{"s": "a", "v": 1, "t": -' + b"9" * 500 + b"}]}",
            Reason.SCHEMA,
            "64 bits",
        ),
        (b'{"gw": "g", "state": "online", "t": ' + b"9" * 500 + b"}", Reason.SCHEMA, "64 bits"),
        (
            b'{"gw": "g", "seq": 1, "readings": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
            Reason.MALFORMED_JSON,
            "",
        ),
    ],
)
def test_what_no_encoder_can_write_back_is_refused(payload: bytes, reason: Reason, words: str) -> None:
    parse = (
        parse_status if b'"state"' in payload else parse_events if b'"events"' in payload else parse_telemetry
    )
    result = parse(payload)
    assert isinstance(result, Rejected) and result.reason == reason and words in result.detail


def test_a_valid_surrogate_pair_is_an_ordinary_character() -> None:
    msg = parse_telemetry(b'{"gw": "g", "seq": 1, "readings": [{"s": "\\ud83d\\ude00", "v": 1, "t": 1}]}')
    assert isinstance(msg, TelemetryMessage) and msg.sensor == ["\U0001f600"]


def test_too_many_items_and_long_texts() -> None:
    readings = [{"s": "a", "v": 1, "t": 1}] * 4
    assert (
        parse_telemetry(telemetry_payload("g", 1, readings), max_readings=3).reason == Reason.TOO_MANY_ITEMS
    )  # type: ignore[union-attr]
    events = [{"kind": "valve_closed", "target": "u", "t": 1}] * 3
    assert parse_events(events_payload("g", 1, events), max_events=2).reason == Reason.TOO_MANY_ITEMS  # type: ignore[union-attr]
    long = parse_telemetry(telemetry_payload("g", 1, [{"s": "s" * 129, "v": 1, "t": 1}, readings[0]]))
    assert isinstance(long, TelemetryMessage) and [(b.index, b.reason) for b in long.bad] == [
        (0, Reason.SCHEMA)
    ]
    assert parse_status(status_payload("g" * 129, "online")).reason == Reason.SCHEMA  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "doc",
    [
        b"[1, 2]",
        b'{"v": 1, "type": "status", "site": "s", "gw": "g", "t": null, "received": "now"}',
        b'{"v": 1, "type": "status", "site": ["s"], "gw": "g", "t": null, "received": 1.0}',
        b'{"v": 1, "type": "event", "site": "s", "gw": "g", "t": 1.0, "received": 1.0, "seq": -1}',
        b'{"v": 1, "type": "alarm", "site": "s", "gw": "g", "t": 1.0, "received": 1.0}',
        b'{"v": 1, "type": "event", "site": "s", "gw": "g", "t": 1.0, "received": 1.0, "note": 5}',
        b'{"v": 1, "type": "event", "site": "s", "gw": "g", "t": 1.0, "received": 1.0, "id": [1]}',
    ],
)
def test_gateway_records_of_the_wrong_shape_are_refused(doc: bytes) -> None:
    with pytest.raises(GatewayDecodeError):
        GatewayRecord.from_bytes(doc)
