"""The engine's shortcuts give exactly what its full per-round path gives, on both sides of each condition.

`evaluate` applies a batch's quiet readings (nothing but the sensor's newest value and time changes) in
a few array operations and sends only the rest through the full path. Here the same stream runs through
the engine as it is and through the engine with the shortcut switched off (every reading goes the full
way), and the transitions, rejects, counters and state arrays must be identical.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from processors import bench_engine as bench
from processors.engine import EngineState, Event, compile_model, evaluate_detailed, evaluation, rules, sensors
from processors.engine.model import FAULT, STALE, EngineModel
from riskwatch.registry import generate
from riskwatch.wire.readings import Readings

MODEL = compile_model(generate(400, seed=3))
MIXED = compile_model(generate(1000, seed=3))  # tailings ponds too


def _stream(model: EngineModel, seed: int) -> Iterator[tuple[Readings, float, list[Event]]]:
    """Realistic batches (bench mix with far more bad readings), some spiked with moving, repeated,
    late, unknown and non-finite readings, now and then a gateway going offline, and a 10-minute outage
    of the whole feed (every sensor turns stale; the first readings after it come past their stale moment)."""
    rng = np.random.default_rng(seed)
    batches = bench.make_batches(model, 160, 50, seed, bad_rate=0.01, shape="random")
    for k, (batch, now) in enumerate(batches):
        sensor, value, ts, quality = (a.copy() for a in batch)
        gap = 600.0 if k >= 100 else 0.0
        ts += gap
        kind = k % 6
        if kind == 1:  # a few readings far up their range: they move their sensors
            pick = rng.choice(sensor.size, 3, replace=False)
            value[pick] = model.range_high[sensor[pick]]
        elif kind == 2:  # a sensor twice
            sensor[-1] = sensor[0]
            ts[-1] = ts[0] + 0.5
        elif kind == 3:  # a late reading, an unknown sensor and a non-finite time
            ts[1] -= 40.0
            sensor[2] = model.n_sensors + 5
            ts[3] = math.nan
        events = []
        if k % 25 == 24:
            events.append(Event("gateway_offline", model.gateway_ids[k % len(model.gateway_ids)], now - 1))
        yield Readings(sensor, value, ts, quality), now + gap, events


def _run(model: EngineModel, seed: int) -> tuple[list[Any], EngineState]:
    state = EngineState.initial(model, now=1_699_999_990.0)
    out: list[Any] = []
    s = state.sensor
    for batch, now, events in _stream(model, seed):
        outcome = evaluate_detailed(model, state, batch, now, events)
        out.append((outcome.transitions, outcome.rejects, outcome.out_of_order))
        # what the shortcut relies on to leave `stale_due` alone: it never passes a live sensor's stale moment
        live = s["code"] != STALE
        assert state.stale_due <= (s["last_ts"][live] + model.stale_after[live]).min(initial=np.inf)
    return out, state


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quiet_readings_shortcut_gives_what_the_full_path_gives(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = {"all quiet": 0, "some quiet": 0}
    quiet = evaluation._quiet

    def spy(*args: Any) -> Any:
        mask = quiet(*args)
        n = int(np.count_nonzero(mask))
        if n == mask.size:
            taken["all quiet"] += 1
        elif n:
            taken["some quiet"] += 1
        return mask

    monkeypatch.setattr(evaluation, "_quiet", spy)
    fast, fast_state = _run(MODEL, seed)
    assert taken["all quiet"] > 3 and taken["some quiet"] > 10  # both sides of the shortcut were used
    monkeypatch.setattr(evaluation, "_quiet", lambda _m, _s, idx, *_: np.zeros(idx.size, bool))
    full, full_state = _run(MODEL, seed)
    assert sum(len(t) for t, _, _ in full) > 20 and sum(len(r) for _, r, _ in full) > 10
    assert fast == full
    _assert_same_arrays(fast_state, full_state)
    assert (fast_state.out_of_order, fast_state.rejected) == (full_state.out_of_order, full_state.rejected)


def test_a_rejected_reading_behind_quiet_ones_is_reported_at_its_batch_position() -> None:
    state = EngineState.initial(MODEL, now=0.0)
    every = np.arange(MODEL.n_sensors)
    quiet_value = (MODEL.keep_lo[:, 4] + MODEL.keep_hi[:, 4]) / 2  # inside each sensor's normal band
    quiet_value = np.where(np.isfinite(quiet_value), quiet_value, MODEL.range_low)
    evaluate_detailed(MODEL, state, Readings.of(every, quiet_value, np.full(every.size, 1.0)), 1.0)
    batch = Readings.of([0, 1, 2, 3], quiet_value[:4], [2.0, 2.0, math.inf, 2.0])
    outcome = evaluate_detailed(MODEL, state, batch, 2.0)
    assert [(r.position, r.reason) for r in outcome.rejects] == [
        (2, "timestamp inf is not a finite epoch time")
    ]
    assert state.sensor["last_ts"][[0, 1, 2, 3]].tolist() == [2.0, 2.0, 1.0, 2.0]


def test_a_few_readings_out_of_band_get_the_levels_the_array_path_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`target_codes` decides up to `_FEW` readings one by one in Python, more with arrays: same codes."""
    rng = np.random.default_rng(5)
    n = 4000
    idx = rng.integers(0, MODEL.n_sensors, n)
    # values at and around every set point, its deadband edges and the range ends, plus NaN
    points = np.concatenate(
        [
            MODEL.high,
            MODEL.low,
            MODEL.holds[:, :4],
            -MODEL.holds[:, 4:],
            MODEL.range_low[:, None],
            MODEL.range_high[:, None],
        ],
        axis=1,
    )[idx, rng.integers(0, 18, n)]
    points = np.where(np.isfinite(points), points, MODEL.range_high[idx])
    value = points + rng.choice([-1e-9, 0.0, 1e-9, -0.5, 0.5], n) * np.maximum(1.0, np.abs(points))
    value[rng.random(n) < 0.02] = np.nan
    quality = (rng.random(n) < 0.02).astype(np.uint8)
    code = rng.choice(np.array([*range(-4, 5), FAULT, STALE], np.int8), n)
    state = EngineState.initial(MODEL, now=0.0)
    s = state.sensor
    s["keep_lo"][:], s["keep_hi"][:] = np.inf, -np.inf  # no band: every reading is decided in full
    monkeypatch.setattr(sensors, "_FEW", 0)
    by_array = sensors.target_codes(MODEL, s, idx, value, quality, code)
    monkeypatch.setattr(sensors, "_FEW", n)
    one_by_one = sensors.target_codes(MODEL, s, idx, value, quality, code)
    assert np.array_equal(by_array, one_by_one)
    assert {FAULT, 0, 1, 2, -1}.issubset(set(by_array.tolist()))  # the mix reaches faults and levels


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_one_unit_decided_in_python_gets_what_the_array_path_gives(seed: int) -> None:
    """`evaluate_one` (one unit, rule by rule in Python) against `evaluate_units` over every unit at
    once (the array path), on random reported states, times, flags and valve confirmations."""
    rng = np.random.default_rng(seed)
    # gas mains and cut-off valves here and there, so the kiln rule has something to decide
    model = dataclasses.replace(MIXED, role=rng.choice(np.array([0, 1, 2], np.int8), MIXED.n_sensors))
    state = EngineState.initial(model, now=0.0)
    s, u = state.sensor, state.unit
    n, nu, now = model.n_sensors, len(model.unit_ids), 1000.0
    named: set[int] = set()
    for _ in range(10):
        codes = rng.choice(np.array([*range(-4, 5), FAULT, STALE], np.int8), n)
        density = rng.choice([0.0, 0.05, 0.1, 0.3], nu)[model.sensor_unit]  # mostly quiet units
        s["ucode"][:] = np.where(rng.random(n) < density, codes, 0)
        s["usince"][:] = np.where(rng.random(n) < 0.05, -np.inf, now - rng.choice([0.0, 5.0, 10.0, 700.0], n))
        u["maintenance"][:] = rng.random(nu) < 0.1
        u["bypassed"][:] = rng.random(nu) < 0.3
        u["valve_closed_at"][:] = np.where(
            rng.random(nu) < 0.5, np.inf, now - rng.choice([0.0, 8.0, 20.0], nu)
        )
        u["event_at"][:] = np.where(rng.random(nu) < 0.5, -np.inf, now - 30.0)
        every = rules.evaluate_units(model, s, u, np.arange(nu), now)
        one = [rules.evaluate_one(model, s, u, unit, now) for unit in range(nu)]
        assert [c for c, _, _, _ in one] == every.colour.tolist()
        assert [r for _, r, _, _ in one] == every.rule.tolist()
        assert [d for _, _, d, _ in one] == every.due.tolist()
        assert [a for _, _, _, a in one] == every.at.tolist()
        named.update(every.rule.tolist())
    assert len(named) > 8  # many rules, tailings, maintenance and none included, were named


