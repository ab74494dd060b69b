"""`riskwatch bench scale`: one, two and four workers sharing the partitions of one telemetry topic.

In one run, on the local stack's Kafka (started if need be) or `--kafka`: the topic is preloaded once
(province-sized records, as `bench processors`), then for each worker count a fresh consumer group of
that many `riskwatch worker` processes reads it from the start; the figure is their summed readings/s
from the first reading counted to the last, and readings/s per worker. The baseline is one worker in the
same run, so `ratio` is the speed-up of the largest group. Workers on one machine share its cores: the
per-worker figure shows where this machine stops scaling, not what separate machines would do.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from processors import bench
from riskwatch.topics import Topics


def configure(parser: argparse.ArgumentParser) -> None:
    bench.configure(parser)
    parser.set_defaults(partitions=12, naive_readings=0)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure (default 1,2,4)")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap, started_stack = bench._bootstrap(args)
    try:
        return _measure(args, bootstrap)
    finally:
        if started_stack is not None:
            from simulators.stackctl import stop_stack

            stop_stack(started_stack)


def _measure(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    import yaml

    from riskwatch.registry import generate_dict, load_registry

    counts = [int(n) for n in str(args.workers).split(",")]
    work = Path(tempfile.mkdtemp(prefix="rw-bench-scale-"))
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}")
    registry_path = work / "registry.yaml"
    registry_path.write_text(yaml.dump(generate_dict(args.sensors), Dumper=yaml.CSafeDumper, sort_keys=False))
    registry = load_registry(registry_path)
    bench._create_topics(bootstrap, [*topics.all(), f"{topics.prefix}.naive"], args.partitions)
    total, _ = bench._preload(bootstrap, registry, topics, f"{topics.prefix}.naive", args)
    print(f"scale bench: {total:,} readings in records of {args.batch_size}, {args.partitions} partitions; "
          f"workers {counts}", flush=True)  # fmt: skip
    rows = []
    for n in counts:
        group = f"{topics.prefix}-scale{n}"
        procs = []
        for k in range(n):
            port = bench._free_port()
            log = work / f"w{n}-{k}.log"
            proc = bench.start_worker(
                registry_path, bootstrap, topics.prefix, work / f"w{n}-{k}", port, args.engine_module, log,
                ("--group", group),
            )  # fmt: skip
            procs.append((proc, port, log))
        started = time.perf_counter()
        rate = bench.rate_of_all(procs, total, timeout=600.0)
        rows.append({"workers": n, "readings_per_s": rate, "per_worker_readings_per_s": rate / n})
        print(f"  {n} worker(s): {rate:>12,.0f} readings/s, {rate / n:>12,.0f} per worker "
              f"({time.perf_counter() - started:.0f} s with start-up)", flush=True)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    base, best = rows[0]["readings_per_s"], rows[-1]["readings_per_s"]
    return {
        "readings_per_s": best,
        "baseline_readings_per_s": base,
        "ratio": best / base,
        "workers": rows,
        "partitions": args.partitions,
        "batch_size": args.batch_size,
        "readings": total,
    }
