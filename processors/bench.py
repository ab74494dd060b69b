"""`riskwatch bench processors`: the worker's throughput against Faust's and Kafka's own limits.

In one run, on the real Kafka of the local stack (`riskwatch stack up`) or `--kafka`:
  (a) limit:    raw aiokafka consume of the preloaded columnar telemetry topic, doing nothing;
  (b) worker:   `riskwatch worker` (a separate process) evaluating that topic with the engine;
  (c) baseline: a naive Faust agent taking one JSON record per reading (`processors.bench_naive`).
(b) and (c) are counted from the first reading seen to the last, so process start-up is not in them; (a)
from its partitions' assignment, so fetching the topic is (see `_raw_consume`).
"""

from __future__ import annotations

import argparse
import asyncio
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
from riskwatch.wire.batch import encode
from riskwatch.wire.readings import Readings

TARGET_RATE, TARGET_VS_NAIVE, TARGET_VS_LIMIT = 500_000, 30.0, 0.5


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", default="", help="bootstrap server (default: the local stack's)")
    parser.add_argument("--sensors", type=int, default=100_000, help="synthetic registry size")
    parser.add_argument("--readings", type=int, default=10_000_000, help="readings preloaded for (a) and (b)")
    parser.add_argument(
        "--batch-size", type=int, default=2000, help="readings per Kafka batch (the bridge's default maximum)"
    )
    parser.add_argument("--naive-readings", type=int, default=40_000, help="JSON records preloaded for (c)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--engine-module", default="processors.engine", help=argparse.SUPPRESS)


def _access(args: argparse.Namespace) -> KafkaAccess:
    """The tools account: it may create the run's topics, and the worker and the naive baseline run on it
    too (on topics of their own that no component account is granted)."""
    if args.kafka:
        return KafkaAccess.from_env(str(args.kafka), "tools")
    from deploy.stack import Stack
    from riskwatch.paths import home_dir

    return Stack(home_dir() / "stack").info().kafka("tools")


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
) -> int:
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
    producer = KafkaProducer(
        **access.kafka_python(), linger_ms=20, batch_size=1 << 20, max_request_size=8 << 20
    )
    n_batches = args.readings // args.batch_size
    # Event times a little ahead of the clock, so no sensor turns stale while the run lasts (the timers
    # still evaluate every owned site each second, as in production).
    t0 = time.time() + 30
    for b in range(n_batches):
        k = b % len(sites)
        # Each sensor reports once a second, so a site's batch holds its sensors in turn (a sensor twice
        # only when the batch is bigger than the site: consecutive seconds), never 20 readings of one
        # sensor in 10 ms as random draws with replacement gave.
        sensor = np.resize(rng.permutation(members[k]), args.batch_size)
        value = normal[sensor] + half[sensor] * rng.uniform(-0.2, 0.2, args.batch_size)
        hot = rng.random(args.batch_size) < 0.0001  # a few set-point crossings, so transitions flow too
        value[hot] = spike[sensor[hot]] * 1.05
        ts = t0 + b * 0.01 + np.linspace(0, 0.009, args.batch_size)
        raw = encode(
            sites[k],
            registry.fingerprint,
            [(f"{sites[k]}-G00", b, args.batch_size)],
            Readings.of(sensor, value, ts),
        )
        producer.send(topics.telemetry, key=sites[k].encode(), value=raw)
    ids = registry.sensor_ids
    for r in range(args.naive_readings):
        i = int(rng.integers(0, len(ids)))
        doc = {"s": ids[i], "v": float(normal[i]), "t": t0 + r * 0.001}
        producer.send(naive_topic, key=registry.sensor_list[i].site.encode(), value=orjson.dumps(doc))
    producer.flush()
    producer.close()
    return n_batches * args.batch_size


