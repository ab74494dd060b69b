"""The load generator: many gateways across several processes publishing at a fixed rate, and a Kafka
reader in the parent counting what arrives on `rw.telemetry` (readings, lag, latency percentiles).

Each publisher process owns a slice of the gateways, runs `Simulation`s over their sensors (so the
values are the plants' realistic mix, computed as arrays) and publishes one telemetry message per
gateway per period. Real gateways' clocks are not aligned, so a slice's sites are spread over
`PHASES` evenly spaced moments of the period instead of all publishing on the same instant (which
would make every second one burst, and measure the burst rather than the pipeline). Counters cross
processes through shared integers; nothing per reading crosses. Publishing starts only once every
process has built its simulations and connected its gateways: a process still starting would otherwise
publish the periods it missed in one burst, on a machine already busy with the other processes' start.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from simulators.faults import Fault
from simulators.kafka_watch import TelemetryCounter
from simulators.mqtt_loop import NetworkLoop
from simulators.sensors import SimSensor, SimulatorError
from simulators.simulated_gateway import Broker, GatewayClient, connect_all
from simulators.simulation import Simulation

DRAIN_TIMEOUT_S = 30.0
STALL_S = 20.0  # after publishing, keep counting while Kafka still receives; give up after this long idle
DRAIN_CAP_S = 600.0
PHASES = 10  # publishing moments per period in each process; whole sites share one


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """A fault on one sensor from `at` for `for_s` seconds (seconds since publishing started)."""

    at: float
    for_s: float
    fault: Fault


@dataclass(frozen=True, slots=True)
class LoadSlice:
    """What one publisher process runs."""

    sensors: tuple[SimSensor, ...]
    industries: dict[str, str]
    broker: Broker
    rate_hz: float
    duration_s: float
    seed: int
    faults: tuple[ScheduledFault, ...] = ()  # only faults on this slice's sensors


@dataclass(frozen=True, slots=True)
class _Shared:
    """What the publisher processes and the parent share (multiprocessing values, no readings)."""

    sent: Synchronized
    messages: Synchronized  # MQTT telemetry messages published
    acked: Synchronized
    errors: Synchronized
    ready: Synchronized  # processes connected and waiting for `go`
    start_at: Synchronized  # wall time all processes start, so periods line up
    go: Any  # multiprocessing.Event: start_at is set

    @classmethod
    def create(cls, ctx: Any) -> _Shared:
        return cls(
            ctx.Value("q", 0), ctx.Value("q", 0), ctx.Value("q", 0), ctx.Value("i", 0), ctx.Value("i", 0),
            ctx.Value("d", 0.0),
            ctx.Event(),
        )  # fmt: skip

    @staticmethod
    def add(value: Any, n: int) -> None:
        with value.get_lock():
            value.value += n


@dataclass(slots=True)
class LoadResult:
    """What a load run measured; `lost` counts readings the broker acknowledged but Kafka never got."""

    sent: int = 0
    messages: int = 0  # MQTT telemetry messages published
    acked: int = 0
    received: int = 0
    duplicates: int = 0
    elapsed_s: float = 0.0  # first publish to last arrival in Kafka
    publish_s: float = 0.0  # how long the publishers ran
    latency_p50_s: float = 0.0
    latency_p99_s: float = 0.0
    latency_max_s: float = 0.0
    publish_errors: int = 0
    timeline: list[dict[str, float]] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return max(0, self.acked - self.received)

    @property
    def readings_per_s(self) -> float:
        return self.received / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def messages_per_s(self) -> float:
        """Offered MQTT messages per second of publishing."""
        return self.messages / self.publish_s if self.publish_s > 0 else 0.0


def split_whole(
    sensors: Sequence[SimSensor], parts: int, key: Callable[[SimSensor], Hashable]
) -> list[tuple[SimSensor, ...]]:
    """Deal the groups of sensors with one `key` round-robin to at most `parts` slices, never splitting
    a group (and never making more slices than groups)."""
    groups: dict[Hashable, list[SimSensor]] = {}
    for s in sensors:
        groups.setdefault(key(s), []).append(s)
    slices: list[list[SimSensor]] = [[] for _ in range(max(1, min(parts, len(groups))))]
    for k, group in enumerate(groups.values()):
        slices[k % len(slices)].extend(group)
    return [tuple(s) for s in slices]


def split_by_gateway(sensors: Sequence[SimSensor], parts: int) -> list[tuple[SimSensor, ...]]:
    """Whole gateways to `parts` slices (a gateway never spans two processes)."""
    return split_whole(sensors, parts, lambda s: s.gateway)


def schedule(start_at: float, period: float, phases: int, end: float) -> Iterator[tuple[float, int]]:
    """(time, phase) of every publishing moment before `end`, in time order: phase j of period k is at
    start_at + k * period + j * period / phases."""
    k = 0
    while True:
        for j in range(phases):
            t = start_at + k * period + j * period / phases
            if t >= end:
                return
            yield t, j
        k += 1


def _publisher(job: LoadSlice, shared: _Shared) -> None:
    """A publisher process: connect its gateways, wait for the common start, publish every period until
    the duration ends."""
    sims = [
        Simulation(part, job.industries, seed=job.seed * PHASES + j)
        for j, part in enumerate(split_whole(job.sensors, PHASES, lambda s: s.site))
    ]
    owner = {key: sim for sim in sims for s in sim.sensors for key in (s.id, s.gateway)}

    def on_acked(n: int) -> None:
        shared.add(shared.acked, n)

    net = NetworkLoop(f"load-{job.seed}")  # one thread for all this process's gateways (mqtt_loop.py)
    clients = {
        gw: GatewayClient(site, gw, job.broker, on_acked=on_acked, net=net)
        for sim in sims
        for gw, site in sim.site_of_gateway.items()
    }
    connect_all(list(clients.values()))
    shared.add(shared.ready, 1)
    shared.go.wait()
    start_at = shared.start_at.value
    period = 1.0 / job.rate_hz
    starts = sorted(job.faults, key=lambda f: f.at)
    stops = sorted(job.faults, key=lambda f: f.at + f.for_s)
    for t, phase in schedule(start_at, period, len(sims), start_at + job.duration_s):
        if net.error is not None:
            raise SimulatorError(f"the MQTT network thread failed: {net.error!r}")
        time.sleep(max(0.0, t - time.time()))
        now = time.time()
        while starts and starts[0].at <= now - start_at:
            fault = starts.pop(0).fault
            owner[fault.target].start_fault(fault, now)
        while stops and stops[0].at + stops[0].for_s <= now - start_at:
            done = stops.pop(0).fault
            owner[done.target].stop_fault(done.kind, done.target)
        tick = sims[phase].tick(now, period)  # readings carry the moment they were taken
        n = m = 0
        for batch in tick.batches:
            try:
                clients[batch.gateway].publish_batch(batch)
                n += len(batch)
                m += 1
            except Exception:  # a publish that raised was not sent: count it, never hide it
                shared.add(shared.errors, 1)
        shared.add(shared.sent, n)
        shared.add(shared.messages, m)
    for client in clients.values():
        client.close(timeout=DRAIN_TIMEOUT_S)
    for client in clients.values():
        client.wait_closed(DRAIN_TIMEOUT_S)
    net.stop()


def run_load(
    sensors: Sequence[SimSensor],
    industries: dict[str, str],
    broker: Broker,
    counter: TelemetryCounter,
    rate_hz: float,
    duration_s: float,
    processes: int = 2,
    seed: int = 0,
    progress: Callable[[LoadResult, dict[str, float]], None] | None = None,
    faults: Sequence[ScheduledFault] = (),
    on_poll: Callable[[], None] | None = None,
) -> tuple[LoadResult, float]:
    """Publish from `processes` processes for `duration_s` and count arrivals until drained.

    Returns the figures and the wall time publishing started (fault times are relative to it);
    `on_poll` runs between Kafka polls, for callers that read other topics meanwhile.
    """
    if rate_hz <= 0 or duration_s <= 0:
        raise SimulatorError("--rate and --duration must be positive")
    ctx = mp.get_context("spawn")  # no forked paho threads or Kafka sockets in the children
    shared = _Shared.create(ctx)
    sent, acked, errors = shared.sent, shared.acked, shared.errors
    jobs = []
    for k, part in enumerate(split_by_gateway(sensors, processes)):
        mine = {s.id for s in part}
        own = tuple(f for f in faults if f.fault.target in mine)
        jobs.append(LoadSlice(part, industries, broker, rate_hz, duration_s, seed + k, own))
    counter.begin_run()  # a caller's earlier run (bench capacity's steps) is not this one's
    procs = [ctx.Process(target=_publisher, args=(job, shared), daemon=True) for job in jobs]
    for p in procs:
        p.start()
    start_at = _start_together(procs, shared)
    result = LoadResult()
    last_t, last_received = time.time(), 0
    try:
        while any(p.is_alive() for p in procs):
            counter.poll(0.2)
            if on_poll is not None:
                on_poll()
            now = time.time()
            if now - last_t >= 1.0:
                window = counter.take_window()
                point = {
                    "t": now - start_at,
                    "received_per_s": (counter.readings - last_received) / (now - last_t),
                    "latency_p50_s": window.percentile(50),
                    "latency_p99_s": window.percentile(99),
                    "lag": float(acked.value - counter.readings),
                }
                result.timeline.append(point)
                last_t, last_received = now, counter.readings
                if progress is not None:
                    _fill(result, sent, acked, errors, counter, now - start_at, shared.messages)
                    progress(result, point)
        # A backlog (broker queue, bridge spool) is not loss: wait while readings still arrive.
        cap, last_progress, last_count = time.time() + DRAIN_CAP_S, time.time(), counter.readings
        while counter.readings < acked.value and time.time() < cap and time.time() - last_progress < STALL_S:
            counter.poll(0.2)
            if counter.readings != last_count:
                last_progress, last_count = time.time(), counter.readings
            if on_poll is not None:
                on_poll()
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): the publishers stop now, not at their end
        for p in procs:
            p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=DRAIN_TIMEOUT_S)
            if p.is_alive():
                p.terminate()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    # Sustained rate: everything received over the time from the first publish to the last arrival.
    _fill(
        result,
        sent,
        acked,
        errors,
        counter,
        max(duration_s, counter.last_arrival - start_at),
        shared.messages,
    )
    result.publish_s = duration_s
    if failed:
        raise SimulatorError(f"{len(failed)} publisher process(es) failed (exit codes {failed}); see stderr")
    return result, start_at


def _start_together(procs: Sequence[Any], shared: _Shared, timeout_s: float = 300.0) -> float:
    """Wait until every publisher is connected, then start them all a moment later; the start time."""
    end = time.time() + timeout_s
    while shared.ready.value < len(procs):
        dead = [p.exitcode for p in procs if not p.is_alive()]
        if dead or time.time() > end:
            for p in procs:
                p.terminate()
            why = f"exit codes {dead}" if dead else f"not connected after {timeout_s:.0f} s"
            raise SimulatorError(f"publisher processes failed to start ({why}); see stderr")
        time.sleep(0.05)
    shared.start_at.value = time.time() + 0.5
    shared.go.set()
    return float(shared.start_at.value)


def _fill(
    result: LoadResult, sent: Any, acked: Any, errors: Any, counter: TelemetryCounter, elapsed: float,
    messages: Any,
) -> None:  # fmt: skip
    result.sent, result.acked, result.publish_errors = int(sent.value), int(acked.value), int(errors.value)
    result.messages = int(messages.value)
    result.received, result.duplicates = counter.readings, counter.duplicates
    result.elapsed_s = max(elapsed, 1e-9)
    result.latency_p50_s = counter.histogram.percentile(50)
    result.latency_p99_s = counter.histogram.percentile(99)
    result.latency_max_s = counter.histogram.max


def progress_line(result: LoadResult, point: dict[str, float]) -> str:
    return (
        f"t={point['t']:6.1f}s  sent {result.sent:>12,}  acked {result.acked:>12,}  "
        f"received {result.received:>12,} ({point['received_per_s']:>10,.0f}/s)  lag {int(point['lag']):>9,}  "
        f"latency p50 {point['latency_p50_s'] * 1000:7.1f} ms  p99 {point['latency_p99_s'] * 1000:7.1f} ms"
    )
