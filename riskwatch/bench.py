"""`riskwatch bench [NAME]`: run one benchmark, or all of them with one summary table.

Each benchmark lives in its component and exposes:

    def configure(parser: argparse.ArgumentParser) -> None
    def measure(args: argparse.Namespace) -> dict[str, float | int | str]

`measure` prints its own progress and returns at least `readings_per_s`, `baseline_readings_per_s`
and `ratio`. Benchmarks compare against a baseline measured in the same run, because machines are
shared and noisy: absolute figures drift, ratios hold.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from types import FrameType

import orjson

from riskwatch.cli import load_command

BENCHMARKS: dict[str, str] = {
    "engine": "processors.bench_engine",
    "bridge": "ingest.bench",
    "processors": "processors.bench",
    "e2e": "simulators.bench_e2e",
    "capacity": "simulators.bench_capacity",
    "scale": "processors.bench_scale",
    "bulletin": "alerting.reports.bench",
}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME")
    for name, module_name in BENCHMARKS.items():
        bench_parser = sub.add_parser(name, help=f"the {name} benchmark")
        bench_parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
        bench_parser.set_defaults(_module=module_name)
        try:
            load_command(module_name).configure(bench_parser)
        except Exception as exc:  # a component not built yet must not hide the others
            bench_parser.set_defaults(_unavailable=str(exc))
    parser.add_argument("--json", type=Path, help="write all figures to this JSON file")


def _run_one(name: str, args: argparse.Namespace) -> dict[str, object]:
    if getattr(args, "_unavailable", None):
        return {"benchmark": name, "error": args._unavailable}
    module = load_command(BENCHMARKS[name])
    result = dict(module.measure(args))  # type: ignore[attr-defined]
    result["benchmark"] = name
    return result


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    # Benchmarks start stacks and pipelines and stop them in `finally`/`with` blocks: a SIGTERM (`timeout`,
    # a cancelled CI job) must unwind like Ctrl-C does, not leave a worker, bridge and brokers running.
    signal.signal(signal.SIGTERM, _interrupt)
    if args.benchmark:
        results = [_run_one(args.benchmark, args)]
    else:
        results = []
        for name in BENCHMARKS:
            parser = argparse.ArgumentParser()
            configure(parser)
            results.append(_run_one(name, parser.parse_args([name])))
    _print_table(results)
    if args.json:
        payload = results[0] if args.benchmark else results
        args.json.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    return 0 if all("error" not in r for r in results) else 1


def _print_table(results: list[dict[str, object]]) -> None:
    print(f"\n{'benchmark':<12}{'readings/s':>14}{'baseline/s':>14}{'ratio':>9}")
    for r in results:
        if "error" in r:
            print(f"{r['benchmark']:<12}  error: {r['error']}")
            continue
        print(
            f"{r['benchmark']:<12}{float(r['readings_per_s']):>14,.0f}"  # type: ignore[arg-type]
            f"{float(r['baseline_readings_per_s']):>14,.0f}{float(r['ratio']):>9.1f}"  # type: ignore[arg-type]
        )
