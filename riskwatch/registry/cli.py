"""`riskwatch config check FILE [FILE...]`: validate site registries, print every problem, exit 1 if any."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from riskwatch.registry.loader import load_registry
from riskwatch.registry.registry import RegistryError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate site registry files (defaults, set points, references)")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE", help="registry YAML file")


def run(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            registry = load_registry(path)
        except RegistryError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"{path}: FAILED, {len(exc.problems)} problem(s)", file=sys.stderr)
            continue
        industries = Counter(site.industry for site in registry.sites.values())
        mix = ", ".join(f"{n} {name}" for name, n in industries.items())
        print(
            f"{path}: ok: {len(registry.regions)} regions, {len(registry.sites)} sites ({mix}), "
            f"{len(registry.units)} hazard sources, {len(registry.gateways)} gateways, "
            f"{len(registry.sensors)} sensors; fingerprint {registry.fingerprint}"
        )
    return 1 if failed else 0
