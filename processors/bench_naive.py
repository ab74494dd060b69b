"""The benchmark's baseline (c): a naive Faust agent taking one JSON record per reading.

It does the same job per reading that the engine does per batch (look the sensor up, compare with its
set points, emit a transition on change), in plain per-reading Python, and counts readings on a
Prometheus counter the benchmark polls. Run by `riskwatch bench processors` as a separate process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from riskwatch.kafka_access import KafkaAccess, kafka_option_help


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="processors.bench_naive")
    parser.add_argument("--kafka", required=True, help=kafka_option_help("tools"))
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out-topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--sensors", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    args = parser.parse_args(argv)

    import faust
    import numpy as np
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    from processors.cli import start_worker
    from riskwatch.registry import generate

    registry = generate(args.sensors)
    index_of = {s.id: s.index for s in registry.sensor_list}
    l1 = [s.l1_high if s.l1_high is not None else float("inf") for s in registry.sensor_list]
    l2 = [s.l2_high if s.l2_high is not None else float("inf") for s in registry.sensor_list]
    level = np.zeros(len(l1), np.int8).tolist()

    metrics = CollectorRegistry()
    readings = Counter("riskwatch_readings", "readings", registry=metrics)
    start_http_server(args.metrics_port, addr="127.0.0.1", registry=metrics)
    app = faust.App(
        args.group,
        broker=f"kafka://{args.kafka}",
        broker_credentials=faust.SASLCredentials(**KafkaAccess.from_env(args.kafka, "tools").sasl()),
        datadir=str(args.data_dir),
        autodiscover=False,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_replication_factor=1,
    )
    source = app.topic(args.topic, key_type=bytes, value_type=bytes)
    out = app.topic(args.out_topic, key_type=bytes, value_type=bytes)

    @app.agent(source)
    async def per_reading(stream: faust.StreamT) -> None:
        async for key, raw in stream.items():
            doc = orjson.loads(raw)
            i = index_of[doc["s"]]
            v = doc["v"]
            new = 2 if v >= l2[i] else 1 if v >= l1[i] else 0
            if new != level[i]:
                level[i] = new
                await out.send(key=key, value=orjson.dumps({"s": doc["s"], "level": new, "t": doc["t"]}))
            readings.inc()

    return start_worker(app, "error")


if __name__ == "__main__":
    sys.exit(main())