def _lone_readings(model: EngineModel, seed: int) -> Iterator[tuple[Readings, float, list[Event]]]:
    """Batches of quiet readings around one that moves its sensor (into and out of levels and faults,
    often enough to chatter), now and then late, with a non-finite time, after a long gap (stale), or
    that one reading alone; a gateway goes offline now and then."""
    rng = np.random.default_rng(seed)
    middle = (model.keep_lo[:, 4] + model.keep_hi[:, 4]) / 2  # inside each sensor's normal band
    normal = np.where(np.isfinite(middle), middle, model.range_low)
    quiet = np.arange(20)
    hot = rng.choice(np.arange(20, model.n_sensors), 2, replace=False)
    t = 1_700_000_000.0
    for k in range(400):
        t += float(rng.choice([0.5, 2.0, 30.0, 300.0], p=[0.7, 0.22, 0.06, 0.02]))
        i = int(rng.choice(hot))
        levels = [model.high[i, 0], model.high[i, 1], model.low[i, 0], model.low[i, 1]]
        choices = [x for x in levels if np.isfinite(x)] + [math.nan, normal[i], normal[i]]
        value = float(rng.choice(choices))
        ts = t + float(rng.choice([0.0, -30.0, math.inf], p=[0.9, 0.07, 0.03]))
        sensor = quiet if k % 4 else quiet[:0]  # every 4th batch: the lone reading by itself
        n = sensor.size
        yield (
            Readings.of(
                np.append(sensor, i),
                np.append(normal[sensor], value),
                np.append(np.full(n, t), ts),
                np.append(np.zeros(n, np.uint8), int(rng.random() < 0.05)),
            ),
            t,
            [Event("gateway_offline", model.gateway_ids[-1], t - 0.1)] if k % 50 == 49 else [],
        )


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_lone_reading_decided_in_scalars_gets_what_the_array_path_gives(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sensors.apply_one` (one reading, in scalars) against the array path for the same reading."""

    def run() -> tuple[list[Any], EngineState]:
        state = EngineState.initial(MODEL, now=1_699_999_990.0)
        out = []
        for batch, now, events in _lone_readings(MODEL, seed):
            outcome = evaluate_detailed(MODEL, state, batch, now, events)
            out.append((outcome.transitions, outcome.rejects, outcome.out_of_order))
        return out, state

    scalar, scalar_state = run()
    monkeypatch.setattr(evaluation, "_ONE_BY_ONE", False)
    arrays, array_state = run()
    reasons = {t.cause.rule for ts, _, _ in arrays for t in ts if t.entity_type == "sensor"}
    assert {"set_point", "fault", "stale", "chattering", "chattering_cleared"} <= reasons
    assert sum(o for _, _, o in arrays) > 5 and sum(len(r) for _, r, _ in arrays) > 5
    assert scalar == arrays
    _assert_same_arrays(scalar_state, array_state)
    assert (scalar_state.stale_due, scalar_state.watch_due) == (array_state.stale_due, array_state.watch_due)


def _assert_same_arrays(got: EngineState, want: EngineState) -> None:
    """Every per-entity array equal (NaN equal to NaN), and the same sensors watched."""
    for group in ("sensor", "unit", "site", "region"):
        for name, array in getattr(want, group).items():
            assert np.array_equal(getattr(got, group)[name], array, equal_nan=True), (group, name)
    assert np.array_equal(np.unique(got.watch), np.unique(want.watch))
