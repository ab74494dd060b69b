from __future__ import annotations

import pytest

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
    snap = SiteSnapshot(b"\x00\x01state", (t,))
    assert SiteSnapshot.from_bytes(snap.to_bytes()) == snap


@pytest.mark.parametrize(
    "raw", [b"", b"RWSS", b"XXXX\x01\x00\x00\x00\x00[]", SiteSnapshot(b"abc", ()).to_bytes()[:-3]]
)
def test_unreadable_snapshots_raise_snapshot_error(raw: bytes) -> None:
    with pytest.raises(SnapshotError):
        SiteSnapshot.from_bytes(raw)
