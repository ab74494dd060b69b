"""A short end-to-end load run: MQTT -> bridge -> Kafka -> worker -> warnings -> alerting -> webhook.
Asserts that nothing is lost and every incident is warned (not speed: that is the benchmark's job)."""

from __future__ import annotations

import argparse

import pytest

from simulators import bench_e2e


@pytest.mark.slow
def test_short_e2e_run_loses_nothing_and_warns_every_incident(stack, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RISKWATCH_HOME", str(tmp_path))
    parser = argparse.ArgumentParser()
    bench_e2e.configure(parser)
    args = parser.parse_args(
        [
            "--sensors",
            "4000",
            "--rate",
            "1",
            "--duration",
            "45",
            "--incidents",
            "2",
            "--stack-home",
            str(stack.home),
        ]
    )
    figures = bench_e2e.measure(args)
    assert "error_services_died" not in figures
    assert figures["sent"] == figures["acked"] == figures["received"] > 0
    assert figures["lost"] == 0
    assert figures["incidents"] == figures["incidents_warned"] == 2
    assert figures["incidents_alerted"] == 2
    assert figures["latency_max_s"] is not None and figures["latency_max_s"] < 30
    assert (tmp_path / "bench-e2e.png").read_bytes()[:4] == b"\x89PNG"
