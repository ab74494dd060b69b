"""`riskwatch bench scale`: one, two and four workers sharing the partitions of one telemetry topic.

In one run, on the local stack's Kafka (started if need be) or `--kafka`: the topic is preloaded once
(province-sized records, as `bench processors`), then for each worker count a fresh consumer group of
that many `riskwatch worker` processes reads it from the start; the figure is their summed readings/s
from the moment the group settled (every worker owning partitions: workers starting one after another
make the group rebalance meanwhile) to the last reading, and readings/s per worker; the rate from the
first reading counted is given beside it. The baseline is one worker in the
same run, so `ratio` is the speed-up of the largest group. Workers on one machine share its cores: the
per-worker figure shows where this machine stops scaling, not what separate machines would do.

Each step also gives every worker's own share (its readings counter: how evenly the partitions spread),
its ratio to one worker, and the machine's load average before and after it, since on a shared machine
the other processes decide much of the figure. Runs on the locked-down stack (SASL/SCRAM over TLS) as
the tools account; `--kafka` may name any cluster (then RISKWATCH_KAFKA_* give the account).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from processors import bench
from riskwatch.kafka_access import KafkaAccess
from riskwatch.topics import Topics


def configure(parser: argparse.ArgumentParser) -> None:
    bench.configure(parser)
    parser.set_defaults(partitions=12, naive_readings=0)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure (default 1,2,4)")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    access, started_stack = bench._access(args)
    try:
        return _measure(args, access)
    finally:
        if started_stack is not None:
            from simulators.stackctl import stop_stack

            stop_stack(started_stack)


def _measure(args: argparse.Namespace, access: KafkaAccess) -> dict[str, Any]:
    import yaml

    from riskwatch.registry import generate_dict, load_registry

    counts = [int(n) for n in str(args.workers).split(",")]
    work = Path(tempfile.mkdtemp(prefix="rw-bench-scale-"))
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}")
    registry_path = work / "registry.yaml"
    registry_path.write_text(yaml.dump(generate_dict(args.sensors), Dumper=yaml.CSafeDumper, sort_keys=False))
    registry = load_registry(registry_path)
    bench._create_topics(access, [*topics.all(), f"{topics.prefix}.naive"], args.partitions)
    total, _ = bench._preload(access, registry, topics, f"{topics.prefix}.naive", args)
    print(f"scale bench: {total:,} readings in records of {args.batch_size}, {args.partitions} partitions; "
          f"workers {counts}", flush=True)  # fmt: skip
    rows: list[dict[str, Any]] = []
    for n in counts:
        group = f"{topics.prefix}-scale{n}"
        procs = []
        for k in range(n):
            port = bench._free_port()
            log = work / f"w{n}-{k}.log"
            proc = bench.start_worker(
                registry_path, access, topics.prefix, work / f"w{n}-{k}", port, args.engine_module, log,
                ("--group", group),
            )  # fmt: skip
            procs.append((proc, port, log))
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        from_first, steady, shares = _rate_and_shares(procs, total, args.partitions)
        rate = steady or from_first
        load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        ratio = rate / rows[0]["readings_per_s"] if rows else 1.0
        rows.append({
            "workers": n,
            "readings_per_s": rate,
            "settled": steady is not None,
            "readings_per_s_from_first_reading": from_first,
            "per_worker_readings_per_s": rate / n,
            "ratio_to_one": ratio,
            "share_of_readings": shares,
            "load_average": load,
        })  # fmt: skip
        print(f"  {n} worker(s): {rate:>12,.0f} readings/s{'' if steady else ' (group never settled)'}, "
              f"{rate / n:>12,.0f} per worker, "
              f"{ratio:.2f}x one worker; shares {[round(x, 2) for x in shares]}; "
              f"load average {load[0]} -> {load[1]} "
              f"({time.perf_counter() - started:.0f} s with start-up)", flush=True)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    base, best = rows[0]["readings_per_s"], rows[-1]["readings_per_s"]
    return {
        "readings_per_s": best,
        "baseline_readings_per_s": base,
        "ratio": best / base,
        "workers": rows,
        "cores": os.cpu_count() or 0,
        "partitions": args.partitions,
        "batch_size": args.batch_size,
        "readings": total,
    }


def _rate_and_shares(
    procs: list[tuple[Any, int, Path]], total: int, partitions: int, timeout: float = 600.0
) -> tuple[float, float | None, list[float]]:
    """The workers' summed readings/s from the first reading any counted (bench.rate_of_all, which stops
    them); the same once the group had settled (every worker owning partitions, all of them assigned),
    since workers that start one after another make the group rebalance while it reads (None if it never
    settled before the end); and each worker's share of the readings."""
    shares: list[float] = []
    settled: list[tuple[float, float]] = []  # (time, readings counted by then)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            docs = [_metrics(port) for _, port, _ in procs]
            counts = [d.get("riskwatch_readings_total", 0.0) for d in docs]
            owned = [d.get("riskwatch_partitions_owned", 0.0) for d in docs]
            if sum(counts) > 0:
                shares[:] = [c / sum(counts) for c in counts]
            if not settled and all(owned) and sum(owned) == partitions:
                settled.append((time.perf_counter(), sum(counts)))
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, name="scale-shares", daemon=True)
    watcher.start()
    try:
        rate = bench.rate_of_all(procs, total, timeout=timeout)
        ended = time.perf_counter()
    finally:
        done.set()
        watcher.join(5)
    steady = None
    if settled and ended - settled[0][0] > 5.0:
        steady = (total - settled[0][1]) / (ended - settled[0][0])
    return rate, steady, shares


def _metrics(port: int) -> dict[str, float]:
    """A worker's unlabelled metric samples by name ({} if it does not answer yet)."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name and not name.startswith("#") and "{" not in name:
            out[name] = float(value)
    return out
