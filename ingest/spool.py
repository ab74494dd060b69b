"""A bounded, fsync'd, append-only local spool of Kafka records, replayed oldest first.

Used while Kafka is unreachable: a record is acknowledged to MQTT once it is in the spool (after fsync),
so the spool must survive a crash. Records live in numbered segment files of length-prefixed, CRC-checked
frames; a segment is deleted once every record in it reached Kafka. A torn frame at a segment's end (a
crash mid-write, never fsync'd, so never acknowledged) ends that segment's replay.

Frame: u32 body length | u32 crc32(body) | body = u16 topic length, topic, u16 key length, key, value.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")
_U16 = struct.Struct("<H")
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024  # small segments bound the duplicates a crash mid-replay causes


class Record(NamedTuple):
    """One Kafka record as produced: topic, key, value."""

    topic: str
    key: bytes
    value: bytes


class Segment(NamedTuple):
    """A closed segment handed to the replayer: its file and records in order."""

    path: Path
    records: list[Record]


def _frame(record: Record) -> bytes:
    topic = record.topic.encode()
    body = b"".join((_U16.pack(len(topic)), topic, _U16.pack(len(record.key)), record.key, record.value))
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


class Spool:
    """Thread-safe spool bounded by `max_bytes`; `append` refuses what does not fit (back-pressure)."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory, self.max_bytes, self.segment_bytes = directory, max_bytes, segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._segments = sorted(directory.glob("seg-*.spool"))
        self._bytes = sum(p.stat().st_size for p in self._segments)
        self._records = sum(len(_read_segment(p)) for p in self._segments)
        self._next = int(self._segments[-1].stem[4:]) + 1 if self._segments else 0
        self._current: BinaryIO | None = None
        self._current_path: Path | None = None

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def records(self) -> int:
        return self._records

    def empty(self) -> bool:
        return self._records == 0

    def append(self, records: Sequence[Record]) -> int:
        """Write as many records as fit, fsync once, return how many were written (a prefix)."""
        with self._lock:
            frames, size = [], self._bytes
            for record in records:
                frame = _frame(record)
                if size + len(frame) > self.max_bytes:
                    break
                frames.append(frame)
                size += len(frame)
            if not frames:
                return 0
            out = self._writable()
            out.write(b"".join(frames))
            out.flush()
            os.fsync(out.fileno())
            self._bytes, self._records = size, self._records + len(frames)
            if out.tell() >= self.segment_bytes:
                self._close_current()
            return len(frames)

    def oldest(self) -> Segment | None:
        """The oldest segment's records (closing the one being written if it is the only one)."""
        with self._lock:
            if not self._segments:
                return None
            if self._segments[0] == self._current_path:
                self._close_current()
            path = self._segments[0]
        return Segment(path, _read_segment(path))

    def delivered(self, segment: Segment) -> None:
        """Every record of `segment` reached Kafka: delete it."""
        with self._lock:
            size = segment.path.stat().st_size
            segment.path.unlink()
            self._segments.remove(segment.path)
            self._bytes -= size
            self._records -= len(segment.records)
            _fsync_dir(self.directory)

    def close(self) -> None:
        with self._lock:
            self._close_current()

    def _writable(self) -> BinaryIO:
        if self._current is None:
            path = self.directory / f"seg-{self._next:012d}.spool"
            self._next += 1
            self._current, self._current_path = open(path, "ab"), path  # noqa: SIM115 - kept open across calls
            self._segments.append(path)
            _fsync_dir(self.directory)
        return self._current

    def _close_current(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = self._current_path = None


def _read_segment(path: Path) -> list[Record]:
    data = path.read_bytes()
    records, pos = [], 0
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        body = data[pos + _FRAME.size : pos + _FRAME.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            log.warning("spool segment %s: torn or corrupt frame at byte %d, ignoring the rest", path, pos)
            break
        tlen = _U16.unpack_from(body, 0)[0]
        topic = body[2 : 2 + tlen].decode()
        klen = _U16.unpack_from(body, 2 + tlen)[0]
        key = body[4 + tlen : 4 + tlen + klen]
        records.append(Record(topic, key, body[4 + tlen + klen :]))
        pos += _FRAME.size + length
    return records


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
