"""The columnar Kafka batch codec for `rw.telemetry` (version 2; layout in docs/batch-codec.md).

One Kafka message carries many readings of ONE site. The columns are stored raw (little endian), so
`decode` is a handful of `numpy.frombuffer` views over the message bytes: no per-reading Python work.

Layout, all integers little endian:

    header   magic b"RWTB" | version u8 | flags u8 (bit 0 id table, bit 1 zlib body, bit 2 LZ4 body) |
             reserved u16
             site        u16 length + UTF-8
             fingerprint u16 length + UTF-8 (the registry fingerprint the indices refer to)
             sources     u32 count, then per source: gateway u16 length + UTF-8, seq u64, readings u32
             readings    u32 count
             zero padding to a multiple of 8 bytes
    columns  value f64[n] | ts f64[n] | sensor i32[n] | quality u8[n]
    ids      (flag bit 0) u32 count m | index u32[m] | length u16[m] | the m sensor ids' UTF-8, concatenated

Readings are stored source after source, so `count` of each source says which rows came from which
gateway message: a consumer de-duplicating by (gateway, seq) drops exactly those rows (`drop_sources`).
With flag bit 1 everything after the header padding (columns and id table) is one zlib stream; with
flag bit 2 it is one LZ4 block after its u32 decompressed size (what the bridge writes by default).
The optional id table maps every registry index used in the batch back to its sensor id, so a consumer
whose registry has another fingerprint can detect the mismatch and remap (`remap_sensors`). It is stored
as columns too (version 1 stored it entry by entry, which cost a Python step per sensor to skip over):
decoding checks its size in O(1) and splits the ids only when a consumer asks for them.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, Literal, NamedTuple

import lz4.block
import numpy as np
import numpy.typing as npt

from riskwatch.errors import RiskwatchError
from riskwatch.wire.compressed import inflate_zlib, unblock_lz4
from riskwatch.wire.readings import QUALITY_DTYPE, SENSOR_DTYPE, TS_DTYPE, VALUE_DTYPE, Readings

MAGIC = b"RWTB"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: the same but for an entry-by-entry id table
FLAG_SENSOR_IDS = 0x01
FLAG_ZLIB = 0x02  # columns and id table zlib-compressed (level 1: ~6x cheaper than Kafka's gzip -9)
# Columns and id table one LZ4 block: ~1.3x zlib level 1's bytes for a 100-reading batch, but ~7x less
# CPU to write and ~10x less to read (zlib was ~10 % of the bridge's time and ~5 % of the worker's).
FLAG_LZ4 = 0x04
_KNOWN_FLAGS = FLAG_SENSOR_IDS | FLAG_ZLIB | FLAG_LZ4
BodyCodec = Literal["lz4", "zlib", "none"]
BODY_CODECS: tuple[BodyCodec, ...] = ("lz4", "zlib", "none")
DEFAULT_BODY_CODEC: BodyCodec = "lz4"  # what the bridge writes unless told otherwise
_BODY_FLAG = {"lz4": FLAG_LZ4, "zlib": FLAG_ZLIB, "none": 0}

_LE_F64 = np.dtype("<f8")
_LE_I32 = np.dtype("<i4")
_U8 = np.dtype("u1")
_PREFIX = struct.Struct("<4sBBH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SOURCE = struct.Struct("<QI")
_ID_ENTRY = struct.Struct("<IH")  # version 1's id table entry
_LE_U32 = np.dtype("<u4")
_LE_U16 = np.dtype("<u2")
# A compressed body never inflates beyond what its header's reading count can explain (the columns, an
# id table of at most one maximal id per reading) nor beyond this: a small hostile record must not
# decompress into gigabytes.
MAX_BODY_BYTES = 64 << 20
_ROW_BYTES = 8 + 8 + 4 + 1


class BatchDecodeError(RiskwatchError):
    """A telemetry batch is truncated, garbled or of an unknown codec version: dead-letter it."""


class Source(NamedTuple):
    """One gateway message whose readings are in the batch; (gateway, seq) is the de-duplication key."""

    gateway: str
    seq: int
    count: int  # type: ignore[assignment]  # its readings, stored contiguously (shadows tuple.count)


class TelemetryBatch(NamedTuple):
    """A decoded `rw.telemetry` message: one site's readings and where they came from."""

    site: str
    fingerprint: str
    sources: tuple[Source, ...]
    readings: Readings
    sensor_ids: Mapping[int, str]  # registry index -> sensor id; empty if the producer left it out


