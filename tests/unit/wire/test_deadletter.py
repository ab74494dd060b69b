"""Dead-letter records keep the original bytes and per-item reasons across the wire."""

from __future__ import annotations

import pytest

from riskwatch.wire.deadletter import DeadItem, DeadLetter, DeadLetterDecodeError, Reason, summary_reason


def test_round_trip_keeps_original_bytes_and_items() -> None:
    items = (DeadItem(2, "sensor_unknown", "not in registry", "pt-9"),)
    record = DeadLetter(
        "sensor_unknown",
        "1 of 3 readings",
        "rw/v1/s/g/telemetry",
        b"\x00\xffraw",
        5.0,
        site="s",
        gateway="g",
        items=items,
    )
    back = DeadLetter.from_bytes(record.to_bytes())
    assert back == record and back.original == b"\x00\xffraw" and record.key == b"s"


def test_summary_reason() -> None:
    a, b = DeadItem(0, "wrong_unit"), DeadItem(1, "future_timestamp")
    assert summary_reason((a, a)) == "wrong_unit"
    assert summary_reason((a, b)) == Reason.MIXED


def test_bad_records_raise_decode_error() -> None:
    for raw in (b"nope", b'{"v": 2}', b'{"v": 1, "reason": "x"}'):
        with pytest.raises(DeadLetterDecodeError):
            DeadLetter.from_bytes(raw)
