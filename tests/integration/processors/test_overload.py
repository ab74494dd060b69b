"""Graceful overload: a worker that starts behind a backlog loses nothing, keeps committing, keeps its
event loop responsive and drains the backlog faster than it grew, while live load goes on.

The backlog is what five minutes at twice the live rate leaves behind a stopped worker: `rw.telemetry` is
preloaded with 2 x 300 s of the live rate (100-reading records, the province shape's), with an L2 crossing
of one sensor that clears in its site's next record buried in the middle. The worker then starts with live
load on top (one record per site per second; in each of S0's records one probe sensor crosses L2 and the
previous one clears, whose reading -> alarm times show when the worker is live again; the probes take
turns, so none crosses twice within the engine's 60 s chattering window and every crossing is alarmed). `RISKWATCH_OVERLOAD_SCALE` multiplies the rates (and
so the backlog) for a longer run. The default (30 sites, 3,000 live readings/s, five minutes behind: a
1,800,000-reading backlog) drains in ~2-3 s on a quiet machine (~1 M readings/s) and in ~15 s at 128k/s,
over several snapshot periods of a worker behind (1 s here), so commits during it show. (A minute behind
drained in under 0.5 s on a quiet machine, before the first commit could.)
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from riskwatch.registry import Registry, load_registry
from riskwatch.topics import Topics
from riskwatch.wire.batch import encode
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition
from tests.integration.processors.harness import WorkerProcess, metric

SCALE = float(os.environ.get("RISKWATCH_OVERLOAD_SCALE", "1"))
SITES = max(2, round(30 * SCALE))  # one live record per site per second
SENSORS_PER_SITE = 200
RECORD = 100  # readings per record
BEHIND_S = 300.0  # the backlog is five minutes at twice the live rate
QUIET, L2 = 3.0, 60.0  # %LEL: flammable gas L2 is 50
LOOP_LAG_LIMIT_S = 0.1
P99_LIMIT_S = 1.0
PROBES = 65  # > 60 s of crossings, one a second: each probe is on, off and on again only after 65 s
LIVE_AFTER_DRAIN_S = 20.0  # live load once the backlog is drained: the crossings that show recovery


def _registry(folder: Path) -> tuple[Path, Registry]:
    sites = []
    for k in range(SITES):
        units = [
            {
                "id": f"S{k}-U{u}",
                "kind": "tank_farm",
                "gateway": f"S{k}-GW",
                "sensors": [
                    {
                        "id": f"S{k}-U{u}-{i:02d}",
                        "type": "flammable_gas",
                        "stale_after_s": 3600,
                        "on_delay_s": 0,
                        "off_delay_s": 0,
                    }
                    for i in range(SENSORS_PER_SITE // 10)
                ],
            }
            for u in range(10)
        ]
        sites.append(
            {"id": f"S{k}", "region": "RA", "name": f"site {k}", "industry": "hazardous_chemicals",
             "gateways": [{"id": f"S{k}-GW"}], "units": units}
        )  # fmt: skip
    doc = {"version": 1, "regions": [{"id": "RA", "name": "region A"}], "sites": sites}
    path = folder / "registry.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path, load_registry(path)


class Records:
    """100-reading records of each site's sensors in turn, each a new gateway message (seq)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.members = {
            f"S{k}": np.array([s.index for s in registry.sensor_list if s.site == f"S{k}"], np.int32)
            for k in range(SITES)
        }
        self.turn = dict.fromkeys(self.members, 0)
        self.seqs = itertools.count(1)

    def record(self, site: str, t: float, hot: dict[str, float] | None = None) -> bytes:
        sensors = self.members[site]
        first = self.turn[site]
        self.turn[site] = (first + RECORD) % len(sensors)
        sensor = np.resize(np.roll(sensors, -first), RECORD)
        value = np.full(RECORD, QUIET)
        for sid, v in (hot or {}).items():  # these sensors report in this record whatever their turn
            index = self.registry.sensors[sid].index
            sensor[-1 - list(hot or {}).index(sid)] = index
            value[-1 - list(hot or {}).index(sid)] = v
        ts = np.full(RECORD, t)
        readings = Readings.of(sensor, value, ts)
        return encode(site, self.registry.fingerprint, [(f"{site}-GW", next(self.seqs), RECORD)], readings)


