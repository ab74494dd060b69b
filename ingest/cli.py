"""`riskwatch bridge`: run the MQTT -> Kafka ingest bridge until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.settings import BridgeSettings
from riskwatch.errors import EXIT_TASK_DIED
from riskwatch.kafka_access import KafkaAccess, kafka_option_help
from riskwatch.secrets import remember
from riskwatch.tls import add_client_arguments, client_from_args

if TYPE_CHECKING:
    from ingest.service import BridgeService

_DEFAULTS = {f.name: f.default for f in fields(BridgeSettings)}
HEALTH_CHECK_S = 1.0


def configure(parser: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    parser.add_argument(
        "--registry",
        type=Path,
        required=True,
        help="site registry file (YAML, or JSON for big generated ones)",
    )
    parser.add_argument("--mqtt-host", default=d["mqtt_host"])
    parser.add_argument("--mqtt-port", type=int, default=d["mqtt_port"])
    add_client_arguments(parser, "mqtt", "MQTT broker")
    parser.add_argument("--mqtt-user", default=d["mqtt_user"])
    parser.add_argument(
        "--mqtt-password-env",
        default="RISKWATCH_MQTT_PASSWORD",
        metavar="VAR",
        help="environment variable holding the MQTT password (default: %(default)s)",
    )
    parser.add_argument(
        "--client-id",
        default=None,
        help="MQTT client id (default: the --mqtt-user account name). riskwatch's Mosquitto binds client ids "
        "to accounts and ignores this: the session is the account's, so give each bridge its own account",
    )
    parser.add_argument(
        "--session-expiry-s",
        type=int,
        default=d["session_expiry_s"],
        help="how long the broker keeps queueing for a stopped bridge (default 7 days)",
    )
    parser.add_argument("--share-group", default=d["share_group"], help="bridges in one group split the load")
    parser.add_argument(
        "--kafka",
        dest="kafka_bootstrap",
        default="127.0.0.1:9092",
        help=kafka_option_help("bridge"),
    )
    parser.add_argument("--topic-prefix", default=d["topic_prefix"], help="Kafka topic prefix (default rw)")
    parser.add_argument("--spool-dir", type=Path, default=d["spool_dir"])
    parser.add_argument("--spool-max-mb", type=int, default=d["spool_max_bytes"] // 2**20)
    parser.add_argument("--metrics-port", type=int, default=d["metrics_port"], help="0 turns metrics off")
    parser.add_argument("--metrics-host", default=d["metrics_host"])
    parser.add_argument(
        "--compression", default=d["compression"], choices=["gzip", "lz4", "zstd", "snappy", "none"]
    )
    parser.add_argument(
        "--codec-compression",
        action=argparse.BooleanOptionalAction,
        default=d["codec_compression"],
        help="zlib-compress batch bodies (default on)",
    )
    parser.add_argument("--batch-max-readings", type=int, default=d["batch_max_readings"])
    parser.add_argument("--batch-linger-ms", type=float, default=d["batch_linger_s"] * 1000)
    parser.add_argument(
        "--future-tolerance-s",
        type=float,
        default=d["future_tolerance_s"],
        help="how far ahead of the bridge clock a timestamp may be (default %(default)s s)",
    )
    parser.add_argument(
        "--max-age-s",
        type=float,
        default=d["max_age_s"],
        help="how old a reading, event or status time may be (default %(default)s s, 7 days)",
    )
    parser.add_argument(
        "--max-readings",
        type=int,
        default=d["max_readings"],
        help="readings per telemetry message (default %(default)s); more is dead-lettered as too_many_items",
    )
    parser.add_argument("--max-payload-kb", type=int, default=d["max_payload"] // 1024)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--retire",
        action="store_true",
        help="discard this bridge's persistent MQTT session (its --mqtt-user account's) and exit, when "
        "decommissioning a bridge: otherwise the broker keeps queueing for it until --session-expiry-s",
    )


def settings_from_args(args: argparse.Namespace, environ: dict[str, str]) -> BridgeSettings:
    return BridgeSettings(
        registry=args.registry,
        mqtt_host=args.mqtt_host,
        mqtt_port=args.mqtt_port,
        mqtt_tls=client_from_args(args, "mqtt"),
        mqtt_user=args.mqtt_user,
        mqtt_password=environ.get(args.mqtt_password_env, ""),
        mqtt_client_id=args.client_id or "",
        share_group=args.share_group,
        session_expiry_s=args.session_expiry_s,
        kafka=None if args.retire else KafkaAccess.from_env(args.kafka_bootstrap, "bridge", environ),
        topic_prefix=args.topic_prefix,
        spool_dir=args.spool_dir,
        spool_max_bytes=args.spool_max_mb * 2**20,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        compression=args.compression,
        codec_compression=args.codec_compression,
        batch_max_readings=args.batch_max_readings,
        batch_linger_s=args.batch_linger_ms / 1000,
        future_tolerance_s=args.future_tolerance_s,
        max_age_s=args.max_age_s,
        max_readings=args.max_readings,
        max_payload=args.max_payload_kb * 1024,
    )


def load_registry(path: Path) -> Any:
    from riskwatch.registry import load_registry as load

    return load(path)


def run(args: argparse.Namespace) -> int:
    from ingest.service import BridgeService

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = settings_from_args(args, dict(os.environ))
    remember(settings.mqtt_password)  # masked in every log line (riskwatch.secrets)
    if args.retire:
        from ingest.mqtt import retire_session

        return 0 if retire_session(settings) else 1
    service = BridgeService(settings, load_registry(settings.registry))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    return supervise(service, stop)


def supervise(service: BridgeService, stop: threading.Event, every_s: float = HEALTH_CHECK_S) -> int:
    """Run until `stop` (a clean, flushed stop: 0, or 1 if something was not durable in time), or until
    an internal thread dies (EXIT_TASK_DIED, without flushing: the broker redelivers the rest)."""
    log = logging.getLogger(__name__)
    while not stop.wait(every_s):
        if not service.healthy():
            dead = [name for name, alive in service.threads().items() if not alive]
            log.critical("bridge thread(s) %s died; exiting so a supervisor restarts the bridge", dead)
            service.abort()
            return EXIT_TASK_DIED
    log.info("stopping: flushing what is in flight")
    return 0 if service.stop() else 1
