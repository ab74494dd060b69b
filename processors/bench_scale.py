"""`riskwatch bench scale`: one, two and four workers sharing the partitions of one telemetry topic.

In one run, on the local stack's Kafka (started if need be) or `--kafka`: the topic is preloaded once
(province-sized records, as `bench processors`), then for each worker count a fresh consumer group of
that many `riskwatch worker` processes reads it from the start; the figure is their summed readings/s
from the first reading counted to the last, and readings/s per worker. The baseline is one worker in the
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
        rate, shares = _rate_and_shares(procs, total)
        load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        ratio = rate / rows[0]["readings_per_s"] if rows else 1.0
        rows.append({
            "workers": n,
            "readings_per_s": rate,
            "per_worker_readings_per_s": rate / n,
            "ratio_to_one": ratio,
            "share_of_readings": shares,
            "load_average": load,
        })  # fmt: skip
        print(f"  {n} worker(s): {rate:>12,.0f} readings/s, {rate / n:>12,.0f} per worker, "
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
    procs: list[tuple[Any, int, Path]], total: int, timeout: float = 600.0
) -> tuple[float, list[float]]:
    """The workers' summed readings/s (bench.rate_of_all, which stops them) and each one's share of the
    readings, read from their counters just before they reach `total` together."""
    shares: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            counts = [bench._metric(port) or 0.0 for _, port, _ in procs]
            if sum(counts) > 0:
                shares[:] = [c / sum(counts) for c in counts]
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, name="scale-shares", daemon=True)
    watcher.start()
    try:
        rate = bench.rate_of_all(procs, total, timeout=timeout)
    finally:
        done.set()
        watcher.join(5)
    return rate, shares
