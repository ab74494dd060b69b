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


def test_an_oversized_original_is_cut_to_fit_one_kafka_record_with_its_length_and_hash() -> None:
    import hashlib

    from riskwatch.wire.deadletter import MAX_ORIGINAL_BYTES, MAX_RECORD_BYTES

    original = b"x" * 800_000  # Mosquitto accepts this; Kafka's 1 MiB request would not take it base64'd
    raw = DeadLetter("oversized_payload", "too big", "rw/v1/S/G/telemetry", original, 1.0).to_bytes()
    assert len(raw) <= MAX_RECORD_BYTES
    back = DeadLetter.from_bytes(raw)
    assert back.original == original[:MAX_ORIGINAL_BYTES]
    assert back.original_length == 800_000
    assert back.original_sha256 == hashlib.sha256(original).hexdigest()


def test_twelve_thousand_items_are_capped_and_counted() -> None:
    from riskwatch.wire.deadletter import MAX_ITEMS, MAX_RECORD_BYTES

    items = tuple(
        DeadItem(i, "sensor_unknown", f"sensor {'S' * 120}{i} unknown", f"S{i}") for i in range(12_000)
    )
    raw = DeadLetter("sensor_unknown", "12000 of 12000", "t", b"{}", 1.0, items=items).to_bytes()
    assert len(raw) <= MAX_RECORD_BYTES
    back = DeadLetter.from_bytes(raw)
    assert len(back.items) == MAX_ITEMS and back.items_total == 12_000


def test_lone_surrogates_and_huge_texts_never_break_serialisation() -> None:
    letter = DeadLetter(
        "schema",
        "bad \ud800 id" * 10_000,
        "rw/v1/S/G/events",
        b"\xff",
        1.0,
        gateway="G\udfff",
        items=(DeadItem(0, "schema", "x", "\ud800"),),
    )
    back = DeadLetter.from_bytes(letter.to_bytes())
    assert back.items[0].sensor == "\\ud800" and back.gateway == "G\\udfff"
    assert len(back.detail) < 2000  # 1,000 characters, each escape written out


def test_a_kafka_consumer_dead_letter_names_topic_partition_and_offset() -> None:
    letter = DeadLetter(
        "malformed_record",
        "id is not a string",
        "rw.warnings",
        b"{}",
        1.0,
        component="alerting",
        partition=3,
        offset=1234,
    )
    back = DeadLetter.from_bytes(letter.to_bytes())
    assert (back.source, back.partition, back.offset) == ("rw.warnings", 3, 1234)
