"""A site's snapshot as stored in the state table: engine state, open levels, recent gateway messages.

The open levels are the latest transition of every entity of the site that is not normal; they let the
HTTP views answer "current colour and cause" right after a restart, before any new input arrives. The
recent (gateway, seq) window (processors/state/seen.py) is stored with the state it describes, so a
replay after a restart de-duplicates exactly what the restored state already contains. The count of
readings the engine evaluated for the site is stored with them too, so it is exact across crashes and
rebalances (a replay evaluates again only what the snapshot does not cover): it is how loss is counted
at the end of the path. So are the site's open history minutes (each sensor's min, max, sum and count so
far in a minute not yet closed): the readings the snapshot covers are never read again, so without them
a restarted worker would close those minutes with only the readings it replayed. And so is the last
owed window credited to each sensor owing less than a reading a minute (the completeness summary,
processors/history/aggregate.py): without it a restarted worker would credit that window a second time.

Layout, version 6 (written): magic b"RWSS" | version u8 | length u32 of what follows once inflated |
one LZ4 block of the whole version 4 layout below. A site's snapshot is ~150-190 bytes a sensor raw and
~10x smaller compressed; flushed for every busy site every few seconds, the raw snapshots were ~6x the
bytes of the telemetry they cover, all sent through TLS to Kafka and stored and compacted there. The
inflated length is checked before inflating (at most MAX_INFLATED), so a corrupt length cannot make a
reader allocate without bound.
Version 5 (still read): the same, with one zlib stream (level 1) instead of the LZ4 block. For a
200-sensor site (30 kB raw) zlib took ~90 µs a snapshot for 2.7 kB, LZ4 ~10 µs for 3.1 kB: zlib was
about half of the snapshot flush, itself the biggest single cost of a live worker after the agent.

Version 4 (still read): magic b"RWSS" | version u8 | state length u32 | state bytes | open length u32 |
JSON list of open transitions | seen length u32 | JSON object gateway -> recent seqs |
counts length u32 | JSON object {"evaluated": readings, "credited": {sensor id: window}} (the second
key only when some sensor was credited; a reader without it takes none) | open minutes (to the end): ids length u32 |
JSON list of sensor ids | minutes u32 | per minute: minute number i64, rows u32, then per row the
position of its sensor in the id list (u32), and the row's count (u32), min, max and sum (f64),
each as one little-endian array. Sensors are named by id, not index, so an edited registry keeps them.
Version 3 (still read; no open minutes): as 4 up to the seen JSON, then the counts JSON to the end.
Version 2 (still read): as 3 up to the open transitions, then the seen JSON to the end (no counts).
Version 1 (still read): magic | version | state length | state | JSON list of open transitions.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import lz4.block
import numpy as np
import numpy.typing as npt
import orjson

from processors.state.seen import RecentSeqs
from riskwatch.errors import RiskwatchError
from riskwatch.wire.compressed import inflate_zlib, unblock_lz4
from riskwatch.wire.transitions import Cause, CauseItem, Transition

MAGIC = b"RWSS"
VERSION = 6
READABLE = (1, 2, 3, 4, 5, 6)
_PLAIN = 4  # the version a compressed (version 5: zlib, 6: LZ4) snapshot holds inside
_ZLIB = 5
MAX_INFLATED = 256 << 20  # a site's snapshot is ~190 bytes a sensor: far beyond any real site
_HEAD = struct.Struct("<4sBI")
_LEN = struct.Struct("<I")
_MINUTE = struct.Struct("<qI")
_U32, _F64 = np.dtype("<u4"), np.dtype("<f8")


class StoredMinute(NamedTuple):
    """A site's part of an open history minute, by sensor id: the running totals so far.

    Read from a snapshot its columns are tuples; taken for one they may be numpy arrays (the aggregator's
    own, so a snapshot is encoded without a Python step per sensor)."""

    minute: int  # epoch minute number
    sensor: Sequence[str] | npt.NDArray[np.object_]
    min: Sequence[float] | npt.NDArray[np.float64]
    max: Sequence[float] | npt.NDArray[np.float64]
    sum: Sequence[float] | npt.NDArray[np.float64]
    count: Sequence[int] | npt.NDArray[np.int64]  # type: ignore[assignment]  # shadows tuple.count


class SnapshotError(RiskwatchError):
    """A stored snapshot is unreadable; the site starts from the initial state."""


class SiteSnapshot(NamedTuple):
    state: bytes
    open: tuple[Transition, ...]
    seen: RecentSeqs | None = None
    evaluated: int = 0  # readings of the site the engine evaluated, duplicates left out
    minutes: tuple[StoredMinute, ...] = ()  # open history minutes, oldest first
    credited: tuple[tuple[str, int], ...] = ()  # (sensor id, last owed window credited) of slow sensors

    def to_bytes(self) -> bytes:
        """The snapshot as stored: version 6, the version 4 layout in one LZ4 block."""
        plain = self.to_plain_bytes()
        return _HEAD.pack(MAGIC, VERSION, len(plain)) + lz4.block.compress(plain, store_size=False)

    def to_plain_bytes(self) -> bytes:
        """The version 4 layout, uncompressed (what a version 5 or 6 snapshot inflates to)."""
        # orjson serialises the (nested) dataclasses itself, to the same JSON as dataclasses.asdict, which
        # took most of a snapshot's time for a site with many open levels.
        open_json = orjson.dumps(self.open)
        seen_json = orjson.dumps(self.seen.to_json() if self.seen is not None else {})
        counts = {"evaluated": self.evaluated, **({"credited": dict(self.credited)} if self.credited else {})}
        counts_json = orjson.dumps(counts)
        return b"".join(
            (
                _HEAD.pack(MAGIC, _PLAIN, len(self.state)),
                self.state,
                _LEN.pack(len(open_json)),
                open_json,
                _LEN.pack(len(seen_json)),
                seen_json,
                _LEN.pack(len(counts_json)),
                counts_json,
                _minutes_to_bytes(self.minutes),
            )
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> SiteSnapshot:
        try:
            magic, version, size = _HEAD.unpack_from(raw)
            if magic != MAGIC or version not in READABLE:
                raise SnapshotError(
                    f"not a site snapshot of version {READABLE} (magic {magic!r}, version {version})"
                )
            if version in (_ZLIB, VERSION):
                raw = _decompress(version, raw, size)
                magic, version, size = _HEAD.unpack_from(raw)
                if magic != MAGIC or version != _PLAIN:
                    raise SnapshotError(f"compressed site snapshot holds version {version}, not {_PLAIN}")
            start = _HEAD.size
            state = bytes(raw[start : start + size])
            if len(state) != size:
                raise SnapshotError("site snapshot truncated")
            rest = raw[start + size :]
            if version == 1:
                return cls(state, tuple(_transition(doc) for doc in orjson.loads(rest)), RecentSeqs())
            (open_size,) = _LEN.unpack_from(rest)
            open_json = rest[_LEN.size : _LEN.size + open_size]
            if len(open_json) != open_size:
                raise SnapshotError("site snapshot truncated")
            opened = tuple(_transition(doc) for doc in orjson.loads(open_json))
            rest = rest[_LEN.size + open_size :]
            if version == 2:
                return cls(state, opened, RecentSeqs.from_json(orjson.loads(rest)))
            seen_json, rest = _sized(rest)
            minutes: tuple[StoredMinute, ...] = ()
            if version == 3:
                counts = orjson.loads(rest)
            else:
                counts_json, rest = _sized(rest)
                counts = orjson.loads(counts_json)
                minutes = _minutes_from_bytes(rest)
            evaluated = counts["evaluated"]
            if not isinstance(evaluated, int) or isinstance(evaluated, bool) or evaluated < 0:
                raise SnapshotError(f"site snapshot: evaluated count {evaluated!r} is not a count")
            credited = counts.get("credited", {})
            if not isinstance(credited, dict) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in credited.values()
            ):
                raise SnapshotError("site snapshot: credited windows are not a map of sensor id to window")
            return cls(
                state,
                opened,
                RecentSeqs.from_json(orjson.loads(seen_json)),
                evaluated,
                minutes,
                tuple(credited.items()),
            )
        except (struct.error, orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"unreadable site snapshot: {exc}") from exc


def _decompress(version: int, raw: bytes, size: int) -> bytes:
    """The plain snapshot inside a compressed one, which must be exactly `size` bytes (≤ MAX_INFLATED)."""
    what = "compressed site snapshot"
    if size > MAX_INFLATED:
        raise SnapshotError(f"{what} claims {size} bytes, more than {MAX_INFLATED}")
    body = memoryview(raw)[_HEAD.size :]
    if version == _ZLIB:
        return inflate_zlib(body, size, what, SnapshotError, exact=True)
    return unblock_lz4(body, size, size, what, SnapshotError)


def _sized(raw: bytes) -> tuple[bytes, bytes]:
    """A u32-length-prefixed part of `raw`, and what follows it."""
    (size,) = _LEN.unpack_from(raw)
    part = raw[_LEN.size : _LEN.size + size]
    if len(part) != size:
        raise SnapshotError("site snapshot truncated")
    return part, raw[_LEN.size + size :]


def _minutes_to_bytes(minutes: tuple[StoredMinute, ...]) -> bytes:
    # The sorted ids of every open minute and each row's position among them, in one np.unique (a dict
    # lookup per sensor and minute took ~10 % of a snapshot flush).
    columns = [np.asarray(m.sensor, dtype=object) for m in minutes]
    if columns:
        ids, position = np.unique(np.concatenate(columns), return_inverse=True)
        ids_json = orjson.dumps(ids.tolist())
    else:
        position, ids_json = np.empty(0, np.intp), b"[]"
    parts = [_LEN.pack(len(ids_json)), ids_json, _LEN.pack(len(minutes))]
    at = 0
    for m, sensor in zip(minutes, columns, strict=True):
        rows = sensor.shape[0]
        parts.append(_MINUTE.pack(m.minute, rows))
        parts.append(position[at : at + rows].astype(_U32).tobytes())
        parts.append(np.asarray(m.count).astype(_U32).tobytes())
        for values in (m.min, m.max, m.sum):
            parts.append(np.asarray(values).astype(_F64).tobytes())
        at += rows
    return b"".join(parts)


def _minutes_from_bytes(raw: bytes) -> tuple[StoredMinute, ...]:
    ids_json, rest = _sized(raw)
    ids = orjson.loads(ids_json)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise SnapshotError("site snapshot: open minutes' sensor ids are not a list of ids")
    (n,) = _LEN.unpack_from(rest)
    at = _LEN.size
    out = []
    for _ in range(n):
        minute, rows = _MINUTE.unpack_from(rest, at)
        at += _MINUTE.size
        end = at + rows * (2 * _U32.itemsize + 3 * _F64.itemsize)
        if end > len(rest):
            raise SnapshotError("site snapshot truncated")
        pos = np.frombuffer(rest, _U32, rows, at)
        count = np.frombuffer(rest, _U32, rows, at + 4 * rows)
        lo, hi, total = (np.frombuffer(rest, _F64, rows, at + 8 * rows + 8 * rows * k) for k in range(3))
        at = end
        if (pos >= len(ids)).any() or (count == 0).any():
            raise SnapshotError("site snapshot: an open minute names no sensor or holds no reading")
        out.append(
            StoredMinute(
                minute,
                tuple(ids[p] for p in pos.tolist()),
                tuple(lo.tolist()),
                tuple(hi.tolist()),
                tuple(total.tolist()),
                tuple(count.tolist()),
            )
        )
    if at != len(rest):
        raise SnapshotError("site snapshot: bytes after its open minutes")
    return tuple(out)


def _transition(doc: dict[str, Any]) -> Transition:
    cause = doc.pop("cause")
    items = tuple(CauseItem(**item) for item in cause.get("items", ()))
    return Transition(cause=Cause(cause["rule"], items, cause.get("text", "")), **doc)
