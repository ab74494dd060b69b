"""Helpers for the worker integration tests: a small registry, producing batches, reading topics, workers."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from processors.timers import EXIT_RECOVERY_STUCK
from riskwatch.kafka_access import KafkaAccess
from riskwatch.registry import Registry, load_registry
from riskwatch.topics import Topics
from riskwatch.wire.batch import encode
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition

REPO = Path(__file__).resolve().parents[3]
STALE_S = 8
ENGINE = "processors.engine"

REGISTRY_YAML = """
version: 1
regions:
  - {id: RA, name: region A}
  - {id: RB, name: region B}
sites:
""" + "".join(
    f"""
  - id: S{n}
    region: {"RA" if n < 3 else "RB"}
    name: site {n}
    industry: hazardous_chemicals
    gateways: [{{id: S{n}-GW}}]
    units:
      - id: S{n}-U1
        kind: tank_farm
        gateway: S{n}-GW
        sensors:
          - {{id: S{n}-G1, type: flammable_gas, stale_after_s: {STALE_S}}}
          - {{id: S{n}-G2, type: flammable_gas, stale_after_s: {STALE_S}}}
          - {{id: S{n}-G3, type: flammable_gas, stale_after_s: {STALE_S}}}
"""
    for n in range(6)
)


def write_registry(folder: Path, stale_s: int = STALE_S, no_delays: bool = False) -> tuple[Path, Registry]:
    path = folder / "registry.yaml"
    extra = ", on_delay_s: 0, off_delay_s: 0" if no_delays else ""
    text = REGISTRY_YAML.replace(f"stale_after_s: {STALE_S}", f"stale_after_s: {stale_s}{extra}")
    path.write_text(text, encoding="utf-8")
    return path, load_registry(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SEQS = itertools.count(1)


def batch(
    registry: Registry, site: str, values: dict[str, float], ts: float, seq: int | None = None
) -> bytes:
    """One gateway message's readings as a batch; each call is a new message (seq) unless `seq` is given."""
    seq = next(_SEQS) if seq is None else seq
    ids = list(values)
    readings = Readings.of(
        [registry.sensors[i].index for i in ids], [values[i] for i in ids], [ts] * len(ids)
    )
    return encode(site, registry.fingerprint, [(f"{site}-GW", seq, len(ids))], readings, registry.sensor_ids)


