"""`riskwatch bridge`: run the MQTT -> Kafka ingest bridge until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.settings import BridgeSettings
from riskwatch.errors import EXIT_TASK_DIED, ConfigError
from riskwatch.options import add_arguments, settings_from
from riskwatch.secrets import remember

if TYPE_CHECKING:
    from ingest.service import BridgeService

HEALTH_CHECK_S = 1.0


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, BridgeSettings)
    parser.add_argument(
        "--retire",
        action="store_true",
        help="discard this bridge's persistent MQTT session (its --mqtt-user account's) and exit, when "
        "decommissioning a bridge: otherwise the broker keeps queueing for it until --session-expiry-s",
    )


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> BridgeSettings:
    """The bridge's settings from flags, else RISKWATCH_BRIDGE_* variables, else defaults; the MQTT
    password from the variable --mqtt-password-env names. Kafka is required except to --retire."""
    retire = getattr(args, "retire", False)
    settings = settings_from(BridgeSettings, args, environ, **({"kafka": None} if retire else {}))
    if settings.kafka is None and not retire:
        raise ConfigError(
            "command line", "--kafka", "required: give --kafka HOST:PORT or set RISKWATCH_BRIDGE_KAFKA"
        )
    return settings.model_copy(update={"mqtt_password": environ.get(settings.mqtt_password_env, "")})


def load_registry(path: Path) -> Any:
    from riskwatch.registry import load_registry as load

    return load(path)


def run(args: argparse.Namespace) -> int:
    from ingest.service import BridgeService

    settings = settings_from_args(args, os.environ)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
