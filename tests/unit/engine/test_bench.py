"""The engine benchmark runs end to end on a small registry and reports the agreed keys (not timed)."""

from __future__ import annotations

import argparse

import numpy as np

from processors import bench_engine as bench


def test_measure_reports_figures_and_the_reference_agrees() -> None:
    parser = argparse.ArgumentParser()
    bench.configure(parser)
    args = parser.parse_args(
        ["--sensors", "3000", "--batch", "200", "--batches", "20", "--reference-batches", "5"]
    )
    result = bench.measure(args)
    for key in ("readings_per_s", "baseline_readings_per_s", "ratio", "bytes_per_sensor"):
        assert result[key] > 0
    assert result["reference_agrees"] is True
    assert result["bytes_per_sensor"] <= 200


def test_gateway_shape_batches_are_runs_of_whole_gateway_records() -> None:
    from processors.engine.model import compile_model
    from riskwatch.registry import generate

    model = compile_model(generate(3000, seed=2))
    batches = bench.make_batches(model, 30, 300, seed=4, shape="gateway")  # 3,000 readings: one cycle
    sensors = np.concatenate([b.sensor for b, _ in batches[:10]])
    assert np.array_equal(np.sort(sensors), np.arange(model.n_sensors))  # every sensor once per cycle
    gateway = model.sensor_gateway[sensors]
    runs = 1 + np.count_nonzero(gateway[1:] != gateway[:-1])
    assert runs == len(np.unique(model.sensor_gateway))  # each gateway's record arrives in one piece
    ts = np.concatenate([b.ts for b, _ in batches])
    poll = ts[::10]
    assert np.all(np.diff(poll) > -0.5)  # gateways poll in turn through the cycle, not at random times
