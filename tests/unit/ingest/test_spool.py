"""The local spool: durable across restarts, bounded, replayed oldest first, tolerant of a torn tail."""

from __future__ import annotations

from pathlib import Path

from ingest.spool import Record, Spool


def _records(n: int, start: int = 0) -> list[Record]:
    return [Record("rw.telemetry", b"site-A", f"value-{i}".encode()) for i in range(start, start + n)]


def test_replays_in_order_across_segments_and_restarts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000, segment_bytes=100)
    assert spool.append(_records(3)) == 3
    assert spool.append(_records(3, 3)) == 3
    spool.close()
    reopened = Spool(tmp_path, max_bytes=10_000, segment_bytes=100)
    assert reopened.records == 6 and not reopened.empty()
    seen = []
    while (segment := reopened.oldest()) is not None:
        seen += segment.records
        reopened.delivered(segment)
    assert seen == _records(6)
    assert reopened.empty() and reopened.bytes == 0 and list(tmp_path.iterdir()) == []


def test_full_spool_refuses_instead_of_dropping(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=120)
    assert spool.append(_records(10)) == 3  # frames are 37 bytes: the prefix that fits is written
    assert spool.append(_records(1)) == 0
    segment = spool.oldest()
    assert segment is not None
    spool.delivered(segment)
    assert spool.append(_records(1)) == 1


def test_new_records_after_oldest_go_to_a_new_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(_records(2))
    first = spool.oldest()
    spool.append(_records(1, 2))
    assert first is not None and first.records == _records(2)
    spool.delivered(first)
    second = spool.oldest()
    assert second is not None and second.records == _records(1, 2)


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(_records(2))
    spool.close()
    (segment_file,) = tmp_path.iterdir()
    segment_file.write_bytes(segment_file.read_bytes()[:-3])  # a crash mid-write
    reopened = Spool(tmp_path, max_bytes=10_000)
    segment = reopened.oldest()
    assert segment is not None and segment.records == _records(1)