async def _raw_consume(access: KafkaAccess, topic: str, partitions: int, messages: int, per_message: int) -> float:
    """Readings/s of consuming every record of `topic` with aiokafka and doing nothing with them.

    The clock starts once the partitions are assigned, before the first fetch: consuming a topic is
    fetching it. (Started at the first record instead, it measured only iterating records already in
    memory: one fetch of up to 16 MB a partition brought most of the preload before the clock started.)
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **access.aiokafka(),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        seen, started = 0, time.perf_counter()
        while seen < messages:
            got = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(v) for v in got.values())
        return seen * per_message / (time.perf_counter() - started)
    finally:
        await consumer.stop()


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
    proc: subprocess.Popen[bytes], port: int, total: int, log: Path, timeout: float = 180.0
) -> float:
    """Poll the process's readings counter: readings per second from the first seen to `total`."""
    end = time.time() + timeout
    first: tuple[float, float] | None = None
    try:
        while time.time() < end:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"benchmark process exited early:\n{log.read_text(errors='replace')[-3000:]}"
                )
            value = _metric(port)
            now = time.perf_counter()
            if value:
                if first is None:
                    first = (now, value)
                if value >= total:
                    return (value - first[1]) / (now - first[0]) if now > first[0] else float("nan")
            time.sleep(0.02)
        raise RuntimeError(
            f"benchmark process did not finish in {timeout:.0f}s:\n{log.read_text(errors='replace')[-3000:]}"
        )
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(args: argparse.Namespace) -> dict[str, float | int | str]:
    import yaml

    from riskwatch.registry import generate_dict, load_registry

    access = _access(args)
    bootstrap = access.bootstrap
    work = Path(tempfile.mkdtemp(prefix="rw-bench-processors-"))
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}")
    naive_topic = f"{topics.prefix}.naive"
    print(
        f"processors bench: {args.sensors:,} sensors, Kafka {bootstrap}, topics {topics.prefix}.*, files {work}"
    )
    registry_path = work / "registry.yaml"
    registry_path.write_text(yaml.dump(generate_dict(args.sensors), Dumper=yaml.CSafeDumper, sort_keys=False))
    registry = load_registry(registry_path)
    _create_topics(access, [*topics.all(), naive_topic, f"{topics.prefix}.naive-out"], args.partitions)
    started = time.perf_counter()
    total = _preload(access, registry, topics, naive_topic, args)
    print(
        f"  preloaded {total:,} readings in {total // args.batch_size:,} batches and {args.naive_readings:,} JSON records ({time.perf_counter() - started:.1f}s)"
    )

    limit = asyncio.run(
        _raw_consume(access, topics.telemetry, args.partitions, total // args.batch_size, args.batch_size)
    )
    print(f"  (a) raw aiokafka consume     {limit:>14,.0f} readings/s")

    cwd = Path(__file__).resolve().parents[1]
    port = _free_port()
    log = work / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "riskwatch",
            "worker",
            "--registry",
            str(registry_path),
            "--kafka",
            bootstrap,
            "--topic-prefix",
            topics.prefix,
            "--data-dir",
            str(work / "worker"),
            "--web-port",
            "0",
            "--metrics-port",
            str(port),
            "--loglevel",
            "error",
            "--engine-module",
            args.engine_module,
            # The preloaded event times run ahead of the clock (above): taken as they are, not clamped.
            "--future-tolerance-s",
            "86400",
        ],
        cwd=cwd,
        env={**os.environ, **access.env()},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
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
    ratio, to_limit = rate / baseline, rate / limit
    print(
        f"  worker/naive {ratio:.1f}x (target >= {TARGET_VS_NAIVE:.0f}x), worker/limit {to_limit:.2f} "
        f"(target >= {TARGET_VS_LIMIT}), worker {rate:,.0f}/s (target >= {TARGET_RATE:,}/s)"
    )
    return {
        "readings_per_s": rate,
        "baseline_readings_per_s": baseline,
        "ratio": ratio,
        "limit_readings_per_s": limit,
        "ratio_to_limit": to_limit,
        "sensors": args.sensors,
        "readings": total,
        "batch_size": args.batch_size,
        "engine": args.engine_module,
    }
