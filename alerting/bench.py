"""Alerting store throughput: transitions applied per second, one commit per Kafka batch (as the service
does) against the baseline of one commit (fsync) per transition, both measured in this run."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from alerting.config import parse_config
from alerting.lifecycle.manager import AlertManager
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from riskwatch.levels import Colour
from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id

_CONFIG = {
    "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
    "receivers": {"ops": {"channels": ["hook"]}},
    "route": {"receiver": "ops", "min_colour": "yellow"},
}
_COLOURS = [Colour.BLUE, Colour.YELLOW, Colour.ORANGE, Colour.RED, Colour.NORMAL]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transitions", type=int, default=2000, help="transitions per measurement")
    parser.add_argument("--batch", type=int, default=500, help="transitions per commit (Kafka batch)")


def _transitions(n: int, offset: float) -> list[Transition]:
    out = []
    for i in range(n):
        colour = _COLOURS[i % len(_COLOURS)]
        unit, at = f"U{i // len(_COLOURS)}", offset + i * 0.001
        item = CauseItem("GT-1", "flammable_gas", "l2_high", 55.0, 50.0, "%LEL", at)
        out.append(Transition(transition_id("warning", "unit", unit, colour.label, at), "warning", "unit", unit,
                              "normal", colour.label, at, Cause("bench", (item,)), site=f"S{i % 50}",
                              region="R1", unit=unit))  # fmt: skip
    return out


def _rate(db: Path, transitions: list[Transition], batch: int) -> float:
    cfg = parse_config(_CONFIG, "bench")
    store = Store(db)
    manager = AlertManager(store, cfg, SiteDirectory({}), time.time)
    start = time.perf_counter()
    for lo in range(0, len(transitions), batch):
        with store.transaction():
            for t in transitions[lo : lo + batch]:
                manager.handle(t)
    elapsed = time.perf_counter() - start
    store.close()
    return len(transitions) / elapsed


def measure(args: argparse.Namespace) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory() as tmp:
        baseline = _rate(Path(tmp) / "one.db", _transitions(args.transitions, 0.0), 1)
        batched = _rate(Path(tmp) / "batch.db", _transitions(args.transitions, 1e6), args.batch)
    print(f"alerting store: {batched:,.0f} transitions/s in batches of {args.batch}, "
          f"{baseline:,.0f}/s one commit each ({batched / baseline:.1f}x)")  # fmt: skip
    return {
        "readings_per_s": round(batched),
        "baseline_readings_per_s": round(baseline),
        "ratio": round(batched / baseline, 2),
        "unit": "transitions",
        "transitions": args.transitions,
        "batch": args.batch,
    }


def run(args: argparse.Namespace) -> int:
    """Also runnable on its own: python -m alerting.bench."""
    measure(args)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    configure(parser)
    raise SystemExit(run(parser.parse_args()))
