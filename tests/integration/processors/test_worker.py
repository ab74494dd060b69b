"""The worker as a separate process against the real Kafka and InfluxDB of the test stack."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

from processors.state.snapshot import SiteSnapshot
from riskwatch.topics import Topics
from riskwatch.wire.deadletter import DeadLetter
from riskwatch.wire.minutes import SiteMinute
from simulators.pipeline import wait_http
from tests.integration.processors.harness import (
    STALE_S,
    HistorianProcess,
    WorkerProcess,
    batch,
    drain,
    metric,
    produce,
    read_raw,
    read_transitions,
    stored_snapshots,
    write_registry,
)


def influx_query(stack: object, q: str) -> list[list[object]]:
    user, password = stack.influx_token.split(":", 1)  # type: ignore[attr-defined]
    db = stack.influx_bucket.split("/")[0]  # type: ignore[attr-defined]
    url = f"{stack.influx_url}/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})  # type: ignore[attr-defined]
    request = urllib.request.Request(
        url, headers={"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        doc = json.load(response)
    series = doc["results"][0].get("series") or []
    return [row for s in series for row in s["values"]]


def wait_for(pred, timeout: float, every: float = 0.5):  # type: ignore[no-untyped-def]
    end = time.time() + timeout
    while time.time() < end:
        value = pred()
        if value:
            return value
        time.sleep(every)
    return pred()


def test_set_point_crossings_give_transitions_history_and_views(
    stack, topics: Topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    reg_path, reg = write_registry(tmp_path, stale_s=3600)
    now = time.time()
    old = (now // 60 - 2) * 60 + 5.0  # a finished minute, so its aggregate is written at once
    produce(
        stack.kafka("tools"),
        topics.telemetry,
        [
            (b"S5", batch(reg, "S5", {"S5-G1": 3.0, "S5-G2": 4.0}, old)),
            (b"S5", batch(reg, "S5", {"S5-G1": 5.0}, old + 10, seq=777)),
            # The same gateway message redelivered (at least once): left out, so the aggregate counts 2.
            (b"S5", batch(reg, "S5", {"S5-G1": 5.0}, old + 10, seq=777)),
            (b"S1", batch(reg, "S1", {"S1-G1": 10.0, "S1-G2": 60.0}, now)),
            (b"S2", b"RWTB\x07 not a batch"),
        ],
    )
    worker = WorkerProcess(stack, topics, reg_path, tmp_path / "w1")
    historian = HistorianProcess(stack, topics, tmp_path / "historian.log")
    try:
        found = read_transitions(
            stack.kafka("tools"),
            topics.alarms,
            time.time() + 60,
            done=lambda ts: any(t.site == "S1" for t in ts),
        )
        alarms = [t for t in found if t.site == "S1"]
        assert [(t.entity, t.old, t.new, t.site, t.region) for t in alarms] == [
            ("S1-G2", "normal", "l2_high", "S1", "RA")
        ], worker.output()
        (item,) = alarms[0].cause.items
        assert (item.sensor, item.value, item.setpoint) == (
            "S1-G2",
            60.0,
            50.0,
        )  # GB/T 50493-2019 L2 = 50 %LEL
        warnings = read_transitions(
            stack.kafka("tools"),
            topics.warnings,
            time.time() + 30,
            done=lambda ts: {(t.entity_type, t.entity) for t in ts} >= {("site", "S1"), ("region", "RA")},
        )
        site = next(t for t in warnings if t.entity == "S1")
        region = next(t for t in warnings if t.entity == "RA")
        # docs/domain.md default rules: any flammable gas L2 makes its hazard source, hence its site, orange.
        assert (site.new, site.key, site.region, site.cause.rule) == ("orange", b"S1", "RA", "gas_l2")
        assert [i.sensor for i in site.cause.items] == ["S1-G2"]
        assert (region.new, region.counts, region.key) == ("orange", {"orange": 1}, b"RA")
        (dead,) = [
            DeadLetter.from_bytes(r)
            for r in read_raw(stack.kafka("tools"), topics.deadletter, time.time() + 20, 1)
        ]
        assert (dead.reason, dead.original) == ("batch_decode", b"RWTB\x07 not a batch")

        base = f"http://127.0.0.1:{worker.web_port}"
        doc = json.load(urllib.request.urlopen(f"{base}/site/S1/"))
        assert (doc["colour"], doc["open_alarms"], doc["transition_id"]) == ("orange", 1, site.id)
        assert [(u["unit"], u["colour"]) for u in doc["units"]] == [("S1-U1", "orange")]
        alarms_doc = json.load(urllib.request.urlopen(f"{base}/site/S1/alarms/"))
        assert [a["entity"] for a in alarms_doc["alarms"]] == ["S1-G2"]
        region_doc = json.load(urllib.request.urlopen(f"{base}/region/RA/"))
        assert (region_doc["colour"], region_doc["sites"]) == ("orange", {"S1": "orange"})
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics").read().decode()
        assert "riskwatch_readings_total 5.0" in metrics
        assert 'riskwatch_deadletters_total{reason="batch_decode"} 1.0' in metrics
        assert "riskwatch_duplicate_readings_total 1.0" in metrics

        rows = wait_for(
            lambda: influx_query(
                stack,
                f"SELECT min, max, mean, count FROM sensor_1m WHERE site='S5' AND sensor='S5-G1' AND time > {int(old - 60)}s",
            ),
            timeout=30,
        )
        assert [r[1:] for r in rows] == [[3.0, 5.0, 4.0, 2]]
        ids = wait_for(
            lambda: influx_query(
                stack, f"SELECT id FROM transition WHERE site='S1' AND time > {int(now - 60)}s"
            ),
            30,
        )
        assert {r[1] for r in ids} >= {alarms[0].id, site.id}
    finally:
        worker.stop()
        historian.stop()


def test_a_silent_sensor_turns_stale_with_no_input(stack, topics: Topics, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg_path, reg = write_registry(tmp_path)
    worker = WorkerProcess(stack, topics, reg_path, tmp_path / "w1")
    try:
        sent = time.time()
        values = {"S3-G1": 1.0, "S3-G2": 2.0, "S3-G3": 3.0}
        produce(stack.kafka("tools"), topics.telemetry, [(b"S3", batch(reg, "S3", values, sent))])
        stale = read_transitions(
            stack.kafka("tools"),
            topics.alarms,
            sent + 60,
            done=lambda ts: sum(t.site == "S3" for t in ts) >= 3,
        )
        s3 = [t for t in stale if t.site == "S3"]
        assert sorted((t.entity, t.new) for t in s3) == [(s, "stale") for s in values], worker.output()
        assert all(
            t.at == sent + STALE_S for t in s3
        )  # at its timeout after the last reading, no input since
    finally:
        worker.stop()


def test_a_worker_and_historian_killed_during_an_influxdb_outage_lose_no_history(
    stack, topics: Topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """InfluxDB is down; the worker evaluates two finished minutes of six sites and the first readings of
    the current minute, stores its snapshots (committing those readings) and is SIGKILLed mid-minute, and
    so is the historian, which had consumed the records but could not write them. More readings of that
    minute arrive while the worker is dead. Once InfluxDB and both processes are back, InfluxDB holds every
    transition on the topics and every minute aggregate, the interrupted minute's count and mean exact."""
    from deploy.stack import Stack

    reg_path, reg = write_registry(tmp_path, stale_s=3600)
    services = Stack(stack.home)
    worker = WorkerProcess(stack, topics, reg_path, tmp_path / "w1")
    historian = HistorianProcess(stack, topics, tmp_path / "historian.log")
    try:
        assert wait_http(f"http://127.0.0.1:{historian.metrics_port}/healthz", 60), historian.output()
        services.stop_service("influxdb")
        if time.time() % 60 > 20:  # start early in a minute, so that it is still open when the worker dies
            time.sleep(61 - time.time() % 60)
        now = time.time()
        first = (now // 60 - 3) * 60  # two finished minutes: the worker closes them at once
        minutes = (first, first + 60)
        sent: dict[tuple[str, float], list[float]] = {}
        records = []
        for n in range(6):
            site, sensor = f"S{n}", f"S{n}-G1"
            for m in minutes:
                values = [30.0 + 10 * n + k for k in range(3)]  # alarm-high on some sites
                sent[(sensor, m)] = values
                records += [
                    (site.encode(), batch(reg, site, {sensor: v}, m + 5 + 10 * k))
                    for k, v in enumerate(values)
                ]
        # The current minute, open when the worker dies: its first readings, stamped up to now.
        current = (now // 60) * 60
        early = [current + (now - current) * (k + 1) / 4 for k in range(3)]
        for n in range(6):
            site, sensor = f"S{n}", f"S{n}-G2"
            sent[(sensor, current)] = [5.0 + n + k / 2 for k in range(3)]  # below the set points
            records += [
                (site.encode(), batch(reg, site, {sensor: v}, t))
                for v, t in zip(sent[(sensor, current)], early, strict=True)
            ]
        produce(stack.kafka("tools"), topics.telemetry, records)
        # The stream goes on while InfluxDB is down: the minutes reach rw.history, transitions their topics.
        closed = len(sent) - 6
        published = read_raw(stack.kafka("tools"), topics.history, time.time() + 90, want=closed)
        assert sum(len(SiteMinute.from_bytes(r).sensor) for r in published) >= closed, worker.output()
        # Every site's stored snapshot covers all its readings: after the kill none is read again.
        snapshots = stored_snapshots(
            stack.kafka("tools"),
            f"riskwatch-worker-{topics.prefix}",
            time.time() + 60,
            lambda got: all(
                f"S{n}" in got and SiteSnapshot.from_bytes(got[f"S{n}"]).evaluated == 9 for n in range(6)
            ),
        )
        assert all(SiteSnapshot.from_bytes(snapshots[f"S{n}"]).evaluated == 9 for n in range(6)), snapshots
        assert wait_for(
            lambda: (metric(historian.metrics_port, "riskwatch_history_write_retries_total") or 0) >= 1, 30
        )
        health = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{historian.metrics_port}/healthz").read()
        )
        assert (health["ok"], health["writing"], health["ready"]) == (True, False, False), health
        assert health["influxdb_error"] and health["unwritten_age_s"] > 0, health
        assert time.time() < current + 80, "too slow: the current minute closed before the worker died"
        worker.kill()
        historian.kill()
        late = min(time.time(), current + 59.9)  # the rest of the interrupted minute, while nothing runs
        for n in range(6):
            site, sensor = f"S{n}", f"S{n}-G2"
            rest = [early[-1] + (late - early[-1]) * (k + 1) / 3 for k in range(2)]
            values = [15.0 - n, 0.25]
            sent[(sensor, current)] += values
            produce(
                stack.kafka("tools"),
                topics.telemetry,
                [
                    (site.encode(), batch(reg, site, {sensor: v}, t))
                    for v, t in zip(values, rest, strict=True)
                ],
            )
    finally:
        services.start_service("influxdb")
    transitions = drain(stack.kafka("tools"), [topics.alarms, topics.warnings], quiet_s=3, timeout=30)
    assert transitions, "the worker emitted no transition"
    # The new worker starts after the interrupted minute was due to close: it must still read the backlog
    # (the rest of that minute) before closing what it restored.
    time.sleep(max(0.0, current + 60 + 30 + 2 - time.time()))
    worker = WorkerProcess(stack, topics, reg_path, tmp_path / "w2")
    historian = HistorianProcess(stack, topics, tmp_path / "historian.log")
    try:
        since = int(first - 600)
        want = {t.id for t in transitions}
        got = wait_for(
            lambda: (
                want
                <= {r[1] for r in influx_query(stack, f"SELECT id FROM transition WHERE time > {since}s")}
            ),
            timeout=90,
        )
        assert got, historian.output()

        def aggregates() -> dict[tuple[str, float], list[object]]:
            rows = influx_query(
                stack,
                f"SELECT sensor, min, max, mean, count FROM sensor_1m WHERE time > {since}s GROUP BY sensor",
            )
            return {(r[1], r[0] / 1000): r[2:] for r in rows}  # type: ignore[operator]

        expected = {key: [min(v), max(v), sum(v) / len(v), len(v)] for key, v in sent.items()}
        closes = current + 60 + 30  # the interrupted minute closes 30 s (grace) after it ends
        if not wait_for(lambda: expected.items() <= aggregates().items(), max(60, closes - time.time() + 60)):
            got = aggregates()  # read once: the minutes that differ, with both processes' logs
            differ = {key: (want, got.get(key)) for key, want in expected.items() if got.get(key) != want}
            raise AssertionError((differ, worker.output(), historian.output()))
        # the completeness summary came through the same records, steps and commits: a point per site and
        # minute; each sensor owes one reading an hour, so G1's two minutes pay once per hour they touch,
        # and G2, first heard in the interrupted minute, pays it once
        summary = {
            (r[1], r[0] / 1000): (r[2], r[3])  # type: ignore[operator]
            for r in influx_query(stack, f"SELECT site, credited, sensors FROM site_1m WHERE time > {since}s")
        }
        hours = len({m // 3600 for m in minutes})
        for n in range(6):
            assert [summary[(f"S{n}", m)][1] for m in (*minutes, current)] == [1, 1, 1], summary
            assert sum(summary[(f"S{n}", m)][0] for m in minutes) == hours, summary
            assert summary[(f"S{n}", current)][0] == 1, summary
        health = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{historian.metrics_port}/healthz").read()
        )
        assert (health["writing"], health["unwritten_age_s"]) == (True, 0.0), health
    finally:
        worker.stop()
        historian.stop()


def test_the_historian_dead_letters_what_it_cannot_write_and_goes_on(
    stack, topics: Topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A record that does not decode and a point InfluxDB refuses (a time beyond its range) are
    dead-lettered with their reason and counted; the records behind them are written."""
    historian = HistorianProcess(stack, topics, tmp_path / "historian.log")
    try:
        at = time.time()
        good = SiteMinute("S9", "RA", (at // 60) * 60, ["S9-G1"], [1.0], [2.0], [1.5], [2])
        late = SiteMinute("S9", "RA", 9.6e9, ["S9-G1"], [1.0], [2.0], [1.5], [2])  # 2274: beyond int64 ns
        produce(
            stack.kafka("tools"),
            topics.history,
            [(b"S9", b"{not json"), (b"S9", late.to_bytes()), (b"S9", good.to_bytes())],
        )
        rows = wait_for(
            lambda: influx_query(
                stack, f"SELECT count FROM sensor_1m WHERE sensor='S9-G1' AND time > {int(at - 120)}s"
            ),
            60,
        )
        assert [r[1] for r in rows] == [2], historian.output()
        letters = [
            DeadLetter.from_bytes(r)
            for r in read_raw(stack.kafka("tools"), topics.deadletter, time.time() + 30, 2)
        ]
        assert sorted((d.reason, d.component) for d in letters) == [
            ("history_rejected", "historian"),
            ("malformed_record", "historian"),
        ], historian.output()
        assert metric(historian.metrics_port, "riskwatch_history_rejected_points_total") == 1
    finally:
        historian.stop()


def test_hostile_records_and_a_registry_edit_never_stop_a_partition(
    stack, topics: Topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A worker restarted with an edited registry keeps S1-G1's alarm by id and evaluates the new S1-G0;
    unusable records on the same partition are dead-lettered with their offsets and skipped."""
    import orjson

    from riskwatch.registry import load_registry
    from tests.integration.processors.harness import REGISTRY_YAML

    reg_path, reg = write_registry(tmp_path, stale_s=3600)
    now = time.time()
    produce(stack.kafka("tools"), topics.telemetry, [(b"S1", batch(reg, "S1", {"S1-G1": 60.0}, now))])
    first = WorkerProcess(stack, topics, reg_path, tmp_path / "w1")
    try:
        alarms = read_transitions(
            stack.kafka("tools"), topics.alarms, time.time() + 60, done=lambda ts: len(ts) >= 1
        )
        assert [(t.entity, t.new) for t in alarms] == [("S1-G1", "l2_high")], first.output()
        time.sleep(3)  # snapshots every second: S1's state is stored and its batch acked
    finally:
        first.stop()

    # The edit: S1-G3 removed, S1-G0 added before S1-G1 (every index of S1 moves).
    stale = "stale_after_s: 3600"
    g1 = f"- {{id: S1-G1, type: flammable_gas, {stale}}}"
    edited = (
        REGISTRY_YAML.replace(f"stale_after_s: {STALE_S}", stale)
        .replace(f"\n          - {{id: S1-G3, type: flammable_gas, {stale}}}", "")
        .replace(g1, f"- {{id: S1-G0, type: flammable_gas, {stale}}}\n          {g1}")
    )
    (tmp_path / "edited").mkdir()
    edited_path = tmp_path / "edited" / "registry.yaml"
    edited_path.write_text(edited, encoding="utf-8")
    reg2 = load_registry(edited_path)
    assert "S1-G0" in reg2.sensors and "S1-G3" not in reg2.sensors

    hostile = orjson.dumps(
        {"v": 1, "type": "event", "site": "S1", "gw": "S1-GW", "t": "soon", "received": now, "kind": "x"}
    )
    unknown_target = orjson.dumps(
        {
            "v": 1,
            "type": "event",
            "site": "S1",
            "gw": "S1-GW",
            "t": now,
            "received": now,
            "kind": "maintenance_on",
            "target": "NO-SUCH-UNIT",
        }
    )
    produce(stack.kafka("tools"), topics.gateway, [(b"S1", hostile), (b"S1", unknown_target)])
    later = time.time()
    produce(
        stack.kafka("tools"),
        topics.telemetry,
        [
            (b"S1", b"RWTB\x02\x03garbage"),
            (b"S1", batch(reg2, "S1", {"S1-G0": 60.0, "S1-G1": 1.0}, later)),
        ],
    )
    # The region stage's input is an internal topic, untrusted too: a record that is no site warning.
    by_region = f"riskwatch-worker-{topics.prefix}-sites-by-region"
    produce(stack.kafka("tools"), by_region, [(b"RA", b"not a site warning")])
    second = WorkerProcess(stack, topics, edited_path, tmp_path / "w1")
    try:
        found = read_transitions(
            stack.kafka("tools"),
            topics.alarms,
            time.time() + 90,
            done=lambda ts: {("S1-G0", "l2_high"), ("S1-G1", "normal")} <= {(t.entity, t.new) for t in ts},
        )
        changes = [(t.entity, t.old, t.new) for t in found]
        assert ("S1-G0", "normal", "l2_high") in changes, second.output()
        # The alarm kept through the edit is cleared by a real reading (its off-delay, then normal).
        assert ("S1-G1", "l2_high", "normal") in changes, second.output()
        letters = [
            DeadLetter.from_bytes(r)
            for r in read_raw(stack.kafka("tools"), topics.deadletter, time.time() + 30, 4)
        ]
        got = {(d.reason, d.source, d.offset) for d in letters}
        region_offset = max(
            (d.offset for d in letters if d.source == by_region), default=-1
        )  # after the first run's site warnings
        assert got == {
            ("malformed_record", topics.gateway, 0),
            ("target_unknown", topics.gateway, 1),
            ("batch_decode", topics.telemetry, 1),
            ("malformed_record", by_region, region_offset),
        }, second.output()
        text = urllib.request.urlopen(f"http://127.0.0.1:{second.metrics_port}/metrics").read().decode()
        # the edit made nothing raise; the region stage counts the record it could not use
        errors = [line for line in text.splitlines() if line.startswith("riskwatch_evaluation_errors_total{")]
        assert errors == ['riskwatch_evaluation_errors_total{stage="regions"} 1.0'], errors
        health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{second.web_port}/healthz"))
        assert health["ok"] is True
    finally:
        second.stop()
