"""Where history and reports read from: options declared once for `riskwatch history` and `report`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerting.history.alerts import AlertArchive, AlertHistory
from alerting.history.influx import InfluxConnection, InfluxHistory
from riskwatch.clock import parse_instant
from riskwatch.errors import RiskwatchError
from riskwatch.paths import home_dir

INFLUX_TOKEN_ENV = "RISKWATCH_INFLUX_TOKEN"
DEFAULT_TZ = "Asia/Shanghai"


def add_source_options(parser: argparse.ArgumentParser, for_reports: bool = True) -> None:
    """Where history is read from; reports also need the registry and the routing file."""
    if for_reports:
        parser.add_argument("--registry", type=Path, required=True, help="site registry (YAML or JSON)")
        parser.add_argument(
            "--routes", type=Path, default=None,
            help="routing YAML: acknowledgement deadlines come from its escalation policies",
        )  # fmt: skip
    parser.add_argument(
        "--influx-url", default=None,
        help=f"InfluxDB with the history, token from ${INFLUX_TOKEN_ENV} (default: the local stack's)",
    )  # fmt: skip
    parser.add_argument("--influx-bucket", default=None, help="db/retention (default riskwatch/autogen)")
    parser.add_argument(
        "--db", type=Path, default=None,
        help="the alerting service's store (default .riskwatch/alerting.db, else .riskwatch/run/alerting.db)",
    )  # fmt: skip
    parser.add_argument(
        "--tz", default=DEFAULT_TZ, help=f"time zone of days and times (default {DEFAULT_TZ})"
    )
    parser.add_argument(
        "--stack-home", type=Path, default=None, help="local stack folder (default .riskwatch/stack)"
    )


def influx(args: argparse.Namespace) -> InfluxHistory:
    url, token, bucket = args.influx_url, os.environ.get(INFLUX_TOKEN_ENV, ""), args.influx_bucket
    if url is None:  # the local stack's (riskwatch stack up), as `riskwatch run` does
        from deploy.stack import Stack

        info = Stack(args.stack_home or home_dir() / "stack").info()
        url, token, bucket = info.influx_url, token or info.influx_token, bucket or info.influx_bucket
    if not token:
        raise RiskwatchError(f"${INFLUX_TOKEN_ENV} is empty: export the InfluxDB token (user:password) there")
    return InfluxHistory(InfluxConnection(url, token, bucket or "riskwatch/autogen"))


def archive(args: argparse.Namespace) -> AlertArchive:
    path = args.db
    if path is None:
        candidates = [home_dir() / "alerting.db", home_dir() / "run" / "alerting.db"]
        path = next((p for p in candidates if p.is_file()), candidates[0])
    return AlertArchive(path)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RiskwatchError(f"--tz: unknown time zone {name!r}") from None


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RiskwatchError(f"{option}: expected YYYY-MM-DD, got {text!r}") from None


def parse_time(text: str, option: str, tz: str) -> float:
    """YYYY-MM-DD (local midnight), an ISO time (local unless it has an offset), or epoch seconds."""
    try:
        return parse_instant(text, option, zone(tz))
    except ValueError:
        raise RiskwatchError(
            f"{option}: expected YYYY-MM-DD, an ISO time or epoch seconds, got {text!r}"
        ) from None


def deadline_lookup(routes: Path | None, default_s: float) -> Callable[[AlertHistory], float]:
    """The acknowledgement deadline of an alert: its escalation policy's first tier (the time the policy
    lets pass before calling the next person), else `default_s`."""
    policies: dict[str, float] = {}
    if routes is not None:
        from alerting.config import load_config

        cfg = load_config(routes)
        policies = {name: p.tiers[0].after for name, p in cfg.escalation_policies.items() if p.tiers}

    def deadline(history: AlertHistory) -> float:
        return policies.get(history.alert.escalation or "", default_s)

    return deadline
