"""`riskwatch worker`: run one Faust warning worker (several in one group split the partitions).

    riskwatch worker --registry deploy/examples/registry.yaml --kafka 127.0.0.1:9092 --topic-prefix rw \\
        --data-dir ./.riskwatch/worker-1 --web-port 6066 --metrics-port 9101

Closed minutes of sensor aggregates go to rw.history; `riskwatch historian` writes them and the
transitions to InfluxDB.

Faust never sees sys.argv: the worker is built and started from these options only.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from riskwatch.errors import RiskwatchError
from riskwatch.topics import Topics


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", type=Path, required=True, help="site registry YAML file")
    parser.add_argument("--kafka", required=True, metavar="HOST:PORT", help="Kafka bootstrap server")
    parser.add_argument(
        "--topic-prefix", default="rw", help="topic prefix (default: rw -> rw.telemetry, ...)"
    )
    parser.add_argument(
        "--group", default="", help="consumer group / Faust app id (default: riskwatch-worker-PREFIX)"
    )
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="this worker's own folder for table stores"
    )
    parser.add_argument("--bind", default="127.0.0.1", help="address for the web views (and metrics)")
    parser.add_argument(
        "--metrics-host",
        default=None,
        help="address for /metrics and /healthz, e.g. a monitoring network's (default: --bind)",
    )
    parser.add_argument("--web-port", type=int, default=6066, help="Faust web views port (0: off)")
    parser.add_argument("--metrics-port", type=int, default=9101, help="Prometheus /metrics port (0: off)")
    parser.add_argument("--tick-every", type=float, default=1.0, help="seconds between timer evaluations")
    parser.add_argument("--snapshot-every", type=float, default=5.0, help="seconds between state snapshots")
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=50,
        help="longest the broker holds a fetch with no new records (Faust's own 1500 ms delays readings)",
    )
    parser.add_argument(
        "--session-timeout", type=float, default=30.0, help="seconds before a dead worker's partitions move"
    )
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=1,
        help="replicas of the topics the worker creates (its tables' changelogs): 3 on a 3-broker cluster",
    )
    parser.add_argument(
        "--recovery-timeout",
        type=float,
        default=180.0,
        help="seconds without restored tables after a rebalance before the worker exits with status 75 "
        "so its supervisor restarts it (0: never)",
    )
    parser.add_argument(
        "--future-tolerance-s",
        type=float,
        default=5.0,
        help="readings and events stamped later than the worker's clock + this are taken at that bound",
    )
    parser.add_argument(
        "--max-age-s",
        type=float,
        default=7 * 24 * 3600.0,
        help="readings older than this (by the worker's clock) are dead-lettered as old_timestamp",
    )
    parser.add_argument("--engine-module", default="processors.engine", help=argparse.SUPPRESS)
    parser.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])


def topic_partitions(kafka: str, topics: Topics) -> int:
    """Partition count of rw.telemetry, checked equal for rw.gateway (the state is co-partitioned)."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(bootstrap_servers=kafka, request_timeout_ms=15000)
    except KafkaError as exc:
        raise RiskwatchError(f"cannot reach Kafka at {kafka}: {exc}; is the stack up?") from exc
    try:
        counts = {name: consumer.partitions_for_topic(name) for name in (topics.telemetry, topics.gateway)}
    finally:
        consumer.close()
    missing = [name for name, parts in counts.items() if not parts]
    if missing:
        raise RiskwatchError(f"topics {', '.join(missing)} do not exist on {kafka}; create them first")
    sizes = {len(parts) for parts in counts.values() if parts}
    if len(sizes) != 1:
        raise RiskwatchError(
            f"{topics.telemetry} and {topics.gateway} must have the same partition count: {counts}"
        )
    return sizes.pop()


def run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from processors.app import WorkerSettings, build_app
    from processors.engine_port import load_engine
    from processors.health import serve_metrics
    from riskwatch.registry import load_registry

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = load_registry(args.registry)
    engine = load_engine(args.engine_module)
    topics = Topics(args.topic_prefix)
    settings = WorkerSettings(
        kafka=args.kafka,
        data_dir=args.data_dir,
        partitions=topic_partitions(args.kafka, topics),
        topics=topics,
        app_id=args.group,
        web_host=args.bind,
        web_port=args.web_port,
        tick_every_s=args.tick_every,
        snapshot_every_s=args.snapshot_every,
        fetch_max_wait_ms=args.fetch_max_wait_ms,
        session_timeout_s=args.session_timeout,
        replication_factor=args.replication_factor,
        recovery_timeout_s=args.recovery_timeout,
        loglevel=args.loglevel,
        future_tolerance_s=args.future_tolerance_s,
        max_age_s=args.max_age_s,
    )
    args.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = CollectorRegistry()
    app, ctx = build_app(settings, registry, engine, metrics_registry=metrics)
    ctx.states.compile_all()
    if args.metrics_port:
        serve_metrics(args.metrics_host or args.bind, args.metrics_port, metrics, ctx.health)  # with /healthz
    return start_worker(app, args.loglevel)


def start_worker(app: object, loglevel: str) -> int:
    """Run the Faust worker until SIGINT/SIGTERM, without letting Faust parse sys.argv."""
    import faust

    worker = faust.Worker(app, loglevel=loglevel, quiet=True, override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