def _lag_histogram(port: int) -> tuple[float, float]:
    """(samples, samples at most LOOP_LAG_LIMIT_S late) of the worker's event-loop lag on CPU: on this
    shared 2-core machine the wall-clock lag also counts time the worker waited for a core."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    total = within = 0.0
    for line in text.splitlines():
        if line.startswith("riskwatch_event_loop_lag_on_cpu_seconds_count "):
            total = float(line.split()[1])
        if line.startswith(f'riskwatch_event_loop_lag_on_cpu_seconds_bucket{{le="{LOOP_LAG_LIMIT_S}"}} '):
            within = float(line.split()[1])
    return total, within


def _telemetry_lag(port: int, topic: str) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    found = [
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("riskwatch_consumer_lag{") and f'topic="{topic}"' in line
    ]
    return sum(found) if found else None


def test_a_worker_behind_a_backlog_drains_it_live_without_losing_a_reading(  # type: ignore[no-untyped-def]
    stack, topics: Topics, tmp_path: Path
) -> None:
    reg_path, registry = _registry(tmp_path)
    kafka = stack.kafka("tools")
    records = Records(registry)
    producer = KafkaProducer(**kafka.kafka_python(), acks="all", linger_ms=20, batch_size=1 << 20)
    transient = "S1-U3-07"
    probes = [s.id for s in registry.sensor_list if s.site == "S0"][:PROBES]

    # The backlog: 2 x the live rate for BEHIND_S, stamped over that time, ending now.
    start = time.time() - BEHIND_S
    backlog_records = int(2 * SITES * BEHIND_S)
    middle = backlog_records // 2
    hot_at = None
    for i in range(backlog_records):
        site = f"S{i % SITES}"
        t = start + i * BEHIND_S / backlog_records
        hot = None
        if site == "S1" and i >= middle and hot_at is None:
            hot, hot_at = {transient: L2}, t
        elif site == "S1" and hot_at is not None and t > hot_at and i < middle + 2 * SITES:
            hot = {transient: QUIET}  # the next record of S1: cleared
        producer.send(topics.telemetry, key=site.encode(), value=records.record(site, t, hot))
    producer.flush()
    backlog = backlog_records * RECORD

    sent = [backlog]
    crossings = [0]  # probe crossings sent
    stop = threading.Event()

    def live() -> None:
        n = 0
        while not stop.is_set():
            t = time.time()
            for k in range(SITES):
                site = f"S{k}"
                # This second's probe crosses L2, the last one clears (on, off, then 65 s quiet).
                hot = {probes[(n - 1) % PROBES]: QUIET, probes[n % PROBES]: L2} if site == "S0" else None
                producer.send(topics.telemetry, key=site.encode(), value=records.record(site, t, hot))
                sent[0] += RECORD
            producer.flush()
            n += 1
            crossings[0] = n
            stop.wait(max(0.0, t + 1.0 - time.time()))

    feeder = threading.Thread(target=live, daemon=True)
    # Faust commits every `--commit-every` acked records or every 2.8 s; acks follow the snapshots, which a
    # worker behind stores 4x less often (processors/timers.py): every 1 s at 0.25 s. On a quiet machine the
    # backlog drains in ~2-3 s, so commit by count and store often to see commits during it.
    worker = WorkerProcess(
        stack, topics, reg_path, tmp_path / "w1", "--commit-every", "100", "--snapshot-every-s", "0.25"
    )
    group = f"riskwatch-worker-{topics.prefix}"
    admin = KafkaAdminClient(**kafka.kafka_python())
    try:
        feeder.start()
        first_evaluated = drained_at = None
        commits: list[tuple[float, int]] = []  # (when, committed offsets summed) while draining
        lag_at_first: tuple[float, float] | None = None
        end = time.time() + 240
        while time.time() < end:
            evaluated = metric(worker.metrics_port, "riskwatch_readings_total") or 0.0
            now = time.time()
            if evaluated and first_evaluated is None:
                first_evaluated = now
                lag_at_first = _lag_histogram(worker.metrics_port)
            if first_evaluated is not None and drained_at is None:
                offsets = admin.list_group_offsets(group).get(group, {})
                commits.append(
                    (now, sum(o.offset for tp, o in offsets.items() if tp.topic == topics.telemetry))
                )
                lag = _telemetry_lag(worker.metrics_port, topics.telemetry)
                if evaluated >= backlog and lag is not None and lag <= 2 * SITES:
                    drained_at = now
            if drained_at is not None and now - drained_at > LIVE_AFTER_DRAIN_S:
                break
            time.sleep(0.25)
        assert drained_at is not None and first_evaluated is not None and lag_at_first is not None, (
            worker.output()
        )
        stop.set()
        feeder.join(timeout=10)
        # Nothing lost: every reading sent was evaluated (each record a new gateway message).
        deadline = time.time() + 60
        while (
            time.time() < deadline
            and (metric(worker.metrics_port, "riskwatch_readings_total") or 0) < sent[0]
        ):
            time.sleep(0.5)
        assert metric(worker.metrics_port, "riskwatch_readings_total") == sent[0], worker.output()
        # The event loop stayed responsive while the backlog drained.
        lag_total, lag_within = _lag_histogram(worker.metrics_port)
        late = (lag_total - lag_within) - (lag_at_first[0] - lag_at_first[1])
        assert late == 0, f"{late:.0f} event-loop samples later than {LOOP_LAG_LIMIT_S} s while draining"
        # Offsets were committed during the drain, not only at its end.
        backlog_end = backlog_records  # records, over all partitions
        during = [c for when, c in commits if when < drained_at and 0 < c < backlog_end]
        assert during, f"no commit while draining: {commits}"

        # The crossing buried in the backlog was alarmed and warned, cleared in S1's next record.
        alarms = _read(kafka, topics.alarms, want=lambda ts: sum(t.entity == transient for t in ts) >= 2)
        warnings = _read(kafka, topics.warnings, want=lambda ts: sum(t.entity == "S1" for t in ts) >= 2)
        crossed = [(t.old, t.new, t.at) for t, _ in alarms if t.entity == transient]
        assert crossed[:2] == [("normal", "l2_high", hot_at), ("l2_high", "normal", crossed[1][2])], crossed
        s1 = [(t.old, t.new) for t, _ in warnings if t.entity == "S1"]
        assert s1[:2] == [("normal", "orange"), ("orange", "normal")], s1

        drain_s = drained_at - first_evaluated
        grew, drained = backlog / BEHIND_S, backlog / drain_s
        # reading -> alarm of each probe crossing: when was the worker live again (p99 under 1 s)?
        alarms = _read(kafka, topics.alarms, want=lambda ts: False, timeout=5)
        latency = _probe_latencies(alarms, set(probes))
        recovered = _recovered_after(latency, first_evaluated)
        print(
            f"\noverload: backlog {backlog:,} readings ({BEHIND_S:.0f} s at 2x the live rate, grew at "
            f"{grew:,.0f}/s), drained in {drain_s:.1f} s = {drained:,.0f}/s with "
            f"{SITES * RECORD:,} live readings/s on top; {len(during)} commits seen while draining; "
            f"reading -> alarm p99 back under {P99_LIMIT_S:.0f} s {recovered} after the worker began; "
            f"probe reading -> alarm (s after start: s) {[(round(at - first_evaluated), round(late, 2)) for at, late in latency]}; "
            f"event-loop lag at most {metric(worker.metrics_port, 'riskwatch_event_loop_lag_max_seconds'):.3f} s "
            "wall clock; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        assert drained > grew, f"drained at {drained:,.0f}/s, slower than the backlog grew ({grew:,.0f}/s)"
        # Every live crossing was alarmed (none held back as chattering), and the worker was live again.
        assert len(latency) == crossings[0], f"{len(latency)} of {crossings[0]} probe crossings alarmed"
        assert recovered != "never", f"reading -> alarm p99 never back under {P99_LIMIT_S} s: {latency}"
    finally:
        stop.set()
        admin.close()
        producer.close()
        worker.stop()


def _read(kafka: object, topic: str, want, timeout: float = 60) -> list[tuple[Transition, float]]:  # type: ignore[no-untyped-def]
    """(transition, when Kafka got it) of `topic` from the start until `want(transitions)`."""
    consumer = KafkaConsumer(
        topic,
        **kafka.kafka_python(),
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,  # type: ignore[attr-defined]
    )
    out: list[tuple[Transition, float]] = []
    end = time.time() + timeout
    try:
        while time.time() < end and not want([t for t, _ in out]):
            for record in consumer:
                out.append((Transition.from_bytes(record.value), record.timestamp / 1000))
                if want([t for t, _ in out]):
                    break
    finally:
        consumer.close()
    return out


def _probe_latencies(alarms: list[tuple[Transition, float]], probes: set[str]) -> list[tuple[float, float]]:
    """(reading time, reading -> alarm seconds) of each alarmed crossing of a probe to L2."""
    return sorted((t.at, when - t.at) for t, when in alarms if t.entity in probes and t.new == "l2_high")


def _recovered_after(latency: list[tuple[float, float]], began: float) -> str:
    """How long after `began` the probe crossings were alarmed within P99_LIMIT_S from then on (every
    one of them, so their p99 too)."""
    for i, (at, _) in enumerate(latency):
        if float(np.percentile([late for _, late in latency[i:]], 99)) < P99_LIMIT_S:
            return f"{max(0.0, at - began):.1f} s"
    return "never"