class SensorIdTable:
    """A registry's sensor ids (by index) pre-encoded, so packing a batch's id table is a gather and a
    join rather than a Python step per sensor. Build it once per registry; `encode` takes it as is."""

    def __init__(self, ids: Sequence[str] | Mapping[int, str]) -> None:
        if isinstance(ids, Mapping):
            size = max(ids, default=-1) + 1
            by_index = [""] * size
            for index, sensor_id in ids.items():
                by_index[index] = sensor_id
            ids = by_index
        self.encoded: tuple[bytes, ...] = tuple(sensor_id.encode() for sensor_id in ids)
        lengths = np.fromiter(map(len, self.encoded), np.int64, len(self.encoded))
        if lengths.size and lengths.max() > 0xFFFF:
            raise ValueError("a sensor id longer than 65535 bytes")
        self.lengths = lengths.astype(_LE_U16)

    def pack(self, used: npt.NDArray[np.int64]) -> list[bytes]:
        """The id table for the (sorted, unique) indices `used`, as parts to join."""
        if used.size and (used[0] < 0 or used[-1] >= len(self.encoded)):
            raise ValueError(f"sensor index out of the id table's range 0..{len(self.encoded) - 1}")
        blob = b"".join(map(self.encoded.__getitem__, used.tolist()))  # C-level gather, no Python step
        return [
            _U32.pack(used.size),
            used.astype(_LE_U32).tobytes(),
            self.lengths[used].tobytes(),
            blob,
        ]


