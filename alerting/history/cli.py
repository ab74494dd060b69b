"""`riskwatch history sensor | colours | alerts`: history read back, as a table, CSV or Excel."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from alerting.history import export, sources, tables
from riskwatch.errors import RiskwatchError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    sensor = sub.add_parser("sensor", help="a sensor's minute aggregates (min, max, mean, count)")
    sensor.add_argument("sensor", help="sensor id")
    colours = sub.add_parser("colours", help="an entity's colour (or a sensor's alarm) timeline")
    colours.add_argument("entity", help="site, unit, region or sensor id")
    alerts = sub.add_parser("alerts", help="alerts with their audit trail")
    alerts.add_argument("--site", action="append", default=None, help="only this site (repeatable)")
    for p in (sensor, colours, alerts):
        p.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD, ISO time or epoch seconds")
        p.add_argument("--to", dest="end", default=None, help="end (exclusive; default now)")
        p.add_argument("--format", choices=export.FORMATS, default="table")
        p.add_argument("--out", type=Path, default=None, help="write to this file (needed for xlsx)")
        sources.add_source_options(p, for_reports=False)


def run(args: argparse.Namespace) -> int:
    start = sources.parse_time(args.start, "--from", args.tz)
    end = sources.parse_time(args.end, "--to", args.tz) if args.end else time.time()
    if end <= start:
        raise RiskwatchError("--to must be after --from")
    if args.format == "xlsx" and args.out is None:
        raise RiskwatchError("--format xlsx needs --out FILE.xlsx")
    if args.what == "alerts":
        archive = sources.archive(args)
        try:
            headers, rows = tables.alert_table(
                archive, start, end, args.tz, set(args.site) if args.site else None
            )
        finally:
            archive.close()
    elif args.what == "sensor":
        headers, rows = tables.sensor_table(sources.influx(args), args.sensor, start, end, args.tz)
    else:
        headers, rows = tables.colour_table(sources.influx(args), args.entity, start, end, args.tz)
    print(export.write(headers, rows, args.format, args.out, args.what))
    return 0