def produce(kafka: KafkaAccess, topic: str, records: Iterable[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(**kafka.kafka_python(), acks="all")
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def read_transitions(
    kafka: KafkaAccess,
    topic: str,
    until: float,
    want: int | None = None,
    done: Callable[[list[Transition]], bool] | None = None,
) -> list[Transition]:
    """Everything on `topic` from the start, reading until `until`, `want` records, or `done(records)`."""
    consumer = KafkaConsumer(
        topic, **kafka.kafka_python(), auto_offset_reset="earliest", consumer_timeout_ms=500
    )
    out: list[Transition] = []

    def finished() -> bool:
        return (want is not None and len(out) >= want) or (done is not None and done(out))

    try:
        while time.time() < until and not finished():
            for record in consumer:
                out.append(Transition.from_bytes(record.value))
                if finished():
                    break
    finally:
        consumer.close()
    return out


def read_raw(kafka: KafkaAccess, topic: str, until: float, want: int) -> list[bytes]:
    consumer = KafkaConsumer(
        topic, **kafka.kafka_python(), auto_offset_reset="earliest", consumer_timeout_ms=500
    )
    out: list[bytes] = []
    try:
        while time.time() < until and len(out) < want:
            out.extend(record.value for record in consumer)
    finally:
        consumer.close()
    return out


class WorkerProcess:
    """`python -m riskwatch worker ...` as a child process, stopped by its own pid."""

    def __init__(self, stack: object, topics: Topics, registry: Path, data_dir: Path, *extra: str) -> None:
        self.web_port = free_port()
        self.metrics_port = free_port()
        self.log = data_dir.with_suffix(".log")
        data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "riskwatch",
            "worker",
            "--registry",
            str(registry),
            "--kafka",
            stack.kafka_bootstrap,  # type: ignore[attr-defined]
            "--topic-prefix",
            topics.prefix,
            "--data-dir",
            str(data_dir),
            "--web-port",
            str(self.web_port),
            "--metrics-port",
            str(self.metrics_port),
            "--tick-every",
            "0.5",
            "--snapshot-every",
            "1",
            "--session-timeout",
            "8",
            "--recovery-timeout",
            "40",
            "--engine-module",
            ENGINE,
            "--loglevel",
            os.environ.get("RW_TEST_WORKER_LOGLEVEL", "warning"),
            *extra,
        ]
        env = {**os.environ, **stack.kafka("worker").env()}  # type: ignore[attr-defined]
        self._cmd, self._env = cmd, env
        self.restarts = 0
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )

    def supervise(self) -> None:
        """Do what a supervisor does: restart the worker if it exited because its tables never recovered."""
        if self.proc.poll() == EXIT_RECOVERY_STUCK:
            self.restarts += 1
            self.proc = subprocess.Popen(
                self._cmd, cwd=REPO, env=self._env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


class HistorianProcess(WorkerProcess):
    """`python -m riskwatch historian ...` into the stack's InfluxDB, as a child process."""

    def __init__(self, stack: object, topics: Topics, log: Path, *extra: str) -> None:
        self.metrics_port = free_port()
        self.log = log
        cmd = [
            sys.executable, "-m", "riskwatch", "historian", "--kafka", stack.kafka_bootstrap,  # type: ignore[attr-defined]
            "--topic-prefix", topics.prefix, "--group-id", f"riskwatch-history-{topics.prefix}",
            "--influx-url", stack.influx_url, "--influx-org", stack.influx_org,  # type: ignore[attr-defined]
            "--influx-bucket", stack.influx_bucket, "--influx-token-env", "RW_TEST_INFLUX",  # type: ignore[attr-defined]
            "--metrics-port", str(self.metrics_port), "--loglevel", "info", *extra,
        ]  # fmt: skip
        env = {**os.environ, "RW_TEST_INFLUX": stack.influx_token, **stack.kafka("history").env()}  # type: ignore[attr-defined]
        self._cmd, self._env = cmd, env
        self.restarts = 0
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self._env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )


def drain(
    kafka: KafkaAccess,
    names: list[str],
    quiet_s: float,
    timeout: float,
    first_s: float = 60,
    until: Callable[[list[Transition]], bool] | None = None,
) -> list[Transition]:
    """All records of `names` from the start, once none has arrived for `quiet_s` seconds (after the
    first, which may take up to `first_s`: a worker takes a few seconds to start).

    With `until`, quiet periods do not end the drain before `until(records)` holds: a worker taking
    over partitions can be silent for a while (session timeout, table recovery) and still owe output."""
    consumer = KafkaConsumer(
        *names, **kafka.kafka_python(), auto_offset_reset="earliest", consumer_timeout_ms=250
    )
    out: list[Transition] = []
    last = time.time() + first_s - quiet_s
    end = time.time() + timeout
    try:
        while time.time() < end and (time.time() - last < quiet_s or (until is not None and not until(out))):
            for record in consumer:
                if not out:
                    last = time.time()
                out.append(Transition.from_bytes(record.value))
                last = time.time()
    finally:
        consumer.close()
    return out


def metric(port: int, name: str) -> float | None:
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def stored_snapshots(kafka: KafkaAccess, group: str, until: float, done: Callable[[dict[str, bytes]], bool]) -> dict[str, bytes]:  # fmt: skip
    """The latest site snapshot of each site on the worker group's changelog, read until `done(them)`."""
    consumer = KafkaConsumer(
        f"{group}-site-state-changelog",
        **kafka.kafka_python(),
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,
    )
    latest: dict[str, bytes] = {}
    try:
        while time.time() < until and not done(latest):
            for record in consumer:
                latest[record.key.decode()] = record.value
    finally:
        consumer.close()
    return latest
