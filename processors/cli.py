"""`riskwatch worker`: run one Faust warning worker (several in one group split the partitions).

    riskwatch worker --registry deploy/examples/registry.yaml --kafka 127.0.0.1:9092 --topic-prefix rw \\
        --data-dir ./.riskwatch/worker-1 --port 6066 --metrics-port 9101

Closed minutes of sensor aggregates go to rw.history; `riskwatch historian` writes them and the
transitions to InfluxDB.

Faust never sees sys.argv: the worker is built and started from these options only.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING

from riskwatch.errors import RiskwatchError
from riskwatch.kafka_access import KafkaAccess
from riskwatch.options import add_arguments, settings_from
from riskwatch.topics import Topics

if TYPE_CHECKING:
    import faust


def configure(parser: argparse.ArgumentParser) -> None:
    from processors.app import WorkerSettings

    add_arguments(parser, WorkerSettings)


def topic_partitions(access: KafkaAccess, topics: Topics) -> int:
    """Partition count of rw.telemetry, checked equal for rw.gateway (the state is co-partitioned)."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    kafka = access.bootstrap
    try:
        consumer = KafkaConsumer(**access.kafka_python(), request_timeout_ms=15000)
    except KafkaError as exc:
        raise RiskwatchError(f"cannot reach Kafka at {kafka}: {exc}; is the stack up?") from exc
    try:
        counts = {name: consumer.partitions_for_topic(name) for name in (topics.telemetry, topics.gateway)}
    finally:
        consumer.close()
    missing = [name for name, parts in counts.items() if not parts]
    if missing:
        raise RiskwatchError(
            f"topics {', '.join(missing)} do not exist on {kafka} or account {access.user} may not read them; "
            "create them first (riskwatch stack up does, with the accounts' ACLs)"
        )
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
    from riskwatch.clock import clock_of
    from riskwatch.registry import load_registry

    options = settings_from(WorkerSettings, args, os.environ)
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    registry = load_registry(options.registry)
    engine = load_engine(options.engine_module)
    settings = options.model_copy(update={"partitions": topic_partitions(options.kafka, options.topics)})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = CollectorRegistry()
    app, ctx = build_app(settings, registry, engine, metrics_registry=metrics, clock=clock_of(settings.clock))
    ctx.states.compile_all()
    if settings.metrics_port:
        # with /healthz
        serve_metrics(settings.metrics_host or settings.host, settings.metrics_port, metrics, ctx.health)
    return start_worker(app, settings.log_level)


def start_worker(app: faust.App, loglevel: str) -> int:
    """Run the Faust worker until SIGINT/SIGTERM, without letting Faust parse sys.argv."""
    import faust

    worker = faust.Worker(app, loglevel=loglevel, quiet=True, override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
