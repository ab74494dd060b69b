"""`riskwatch bench engine`: readings/s through the vectorised engine vs the per-reading reference.

Input: a generated province-size registry (default 100k sensors behind 1,000 gateways), every sensor
reporting once per 10 s cycle; by default a batch of 1,000 readings is a run of whole gateway records,
as the worker hands them to the engine (`--shape random` draws each batch from the whole registry). Values are a realistic mix: most sensors sit at a quiet baseline
with noise, 2.5 % run elevated below L1, 1 % hover at L1 with noise inside the deadband, 0.3 % sit in
L1 and 0.2 % in L2; 1 reading in 10,000 is NaN or has a bad-quality flag (--bad-rate). Both engines
see exactly the same batches and timer calls; the ratio is measured in the same run because the
machine is shared and absolute figures drift.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from processors.engine.evaluation import evaluate
from processors.engine.model import EngineModel, compile_model
from processors.engine.state import EngineState
from processors.engine.warnings import rule_name
from processors.engine_reference import ReferenceEngine
from riskwatch.registry import Registry, generate
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition

CYCLE_S = 10.0  # every sensor reports once per cycle (AQ 6201 polling <= 30 s)
# CPU time of this process: the 2 cores are shared with other work, and wall time would charge their
# load to whichever side happened to run at that moment. Both sides are single-threaded.
_clock = time.process_time
_WALL: list[float] = []  # wall-clock seconds of the last runs, printed for the record


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sensors", type=int, default=100_000, help="registry size (default 100,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="readings per batch (default 1,000)")
    parser.add_argument(
        "--batches", type=int, default=1500, help="batches through the engine (default 1,500)"
    )
    parser.add_argument(
        "--reference-batches",
        type=int,
        default=50,
        help="batches through the per-reading reference (default 50)",
    )
    parser.add_argument(
        "--shape",
        choices=("gateway", "random"),
        default="gateway",
        help="batches of whole gateway records (default, what a worker sees) or sensors drawn at random",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--bad-rate", type=float, default=1e-4, help="share of NaN / bad-quality readings (default 0.0001)"
    )


def _baselines(model: EngineModel, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-sensor operating point and noise: most quiet, a few elevated, hovering at L1, in L1 or L2."""
    n = model.n_sensors
    lo, hi = model.range_low, model.range_high
    span = hi - lo
    l1, l2 = model.high[:, 0], model.high[:, 1]
    has_l1 = np.isfinite(l1) & (l1 < hi)
    floor = np.where(np.isfinite(model.low[:, 0]), model.low[:, 0], lo)
    top = np.where(has_l1, l1, hi)
    base = floor + (top - floor) * rng.uniform(0.2, 0.6, n)  # quiet
    noise = 0.01 * (top - floor)  # quiet and elevated sensors never reach L1 by noise alone
    pick = rng.random(n)
    elevated = has_l1 & (pick < 0.025)
    base = np.where(elevated, floor + (l1 - floor) * rng.uniform(0.8, 0.95, n), base)
    # at L1 with noise inside the deadband (sensors that have one): alarmed once, then held
    hover = has_l1 & (model.deadband > 0) & (pick >= 0.025) & (pick < 0.035)
    base = np.where(hover, l1 + 0.5 * model.deadband, base)
    noise = np.where(hover, 0.25 * model.deadband, noise)
    gap = np.where(np.isfinite(l2) & has_l1, l2 - np.where(has_l1, l1, 0), 0.1 * span)
    in_l1 = has_l1 & (pick >= 0.035) & (pick < 0.038)
    base = np.where(in_l1, l1 + 0.25 * gap + 0.005 * span, base)
    in_l2 = has_l1 & np.isfinite(l2) & (l2 < hi) & (pick >= 0.038) & (pick < 0.040)
    base = np.where(in_l2, np.minimum(l2 + 0.02 * span, hi), base)
    noise = np.where(in_l1 | in_l2, 0.001 * span, noise)
    return base, noise


def make_batches(
    model: EngineModel,
    count: int,
    size: int,
    seed: int,
    bad_rate: float = 1e-4,
    shape: str = "gateway",
) -> list[tuple[Readings, float]]:
    """`count` batches of `size` readings with their evaluation times (the newest reading's time).

    shape "gateway" (the default, what a worker sees): each gateway polls its sensors once per cycle at
    its own phase (clocks are not aligned) and sends them as one record, in the registry's order; a batch
    is the next `size` readings of that stream, i.e. a run of whole gateway records. shape "random": every
    batch is `size` sensors drawn from the whole registry, which defeats the CPU caches and no real feed
    looks like (kept to compare with earlier figures)."""
    rng = np.random.default_rng(seed)
    n = model.n_sensors
    base, noise = _baselines(model, rng)
    t0 = 1_700_000_000.0
    if shape == "random":
        order = rng.permutation(n)
        offset = np.linspace(0.0, CYCLE_S, n, endpoint=False)  # when in the cycle each reading is taken
    elif shape == "gateway":
        gateways = model.sensor_gateway
        by_gateway = np.argsort(gateways, kind="stable")  # each gateway's sensors, in registry order
        phase = rng.uniform(0.0, CYCLE_S, int(gateways.max()) + 1)  # each gateway's poll time in a cycle
        order = by_gateway[np.argsort(phase[gateways[by_gateway]], kind="stable")]
        offset = phase[gateways[order]] + rng.uniform(0.0, 0.2, n)  # a poll takes a moment
    else:
        raise ValueError(f"unknown batch shape {shape!r} (gateway or random)")
    out = []
    for b in range(count):
        pos = np.arange(b * size, (b + 1) * size)
        cycle, at = np.divmod(pos, n)
        idx = order[at]
        ts = t0 + cycle * CYCLE_S + offset[at]
        values = base[idx] + rng.normal(0, 1, idx.size) * noise[idx]
        values = np.clip(values, model.range_low[idx], model.range_high[idx])
        quality = (rng.random(idx.size) < bad_rate / 2).astype(np.uint8)
        values[rng.random(idx.size) < bad_rate / 2] = np.nan
        out.append((Readings.of(idx, values, ts, quality), float(ts.max())))
    return out


