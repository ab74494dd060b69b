"""The engine benchmark runs end to end on a small registry and reports the agreed keys (not timed)."""

from __future__ import annotations

import argparse

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
