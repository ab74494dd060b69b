"""The engine's clock: the wall clock, held back by how late readings reach the engine."""

from __future__ import annotations

import pytest

from processors.engine_clock import EngineClock


class Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _clock(sites: int = 5, grace: float = 10.0, max_behind: float = 300.0) -> tuple[EngineClock, Wall]:
    wall = Wall(1000.0)
    return EngineClock([f"S{k}" for k in range(sites)], wall, grace, max_behind), wall


def test_on_time_readings_leave_it_on_the_wall_clock() -> None:
    clock, _ = _clock()
    assert clock() == 1000.0  # no readings yet
    for k in range(5):
        clock.observe(f"S{k}", 999.2, 1000.0)  # 0.8 s late: usual delivery
    assert clock.input_lag == pytest.approx(0.8) and clock.behind == 0.0
    assert clock() == 1000.0


def test_a_path_behind_holds_it_back_by_the_lag_beyond_the_grace() -> None:
    clock, wall = _clock()
    for k in range(5):
        clock.observe(f"S{k}", 1000.0 - 130.0, 1000.0)  # the bridge works through a 130 s queue
    assert clock.input_lag == pytest.approx(130.0)
    assert clock.behind == pytest.approx(120.0)
    assert clock() == pytest.approx(880.0)
    # readings stop altogether: the clock goes on at the wall clock's pace from there
    wall.t = 1500.0
    assert clock() == pytest.approx(1380.0)


def test_one_vote_per_site_so_a_few_wrong_clocks_do_not_move_it() -> None:
    clock, _ = _clock()
    clock.observe("S0", 1000.0 - 86_400.0, 1000.0)  # a gateway a day behind (or an attacker)
    clock.observe("S1", 1000.0 - 3_600.0, 1000.0)
    for k in (2, 3, 4):
        clock.observe(f"S{k}", 999.5, 1000.0)
    assert clock.behind == 0.0 and clock() == 1000.0
    # however many records the outlier sends, it keeps one vote
    for _ in range(1000):
        clock.observe("S0", 1000.0 - 86_400.0, 1000.0)
    assert clock.behind == 0.0
    clock.observe("S9", 0.0, 1000.0)  # a site the registry does not have: no vote
    assert clock.behind == 0.0


def test_it_never_runs_backwards_and_never_falls_further_behind_than_the_limit() -> None:
    clock, wall = _clock()
    assert clock() == 1000.0
    for k in range(5):
        clock.observe(f"S{k}", 1000.0 - 60.0, 1000.0)  # the lag appears
    assert clock() == 1000.0  # held where it was, not moved back
    wall.t = 1030.0
    assert clock() == 1000.0  # 1030 - 50
    wall.t = 1060.0
    assert clock() == pytest.approx(1010.0)
    for k in range(5):
        clock.observe(f"S{k}", 1060.0 - 10_000.0, 1060.0)
    assert clock.behind == 300.0  # at most the limit
    for k in range(5):
        clock.observe(f"S{k}", 1060.0, 1060.0)  # caught up: back on the wall clock at once
    assert clock() == 1060.0


def test_forgotten_sites_no_longer_vote() -> None:
    clock, _ = _clock()
    for k in range(3):
        clock.observe(f"S{k}", 1000.0 - 200.0, 1000.0)
    clock.observe("S3", 999.0, 1000.0)
    assert clock.behind == pytest.approx(190.0)
    clock.forget(["S0", "S1"])  # their partition went to another worker
    assert clock.input_lag == pytest.approx((200.0 + 1.0) / 2)
    clock.forget(["S2", "S3"])
    assert clock.input_lag == 0.0


def test_the_median_is_taken_again_at_most_every_refresh_interval() -> None:
    wall = Wall(1000.0)
    clock = EngineClock(["S0", "S1", "S2"], wall, 10.0, 300.0, refresh_s=0.5)
    for k in range(3):
        clock.observe(f"S{k}", 900.0, 1000.0)
    assert clock.input_lag == pytest.approx(100.0)
    for k in range(3):
        clock.observe(f"S{k}", 1000.0, 1000.0)
    assert clock.input_lag == pytest.approx(100.0)  # as of 0 s ago
    wall.t = 1000.5
    assert clock.input_lag == 0.0