class DecodedIds(Mapping[int, str]):
    """A decoded id table: index -> sensor id, split into strings only when first looked at (a
    consumer on the batch's own registry never needs them)."""

    def __init__(self, indices: npt.NDArray[np.uint32], lengths: npt.NDArray[np.uint16], blob: bytes) -> None:
        self.indices, self.lengths, self.blob = indices, lengths, blob

    @cached_property
    def _ids(self) -> dict[int, str]:
        ends = np.cumsum(self.lengths, dtype=np.int64).tolist()
        starts = [0, *ends][:-1]  # (an empty table has no start either)
        blob = self.blob
        try:
            return {
                index: blob[a:b].decode()
                for index, a, b in zip(self.indices.tolist(), starts, ends, strict=True)
            }
        except UnicodeDecodeError as exc:
            raise BatchDecodeError(f"telemetry batch has a garbled sensor id: {exc}") from exc

    def __getitem__(self, index: int) -> str:
        return self._ids[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def __len__(self) -> int:
        return int(self.indices.size)


def encode(
    site: str,
    fingerprint: str,
    sources: Sequence[tuple[str, int, int] | tuple[str, int]],
    readings: Readings,
    sensor_ids: SensorIdTable | Mapping[int, str] | Sequence[str] | None = None,
    compress: BodyCodec = "none",
) -> bytes:
    """Pack one site's readings into a batch message.

    `sensor_ids` (best a `SensorIdTable` built once; or a mapping index -> id, or the registry's full id
    list by index): when given, the batch carries the ids of the indices it uses. `compress` names the
    body's compression (`BODY_CODECS`).
    """
    if compress not in _BODY_FLAG:
        raise ValueError(f"unknown batch body compression {compress!r}: one of {BODY_CODECS}")
    n = len(readings)
    full: list[tuple[str, int, int]] = []
    if len(sources) == 1 and len(sources[0]) == 2:  # a lone (gateway, seq) owns every reading
        full = [(sources[0][0], sources[0][1], n)]
    else:
        for source in sources:
            if len(source) != 3:
                raise ValueError("with several sources, give each as (gateway, seq, readings)")
            full.append(source)
    if full and sum(source[2] for source in full) != n:
        raise ValueError(f"source counts add up to {sum(s[2] for s in full)}, batch has {n} readings")
    flags = (FLAG_SENSOR_IDS if sensor_ids is not None else 0) | _BODY_FLAG[compress]
    parts: list[bytes] = [_PREFIX.pack(MAGIC, VERSION, flags, 0)]
    parts.append(_text(site))
    parts.append(_text(fingerprint))
    parts.append(_U32.pack(len(full)))
    for gateway, seq, count in full:
        parts.append(_text(gateway))
        parts.append(_SOURCE.pack(seq, count))
    parts.append(_U32.pack(n))
    size = sum(map(len, parts))
    parts.append(b"\0" * (-size % 8))  # keep the f64 columns 8-byte aligned for frombuffer
    header = len(parts)
    parts.append(np.ascontiguousarray(readings.value, _LE_F64).tobytes())
    parts.append(np.ascontiguousarray(readings.ts, _LE_F64).tobytes())
    parts.append(np.ascontiguousarray(readings.sensor, _LE_I32).tobytes())
    parts.append(np.ascontiguousarray(readings.quality, _U8).tobytes())
    if sensor_ids is not None:
        table = sensor_ids if isinstance(sensor_ids, SensorIdTable) else SensorIdTable(sensor_ids)
        parts.extend(table.pack(_sorted_unique(readings.sensor)))
    if compress == "zlib":
        parts[header:] = [zlib.compress(b"".join(parts[header:]), 1)]
    elif compress == "lz4":  # the u32 size first (store_size), as the layout says
        parts[header:] = [lz4.block.compress(b"".join(parts[header:]), store_size=True)]
    return b"".join(parts)


def _sorted_unique(values: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """`np.unique(values)` as int64, in a third of its time for a batch's ~100 indices (np.unique's own
    steps were ~3 % of the bridge)."""
    ordered = np.sort(values).astype(np.int64)
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def decode(raw: bytes) -> TelemetryBatch:
    """Decode a batch message; the reading columns are read-only views over `raw` (or, for a
    compressed batch, over its decompressed body)."""
    reader = _Reader(raw)
    magic, version, flags, _ = reader.unpack(_PREFIX)
    if magic != MAGIC:
        raise BatchDecodeError(f"not a riskwatch telemetry batch (magic {magic!r}, first bytes {raw[:16]!r})")
    if version not in READABLE_VERSIONS:
        raise BatchDecodeError(
            f"unsupported telemetry batch codec version {version} (this build reads {READABLE_VERSIONS})"
        )
    if flags & ~_KNOWN_FLAGS or (flags & FLAG_ZLIB and flags & FLAG_LZ4):
        raise BatchDecodeError(f"telemetry batch has flags {flags:#04x}, not a combination this build reads")
    site = reader.text()
    fingerprint = reader.text()
    sources = tuple(Source(reader.text(), *reader.unpack(_SOURCE)) for _ in range(reader.unpack(_U32)[0]))
    n = reader.unpack(_U32)[0]
    if sources and sum(source.count for source in sources) != n:
        raise BatchDecodeError(f"telemetry batch source counts do not add up to its {n} readings")
    reader.pos += -reader.pos % 8
    if flags & (FLAG_ZLIB | FLAG_LZ4):
        if reader.pos > len(raw):
            raise BatchDecodeError("telemetry batch truncated before its compressed body")
        ids = 4 + n * (_ID_ENTRY.size + 0xFFFF) if flags & FLAG_SENSOR_IDS else 0
        limit = min(n * _ROW_BYTES + ids, MAX_BODY_BYTES)
        inflate = _inflate if flags & FLAG_ZLIB else _unblock
        reader = _Reader(inflate(raw[reader.pos :], limit))
    value = reader.column(_LE_F64, n)
    ts = reader.column(_LE_F64, n)
    sensor = reader.column(_LE_I32, n)
    quality = reader.column(_U8, n)
    sensor_ids: Mapping[int, str] = {}
    if flags & FLAG_SENSOR_IDS:
        sensor_ids = _id_table(reader) if version >= 2 else _id_entries(reader)
    if reader.pos != len(reader.raw):
        raise BatchDecodeError(f"telemetry batch has {len(reader.raw) - reader.pos} trailing bytes")
    readings = Readings(
        sensor.astype(SENSOR_DTYPE, copy=False),
        value.astype(VALUE_DTYPE, copy=False),
        ts.astype(TS_DTYPE, copy=False),
        quality.astype(QUALITY_DTYPE, copy=False),
    )
    return TelemetryBatch(site, fingerprint, sources, readings, sensor_ids)


def _inflate(body: bytes, limit: int) -> bytes:
    return inflate_zlib(body, limit, "telemetry batch body", BatchDecodeError)


def _unblock(body: bytes, limit: int) -> bytes:
    if len(body) < _U32.size:
        raise BatchDecodeError("telemetry batch truncated before its LZ4 body's size")
    size = _U32.unpack_from(body)[0]
    return unblock_lz4(memoryview(body)[_U32.size :], size, limit, "telemetry batch body", BatchDecodeError)


def _id_table(reader: _Reader) -> DecodedIds:
    m = reader.unpack(_U32)[0]
    indices = reader.column(_LE_U32, m)
    lengths = reader.column(_LE_U16, m)
    size = int(lengths.sum(dtype=np.int64))
    blob = reader.raw[reader._take(size) : reader.pos]
    try:  # one C-speed pass checks the whole table's UTF-8
        blob.decode()
    except UnicodeDecodeError as exc:
        raise BatchDecodeError(f"telemetry batch has a garbled sensor id: {exc}") from exc
    return DecodedIds(indices, lengths, blob)


def _id_entries(reader: _Reader) -> dict[int, str]:
    """Version 1's id table, entry after entry."""
    ids = {}
    for _ in range(reader.unpack(_U32)[0]):
        index, length = reader.unpack(_ID_ENTRY)
        ids[index] = reader.raw_text(length)
    return ids


def drop_sources(batch: TelemetryBatch, drop: Callable[[Source], bool]) -> Readings:
    """The batch's readings without the rows of sources `drop` says were already seen."""
    return keep_sources(batch, [not drop(source) for source in batch.sources]).readings


def keep_sources(batch: TelemetryBatch, keep: Sequence[bool]) -> TelemetryBatch:
    """The batch with only the sources (gateway messages) flagged in `keep`, and their rows."""
    if all(keep):
        return batch
    counts = np.fromiter((s.count for s in batch.sources), np.int64, len(batch.sources))
    rows = np.repeat(np.array(keep, dtype=bool), counts)
    r = batch.readings
    return batch._replace(
        sources=tuple(s for s, k in zip(batch.sources, keep, strict=True) if k),
        readings=Readings(r.sensor[rows], r.value[rows], r.ts[rows], r.quality[rows]),
    )


def source_stamps(batch: TelemetryBatch) -> list[float]:
    """Per source, the time of its first reading (NaN if it has none): what tells a redelivered message
    from new readings sent under a reused seq."""
    # A plain loop: a batch holds a few sources (one per gateway message), and numpy's fixed cost per call
    # made this 20 % of decoding a record.
    ts = batch.readings.ts
    last = ts.size - 1
    stamps, start = [], 0
    for source in batch.sources:
        stamps.append(float(ts[min(start, last)]) if source.count > 0 and last >= 0 else float("nan"))
        start += source.count
    return stamps


def remap_sensors(batch: TelemetryBatch, index_of: Mapping[str, int]) -> tuple[Readings, list[str]]:
    """Re-index a batch encoded against another registry, using its id table.

    Returns the readings whose sensors `index_of` knows (indices rewritten) and the unknown sensor ids.
    Raises BatchDecodeError if the batch carries no id table (it cannot be remapped).
    """
    if not batch.sensor_ids:
        if len(batch.readings) == 0:
            return batch.readings, []
        raise BatchDecodeError(f"batch from registry {batch.fingerprint!r} has no sensor id table to remap")
    ids = dict(batch.sensor_ids)
    old = np.fromiter(ids.keys(), np.int64, len(ids))
    new = np.fromiter((index_of.get(s, -1) for s in ids.values()), np.int64, len(ids))
    r = batch.readings
    # Sorted lookup, not a dense table: the producer chooses the indices (up to 2^32).
    order = np.argsort(old)
    old, new = old[order], new[order]
    at = np.minimum(np.searchsorted(old, r.sensor), old.size - 1)
    if not (old[at] == r.sensor).all():
        raise BatchDecodeError("batch uses a sensor index missing from its own id table")
    mapped = new[at]
    known = mapped >= 0
    unknown = sorted({ids[i] for i in np.unique(r.sensor[~known]).tolist()})
    out = Readings(mapped[known].astype(SENSOR_DTYPE), r.value[known], r.ts[known], r.quality[known])
    return out, unknown


def _text(text: str) -> bytes:
    data = text.encode()
    if len(data) > 0xFFFF:
        raise ValueError(f"text field longer than 65535 bytes: {text[:40]!r}...")
    return _U16.pack(len(data)) + data


class _Reader:
    """Bounds-checked cursor over the message bytes; every overrun is a BatchDecodeError."""

    def __init__(self, raw: bytes) -> None:
        self.raw, self.pos = raw, 0

    def _take(self, size: int) -> int:
        start = self.pos
        if size < 0 or start + size > len(self.raw):
            raise BatchDecodeError(
                f"telemetry batch truncated: needs {start + size} bytes, message has {len(self.raw)}"
            )
        self.pos = start + size
        return start

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        return fmt.unpack_from(self.raw, self._take(fmt.size))

    def raw_text(self, length: int) -> str:
        start = self._take(length)
        try:
            return self.raw[start : start + length].decode()
        except UnicodeDecodeError as exc:
            raise BatchDecodeError(f"telemetry batch has a garbled text field: {exc}") from exc

    def text(self) -> str:
        return self.raw_text(self.unpack(_U16)[0])

    def column(self, dtype: np.dtype, n: int) -> npt.NDArray[Any]:
        start = self._take(n * dtype.itemsize)
        return np.frombuffer(self.raw, dtype, n, start)
