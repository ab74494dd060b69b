from __future__ import annotations

from riskwatch.regions import RegionState, roll_up
from riskwatch.wire.transitions import Cause, Transition, transition_id


def _site(site: str, old: str, new: str, at: float) -> Transition:
    return Transition(
        transition_id("warning", "site", site, new, at),
        "warning",
        "site",
        site,
        old,
        new,
        at,
        Cause("r"),
        site,
        "RA",
    )


def test_region_takes_the_highest_site_colour_with_counts() -> None:
    state = RegionState()
    first = roll_up(state, _site("S1", "normal", "yellow", 10.0))
    assert (first.entity, first.old, first.new, first.counts, first.key) == (
        "RA",
        "normal",
        "yellow",
        {"yellow": 1},
        b"RA",
    )
    assert roll_up(state, _site("S2", "normal", "blue", 11.0)) is None  # colour unchanged: no transition
    up = roll_up(state, _site("S2", "blue", "red", 12.0))
    assert (up.new, up.counts) == ("red", {"yellow": 1, "red": 1})
    down = roll_up(state, _site("S2", "red", "normal", 13.0))
    assert (down.old, down.new) == ("red", "yellow")


def test_replayed_site_transition_repeats_nothing_and_state_round_trips() -> None:
    state = RegionState()
    t = _site("S1", "normal", "orange", 10.0)
    out = roll_up(state, t)
    restored = RegionState.from_bytes(state.to_bytes())
    assert roll_up(restored, t) is None
    assert out.id == roll_up(RegionState(), t).id  # same input, same id
