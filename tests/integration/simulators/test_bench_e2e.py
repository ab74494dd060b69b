"""A short end-to-end load run at the province shape: MQTT -> two bridges -> Kafka -> worker -> warnings ->
alerting -> webhook -> history. Asserts that every reading sent was evaluated by the engine (nothing lost at the end
of the path), that the two bridges shared the gateways' messages, and that every incident was warned and
alerted (not speed: that is the benchmark's job)."""

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
            "--enterprises",
            "40",
            "--rate",
            "1",
            "--duration",
            "45",
            "--incidents",
            "2",
            "--stack-home",
            str(stack.home),
            "--bridges",
            "2",
        ]
    )
    figures = bench_e2e.measure(args)
    assert "error_services_died" not in figures
    assert figures["shape"] == "province" and figures["sites"] == 40 and figures["gateways"] >= 40
    assert figures["sent"] == figures["acked"] == figures["received"] > 0
    # counted at the engine: every reading sent was evaluated (none refused: the gateways are honest)
    assert figures["evaluated"] == figures["sent"] and figures["dead_lettered"] == 0
    # two bridges in one share group: each carried a part, together every reading, once
    by_bridge = figures["readings_by_bridge"]
    assert sorted(by_bridge) == ["bridge", "bridge-2"] and min(by_bridge.values()) > 0, by_bridge
    assert sum(by_bridge.values()) == figures["sent"], by_bridge
    assert figures["lost"] == 0 and figures["lost_before_kafka"] == 0
    # one message per gateway per poll period
    assert figures["messages"] == pytest.approx(figures["gateways"] * 45, rel=0.05)
    assert figures["messages_per_s"] > 0 and 20 <= figures["readings_per_message"] <= 200
    assert figures["incidents"] == figures["incidents_warned"] == 2
    assert figures["incidents_alerted"] == 2
    assert figures["latency_max_s"] is not None and figures["latency_max_s"] < 30
    # which incident was how late: each at its planned time into the run, the slowest being the max
    by_incident = figures["latency_by_incident_s"]
    assert [at for at, _ in by_incident] == sorted(at for at, _ in by_incident) and by_incident[0][0] > 0
    assert max(lat for _, lat in by_incident) == pytest.approx(figures["latency_max_s"], abs=0.002)
    # the CPU each process on the path spent, the capacity model's per-core input
    cpu = figures["cpu_s"]
    for process in ("mosquitto", "bridge", "kafka", "worker", "alerting", "load generator"):
        assert cpu[process] > 0, process
    assert "bridge-2" not in cpu  # counted with the first bridge: the bridges' CPU together
    assert figures["cpu_s_per_million_readings"]["worker"] > 0
    assert cpu["bench (measuring)"] > 0  # this process reads the topics to time the path
    assert 0 < figures["machine_cpu_busy"] <= 1
    # history, read back from InfluxDB (the run's own database): every minute of every sensor that
    # reached Kafka has its aggregate, and the aggregates count every reading sent, once
    assert figures["history_minutes_short"] == [] and figures["history_complete_after_s"] is not None
    assert figures["history_readings_written"] == figures["history_readings"] == figures["sent"]
    assert (
        figures["history_sensor_minutes_written"] == figures["history_sensor_minutes"] >= figures["sensors"]
    )
    assert figures["history_minutes"] >= 1
    assert (tmp_path / "bench-e2e.png").read_bytes()[:4] == b"\x89PNG"
