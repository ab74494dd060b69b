"""The `riskwatch` command: a thin dispatcher to the components.

Each command lives in its component and is imported only when chosen, so the kernel never imports a
broker library and `riskwatch --help` stays fast. A command module exposes:

    def configure(parser: argparse.ArgumentParser) -> None   # add its arguments
    def run(args: argparse.Namespace) -> int                 # do the work, return the exit code
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple, Protocol, cast

from riskwatch.errors import RiskwatchError
from riskwatch.secrets import install_log_redaction


class Command(NamedTuple):
    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "stack": Command(
        "deploy.stack.cli", "provision, start, check, stop the local Kafka, Mosquitto, InfluxDB"
    ),
    "config": Command("riskwatch.registry.cli", "check a site registry file"),
    "bridge": Command("ingest.cli", "run the MQTT -> Kafka ingest bridge"),
    "worker": Command("processors.cli", "run the Faust warning worker"),
    "historian": Command(
        "processors.history.cli", "write transitions and minute aggregates from Kafka to InfluxDB, durably"
    ),
    "alerting": Command("alerting.cli", "run the alerting service (routing, channels, lifecycle, API)"),
    "run": Command(
        "deploy.run", "run bridge, worker, historian and alerting on this machine, restarting any that fails"
    ),
    "routes": Command("alerting.routing.cli", "show who would be notified for a site and colour"),
    "simulate": Command("simulators.cli", "run plant simulators, scenarios or the load generator"),
    "demo": Command("simulators.demo", "run the whole pipeline with simulated plants and a live view"),
    "report": Command("alerting.reports.cli", "the daily four-colour bulletin and the alarm-quality report"),
    "history": Command(
        "alerting.history.cli", "read history back: a sensor's minutes, colours, alerts; CSV/Excel"
    ),
    "bench": Command("riskwatch.bench", "run benchmarks (engine, bridge, processors, e2e)"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskwatch",
        description="riskwatch: real-time risk monitoring and four-colour early warning.",
        epilog="Run 'riskwatch COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.help, add_help=False)
    return parser


class CommandModule(Protocol):
    """What a command module provides (its options: riskwatch.options)."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def load_command(module_name: str) -> CommandModule:
    """Import a command module, turning a missing component into a clear error."""
    try:
        return cast(CommandModule, importlib.import_module(module_name))
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise RiskwatchError(f"command module {module_name} is not available in this build") from exc
        raise


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = _top_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}")
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    command = COMMANDS[name]
    install_log_redaction()  # before any component or library logs anything
    try:
        module = load_command(command.module)
        parser = argparse.ArgumentParser(prog=f"riskwatch {name}", description=command.help)
        module.configure(parser)
        args = parser.parse_args(rest)
        return int(module.run(args) or 0)
    except RiskwatchError as exc:
        print(f"riskwatch {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
