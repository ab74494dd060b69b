"""`riskwatch bench processors`: the worker's throughput against the engine alone and a naive agent.

In one run, on the real Kafka of the local stack (started first if it is not running, and stopped after,
as `bench e2e` does) or `--kafka`, with records of the province shape's size (`--batch-size`, default 100
readings: one enterprise's gateway messages as the bridge batches them), encoded as the bridge encodes
them (with the sensor id table, the body compressed with the bridge's default codec):
  (a) engine:   the engine alone, in this process, evaluating the very batches preloaded for (b), one
                `evaluate` call per record (no Kafka, no decoding, no state tables): what the worker's
                work costs, so `ratio_to_engine` = (b)/(a) is the worker's own overhead;
  (b) worker:   `riskwatch worker` (a separate process) evaluating the preloaded topic;
  (c) baseline: a naive Faust agent taking one JSON record per reading (`processors.bench_naive`).
(b) and (c) are counted from the first reading seen to the last, so process start-up is not in them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson

from riskwatch.kafka_access import KafkaAccess
from riskwatch.registry import Registry
from riskwatch.topics import Topics
from riskwatch.wire.batch import DEFAULT_BODY_CODEC, SensorIdTable, encode
from riskwatch.wire.readings import Readings

TARGET_RATE, TARGET_VS_NAIVE, TARGET_VS_ENGINE = 500_000, 30.0, 0.5
POLL_S, POLL_END_S = 0.5, 0.02  # seconds between polls of /metrics (rate_of_all)
STALE_AFTER_S = 4 * 3600  # longer than the readings' lead over the clock (_preload)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", default="", help="bootstrap server (default: the local stack's)")
    parser.add_argument("--sensors", type=int, default=100_000, help="synthetic registry size")
    parser.add_argument("--readings", type=int, default=3_000_000, help="readings preloaded for (a) and (b)")
    parser.add_argument(
        "--batch-size", type=int, default=100,
        help="readings per Kafka record (default 100, the province shape's; the bridge's maximum is 2,000)",
    )  # fmt: skip
    parser.add_argument("--naive-readings", type=int, default=40_000, help="JSON records preloaded for (c)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--engine-module", default="processors.engine", help=argparse.SUPPRESS)


def _access(args: argparse.Namespace) -> tuple[KafkaAccess, Path | None]:
    """The tools account (it may create the run's topics; the worker and the naive baseline run on it too,
    on topics of their own that no component account is granted), and the local stack's folder if this
    run started it (to stop it after)."""
    if args.kafka:
        return KafkaAccess.from_env(str(args.kafka), "tools"), None
    from riskwatch.paths import home_dir
    from simulators.stackctl import ensure_stack

    home = home_dir() / "stack"
    info, started = ensure_stack(home)
    return info.kafka("tools"), home if started else None


def _create_topics(access: KafkaAccess, names: list[str], partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(**access.kafka_python(), client_id="riskwatch-bench")
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        admin.close()


def _normal_values(registry: Registry) -> tuple[np.ndarray, np.ndarray]:
    """A quiet value per sensor (between its first set points, or mid-range) and half that band."""
    mid = np.empty(len(registry.sensor_list))
    half = np.empty(len(registry.sensor_list))
    for s in registry.sensor_list:
        top = s.l1_high if s.l1_high is not None else s.range_high
        low = s.l1_low if s.l1_low is not None else s.range_low
        mid[s.index], half[s.index] = (low + top) / 2, (top - low) / 2
    return mid, half


def _preload(
    access: KafkaAccess, registry: Registry, topics: Topics, naive_topic: str, args: argparse.Namespace
) -> tuple[int, list[tuple[str, Readings, float]]]:
    """Produce the telemetry and naive topics; the telemetry batches (readings, evaluation time) too,
    for the engine-alone measurement."""
    from kafka import KafkaProducer

    rng = np.random.default_rng(3)
    normal, half = _normal_values(registry)
    spike = np.array(
        [s.l2_high if s.l2_high is not None else v for s, v in zip(registry.sensor_list, normal, strict=True)]
    )
    by_site: dict[str, list[int]] = {}
    for s in registry.sensor_list:
        by_site.setdefault(s.site, []).append(s.index)
    sites = list(by_site)
    members = [np.array(by_site[site], np.int32) for site in sites]
    order = [rng.permutation(m) for m in members]  # each site's sensors in a fixed random order
    producer = KafkaProducer(
        **access.kafka_python(), linger_ms=20, batch_size=1 << 20, max_request_size=8 << 20
    )
    n_batches = args.readings // args.batch_size
    ids = SensorIdTable(registry.sensor_ids)  # records as the bridge writes them: id table, compressed body
    # Event times ahead of the clock, so no sensor turns stale while the run lasts (the timers still
    # evaluate every owned site each second, as in production). With 30 s, a worker started minutes later
    # on a loaded machine saw readings already older than their sensors' stale timeout.
    t0 = time.time() + 3600
    batches: list[tuple[str, Readings, float]] = []
    for b in range(n_batches):
        k = b % len(sites)
        # Each sensor reports once a second, so a site's batch holds its sensors in turn (a sensor twice
        # only when the batch is bigger than the site: consecutive seconds), never 20 readings of one
        # sensor in 10 ms as random draws with replacement gave.
        # In turn, not a random draw each time: a sensor left out of its site's records for longer than
        # its stale timeout turns stale and back, and (b) then measures sending those transitions.
        turn = (b // len(sites)) * args.batch_size
        sensor = np.resize(np.roll(order[k], -turn), args.batch_size)
        value = normal[sensor] + half[sensor] * rng.uniform(-0.2, 0.2, args.batch_size)
        hot = rng.random(args.batch_size) < 0.0001  # a few set-point crossings, so transitions flow too
        value[hot] = spike[sensor[hot]] * 1.05
        ts = t0 + b * 0.01 + np.linspace(0, 0.009, args.batch_size)
        readings = Readings.of(sensor, value, ts)
        batches.append((sites[k], readings, float(ts[-1])))
        source = [(f"{sites[k]}-G00", b, args.batch_size)]
        raw = encode(sites[k], registry.fingerprint, source, readings, ids, DEFAULT_BODY_CODEC)
        producer.send(topics.telemetry, key=sites[k].encode(), value=raw)
    for r in range(args.naive_readings):
        i = int(rng.integers(0, len(registry.sensor_ids)))
        doc = {"s": registry.sensor_ids[i], "v": float(normal[i]), "t": t0 + r * 0.001}
        producer.send(naive_topic, key=registry.sensor_list[i].site.encode(), value=orjson.dumps(doc))
    producer.flush()
    producer.close()
    return n_batches * args.batch_size, batches


def _engine_alone(registry: Registry, module: str, batches: list[tuple[str, Readings, float]]) -> float:
    """Readings/s of the engine evaluating `batches` one call each, as the worker calls it: one small
    model and state per site (processors/state/sites.py), the readings re-indexed to the site before the
    clock starts. Best of 3 passes from fresh states: the machine is shared."""
    from processors.engine_port import load_engine
    from processors.state.sites import SiteIndex

    api = load_engine(module)
    index = SiteIndex(registry)
    models = {site: api.compile_model(index.sub_registry(site)) for site in {b[0] for b in batches}}
    local = [(site, index.split(site, readings).readings, now) for site, readings, now in batches]
    total = sum(len(r) for _, r, _ in local)
    best = 0.0
    for _ in range(3):
        states = {site: api.initial(model, local[0][2] - 1.0) for site, model in models.items()}
        started = time.perf_counter()
        for site, readings, now in local:
            states[site], _transitions = api.evaluate(models[site], states[site], readings, now)
        best = max(best, total / (time.perf_counter() - started))
    return best


def _metric(port: int) -> float | None:
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("riskwatch_readings_total "):
            return float(line.split()[1])
    return None


def _rate_of(
    proc: subprocess.Popen[bytes], port: int, total: int, log: Path, timeout: float = 600.0
) -> float:
    """Poll the process's readings counter: readings per second from the first seen to `total`."""
    return rate_of_all([(proc, port, log)], total, timeout)


