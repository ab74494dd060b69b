"""`riskwatch bench bridge`: readings/s from MQTT into Kafka through one bridge process.

Gateways publish 50-reading messages from separate processes into real Mosquitto; one `riskwatch bridge`
process carries them into real Kafka; this process reads `rw.telemetry` back. Three phases:
  1. throughput: publishers send a fixed number of messages flat out; rate = readings / time until the
     last one is in Kafka;
  2. latency: a steady load well under that rate; MQTT publish -> Kafka (producer CreateTime) p50/p99;
  3. baseline: the naive bridge (ingest/bench_load.py) on the same input, flat out for the same time.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ingest.bench_load import Broker, GatewayLoad, naive_bridge, start_publishers
from riskwatch.kafka_access import KafkaAccess
from riskwatch.registry.generate import SENSORS_PER_GATEWAY
from riskwatch.topics import Topics
from riskwatch.wire.batch import decode


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack-home",
        type=Path,
        default=None,
        help="use this running stack (riskwatch stack up); default: start a temporary one",
    )
    parser.add_argument("--messages", type=int, default=10000, help="messages in the throughput phase")
    parser.add_argument(
        "--per-message",
        type=_per_message,
        default=50,
        help=f"readings per MQTT message (default 50, at most {SENSORS_PER_GATEWAY}: a gateway's sensors)",
    )
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes (default 2)")
    parser.add_argument("--gateways", type=int, default=20, help="gateways (default 20, 100 sensors each)")
    parser.add_argument("--latency-s", type=float, default=5.0, help="latency phase length")
    parser.add_argument("--latency-rate", type=float, default=20000, help="readings/s in the latency phase")
    parser.add_argument("--bridge-args", default="", help="extra flags for the bridge under test, quoted")
    parser.add_argument("--baseline-s", type=float, default=8.0, help="naive bridge measuring window")


def _per_message(text: str) -> int:
    n = int(text)
    if not 1 <= n <= SENSORS_PER_GATEWAY:
        raise argparse.ArgumentTypeError(
            f"must be 1..{SENSORS_PER_GATEWAY}, the sensors of one bench gateway"
        )
    return n


@contextlib.contextmanager
def _stack(home: Path | None) -> Iterator[Any]:
    from deploy.stack import Stack
    from deploy.stack.settings import StackSettings

    if home is not None:
        yield Stack(home)
        return
    with tempfile.TemporaryDirectory(prefix="rw-bench-") as tmp:
        local = Stack(Path(tmp), settings=StackSettings.create())
        local.settings.save(Path(tmp) / "stack.json")  # type: ignore[union-attr]
        started = []
        try:
            for name in ("kafka", "mosquitto"):  # the bridge needs no InfluxDB
                local.service(name).start()
                started.append(name)
            yield local
        finally:
            for name in reversed(started):
                local.service(name).stop()


class _Reader:
    """Counts readings (or records) arriving on a topic; keeps per-reading latencies if asked."""

    def __init__(self, access: KafkaAccess, topic: str, batches: bool) -> None:
        from kafka import KafkaConsumer

        self.batches, self.count = batches, 0
        self.latencies: list[float] = []
        self.first = self.last = 0.0
        self.consumer = KafkaConsumer(
            topic,
            **access.kafka_python(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            fetch_max_bytes=64 * 1024 * 1024,
        )

    def poll(self, keep_latency: bool = False) -> None:
        for records in self.consumer.poll(timeout_ms=200, max_records=5000).values():
            now = time.time()
            for record in records:
                n = len(decode(record.value).readings) if self.batches else 1
                if keep_latency and self.batches:
                    ts = decode(record.value).readings.ts
                    self.latencies.append(record.timestamp / 1000 - ts)
                self.count += n
            self.first = self.first or now
            self.last = now

    def until(self, count: int, timeout_s: float, keep_latency: bool = False) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.count < count and time.monotonic() < deadline:
            self.poll(keep_latency)
        return self.count >= count


def _gateways(stack: Any, n_gateways: int, registry_file: Path) -> list[GatewayLoad]:
    from riskwatch.registry import generate_dict, load_registry

    registry_file.write_bytes(orjson.dumps(generate_dict(n_gateways * 100)))
    registry = load_registry(registry_file)
    by_gateway: dict[str, list[str]] = {}
    for sensor in registry.sensor_list:
        by_gateway.setdefault(sensor.gateway, []).append(sensor.id)
    pairs = [(registry.gateways[g].site, g) for g in by_gateway]
    passwords = stack.add_gateways(pairs)
    return [GatewayLoad(site, g, passwords[g], tuple(by_gateway[g])) for site, g in pairs]


def _bridge(
    info: Any, topics: Topics, registry_file: Path, spool: Path, extra: str
) -> subprocess.Popen[bytes]:
    from deploy.stack import add_bridge_accounts

    tag = uuid.uuid4().hex[:8]
    account = f"bench-{tag}"  # client ids are bound to accounts: one per bridge
    password = add_bridge_accounts(info, [account])[account]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "riskwatch",
            "bridge",
            "--registry",
            str(registry_file),
            "--mqtt-host",
            info.mqtt_host,
            "--mqtt-port",
            str(info.mqtt_port),
            "--mqtt-cafile",
            str(info.cafile),
            "--mqtt-user",
            account,
            "--group",
            f"bench-{tag}",
            "--session-expiry-s",
            "60",
            "--kafka",
            info.kafka_bootstrap,
            "--topic-prefix",
            topics.prefix,
            "--spool-dir",
            str(spool),
            "--metrics-port",
            "0",
            "--log-level",
            "WARNING",
            *shlex.split(extra),
        ],
        env={**os.environ, "RISKWATCH_MQTT_PASSWORD": password, **info.kafka("bridge").env()},
    )


def _warm_up(broker: Broker, gateways: list[GatewayLoad], per_message: int, reader: _Reader) -> None:
    """Publish until the bridge carries messages: it is up and subscribed."""
    for attempt in range(60):
        procs, _ = start_publishers(broker, gateways[:1], 1, 10, per_message, 0, 10**9 + attempt * 100)
        for proc in procs:
            proc.join(30)
        if reader.until(1, 2.0):
            return
    raise RuntimeError("the bridge under test never carried a message")


def _run_phase(
    broker: Broker,
    gateways: list[GatewayLoad],
    args: argparse.Namespace,
    messages: int,
    rate: float,
    seq_start: int,
) -> tuple[list[Any], Any]:
    return start_publishers(broker, gateways, args.publishers, messages, args.per_message, rate, seq_start)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with _stack(args.stack_home) as stack, tempfile.TemporaryDirectory(prefix="rw-bench-bridge-") as tmp:
        info = stack.info()
        broker = Broker(info.mqtt_host, info.mqtt_port, info.client_tls)
        topics = Topics(f"bench{uuid.uuid4().hex[:8]}")
        from deploy.stack import ensure_topics

        ensure_topics(info, topics, 6)
        gateways = _gateways(stack, args.gateways, Path(tmp) / "registry.json")
        per = args.per_message

        bridge = _bridge(info, topics, Path(tmp) / "registry.json", Path(tmp) / "spool", args.bridge_args)
        reader = _Reader(info.kafka("tools"), topics.telemetry, batches=True)
        try:
            _warm_up(broker, gateways, per, reader)
            base = reader.count
            total = args.messages * per
            print(
                f"bridge: {args.messages:,} messages x {per} readings from {args.publishers} publisher "
                f"processes, {len(gateways)} gateways"
            )
            started = time.time()
            procs, done = _run_phase(broker, gateways, args, args.messages, 0, 0)
            complete = reader.until(base + total, 120)
            elapsed = reader.last - started
            rate = (reader.count - base) / elapsed
            for proc in procs:
                proc.join(30)
            publish_s = max(done.get(timeout=5) for _ in procs)
            print(f"  publishers took {publish_s:.2f} s ({total / publish_s:,.0f} readings/s offered)")
            print(
                f"  {reader.count - base:,} readings in {elapsed:.2f} s: {rate:,.0f} readings/s"
                + ("" if complete else " (INCOMPLETE: timed out)")
            )

            latency_messages = int(args.latency_rate * args.latency_s / per)
            base = reader.count
            procs, _ = _run_phase(broker, gateways, args, latency_messages, args.latency_rate / per, 10**7)
            reader.until(base + latency_messages * per, args.latency_s + 60, keep_latency=True)
            for proc in procs:
                proc.join(30)
            lat = np.concatenate(reader.latencies) if reader.latencies else np.array([np.nan])
            p50, p99 = (float(x) for x in np.percentile(lat, [50, 99]))
            print(
                f"  latency at {args.latency_rate:,.0f} readings/s: p50 {p50 * 1000:.1f} ms, "
                f"p99 {p99 * 1000:.1f} ms (MQTT publish -> Kafka producer timestamp)"
            )
        finally:
            bridge.send_signal(signal.SIGTERM)
            bridge.wait(60)
            reader.consumer.close()

        baseline = _baseline(info, broker, gateways, topics, args)
    return {
        "readings_per_s": rate,
        "baseline_readings_per_s": baseline,
        "ratio": rate / baseline if baseline else float("inf"),
        "latency_p50_s": p50,
        "latency_p99_s": p99,
        "readings": total,
        "per_message": per,
        "complete": complete,
    }


def _baseline(
    info: Any, broker: Broker, gateways: list[GatewayLoad], topics: Topics, args: argparse.Namespace
) -> float:
    ctx = mp.get_context("spawn")
    ready = ctx.Queue()
    naive_topic = f"{topics.prefix}.naive"
    from deploy.stack import ensure_topics

    ensure_topics(info, topics, 6, extra=[naive_topic])
    from deploy.stack import add_bridge_accounts

    account = f"naive-{uuid.uuid4().hex[:8]}"
    password = add_bridge_accounts(info, [account])[account]
    proc = ctx.Process(
        target=naive_bridge,
        args=(broker, account, password, info.kafka("tools"), naive_topic, account, ready),
        daemon=True,
    )
    proc.start()
    reader = _Reader(info.kafka("tools"), naive_topic, batches=False)
    pubs: list[Any] = []
    try:
        ready.get(timeout=60)
        time.sleep(1.0)
        print(f"naive bridge: one JSON Kafka message per reading, {args.baseline_s:.0f} s flat out")
        pubs, _ = _run_phase(broker, gateways, args, args.messages, 0, 10**8)
        reader.until(1, 60)
        start_count, start = reader.count, reader.last
        deadline = time.monotonic() + args.baseline_s
        while time.monotonic() < deadline:
            reader.poll()
        rate = (reader.count - start_count) / max(1e-9, reader.last - start)
        print(
            f"  {reader.count - start_count:,} readings in {reader.last - start:.2f} s: {rate:,.0f} readings/s"
        )
    finally:
        proc.kill()
        proc.join(10)
        for pub in pubs:
            pub.kill()
        reader.consumer.close()
    return rate
