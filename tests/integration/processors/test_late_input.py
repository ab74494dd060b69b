"""The path upstream of the worker falls behind: readings arrive later and later, as when the bridge works
through Mosquitto's queue while offered more than it can carry (`bench e2e` at 200,000 readings/s on two
cores: up to 131 s). The engine's timers must follow the input, not the wall clock
(processors/engine_clock.py): no sensor turns stale while its readings still come, and a red among the
late readings is warned, at its reading time."""

from __future__ import annotations

import time
from pathlib import Path

from kafka import KafkaProducer

from riskwatch.topics import Topics
from tests.integration.processors.harness import (
    WorkerProcess,
    batch,
    metric,
    read_transitions,
    write_registry,
)
from tests.waiting import wait_for

STALE_S = 15  # past the engine clock's 10 s grace
FEED_S = 50.0
SLOWER = 0.4  # reading time advances at this fraction of the wall clock: the lag grows 0.6 s a second
RED_AT_S = 40.0  # into the feed: readings ~24 s late by then, later than the stale timeout
QUIET, HIGH = 3.0, 80.0  # %LEL; flammable gas L2 is 50


def test_readings_arriving_ever_later_turn_no_sensor_stale_and_their_red_is_warned(  # type: ignore[no-untyped-def]
    stack, topics: Topics, tmp_path: Path
) -> None:
    reg_path, reg = write_registry(tmp_path, stale_s=STALE_S, no_delays=True)
    kafka = stack.kafka("tools")
    sites = list(reg.sites)
    worker = WorkerProcess(stack, topics, reg_path, tmp_path / "w1")
    producer = KafkaProducer(**kafka.kafka_python(), acks="all", linger_ms=5)
    try:
        assert wait_for(lambda: metric(worker.metrics_port, "riskwatch_worker_ready") == 1, 60), (
            worker.output()
        )
        sent, red_ts, last_ts, behind = 0, None, 0.0, 0.0
        t0 = time.time()
        for second in range(int(FEED_S)):
            time.sleep(max(0.0, t0 + second - time.time()))
            elapsed = time.time() - t0
            last_ts = t0 + SLOWER * elapsed  # one record per site a second, each later than the one before
            for site in sites:
                values = {f"{site}-G{n}": QUIET for n in (1, 2, 3)}
                if site == "S1" and RED_AT_S <= elapsed < RED_AT_S + 3:  # two detectors at L2: unit red
                    values["S1-G1"] = values["S1-G2"] = HIGH
                    red_ts = red_ts or last_ts
                producer.send(topics.telemetry, key=site.encode(), value=batch(reg, site, values, last_ts))
                sent += len(values)
            producer.flush()
            behind = max(behind, metric(worker.metrics_port, "riskwatch_engine_clock_behind_seconds") or 0.0)
        assert red_ts is not None
        lag = time.time() - last_ts
        assert wait_for(lambda: metric(worker.metrics_port, "riskwatch_readings_total") == sent, 30), (
            worker.output()
        )
        warnings = read_transitions(
            kafka, topics.warnings, time.time() + 20, done=lambda ts: any(t.entity == "S1-U1" for t in ts)
        )
        sensors = 3 * len(sites)
        alarms = read_transitions(  # until every sensor turned stale after the feed
            kafka,
            topics.alarms,
            time.time() + 30,
            done=lambda ts: sum(t.new == "stale" for t in ts) >= sensors,
        )
        # Every reading was evaluated in time order: a sensor turned stale only its timeout after its last
        # reading (once the feed ended and the input stopped, as it should), never while readings came.
        stale = [(t.entity, round(t.at - t0, 2)) for t in alarms if t.new == "stale"]
        assert len(stale) == sensors and all(abs(t0 + at - (last_ts + STALE_S)) < 0.01 for _, at in stale), (
            round(last_ts - t0, 2),
            stale,
        )
        crossed = sorted((t.entity, t.new) for t in alarms if t.site == "S1" and t.new == "l2_high")
        assert crossed == [("S1-G1", "l2_high"), ("S1-G2", "l2_high")], [
            (t.entity, t.old, t.new, t.at - t0) for t in alarms if t.site == "S1"
        ]
        red = [t for t in warnings if t.entity == "S1-U1" and t.new == "red"]
        assert red and abs(red[0].at - red_ts) < 0.01, (red_ts, warnings)
        # The worker said how far behind the input was (lag ~30 s at the end, 10 s of it within the grace).
        assert lag > 25 and behind > 10, (lag, behind)
    finally:
        producer.close()
        worker.stop()
