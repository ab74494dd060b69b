"""`riskwatch bench capacity`: the highest offered rate the whole path holds, at the province shape.

One pipeline (as `bench e2e` starts it) is offered rising rates: each step runs `--duration` seconds at
`--start-rate` readings per sensor per second, then `--factor` times more, until a step fails the
criterion: reading -> warning p99 under 1 s, every incident warned and alerted, and nothing lost at the end
of the path (sent = evaluated + dead-lettered). `capacity_readings_per_s` is the sustained rate of the
last step that passed; its ratio is against the 200,000 readings/s target (the target wants >= 1.3).
Rates change the poll period, not the shape: each gateway still sends one message per period.

The gateways connect once and stay connected between steps (`simulators.load.Fleet`), as a province's
do: a fleet that disconnected after each step turned every sensor stale and every unit blue and then
back (19,668 sensors and 637 units at once, 20,000 sensors), a storm whose aftermath on a 2-core machine
lasted past the next step's warm-up and made its incidents up to 10 s late. Each step still first
publishes `--warmup` seconds at its rate, unmeasured, with no incidents: the pipeline settles at the new
rate before its incidents are measured.
"""

from __future__ import annotations

import argparse
from typing import Any

from simulators import bench_e2e
from simulators.bench_e2e import E2E, P99_LIMIT_S, TARGET_READINGS_PER_S

HEADROOM = 1.3  # capacity wanted over the target, so a slower or busier machine still holds a province


def configure(parser: argparse.ArgumentParser) -> None:
    bench_e2e.configure(parser)
    parser.set_defaults(duration=60.0, incidents=6)
    parser.add_argument("--start-rate", type=float, default=0.5, help="first step, readings per sensor per s")
    parser.add_argument("--factor", type=float, default=1.25, help="each step offers this much more")
    parser.add_argument("--steps", type=int, default=8, help="at most this many steps")
    parser.add_argument(
        "--warmup", type=float, default=30.0,
        help="seconds each step publishes before its measured --duration (default 30), unmeasured: the "
        "pipeline settles at the step's rate first",
    )  # fmt: skip


def passed(f: dict[str, Any]) -> bool:
    p99 = f.get("latency_p99_s")
    return (
        f["lost"] == 0
        and f["incidents_warned"] == f["incidents"] == f["incidents_alerted"]
        and p99 is not None
        and p99 < P99_LIMIT_S
        and "error_services_died" not in f
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    with E2E(args, "bench-capacity") as run:
        rate = args.start_rate
        for _ in range(args.steps):
            print(f"bench capacity: offering {rate * len(run.sensors):,.0f} readings/s ({rate:g} Hz per sensor, "
                  f"{args.shape} shape) for {args.duration:g} s", flush=True)  # fmt: skip
            figures, _ = run.step(rate, args.duration, args.incidents, warmup_s=args.warmup)
            ok = passed(figures)
            steps.append({"ok": ok, **{k: figures[k] for k in _STEP_FIELDS}})
            print(f"  -> {'held' if ok else 'did not hold'}: {figures['readings_per_s']:,.0f} readings/s, "
                  f"p99 {figures['latency_p99_s']} s, lost {figures['lost']:,}, incidents "
                  f"{figures['incidents_warned']}/{figures['incidents']}; CPU s per million readings "
                  f"{figures['cpu_s_per_million_readings']}, cores busy {figures['machine_cpu_busy']:.0%}",
                  flush=True)  # fmt: skip
            if not ok:
                break
            best = figures
            rate *= args.factor
    capacity = float(best["readings_per_s"]) if best else 0.0
    result = {
        "shape": args.shape,
        "capacity_readings_per_s": capacity,
        "readings_per_s": capacity,
        "baseline_readings_per_s": TARGET_READINGS_PER_S,
        "ratio": round(capacity / TARGET_READINGS_PER_S, 4),
        "headroom_wanted": HEADROOM,
        "steps": steps,
    }
    print(f"\ncapacity {capacity:,.0f} readings/s = {result['ratio']:.2f} x the {TARGET_READINGS_PER_S:,.0f}/s "
          f"target (wanted >= {HEADROOM}); {len(steps)} steps", flush=True)  # fmt: skip
    return result


_STEP_FIELDS = (
    "offered_rate_hz", "offered_readings_per_s", "readings_per_s", "messages_per_s", "sent", "evaluated",
    "dead_lettered", "lost", "latency_p99_s", "latency_by_incident_s", "incidents", "incidents_warned",
    "incidents_alerted",
    "cpu_s_per_million_readings",  # by process: how each one's cost per reading moves with the rate
    "machine_cpu_busy",  # the cores' busy share over the step: near 1, the step was bounded by CPU
)  # fmt: skip
