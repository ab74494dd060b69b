from __future__ import annotations

import struct
import zlib

import lz4.block
import orjson
import pytest

from processors.state.seen import RecentSeqs
from processors.state.snapshot import SiteSnapshot, SnapshotError
from riskwatch.wire.transitions import Cause, CauseItem, Transition


def test_snapshot_round_trips_state_and_open_levels() -> None:
    t = Transition(
        "i",
        "warning",
        "unit",
        "U1",
        "normal",
        "red",
        5.0,
        Cause("r", (CauseItem("G", "q", "l2_high", 1.0),)),
        "S",
        "R",
        "U1",
    )
    seen = RecentSeqs.from_json({"GW1": [[7, 1.5], [8, 2.5], [9, 3.5]], "GW2": [1]})
    snap = SiteSnapshot(b"\x00\x01state", (t,), seen)
    back = SiteSnapshot.from_bytes(snap.to_bytes())
    assert back == snap
    assert not back.seen.check_and_add("GW1", 8, 2.5)  # the window survives: 8 is still a duplicate
    assert back.seen.check_and_add("GW1", 9, 4.5)  # ... of the same content only
    assert back.seen.check_and_add("GW1", 10)
    # the open levels are stored as dataclasses.asdict gave them (what earlier builds wrote and read)
    from dataclasses import asdict

    stored = snap.to_plain_bytes()
    assert _sized_json(orjson.dumps([asdict(t)])) in stored


def _compressed(plain: bytes, length_change: int = 0) -> bytes:
    """A version 5 (zlib) snapshot of `plain`, its stated length off by `length_change`."""
    return struct.pack("<4sBI", b"RWSS", 5, len(plain) + length_change) + zlib.compress(plain, 1)


def _lz4(plain: bytes, length_change: int = 0) -> bytes:
    """A version 6 (LZ4) snapshot of `plain`, its stated length off by `length_change`."""
    body = lz4.block.compress(plain, store_size=False)
    return struct.pack("<4sBI", b"RWSS", 6, len(plain) + length_change) + body


def test_snapshots_are_stored_compressed_and_plain_version_4_ones_still_restore() -> None:
    """A site's state is mostly repeated values (sensors at the same set points, times a few seconds
    apart): stored compressed, a snapshot of a 100-sensor site is several times smaller."""
    from processors.bench_engine import make_batches
    from processors.engine import EngineState, compile_model, evaluate
    from riskwatch.registry import generate

    model = compile_model(generate(100, seed=3))
    batches = make_batches(model, 30, 50, seed=5)
    engine_state = EngineState.initial(model, now=batches[0][0].ts.min())
    for batch, now in batches:
        engine_state, _ = evaluate(model, engine_state, batch, now)
    state = engine_state.to_bytes()
    seen = RecentSeqs.from_json({"GW1": [[n, 1.5 + n] for n in range(20)]})
    snap = SiteSnapshot(state, (), seen, 123_456)
    stored, plain = snap.to_bytes(), snap.to_plain_bytes()
    assert stored[:5] == b"RWSS\x06" and plain[:5] == b"RWSS\x04"
    assert len(stored) < len(plain) / 3
    assert SiteSnapshot.from_bytes(stored) == SiteSnapshot.from_bytes(plain) == snap
    # what builds before LZ4 stored (version 5, zlib) restores the same
    assert SiteSnapshot.from_bytes(_compressed(plain)) == snap


def _sized_json(doc: bytes) -> bytes:
    return struct.pack("<I", len(doc)) + doc


def test_the_evaluated_count_round_trips_and_version_2_snapshots_read_as_zero() -> None:
    seen = RecentSeqs.from_json({"GW1": [[7, 1.5]]})
    back = SiteSnapshot.from_bytes(SiteSnapshot(b"st", (), seen, 12_345).to_bytes())
    assert (back.evaluated, back.seen) == (12_345, seen)
    v2 = (
        struct.pack("<4sBI", b"RWSS", 2, 2)
        + b"st"
        + struct.pack("<I", 2)
        + b"[]"
        + orjson.dumps(seen.to_json())
    )
    old = SiteSnapshot.from_bytes(v2)
    assert (old.state, old.evaluated, old.seen) == (b"st", 0, seen)


def test_version_1_snapshots_still_restore_with_an_empty_window() -> None:
    v1 = struct.pack("<4sBI", b"RWSS", 1, 3) + b"abc" + orjson.dumps([])
    snap = SiteSnapshot.from_bytes(v1)
    assert (snap.state, snap.open, snap.seen.to_json()) == (b"abc", (), {})


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"RWSS",
        b"XXXX\x01\x00\x00\x00\x00[]",
        b"RWSS\x09\x00\x00\x00\x00[]",  # a version from the future
        SiteSnapshot(b"abc", ()).to_plain_bytes()[:-3],
        SiteSnapshot(b"abc", ()).to_plain_bytes()[:-1],  # the counts' JSON cut short
        SiteSnapshot(b"abc", ()).to_plain_bytes()[:-20],  # the window's JSON cut short
        SiteSnapshot(b"abc", ()).to_plain_bytes().replace(b'"evaluated":0', b'"evaluated":-1'),
        SiteSnapshot(b"abc", ()).to_bytes()[:-3],  # the compressed stream cut short
        SiteSnapshot(b"abc", ()).to_bytes() + b"x",  # ... or followed by anything
        _compressed(SiteSnapshot(b"abc", ()).to_plain_bytes(), length_change=-1),  # its length is wrong
        _compressed(SiteSnapshot(b"abc", ()).to_plain_bytes(), length_change=+1),
        _compressed(SiteSnapshot(b"abc", ()).to_bytes()),  # compressed twice: it must hold version 4
        struct.pack("<4sBI", b"RWSS", 5, 1 << 30) + zlib.compress(b"\x00" * 100),  # claims 1 GiB
        struct.pack("<4sBI", b"RWSS", 5, 3) + b"not zlib",
        _lz4(SiteSnapshot(b"abc", ()).to_plain_bytes(), length_change=-1),
        _lz4(SiteSnapshot(b"abc", ()).to_plain_bytes(), length_change=+1),
        _lz4(SiteSnapshot(b"abc", ()).to_bytes()),  # compressed twice
        _lz4(b"\x00" * 100)[:5] + struct.pack("<I", 1 << 30) + _lz4(b"\x00" * 100)[9:],  # claims 1 GiB
        struct.pack("<4sBI", b"RWSS", 6, 3) + b"not lz4",
    ],
)
def test_unreadable_snapshots_raise_snapshot_error(raw: bytes) -> None:
    with pytest.raises(SnapshotError):
        SiteSnapshot.from_bytes(raw)


