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

import contextlib
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
    """The gateways one publisher process owns."""

    sensors: tuple[SimSensor, ...]
    industries: dict[str, str]
    broker: Broker
    seed: int


@dataclass(frozen=True, slots=True)
class Burst:
    """One run of a publisher: from `start_at` (wall time), `rate_hz` per sensor for `duration_s`."""

    rate_hz: float
    start_at: float
    duration_s: float
    faults: tuple[ScheduledFault, ...] = ()  # only faults on the process's sensors


@dataclass(frozen=True, slots=True)
class _Shared:
    """What the publisher processes and the parent share (multiprocessing values, no readings)."""

    sent: Synchronized
    messages: Synchronized  # MQTT telemetry messages published
    acked: Synchronized
    errors: Synchronized
    ready: Synchronized  # processes connected and waiting for their first burst
    finished: Synchronized  # bursts finished (published and acknowledged), over all processes

    @classmethod
    def create(cls, ctx: Any) -> _Shared:
        return cls(*(ctx.Value("q", 0) for _ in range(6)))

    @staticmethod
    def add(value: Any, n: int) -> None:
        with value.get_lock():
            value.value += n

    def begin_run(self) -> None:
        """Count a new run from zero (the publishers are idle between runs, their acks all in)."""
        for value in (self.sent, self.messages, self.acked, self.errors):
            with value.get_lock():
                value.value = 0


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


def _publisher(job: LoadSlice, shared: _Shared, bursts: Any) -> None:
    """A publisher process: connect its gateways once, then publish each burst it is given (None: stop).

    Between bursts the gateways stay connected and quiet: a fleet that disconnected after each run would
    turn every sensor stale and every unit blue, then back, a storm the next run would measure."""
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
    while (burst := bursts.get()) is not None:
        _publish(burst, sims, clients, owner, net, shared)
        for client in clients.values():  # a burst's acks are counted before it is reported finished
            client.wait_acked(DRAIN_TIMEOUT_S)
        shared.add(shared.finished, 1)
    for client in clients.values():
        client.close(timeout=DRAIN_TIMEOUT_S)
    for client in clients.values():
        client.wait_closed(DRAIN_TIMEOUT_S)
    net.stop()


def _publish(
    burst: Burst, sims: list[Simulation], clients: dict[str, GatewayClient], owner: dict[str, Simulation],
    net: NetworkLoop, shared: _Shared,
) -> None:  # fmt: skip
    """Publish one message per gateway per period of the burst, starting and stopping its faults on time."""
    start_at, period = burst.start_at, 1.0 / burst.rate_hz
    starts = sorted(burst.faults, key=lambda f: f.at)
    stops = sorted(burst.faults, key=lambda f: f.at + f.for_s)
    for t, phase in schedule(start_at, period, len(sims), start_at + burst.duration_s):
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
    for f in stops:  # a fault lasting past the burst ends with it: the next burst starts healthy
        if f not in starts:
            owner[f.fault.target].stop_fault(f.fault.kind, f.fault.target)


class Fleet:
    """Publisher processes whose gateways connect once and publish as many runs as they are given.

    `run` publishes one run and counts it to the end; a caller offering several runs (bench capacity's
    rising steps) keeps the fleet connected between them, as a province's gateways stay connected."""

    def __init__(
        self, sensors: Sequence[SimSensor], industries: dict[str, str], broker: Broker, processes: int = 2,
        seed: int = 0,
    ) -> None:  # fmt: skip
        self.jobs = [
            LoadSlice(part, industries, broker, seed + k)
            for k, part in enumerate(split_by_gateway(sensors, processes))
        ]
        self.procs: list[Any] = []
        self.queues: list[Any] = []
        self.bursts = 0

    def __enter__(self) -> Fleet:
        ctx = mp.get_context("spawn")  # no forked paho threads or Kafka sockets in the children
        self.shared = _Shared.create(ctx)
        self.queues = [ctx.Queue() for _ in self.jobs]
        self.procs = [
            ctx.Process(target=_publisher, args=(job, self.shared, q), daemon=True)
            for job, q in zip(self.jobs, self.queues, strict=True)
        ]
        for p in self.procs:
            p.start()
        try:
            _wait_connected(self.procs, self.shared)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc and exc[0] is not None:  # interrupted (Ctrl-C, SIGTERM): the publishers stop now
            for p in self.procs:
                p.terminate()
        for q in self.queues:
            with contextlib.suppress(Exception):
                q.put(None)
        for p in self.procs:
            p.join(timeout=2 * DRAIN_TIMEOUT_S)
            if p.is_alive():
                p.terminate()
        interrupted = bool(exc and exc[0] is not None)
        failed = [p.exitcode for p in self.procs if p.exitcode not in (0, None)]
        self.procs = []
        if failed and not interrupted:  # a publisher that crashed, or hung and had to be terminated
            raise _failed(failed)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def _check_alive(self) -> None:
        dead = [p.exitcode for p in self.procs if not p.is_alive()]
        if dead:
            raise _failed(dead)

    def run(
        self,
        counter: TelemetryCounter,
        rate_hz: float,
        duration_s: float,
        progress: Callable[[LoadResult, dict[str, float]], None] | None = None,
        faults: Sequence[ScheduledFault] = (),
        on_poll: Callable[[], None] | None = None,
    ) -> tuple[LoadResult, float]:
        """Publish for `duration_s` and count arrivals until drained.

        Returns the figures and the wall time publishing started (fault times are relative to it);
        `on_poll` runs between Kafka polls, for callers that read other topics meanwhile.
        """
        if rate_hz <= 0 or duration_s <= 0:
            raise SimulatorError("--rate and --duration must be positive")
        shared = self.shared
        sent, acked, errors = shared.sent, shared.acked, shared.errors
        shared.begin_run()
        counter.begin_run()  # a caller's earlier run (bench capacity's steps) is not this one's
        start_at = time.time() + 0.5
        for job, q in zip(self.jobs, self.queues, strict=True):
            mine = {s.id for s in job.sensors}
            own = tuple(f for f in faults if f.fault.target in mine)
            q.put(Burst(rate_hz, start_at, duration_s, own))
        self.bursts += len(self.jobs)
        result = LoadResult()
        last_t, last_received = time.time(), 0
        while shared.finished.value < self.bursts:
            self._check_alive()
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
        return result, start_at


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
    """Publish from `processes` processes for `duration_s` and count arrivals until drained (one run of
    a `Fleet`; see `Fleet.run`)."""
    with Fleet(sensors, industries, broker, processes, seed) as fleet:
        return fleet.run(counter, rate_hz, duration_s, progress, faults, on_poll)


def _failed(exit_codes: list[int | None]) -> SimulatorError:
    return SimulatorError(
        f"{len(exit_codes)} publisher process(es) failed (exit codes {exit_codes}); see stderr"
    )


def _wait_connected(procs: Sequence[Any], shared: _Shared, timeout_s: float = 300.0) -> None:
    """Wait until every publisher has connected its gateways; a process that died is a clear error."""
    end = time.time() + timeout_s
    while shared.ready.value < len(procs):
        dead = [p.exitcode for p in procs if not p.is_alive()]
        if dead or time.time() > end:
            for p in procs:
                p.terminate()
            why = f"exit codes {dead}" if dead else f"not connected after {timeout_s:.0f} s"
            raise SimulatorError(f"publisher processes failed to start ({why}); see stderr")
        time.sleep(0.05)


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