def rate_of_all(
    procs: list[tuple[subprocess.Popen[bytes], int, Path]], total: int, timeout: float = 600.0
) -> float:
    """Poll the processes' readings counters: their summed readings per second, from the first reading
    any of them counted to `total` between them. Stops them all at the end.

    A scrape of /metrics costs the measured process real CPU (its HTTP thread takes the GIL): polled every
    20 ms it took ~22 % of the worker's samples. So it is polled every POLL_S, and every POLL_END_S only
    once the counter is due to reach `total` within the next POLL_S, which keeps the end of the window
    sharp; readings counted before the first poll that saw any are left out of the rate."""
    end = time.time() + timeout
    first: tuple[float, float] | None = None
    try:
        while time.time() < end:
            for proc, _, log in procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"benchmark process exited early:\n{log.read_text(errors='replace')[-3000:]}"
                    )
            value = sum(_metric(port) or 0.0 for _, port, _ in procs)
            now = time.perf_counter()
            wait = POLL_S
            if value:
                if first is None:
                    first = (now, value)
                if value >= total:
                    return (value - first[1]) / (now - first[0]) if now > first[0] else float("nan")
                rate = (value - first[1]) / (now - first[0]) if now > first[0] else 0.0
                if rate > 0 and (total - value) / rate < 2 * POLL_S:
                    wait = POLL_END_S
            time.sleep(wait)
        raise RuntimeError(
            f"benchmark processes did not finish in {timeout:.0f}s:\n"
            + "".join(log.read_text(errors="replace")[-1500:] for _, _, log in procs)
        )
    finally:
        for proc, _, _ in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc, _, _ in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def start_worker(
    registry: Path, access: KafkaAccess, prefix: str, data_dir: Path, metrics_port: int, engine_module: str, log: Path,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:  # fmt: skip
    """`riskwatch worker` on the preloaded topics, its readings counted on `metrics_port`."""
    argv = [
        sys.executable, "-m", "riskwatch", "worker", "--registry", str(registry), "--kafka", access.bootstrap,
        "--topic-prefix", prefix, "--data-dir", str(data_dir), "--port", "0",
        "--metrics-port", str(metrics_port), "--log-level", "error", "--engine-module", engine_module,
        # The preloaded event times run ahead of the clock (_preload): taken as they are, not clamped.
        "--future-tolerance-s", "86400", *extra,
    ]  # fmt: skip
    cwd = Path(__file__).resolve().parents[1]
    env = {**os.environ, **access.env()}
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(args: argparse.Namespace) -> dict[str, float | int | str]:
    access, started_stack = _access(args)
    try:
        return _measure(args, access)
    finally:
        if started_stack is not None:
            from simulators.stackctl import stop_stack

            stop_stack(started_stack)


def _measure(args: argparse.Namespace, access: KafkaAccess) -> dict[str, float | int | str]:
    import yaml

    from riskwatch.registry import generate_dict, load_registry

    bootstrap = access.bootstrap
    work = Path(tempfile.mkdtemp(prefix="rw-bench-processors-"))
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}")
    naive_topic = f"{topics.prefix}.naive"
    print(
        f"processors bench: {args.sensors:,} sensors, Kafka {bootstrap}, topics {topics.prefix}.*, files {work}"
    )
    registry_path = work / "registry.yaml"
    doc = generate_dict(args.sensors)
    # The engine's clock follows the newest reading (an hour ahead, _preload), while a site's sensors not
    # yet read start their stale timers at the worker's clock: with the types' usual timeouts (~100 s)
    # they turned stale at once and back with their next reading, a storm of transitions (b) measured.
    for site in doc["sites"]:
        for unit in site["units"]:
            for sensor in unit["sensors"]:
                sensor["stale_after_s"] = STALE_AFTER_S
    registry_path.write_text(yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False))
    registry = load_registry(registry_path)
    _create_topics(access, [*topics.all(), naive_topic, f"{topics.prefix}.naive-out"], args.partitions)
    started = time.perf_counter()
    total, batches = _preload(access, registry, topics, naive_topic, args)
    print(
        f"  preloaded {total:,} readings in {total // args.batch_size:,} batches and {args.naive_readings:,} JSON records ({time.perf_counter() - started:.1f}s)"
    )

    engine = _engine_alone(registry, args.engine_module, batches)
    del batches
    print(f"  (a) engine alone, same batches {engine:>12,.0f} readings/s")

    cwd = Path(__file__).resolve().parents[1]
    port = _free_port()
    log = work / "worker.log"
    worker = start_worker(
        registry_path, access, topics.prefix, work / "worker", port, args.engine_module, log
    )
    rate = _rate_of(worker, port, total, log)
    print(f"  (b) riskwatch worker         {rate:>14,.0f} readings/s")

    port = _free_port()
    log = work / "naive.log"
    naive = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "processors.bench_naive",
            "--kafka",
            bootstrap,
            "--topic",
            naive_topic,
            "--out-topic",
            f"{topics.prefix}.naive-out",
            "--group",
            f"{topics.prefix}-naive",
            "--sensors",
            str(args.sensors),
            "--data-dir",
            str(work / "naive"),
            "--metrics-port",
            str(port),
        ],
        cwd=cwd,
        env={**os.environ, **access.env()},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    baseline = _rate_of(naive, port, args.naive_readings, log)
    print(f"  (c) naive per-reading Faust  {baseline:>14,.0f} readings/s")
    shutil.rmtree(work, ignore_errors=True)  # kept only when a step failed (its logs are there)
    ratio, to_engine = rate / baseline, rate / engine
    print(
        f"  worker/naive {ratio:.1f}x (target >= {TARGET_VS_NAIVE:.0f}x), worker/engine {to_engine:.2f} "
        f"(target >= {TARGET_VS_ENGINE}), worker {rate:,.0f}/s (target >= {TARGET_RATE:,}/s) "
        f"at {args.batch_size} readings per record"
    )
    return {
        "readings_per_s": rate,
        "baseline_readings_per_s": baseline,
        "ratio": ratio,
        "engine_readings_per_s": engine,
        "ratio_to_engine": to_engine,
        "sensors": args.sensors,
        "readings": total,
        "batch_size": args.batch_size,
        "engine": args.engine_module,
    }
