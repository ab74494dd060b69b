"""`riskwatch alerting`: run the alerting service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from alerting.config import load_config, resolve_secrets
from alerting.health import TaskDied
from alerting.history.sources import INFLUX_TOKEN_ENV
from alerting.routing.sites import registry_lookup
from alerting.service import AlertingService, ServiceOptions
from riskwatch.errors import EXIT_TASK_DIED, RiskwatchError
from riskwatch.kafka_access import KafkaAccess, kafka_option_help
from riskwatch.paths import home_dir
from riskwatch.registry import load_registry
from riskwatch.tls import ServerTLS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--routes", required=True, help="routing YAML (see deploy/examples/routes.yaml)")
    parser.add_argument("--kafka", required=True, help=kafka_option_help("alerting"))
    parser.add_argument("--topic-prefix", default="rw", help="topic prefix (default rw: rw.warnings, ...)")
    parser.add_argument("--db", type=Path, default=None, help="SQLite store (default .riskwatch/alerting.db)")
    parser.add_argument("--http-host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument(
        "--tls-certfile",
        type=Path,
        metavar="PEM",
        help="serve the API and board over HTTPS with this certificate chain (leaf first), with --tls-keyfile",
    )
    parser.add_argument("--tls-keyfile", type=Path, metavar="PEM", help="private key of --tls-certfile")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve /metrics only on this port (plain HTTP, on --metrics-host), not on the API port; "
        "0 (default): /metrics on the API port",
    )
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address of --metrics-port")
    parser.add_argument(
        "--group-id",
        default="riskwatch-alerting",
        help="Kafka consumer group; the alerting account may use only groups starting riskwatch-alerting",
    )
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between timer/retry checks")
    parser.add_argument("--registry", default=None, help="site registry YAML for site names and industry")
    parser.add_argument(
        "--map",
        type=Path,
        default=None,
        help="the board's region geometry (GeoJSON, features naming registry regions); "
        "default: the shipped example regions",
    )
    parser.add_argument("--no-board", action="store_true", help="serve the API only, no board pages")
    parser.add_argument(
        "--influx-url", default="",
        help=f"InfluxDB with the history, for /api/history (token from ${INFLUX_TOKEN_ENV})",
    )  # fmt: skip
    parser.add_argument("--influx-bucket", default="riskwatch/autogen", help="db/retention of the history")
    parser.add_argument("--log-level", default="INFO")


LOGIN_LINK_ENV = "RISKWATCH_LOGIN_LINK"


def login_links(environ: dict[str, str] | os._Environ[str]) -> tuple[tuple[str, str], ...]:
    """`RISKWATCH_LOGIN_LINK=user:secret` accepts one login by that secret (/board/login#once=secret),
    for a launcher such as `riskwatch demo` that prints the link; the variable never reaches a file."""
    value = environ.get(LOGIN_LINK_ENV, "")
    user, _, secret = value.partition(":")
    return ((user, secret),) if user and len(secret) >= 16 else ()


def server_tls(args: argparse.Namespace) -> ServerTLS | None:
    if (args.tls_certfile is None) != (args.tls_keyfile is None):
        raise RiskwatchError("--tls-certfile and --tls-keyfile go together: give both or neither")
    return ServerTLS(args.tls_certfile, args.tls_keyfile) if args.tls_certfile else None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = load_config(args.routes)
    secrets = resolve_secrets(cfg, os.environ, str(args.routes))
    db = args.db or home_dir() / "alerting.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    options = ServiceOptions(
        kafka=KafkaAccess.from_env(args.kafka, "alerting"), db=db, topic_prefix=args.topic_prefix, http_host=args.http_host,
        http_port=args.http_port, group_id=args.group_id, tick_s=args.tick, board=not args.no_board,
        map_file=args.map, login_links=login_links(os.environ), tls=server_tls(args),
        metrics_host=args.metrics_host, metrics_port=args.metrics_port, influx_url=args.influx_url,
        influx_token=os.environ.get(INFLUX_TOKEN_ENV, ""), influx_bucket=args.influx_bucket,
    )  # fmt: skip
    sites, units = registry_lookup(args.registry) if args.registry else (None, None)
    site_registry = load_registry(args.registry) if args.registry else None
    service = AlertingService(options, cfg, secrets, sites, units, site_registry=site_registry)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.run(stop)

    try:
        asyncio.run(main())
    except TaskDied as exc:  # already logged with its traceback; say it once more where a supervisor looks
        print(f"riskwatch alerting: {exc}", file=sys.stderr)
        return EXIT_TASK_DIED
    return 0
