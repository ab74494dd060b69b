"""The columnar batch codec: round trip, zero-copy decode, remap, and clear errors on bad records."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskwatch.wire.batch import (
    BODY_CODECS,
    BatchDecodeError,
    BodyCodec,
    SensorIdTable,
    Source,
    TelemetryBatch,
    decode,
    drop_sources,
    encode,
    remap_sensors,
)
from riskwatch.wire.readings import Readings

IDS = ["pt-101", "pt-102", "gas-01", "ch4-工作面"]


def _sample() -> Readings:
    return Readings.of([0, 3, 2, 3], [1.5, np.nan, -2.0, 0.8], [1e9, 1e9 + 1, 1e9 + 2, 1e9 + 3], [0, 1, 0, 0])


def test_round_trip_keeps_every_field() -> None:
    raw = encode("site-A", "fp1", [("gw-1", 7, 3), ("gw-2", 2**40, 1)], _sample(), IDS)
    batch = decode(raw)
    assert isinstance(batch, TelemetryBatch)
    assert batch.site == "site-A" and batch.fingerprint == "fp1"
    assert batch.sources == (Source("gw-1", 7, 3), Source("gw-2", 2**40, 1))
    np.testing.assert_array_equal(batch.readings.sensor, [0, 3, 2, 3])
    np.testing.assert_array_equal(batch.readings.value, [1.5, np.nan, -2.0, 0.8])
    np.testing.assert_array_equal(batch.readings.quality, [0, 1, 0, 0])
    assert batch.readings.sensor.dtype == np.int32 and batch.readings.ts.dtype == np.float64
    assert dict(batch.sensor_ids) == {0: "pt-101", 2: "gas-01", 3: "ch4-工作面"}


@pytest.mark.parametrize("compress", BODY_CODECS)
def test_round_trip_with_and_without_compression(compress: BodyCodec) -> None:
    raw = encode("site-A", "fp1", [("gw-1", 7, 4)], _sample(), IDS, compress=compress)
    batch = decode(raw)
    np.testing.assert_array_equal(batch.readings.value, _sample().value)
    np.testing.assert_array_equal(batch.readings.sensor, _sample().sensor)
    assert dict(batch.sensor_ids) == {0: "pt-101", 2: "gas-01", 3: "ch4-工作面"}


@pytest.mark.parametrize("compress", ["zlib", "lz4"])
def test_compressed_body_truncated_is_a_decode_error(compress: BodyCodec) -> None:
    raw = encode("site-A", "fp1", [("gw-1", 7, 4)], _sample(), IDS, compress=compress)
    for cut in range(len(raw)):
        with pytest.raises(BatchDecodeError):
            decode(raw[:cut])


def test_a_garbled_zlib_body_fails_its_checksum() -> None:
    # Only zlib carries a checksum; an LZ4 or raw body relies on the CRC-32C of Kafka's record batch.
    raw = encode("site-A", "fp1", [("gw-1", 7, 4)], _sample(), IDS, compress="zlib")
    with pytest.raises(BatchDecodeError):
        decode(raw[:-6] + b"garble")


def test_an_lz4_body_that_claims_more_than_its_readings_can_hold_is_refused_before_inflating() -> None:
    raw = bytearray(encode("S", "f", [], _sample(), IDS, compress="lz4"))
    body = _count_at(bytes(raw)) + 4
    body += -body % 8
    (size,) = struct.unpack_from("<I", raw, body)
    for claimed in (size - 1, size + 1, 1 << 30):  # a lie either way; 1 GiB is never allocated
        raw[body : body + 4] = struct.pack("<I", claimed)
        with pytest.raises(BatchDecodeError):
            decode(bytes(raw))


def test_unknown_or_conflicting_flags_are_a_decode_error() -> None:
    raw = bytearray(encode("S", "f", [], _sample(), IDS, compress="lz4"))
    for flags in (0x08, 0x80, 0x01 | 0x02 | 0x04):
        raw[5] = flags
        with pytest.raises(BatchDecodeError, match="flags"):
            decode(bytes(raw))


def test_an_unknown_body_compression_is_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="gzip"):
        encode("S", "f", [], _sample(), IDS, compress="gzip")  # type: ignore[arg-type]


def test_decode_is_a_view_over_the_message() -> None:
    raw = encode("s", "fp", [], _sample())
    batch = decode(raw)
    assert batch.readings.value.base is not None and not batch.readings.value.flags.writeable
    assert batch.sensor_ids == {}


def test_empty_batch() -> None:
    batch = decode(encode("s", "fp", [], Readings.empty(), IDS))
    assert len(batch.readings) == 0 and batch.sources == ()


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(allow_nan=False), st.floats(0, 4e9), st.integers(0, 255)),
        max_size=60,
    ),
    st.text(max_size=30),
)
def test_round_trip_property(rows: list[tuple[int, float, float, int]], site: str) -> None:
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    readings = Readings.of(cols[0], cols[1], cols[2], cols[3])
    batch = decode(encode(site, "fp", [("g", 1, len(readings))], readings, IDS))
    assert batch.site == site
    for got, want in zip(batch.readings, readings, strict=True):
        np.testing.assert_array_equal(got, want)


def test_every_truncation_is_a_decode_error() -> None:
    raw = encode("site-A", "fp1", [("gw-1", 7, 4)], _sample(), IDS)
    for cut in range(len(raw)):
        with pytest.raises(BatchDecodeError):
            decode(raw[:cut])


def test_trailing_garbage_unknown_version_and_magic() -> None:
    raw = encode("s", "fp", [], _sample())
    with pytest.raises(BatchDecodeError, match="trailing"):
        decode(raw + b"x")
    with pytest.raises(BatchDecodeError, match="version 9"):
        decode(raw[:4] + bytes([9]) + raw[5:])
    with pytest.raises(BatchDecodeError, match="not a riskwatch telemetry batch"):
        decode(b'{"gw": "json, not a batch"}')


def test_remap_to_another_registry() -> None:
    batch = decode(encode("s", "old", [], _sample(), IDS))
    readings, unknown = remap_sensors(batch, {"gas-01": 10, "ch4-工作面": 11})
    np.testing.assert_array_equal(readings.sensor, [11, 10, 11])
    np.testing.assert_array_equal(readings.ts, [1e9 + 1, 1e9 + 2, 1e9 + 3])
    assert unknown == ["pt-101"]


def _version_1(raw: bytes) -> bytes:
    """The same batch as version 1 wrote it: the id table entry by entry (index u32, u16 length, UTF-8)."""
    ids = {i: s.encode() for i, s in decode(raw).sensor_ids.items()}
    v1_table = struct.pack("<I", len(ids)) + b"".join(
        struct.pack("<IH", i, len(s)) + s for i, s in ids.items()
    )
    v2_table_size = 4 + 6 * len(ids) + sum(map(len, ids.values()))
    return raw[:4] + bytes([1]) + raw[5 : len(raw) - v2_table_size] + v1_table


def test_version_1_batches_still_decode() -> None:
    raw = _version_1(encode("site-A", "old", [("gw-1", 7, 4)], _sample(), IDS))
    batch = decode(raw)
    np.testing.assert_array_equal(batch.readings.sensor, [0, 3, 2, 3])
    assert dict(batch.sensor_ids) == {0: "pt-101", 2: "gas-01", 3: "ch4-工作面"}
    readings, unknown = remap_sensors(batch, {"gas-01": 10, "ch4-工作面": 11})
    np.testing.assert_array_equal(readings.sensor, [11, 10, 11])
    assert unknown == ["pt-101"]


def test_a_garbled_sensor_id_is_a_decode_error() -> None:
    raw = encode("s", "fp", [], _sample(), IDS)
    at = raw.index("工".encode())
    with pytest.raises(BatchDecodeError, match="garbled sensor id"):
        decode(raw[:at] + b"\xff\xfe\xfd" + raw[at + 3 :])


def test_id_table_from_a_list_a_mapping_or_prebuilt_is_the_same_bytes() -> None:
    expected = encode("s", "fp", [], _sample(), IDS)
    assert encode("s", "fp", [], _sample(), dict(enumerate(IDS))) == expected
    assert encode("s", "fp", [], _sample(), SensorIdTable(IDS)) == expected
    with pytest.raises(ValueError, match="out of the id table"):
        encode("s", "fp", [], Readings.of([7], [1.0], [1e9], [0]), SensorIdTable(IDS))


def test_remap_without_id_table_is_an_error() -> None:
    batch = decode(encode("s", "old", [], _sample()))
    with pytest.raises(BatchDecodeError, match="no sensor id table"):
        remap_sensors(batch, {"pt-101": 0})


def test_drop_sources_removes_exactly_their_rows() -> None:
    batch = decode(encode("s", "fp", [("g", 1, 1), ("g", 2, 2), ("h", 1, 1)], _sample()))
    kept = drop_sources(batch, lambda source: (source.gateway, source.seq) == ("g", 2))
    np.testing.assert_array_equal(kept.sensor, [0, 3])
    assert drop_sources(batch, lambda source: False) is batch.readings


def test_source_counts_must_add_up() -> None:
    with pytest.raises(ValueError, match="add up"):
        encode("s", "fp", [("g", 1, 3)], _sample())


def test_a_lone_source_without_count_owns_every_reading() -> None:
    batch = decode(encode("s", "fp", [("g", 5)], _sample()))
    assert batch.sources == (Source("g", 5, 4),)
    with pytest.raises(ValueError, match="several sources"):
        encode("s", "fp", [("g", 1), ("h", 2)], _sample())


def _count_at(raw: bytes) -> int:
    """Offset of the reading count u32 in an encoded batch without sources (after site and fingerprint)."""
    site_len = struct.unpack_from("<H", raw, 8)[0]
    fp_at = 10 + site_len
    fp_len = struct.unpack_from("<H", raw, fp_at)[0]
    return fp_at + 2 + fp_len + 4  # + the u32 source count (0)


def test_a_header_that_lies_about_its_size_is_a_decode_error() -> None:
    for compress in BODY_CODECS:
        raw = bytearray(encode("S", "f", [], _sample(), IDS, compress=compress))
        at = _count_at(bytes(raw))
        for claimed in (5, 1 << 20, 0xFFFFFFFF):  # more readings than the body holds
            raw[at : at + 4] = struct.pack("<I", claimed)
            with pytest.raises(BatchDecodeError):
                decode(bytes(raw))
    raw = bytearray(encode("S", "f", [("gw", 1, 4)], _sample()))
    raw[14:18] = struct.pack("<I", 0xFFFFFFFF)  # four billion sources
    with pytest.raises(BatchDecodeError):
        decode(bytes(raw))


def test_an_empty_id_table_and_bytes_after_the_zlib_stream() -> None:
    empty = encode("S", "f", [], Readings.empty(), IDS)
    assert dict(decode(empty).sensor_ids) == {}
    raw = encode("S", "f", [], _sample(), IDS, compress="zlib")
    with pytest.raises(BatchDecodeError, match="bytes after its compressed stream"):
        decode(raw + b"\x00")
    with pytest.raises(BatchDecodeError, match="does not decompress"):
        decode(encode("S", "f", [], _sample(), IDS, compress="lz4") + b"\x00")


_MANY_IDS = [f"s{i}" for i in range(5000)]


@given(st.lists(st.integers(0, len(_MANY_IDS) - 1), max_size=300))
def test_the_id_table_names_each_sensor_of_the_batch_once_in_index_order(sensors: list[int]) -> None:
    ids = _MANY_IDS
    readings = Readings.of(sensors, [1.0] * len(sensors), [0.0] * len(sensors))
    table = decode(encode("S", "f", [], readings, ids)).sensor_ids
    assert list(table) == sorted(set(sensors))
    assert all(table[s] == f"s{s}" for s in sensors)
