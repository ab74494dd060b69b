"""`riskwatch simulate`: run the plants of a registry, a scenario (optionally checked), or the load generator.

    riskwatch simulate [--registry FILE] [--duration S]            plants in real time, until Ctrl-C
    riskwatch simulate --scenario FILE [--check]                    timed injections; --check judges rw.warnings
    riskwatch simulate --load --sensors N --rate HZ --duration S    load generator with a progress line

MQTT and Kafka addresses and the gateway accounts come from the local stack (`riskwatch stack up`,
folder `--stack-home`); `--passwords FILE` (JSON gateway -> password) and `--mqtt`/`--kafka` point
it at another deployment instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import orjson

from riskwatch.clock import Clock, add_clock_argument, clock_of, real_seconds
from riskwatch.kafka_access import KafkaAccess, kafka_option_help
from riskwatch.paths import home_dir
from riskwatch.tls import ClientTLS
from riskwatch.topics import Topics
from simulators.sensors import SimulatorError
from simulators.simulated_gateway import Broker

SCENARIOS = Path(__file__).parent / "scenarios"
DEFAULT_REGISTRY = SCENARIOS / "registry.yaml"


def configure(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--scenario", type=Path, help="scenario YAML (see simulators/scenarios/)")
    mode.add_argument("--load", action="store_true", help="run the load generator")
    parser.add_argument(
        "--check", action="store_true", help="with --scenario: judge rw.warnings, exit 1 on misses"
    )
    parser.add_argument(
        "--registry", type=Path, help=f"site registry (default: {DEFAULT_REGISTRY.name} shipped here)"
    )
    parser.add_argument("--duration", type=float, help="seconds to run (plants: until Ctrl-C; load: 30)")
    parser.add_argument("--rate", type=float, default=1.0, help="readings per sensor per second (default 1)")
    parser.add_argument(
        "--sensors", type=int, default=10_000, help="load: number of sensors (default 10,000)"
    )
    from simulators.bench_e2e import add_shape_options

    add_shape_options(parser)
    parser.add_argument("--processes", type=int, default=2, help="load: publisher processes (default 2)")
    parser.add_argument("--registry-out", type=Path, help="load: where to write the synthetic registry")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the plants (default 0)")
    parser.add_argument("--stack-home", type=Path, help="local stack folder (default .riskwatch/stack)")
    parser.add_argument("--mqtt", help="HOST:PORT of the MQTT broker (default: the local stack's)")
    parser.add_argument("--kafka", help=kafka_option_help("tools") + " (default: the local stack's)")
    parser.add_argument(
        "--mqtt-cafile",
        type=Path,
        metavar="PEM",
        help="CA of the MQTT broker's certificate (default: the local stack's CA; with --mqtt, the "
        "system's trusted CAs)",
    )
    parser.add_argument("--passwords", type=Path, help="JSON file gateway id -> MQTT password")
    parser.add_argument("--topic-prefix", default="rw", help="Kafka topic prefix (default rw)")
    add_clock_argument(
        parser,
        "stamp and pace on the simulated clock the pipeline runs on (the same setting); a scenario or "
        "the plants start at its ORIGIN",
    )


def _stack(args: argparse.Namespace) -> Any:
    from deploy.stack import Stack

    return Stack(args.stack_home or home_dir() / "stack")


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SimulatorError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def connect_info(args: argparse.Namespace, gateways: list[tuple[str, str]]) -> tuple[Broker, KafkaAccess]:
    """The broker with a password for each (site, gateway), and Kafka with the tools account (from the
    environment when --kafka is given, else the local stack's)."""
    # Any: the stack is needed (and so not None) exactly where a flag below was not given.
    stack: Any = None if (args.mqtt and args.kafka and args.passwords) else _stack(args)
    info: Any = stack.info() if stack is not None else None
    if args.passwords:
        passwords = orjson.loads(args.passwords.read_bytes())
        missing = [gw for _, gw in gateways if gw not in passwords]
        if missing:
            raise SimulatorError(
                f"{args.passwords} has no password for {len(missing)} gateways, e.g. {missing[0]}"
            )
    else:
        passwords = stack.add_gateways(gateways)  # creates the accounts that do not exist yet
    host, port = _host_port(args.mqtt) if args.mqtt else (info.mqtt_host, info.mqtt_port)
    cafile = args.mqtt_cafile or (None if args.mqtt else info.cafile)
    kafka = KafkaAccess.from_env(args.kafka, "tools") if args.kafka else info.kafka("tools")
    return Broker(host, port, dict(passwords), ClientTLS(cafile)), kafka


def load_registry(path: Path) -> Any:
    from riskwatch.registry import load_registry as load

    return load(path)


def run(args: argparse.Namespace) -> int:
    if args.load:
        return _run_load(args)
    if args.scenario:
        return _run_scenario(args)
    return _run_plants(args)


def _clock(args: argparse.Namespace) -> Clock:
    """Real time, or the simulated clock once it reaches its origin (scenario second 0 is the ORIGIN)."""
    if args.clock is None:
        return time.time
    clock = clock_of(args.clock)
    wait = real_seconds(clock, args.clock.origin - clock())
    if wait > 0:
        print(f"waiting {wait:.0f} s for the simulated clock to reach {args.clock}", flush=True)
        time.sleep(wait)
    return clock


def _run_plants(args: argparse.Namespace) -> int:
    from simulators.scenarios.model import Scenario
    from simulators.scenarios.runner import ScenarioRunner, scope_of
    from simulators.simulation import Simulation

    registry = load_registry(args.registry or DEFAULT_REGISTRY)
    sim = Simulation.from_registry(registry, seed=args.seed)
    broker, _ = connect_info(args, [(g.site, g.id) for g in registry.gateways.values()])
    forever = Scenario(name="plants", duration_s=args.duration or 10**9, tick_s=1.0 / args.rate)
    regions = {s.id: s.region for s in registry.sites.values()}
    print(f"simulating {len(sim.sensors)} sensors at {len(sim.plants)} sites; Ctrl-C stops", flush=True)
    record = ScenarioRunner(forever, sim, broker, None, scope_of(sim, regions), clock=_clock(args)).run()
    print(f"sent {record.readings:,} readings in {record.messages:,} messages")
    return 0


def _run_scenario(args: argparse.Namespace) -> int:
    from simulators.kafka_watch import TopicReader, TransitionReader
    from simulators.scenarios.checker import check, timeline
    from simulators.scenarios.model import load_scenario
    from simulators.scenarios.runner import ScenarioRunner, scope_of, validate_targets
    from simulators.simulation import Simulation

    scenario = load_scenario(args.scenario)
    registry_path = args.registry or scenario.registry_path()
    registry = load_registry(registry_path)
    sim = Simulation.from_registry(registry, seed=scenario.seed, speed=scenario.speed)
    validate_targets(sim, scenario)  # unknown sites, units, sensors, gateways fail before anything runs
    broker, kafka = connect_info(args, [(g.site, g.id) for g in registry.gateways.values()])
    reader = TransitionReader(TopicReader(kafka, Topics(args.topic_prefix).warnings)) if args.check else None
    regions = {s.id: s.region for s in registry.sites.values()}
    scope = scope_of(sim, regions)
    print(f"scenario {scenario.name}: {scenario.duration_s:g} s, registry {registry_path}", flush=True)
    try:
        record = ScenarioRunner(
            scenario, sim, broker, reader, scope, log=lambda s: print(s, flush=True), clock=_clock(args)
        ).run()
    finally:
        if reader is not None:
            reader.reader.close()
    print(f"\nsent {record.readings:,} readings in {record.messages:,} messages")
    if not args.check:
        return 0
    print("\ntimeline:")
    for line in timeline(record.applied, record.seen, scope):
        print(line)
    outcomes = check(scenario, record.seen, scope)
    print("\nexpectations:")
    for o in outcomes:
        print(f"  {'ok  ' if o.ok else 'FAIL'}  {o.text}")
    failed = [o for o in outcomes if not o.ok]
    print(f"\n{scenario.name}: {'PASS' if not failed else f'FAIL ({len(failed)} unmet)'}")
    return 1 if failed else 0


def _run_load(args: argparse.Namespace) -> int:
    from simulators import synthetic
    from simulators.kafka_watch import TelemetryCounter, TopicReader
    from simulators.load import progress_line, run_load

    if args.registry:
        from simulators.sensors import from_registry

        registry = load_registry(args.registry)
        sensors = from_registry(registry)
        industries = {s.id: s.industry for s in registry.sites.values()}
    else:
        doc = synthetic.shaped_doc(args.shape, args.sensors, args.enterprises, args.sensors_per_gateway)
        out = args.registry_out or home_dir() / f"load-registry-{args.shape}-{args.sensors}.json"
        synthetic.write_registry(doc, out)
        print(
            f"synthetic registry ({args.shape} shape) of {args.sensors:,} sensors at {len(doc['sites']):,} sites "
            f"written to {out}; run the bridge and the worker with it",
            flush=True,
        )
        sensors, industries = synthetic.sim_sensors(doc, out)
    gateways = sorted({(s.site, s.gateway) for s in sensors})
    broker, kafka = connect_info(args, gateways)
    counter = TelemetryCounter(TopicReader(kafka, Topics(args.topic_prefix).telemetry), sites=industries)
    try:
        result, _ = run_load(
            sensors,
            industries,
            broker,
            counter,
            args.rate,
            args.duration or 30.0,
            args.processes,
            args.seed,
            progress=lambda r, p: print(progress_line(r, p), flush=True),
        )
    finally:
        counter.reader.close()
    print(
        f"\nsent {result.sent:,} in {result.messages:,} messages ({result.messages_per_s:,.0f}/s)  acked {result.acked:,}  received {result.received:,}  lost {result.lost:,}  "
        f"duplicates {result.duplicates:,}  {result.readings_per_s:,.0f} readings/s  "
        f"latency p50 {result.latency_p50_s:.3f} s  p99 {result.latency_p99_s:.3f} s  max {result.latency_max_s:.3f} s"
    )
    return 0 if result.lost == 0 and result.publish_errors == 0 else 1
