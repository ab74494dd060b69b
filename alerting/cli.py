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
from riskwatch.clock import clock_of
from riskwatch.errors import EXIT_TASK_DIED
from riskwatch.options import LogLevel, add_arguments, option, settings_from
from riskwatch.registry import load_registry


class AlertingSettings(ServiceOptions):
    """`riskwatch alerting`'s options: the service's (ServiceOptions) and what only the command reads."""

    routes: Path = option(help="routing YAML (see deploy/examples/routes.yaml)")
    registry: Path | None = option(None, "site registry YAML for site names and industry")
    log_level: LogLevel = option("info", "how much alerting logs")


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, AlertingSettings)


LOGIN_LINK_ENV = "RISKWATCH_LOGIN_LINK"


def login_links(environ: dict[str, str] | os._Environ[str]) -> tuple[tuple[str, str], ...]:
    """`RISKWATCH_LOGIN_LINK=user:secret` accepts one login by that secret (/board/login#once=secret),
    for a launcher such as `riskwatch demo` that prints the link; the variable never reaches a file."""
    value = environ.get(LOGIN_LINK_ENV, "")
    user, _, secret = value.partition(":")
    return ((user, secret),) if user and len(secret) >= 16 else ()


def run(args: argparse.Namespace) -> int:
    options = settings_from(
        AlertingSettings, args, os.environ,
        login_links=login_links(os.environ), influx_token=os.environ.get(INFLUX_TOKEN_ENV, ""),
    )  # fmt: skip
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = load_config(str(options.routes))
    secrets = resolve_secrets(cfg, os.environ, str(options.routes))
    options.db.parent.mkdir(parents=True, exist_ok=True)
    sites, units = registry_lookup(str(options.registry)) if options.registry else (None, None)
    site_registry = load_registry(options.registry) if options.registry else None
    service = AlertingService(
        options, cfg, secrets, sites, units, clock=clock_of(options.clock), site_registry=site_registry
    )

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