def test_open_minutes_round_trip_exactly_and_version_3_snapshots_read_without_them() -> None:
    from processors.state.snapshot import StoredMinute

    minutes = (
        StoredMinute(
            29_000_000, ("G1", "G2"), (0.1, -5.0), (0.7, 1e300), (1.3000000000000003, 1e300), (3, 2)
        ),
        StoredMinute(29_000_001, ("G2",), (2.5,), (2.5,), (2.5,), (1,)),
    )
    seen = RecentSeqs.from_json({"GW1": [[7, 1.5]]})
    back = SiteSnapshot.from_bytes(SiteSnapshot(b"st", (), seen, 9, minutes).to_bytes())
    assert back.minutes == minutes and back.evaluated == 9
    counts = orjson.dumps({"evaluated": 12})
    v3 = struct.pack("<4sBI", b"RWSS", 3, 2) + b"st" + struct.pack("<I", 2) + b"[]"
    v3 += struct.pack("<I", len(orjson.dumps(seen.to_json()))) + orjson.dumps(seen.to_json()) + counts
    old = SiteSnapshot.from_bytes(v3)
    assert (old.state, old.evaluated, old.seen, old.minutes) == (b"st", 12, seen, ())


def test_unreadable_open_minutes_raise_snapshot_error() -> None:
    from processors.state.snapshot import StoredMinute

    good = SiteSnapshot(
        b"st", (), None, 0, (StoredMinute(5, ("G1",), (1.0,), (1.0,), (1.0,), (1,)),)
    ).to_plain_bytes()
    for raw in (
        good[:-1],
        good + b"x",
        good.replace(b'["G1"]', b"[1234]"),
        good[:-28] + b"\x00" * 4 + good[-24:],
    ):
        with pytest.raises(SnapshotError):
            SiteSnapshot.from_bytes(raw)


def test_credited_windows_round_trip_and_older_snapshots_read_without_them() -> None:
    credited = (("G1", 5_800_000), ("G3", 97_000))
    back = SiteSnapshot.from_bytes(SiteSnapshot(b"st", (), None, 3, (), credited).to_bytes())
    assert back.credited == credited and back.evaluated == 3
    plain = SiteSnapshot(b"st", (), None, 3).to_plain_bytes()
    assert b"credited" not in plain and SiteSnapshot.from_bytes(plain).credited == ()
    for bad in (b'{"G1":-1}', b'{"G1":"x"}', b'{"G1":true}', b"[1]"):
        raw = SiteSnapshot(b"st", (), None, 3, (), (("G1", 1),)).to_plain_bytes().replace(b'{"G1":1}', bad)
        with pytest.raises(SnapshotError):
            SiteSnapshot.from_bytes(raw)


def test_open_minutes_taken_as_numpy_columns_encode_as_their_tuples_do() -> None:
    """A flush hands the aggregator's arrays to the snapshot as they are: the stored bytes, and what a
    restart reads back, are those of the same minutes given as tuples (sensor ids sorted as before)."""
    import numpy as np

    from processors.state.snapshot import StoredMinute

    as_tuples = (
        StoredMinute(7, ("S-b", "S-a", "S-c"), (1.0, -2.0, 3.5), (1.0, 4.0, 3.5), (1.0, 2.0, 7.0), (1, 2, 2)),
        StoredMinute(8, ("S-c", "S-d"), (0.5, 9.0), (0.5, 9.0), (0.5, 9.0), (1, 1)),
    )
    as_arrays = tuple(
        StoredMinute(
            m.minute,
            np.array(m.sensor, dtype=object),
            np.array(m.min),
            np.array(m.max),
            np.array(m.sum),
            np.array(m.count, np.int64),
        )
        for m in as_tuples
    )
    raw = SiteSnapshot(b"st", (), None, 3, as_arrays).to_bytes()
    assert raw == SiteSnapshot(b"st", (), None, 3, as_tuples).to_bytes()
    assert b'["S-a","S-b","S-c","S-d"]' in lz4.block.decompress(raw[9:], uncompressed_size=1 << 16)
    assert SiteSnapshot.from_bytes(raw).minutes == as_tuples
    no_minutes = SiteSnapshot(b"st", (), None, 3, ()).to_bytes()
    assert SiteSnapshot.from_bytes(no_minutes).minutes == ()
