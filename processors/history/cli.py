"""`riskwatch historian`: write transitions and closed minutes from Kafka to InfluxDB, durably.

    riskwatch historian --kafka 127.0.0.1:9092 --topic-prefix rw \\
        --influx-url http://127.0.0.1:8086 --influx-token-env RISKWATCH_INFLUX_TOKEN \\
        --influx-org - --influx-bucket riskwatch/autogen --metrics-port 9103
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from riskwatch.errors import EXIT_TASK_DIED, ConfigError
from riskwatch.kafka_access import KafkaAccess, kafka_option_help
from riskwatch.secrets import remember


def configure(parser: argparse.ArgumentParser) -> None:
    from processors.history.historian import DEFAULT_GROUP

    parser.description = (
        "Consume rw.warnings, rw.alarms and rw.history and write them to InfluxDB, committing Kafka offsets "
        "only once InfluxDB has accepted the points (nothing lost if InfluxDB or this process goes away)."
    )
    parser.add_argument("--kafka", required=True, metavar="HOST:PORT", help=kafka_option_help("history"))
    parser.add_argument("--topic-prefix", default="rw", help="topic prefix (default: rw -> rw.history, ...)")
    parser.add_argument(
        "--group-id", default=DEFAULT_GROUP, help="Kafka consumer group (default %(default)s)"
    )
    parser.add_argument("--influx-url", required=True, metavar="URL", help="InfluxDB URL")
    parser.add_argument(
        "--influx-token-env", default="RISKWATCH_INFLUX_TOKEN", help="env variable holding the token"
    )
    parser.add_argument("--influx-org", default="-", help="InfluxDB org ('-' for InfluxDB 1.8)")
    parser.add_argument(
        "--influx-bucket", default="riskwatch/autogen", help="InfluxDB bucket (db/retention on 1.8)"
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=20_000.0,
        help="points/s fresh minute aggregates are written at (a backlog goes at full speed; 0: no pacing)",
    )
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address for /metrics and /healthz")
    parser.add_argument("--metrics-port", type=int, default=9103, help="/metrics and /healthz port")
    parser.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from processors.health import serve_metrics
    from processors.history.historian import Historian, HistorianHealth, HistorianOptions
    from processors.history.influx import InfluxSink
    from processors.history.metrics import HistorianMetrics

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.get(args.influx_token_env, "")
    if not token:
        raise ConfigError("environment", args.influx_token_env, "empty: export the InfluxDB token there")
    remember(token)  # masked in every log line (riskwatch.secrets)
    if args.pace < 0:
        raise ConfigError("command line", "--pace", f"{args.pace:g} is negative")
    options = HistorianOptions(
        kafka=KafkaAccess.from_env(args.kafka, "history"),
        topic_prefix=args.topic_prefix,
        group_id=args.group_id,
        pace_points_per_s=args.pace,
    )
    sink = InfluxSink(args.influx_url, token, args.influx_org, args.influx_bucket)
    registry = CollectorRegistry()
    # A dead loop is reported here and the process exits 70 by returning it (below), after cleaning up.
    health = HistorianHealth(stale_after_s=60.0, startup_s=60.0, exit=lambda code: None)
    historian = Historian(options, sink, HistorianMetrics(registry), health)
    serve_metrics(args.metrics_host, args.metrics_port, registry, health)

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
