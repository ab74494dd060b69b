"""`riskwatch report daily | quality`: the bulletin and the alarm-quality report as HTML and PDF."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from pathlib import Path

from alerting.history import sources
from riskwatch.clock import add_clock_argument, clock_of
from riskwatch.registry import load_registry

DEFAULT_ACK_S = 15 * 60.0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="report", required=True, metavar="REPORT")
    daily = sub.add_parser("daily", help="the daily four-colour bulletin (每日四色预警通报)")
    daily.add_argument("--date", default=None, help="YYYY-MM-DD (default: yesterday in --tz)")
    daily.add_argument("--ack-within", type=float, default=DEFAULT_ACK_S,
                       help="acknowledgement deadline in seconds for alerts without an escalation policy")  # fmt: skip
    quality = sub.add_parser("quality", help="the alarm-quality report (ISA-18.2 / EEMUA 191)")
    quality.add_argument(
        "--from", dest="first", default=None, help="first day YYYY-MM-DD (default: 7 days ago)"
    )
    quality.add_argument("--to", dest="last", default=None, help="last day YYYY-MM-DD (default: yesterday)")
    for p in (daily, quality):
        sources.add_source_options(p)
        p.add_argument("--out", type=Path, default=Path("reports"), help="folder for the HTML and PDF")
        add_clock_argument(p, "the simulated clock the pipeline ran on: 'yesterday' and 'now' are its")


def run(args: argparse.Namespace) -> int:
    now = clock_of(args.clock)()  # alerts not yet acknowledged are late only once their deadline passed
    today = datetime.fromtimestamp(now, sources.zone(args.tz)).date()
    registry = load_registry(args.registry)
    history, archive = sources.influx(args), sources.archive(args)
    try:
        if args.report == "daily":
            from alerting.reports import daily

            day = sources.parse_day(args.date, "--date") if args.date else today - timedelta(days=1)
            deadline = sources.deadline_lookup(args.routes, args.ack_within)
            bulletin = daily.gather(registry, history, archive, day, args.tz, deadline, now)
            paths = daily.write(bulletin, args.out)
        else:
            from alerting.reports import quality

            last = sources.parse_day(args.last, "--to") if args.last else today - timedelta(days=1)
            first = sources.parse_day(args.first, "--from") if args.first else last - timedelta(days=6)
            report = quality.gather(registry, history, archive, first, last, args.tz, now)
            paths = quality.write(report, args.out)
    finally:
        archive.close()
    for path in paths:
        print(path)
    return 0
