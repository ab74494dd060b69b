"""The load generator's Kafka reader takes each partition in offset order and skips nothing: a record
the client returns again is left out, and a record beyond a hole the client left rewinds to the hole."""

from __future__ import annotations

from typing import Any, NamedTuple

from kafka import TopicPartition

from simulators.kafka_watch import TopicReader

TP = TopicPartition("t.warnings", 4)


class Record(NamedTuple):
    offset: int
    timestamp: int
    value: bytes


class Client:
    """Stands in for kafka-python's consumer: only what the ordering calls."""

    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def _reader(next_offset: int) -> tuple[TopicReader, Client]:
    reader = TopicReader.__new__(TopicReader)
    client = Client()
    reader.consumer, reader.topic = client, TP.topic  # type: ignore[assignment]
    reader.next_offset, reader.rewinds, reader._rewound_at = {TP: next_offset}, 0, {}
    return reader, client


def _records(*offsets: int) -> list[Any]:
    return [Record(o, 1_000 * o, b"r%d" % o) for o in offsets]


def test_records_in_order_are_returned_with_their_stored_time() -> None:
    reader, client = _reader(3)
    assert reader._in_order(TP, _records(3, 4)) == [(3.0, b"r3"), (4.0, b"r4")]
    assert reader.next_offset[TP] == 5 and client.seeks == []


def test_a_record_returned_again_is_left_out() -> None:
    reader, _ = _reader(5)  # e.g. after a rewind, records fetched before it
    assert reader._in_order(TP, _records(3, 4, 5)) == [(5.0, b"r5")]


def test_a_hole_rewinds_to_it_and_its_records_come_in_order() -> None:
    reader, client = _reader(3)
    # offset 3 was never returned (a reset to the end after a leader change): back to 3, nothing after
    assert reader._in_order(TP, _records(4, 5)) == []
    assert client.seeks == [(TP, 3)] and reader.rewinds == 1 and reader.next_offset[TP] == 3
    assert reader._in_order(TP, _records(3, 4, 5)) == [(3.0, b"r3"), (4.0, b"r4"), (5.0, b"r5")]


def test_a_hole_found_again_after_its_rewind_is_a_real_gap() -> None:
    reader, client = _reader(3)
    reader._in_order(TP, _records(4))
    assert reader._in_order(TP, _records(4, 5)) == [(4.0, b"r4"), (5.0, b"r5")]  # e.g. compacted away
    assert client.seeks == [(TP, 3)] and reader.next_offset[TP] == 6
