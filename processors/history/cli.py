"""`riskwatch historian`: write transitions and closed minutes from Kafka to InfluxDB, durably.

    riskwatch historian --kafka 127.0.0.1:9092 --topic-prefix rw \\
        --influx-url http://127.0.0.1:8086 --influx-token-env RISKWATCH_INFLUX_TOKEN \\
        --influx-org - --influx-bucket riskwatch/autogen --metrics-port 9103

Every option can also come from its RISKWATCH_HISTORIAN_* variable (`--help` names them).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import ClassVar

from processors.history.historian import DEFAULT_GROUP
from riskwatch.errors import EXIT_TASK_DIED, ConfigError
from riskwatch.kafka_access import KafkaOption, kafka_option_help
from riskwatch.options import LogLevel, Options, Port, add_arguments, option, settings_from
from riskwatch.secrets import remember


class HistorianSettings(Options):
    """`riskwatch historian`'s options, declared once (help, RISKWATCH_HISTORIAN_* variables, docs table)."""

    ENV_PREFIX: ClassVar[str] = "RISKWATCH_HISTORIAN"
    KAFKA_ACCOUNT: ClassVar[str] = "history"

    kafka: KafkaOption = option(help=kafka_option_help("history"), metavar="HOST:PORT")
    topic_prefix: str = option("rw", "reads {prefix}.warnings, .alarms, .history; writes {prefix}.deadletter")
    group: str = option(DEFAULT_GROUP, "Kafka consumer group", old=["--group-id"])
    influx_url: str = option(help="InfluxDB URL", metavar="URL")
    influx_token_env: str = option(
        "RISKWATCH_INFLUX_TOKEN",
        "environment variable holding the token (user:password on InfluxDB 1.8)",
        metavar="VAR",
    )
    influx_org: str = option("-", "InfluxDB org ('-' for InfluxDB 1.8)")
    influx_bucket: str = option("riskwatch/autogen", "InfluxDB bucket (db/retention on 1.8)")
    pace: float = option(
        20_000.0,
        "points/s fresh minute aggregates are written at (a backlog goes at full speed; 0: no pacing)",
        ge=0,
    )
    metrics_host: str = option("127.0.0.1", "address of /metrics and /healthz")
    metrics_port: Port = option(9103, "port of /metrics and /healthz")
    log_level: LogLevel = option("warning", "how much the historian logs", old=["--loglevel"])


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Consume rw.warnings, rw.alarms and rw.history and write them to InfluxDB, committing Kafka offsets "
        "only once InfluxDB has accepted the points (nothing lost if InfluxDB or this process goes away)."
    )
    add_arguments(parser, HistorianSettings)


def run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from processors.health import serve_metrics
    from processors.history.historian import Historian, HistorianHealth, HistorianOptions
    from processors.history.influx import InfluxSink
    from processors.history.metrics import HistorianMetrics

    settings = settings_from(HistorianSettings, args, os.environ)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    token = os.environ.get(settings.influx_token_env, "")
    if not token:
        raise ConfigError("environment", settings.influx_token_env, "empty: export the InfluxDB token there")
    remember(token)  # masked in every log line (riskwatch.secrets)
    options = HistorianOptions(
        kafka=settings.kafka,
        topic_prefix=settings.topic_prefix,
        group_id=settings.group,
        pace_points_per_s=settings.pace,
    )
    sink = InfluxSink(settings.influx_url, token, settings.influx_org, settings.influx_bucket)
    registry = CollectorRegistry()
    # A dead loop is reported here and the process exits 70 by returning it (below), after cleaning up.
    health = HistorianHealth(stale_after_s=60.0, startup_s=60.0, exit=lambda code: None)
    historian = Historian(options, sink, HistorianMetrics(registry), health)
    serve_metrics(settings.metrics_host, settings.metrics_port, registry, health)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await historian.run(stop)

    try:
        asyncio.run(main())
    except Exception as exc:  # the loop died: /healthz says so and the process exits 70 for its supervisor
        health.failed(f"the historian's loop died: {exc!r}")
        logging.getLogger("riskwatch.historian").exception("the historian's loop died; exiting")
        return EXIT_TASK_DIED
    finally:
        sink.close()
    return 0
