"""`riskwatch routes test`: who would be notified for a site and colour (like `amtool config routes test`)."""

from __future__ import annotations

import argparse
import time
import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

from alerting.config import load_config
from alerting.routing.recipients import recipients
from alerting.routing.sites import SiteDirectory, SiteLookup, registry_lookup
from alerting.routing.tree import Facts, build_tree, match_routes
from riskwatch.errors import RiskwatchError
from riskwatch.kafka_access import KafkaAccess, kafka_option_help
from riskwatch.levels import Colour
from riskwatch.options import OldSpellings
from riskwatch.topics import Topics
from riskwatch.wire.transitions import Cause, EntityType, Transition, transition_id


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = sub.add_parser("test", help="show the routes, people on call and channels for an alert")
    _routes_argument(test)
    test.add_argument("--site", required=True)
    test.add_argument("--level", required=True, help="colour: red, orange, yellow, blue (or 红色 ...)")
    test.add_argument("--region", default="", help="region id (else from the site labels)")
    test.add_argument("--industry", default="", help="industry (else from the site labels)")
    test.add_argument("--at", default="", help="ISO time, e.g. 2026-11-23T22:00+08:00 (default: now)")
    test.add_argument("--registry", default=None, help="site registry YAML (names, regions, industries)")
    check = sub.add_parser("check", help="load the routing YAML and report the first problem")
    _routes_argument(check)
    fire = sub.add_parser("fire", help="publish a test warning on {prefix}.warnings to see an alert arrive")
    fire.add_argument("--kafka", required=True, help=kafka_option_help("tools"))
    fire.add_argument("--topic-prefix", default="rw")
    fire.add_argument("--site", required=True)
    fire.add_argument("--level", required=True, help="red, orange, yellow, blue, or normal to clear it")
    fire.add_argument("--region", default="")
    fire.add_argument("--unit", default="", help="a unit id: fire a unit warning instead of a site warning")


def _routes_argument(parser: argparse.ArgumentParser) -> None:
    """`--routes FILE`, as `riskwatch alerting` spells it (`--config` still works, with a deprecation)."""
    parser.add_argument(
        "--routes", "--config", dest="routes", action=OldSpellings, current="--routes", required=True,
        metavar="FILE", help="routing YAML file",
    )  # fmt: skip


def _when(text: str) -> float:
    if not text:
        return time.time()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RiskwatchError(f"--at {text!r} is not an ISO time like 2026-11-23T22:00+08:00") from None
    if moment.tzinfo is None:  # a bare local time means Asia/Shanghai, the rosters' zone
        moment = moment.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    return moment.timestamp()


def explain(
    config_file: str,
    site: str,
    level: str,
    region: str,
    industry: str,
    at: float,
    registry: SiteLookup | None = None,
) -> list[str]:
    """Lines describing the decision; a CLI table and a test oracle at once."""
    cfg = load_config(config_file)
    try:
        colour = Colour.parse(level)
    except ValueError as exc:
        raise RiskwatchError(str(exc)) from None
    facts_site = SiteDirectory(cfg.sites, registry).facts(site, region)
    facts = Facts(colour, site, region or facts_site.region, industry or facts_site.industry)
    routes = match_routes(build_tree(cfg.route), facts)
    stamp = datetime.fromtimestamp(at, ZoneInfo("Asia/Shanghai")).isoformat(timespec="minutes")
    lines = [
        f"alert: site={site} ({facts_site.name}) region={facts.region or '-'} "
        f"industry={facts.industry or '-'} colour={colour.label} at={stamp}"
    ]
    if not routes:
        lines.append("no route matches: no alert would be opened")
        return lines
    rows = [("ROUTE", "RECEIVER", "ON CALL", "CHANNELS", "ESCALATION")]
    for route in routes:
        who = recipients(cfg, route.receiver, at)
        people = ", ".join(f"{p.name}" for _, p in who.people) or "(nobody on call!)"
        rows.append((route.name, route.receiver, people, ", ".join(who.channels),
                     _escalation(cfg, route.escalation, colour, at)))  # fmt: skip
    widths = [max(_width(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        lines.append(
            "  ".join(_pad(cell, w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        )
    return lines


def _width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _escalation(cfg, name: str | None, colour: Colour, at: float) -> str:
    if name is None:
        return "-"
    policy = cfg.escalation_policies[name]
    if colour < policy.min_colour:
        return f"{name} (not for {colour.label})"
    steps = [f"+{tier.after:g}s {tier.receiver}" for tier in policy.tiers]
    return f"{name}: " + " -> ".join(steps) + (f" (x{policy.loops + 1})" if policy.loops else "")


def manual_warning(site: str, level: str, region: str, unit: str, at: float) -> Transition:
    """A warning transition marked as a manual test in its cause."""
    colour = Colour.parse(level)
    entity_type: EntityType = "unit" if unit else "site"
    entity = unit or site
    return Transition(
        id=transition_id("warning", entity_type, entity, colour.label, at), kind="warning",
        entity_type=entity_type, entity=entity, old="normal" if colour else "red", new=colour.label, at=at,
        cause=Cause("manual_test", (), "手动测试预警 / manual test"), site=site, region=region, unit=unit,
    )  # fmt: skip


def _fire(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer  # only this subcommand needs a broker client

    try:
        transition = manual_warning(args.site, args.level, args.region, args.unit, time.time())
    except ValueError as exc:
        raise RiskwatchError(str(exc)) from None
    topic = Topics(args.topic_prefix).warnings
    producer = KafkaProducer(**KafkaAccess.from_env(args.kafka, "tools").kafka_python(), acks="all")
    try:
        producer.send(topic, transition.to_bytes(), key=transition.key).get(timeout=30)
    finally:
        producer.close()
    print(f"published {transition.new} warning for {transition.entity_type} {transition.entity} on {topic}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "fire":
        return _fire(args)
    if args.action == "check":
        cfg = load_config(args.routes)
        print(f"{args.routes}: ok ({len(cfg.receivers)} receivers, {len(cfg.channels)} channels)")
        return 0
    registry = registry_lookup(args.registry)[0] if args.registry else None
    lines = explain(args.routes, args.site, args.level, args.region, args.industry, _when(args.at), registry)
    for line in lines:
        print(line)
    return 0