def run_engine(
    model: EngineModel, batches: list[tuple[Readings, float]], state: EngineState
) -> tuple[float, list[list[Transition]]]:
    """Seconds spent in `evaluate` over the batches, and the transitions of each batch."""
    out: list[list[Transition]] = []
    start, wall = _clock(), time.perf_counter()
    for batch, now in batches:
        state, transitions = evaluate(model, state, batch, now)
        out.append(transitions)
    _WALL.append(time.perf_counter() - wall)
    return _clock() - start, out


def run_reference(
    ref: ReferenceEngine, batches: list[tuple[Readings, float]]
) -> tuple[float, list[list[Transition]]]:
    out: list[list[Transition]] = []
    start, wall = _clock(), time.perf_counter()
    for batch, now in batches:
        out.append(ref.evaluate(batch, now))
    _WALL.append(time.perf_counter() - wall)
    return _clock() - start, out


def _same(a: list[list[Transition]], b: list[list[Transition]]) -> bool:
    def key(t: Transition) -> tuple[str, ...]:
        return (t.kind, t.entity, t.id, t.old)

    return [sorted(x, key=key) for x in a] == [sorted(x, key=key) for x in b]


def load_reference(ref: ReferenceEngine, model: EngineModel, state: EngineState) -> None:
    """Hand the engine's state to the reference as plain values (it shares no code with the engine)."""
    sa, ua = state.sensor, state.unit
    units: dict[str, dict[str, float | str]] = {
        unit: {
            "colour": int(ua["colour"][u]),
            "colour_at": float(ua["colour_at"][u]),
            "rule": rule_name(model, int(ua["rule"][u])),
            "due": float(ua["due"][u]),
            "maintenance": int(ua["maintenance"][u]),
            "bypassed": int(ua["bypassed"][u]),
            "valve": float(ua["valve_closed_at"][u]),
            "event_at": float(ua["event_at"][u]),
        }
        for u, unit in enumerate(model.unit_ids)
    }
    ref.load(
        {name: column.tolist() for name, column in sa.items()},
        units,
        {
            site: (int(state.site["colour"][k]), float(state.site["colour_at"][k]))
            for k, site in enumerate(model.site_ids)
        },
        {region: int(state.region["colour"][k]) for k, region in enumerate(model.region_ids)},
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    t = time.perf_counter()
    registry: Registry = generate(args.sensors, seed=args.seed)
    model = compile_model(registry)
    print(
        f"registry: {len(registry.sensors):,} sensors, {len(registry.units):,} units, "
        f"{len(registry.sites):,} sites, built and compiled in {time.perf_counter() - t:.1f} s"
    )
    cycle = max(1, model.n_sensors // args.batch)
    # Warm-up: 7 cycles (70 s of readings), past the 60 s on-delays, so both measure a steady state.
    stream = make_batches(
        model, 7 * cycle + args.batches, args.batch, args.seed + 1, args.bad_rate, args.shape
    )
    warm, batches = stream[: 7 * cycle], stream[7 * cycle :]
    state = EngineState.initial(model, now=warm[0][0].ts.min())
    run_engine(model, warm, state)
    warmed = state.copy()
    elapsed, produced = run_engine(model, batches, state)
    readings = sum(len(b) for b, _ in batches)
    rate = readings / elapsed
    transitions = sum(len(x) for x in produced)
    print(
        f"engine:    {readings:,} readings in {elapsed:.3f} s = {rate:,.0f} readings/s "
        f"({transitions:,} transitions)"
    )
    ref = ReferenceEngine(registry, timers="tracked", all_units=False)
    load_reference(ref, model, warmed)  # the reference starts from the engine's state after the warm-up
    ref_batches = batches[: args.reference_batches]
    ref_elapsed, expected = run_reference(ref, ref_batches)
    agree = _same(produced[: len(ref_batches)], expected)
    ref_readings = sum(len(b) for b, _ in ref_batches)
    ref_rate = ref_readings / ref_elapsed
    print(
        f"reference: {ref_readings:,} readings in {ref_elapsed:.3f} s = {ref_rate:,.0f} readings/s "
        f"(same transitions as the engine: {'yes' if agree else 'NO'})"
    )
    ratio = rate / ref_rate
    wall_rate, ref_wall_rate = readings / _WALL[-2], ref_readings / _WALL[-1]
    print(f"wall clock: engine {wall_rate:,.0f} readings/s, reference {ref_wall_rate:,.0f} readings/s")
    bps = state.bytes_per_sensor()
    print(
        f"ratio {ratio:.1f}x (process CPU time); hot state {bps:.1f} bytes/sensor ({bps * model.n_sensors / 1e6:.1f} MB)"
    )
    return {
        "readings_per_s": rate,
        "baseline_readings_per_s": ref_rate,
        "ratio": ratio,
        "bytes_per_sensor": bps,
        "sensors": model.n_sensors,
        "batch": args.batch,
        "shape": args.shape,
        "transitions": transitions,
        "reference_agrees": agree,
        "timing": "process CPU time",
        "readings_per_s_wall": wall_rate,
        "baseline_readings_per_s_wall": ref_wall_rate,
    }
