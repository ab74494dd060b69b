"""Run riskwatch's components as child processes: watch each one, restart it with backoff, and say so.

Used by `riskwatch run` (a small deployment or a pilot on one machine) and by `riskwatch demo`. A child is
watched two ways: its process exit (every component exits non-zero when one of its own threads or tasks
died) and its `/healthz` endpoint (which answers 503 in that case, or stops answering when the process
hangs). A crashed or unhealthy child is restarted after an exponential backoff (1 s doubling to 60 s) that
resets once it has been healthy for a stable period, and every decision is said in one line naming the
child, what happened and what happens next. Children are stopped in reverse start order, by their
recorded pid only (SIGTERM, then SIGKILL after a grace period).

The decisions (`Backoff`, `Child.on_exit`, `Child.on_probe`, ...) are pure and take the time as an
argument; `Supervisor` does the I/O through injectable `spawn`, `probe` and `clock`, so the unit tests
drive it with a fake clock and fake processes. Standard library only (it also runs as the systemd health
check: `python -m deploy.supervisor check URL`).
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from riskwatch.errors import RiskwatchError
from riskwatch.tls import ClientTLS

STOP_GRACE_S = 30.0  # the bridge flushes for up to 30 s on SIGTERM (BridgeSettings.shutdown_timeout_s)

# What a component's exit status means (sysexits.h, and what riskwatch's components use them for).
EXIT_MEANINGS = {
    0: "it stopped on its own",
    1: "an error; see its log",
    2: "bad usage or configuration; see its log",
    70: "an internal thread or task died",
    75: "a temporary failure, e.g. its state could not be restored in time",
}


def describe_exit(code: int) -> str:
    """'exited with status 70 (an internal thread or task died)' or 'was killed by SIGKILL'."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code} ({EXIT_MEANINGS.get(code, 'an error; see its log')})"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the n-th consecutive restart: first_s, doubling, at most max_s. A child healthy for
    stable_s has its count reset, so one crash a day is restarted after first_s every time."""

    first_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    stable_s: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait before restarting after `failures` consecutive failures (1 for the first)."""
        return min(self.max_s, self.first_s * self.factor ** max(0, failures - 1))


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    every_s: float = 1.0  # between probes of one child
    timeout_s: float = 2.0  # one probe's HTTP timeout
    # Consecutive failed probes of a healthy child before it is restarted: about 10 s of 503s or silence.
    # A dead thread or task makes the component exit on its own; this is for one that hangs.
    unhealthy_after: int = 10
    start_timeout_s: float = 120.0  # a child not healthy this long after its start is restarted


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    detail: str  # "200", "503 {...}", "connection refused", ...


def probe_http(url: str, timeout_s: float, cafile: Path | None = None) -> Probe:
    """GET `url`: healthy on a 2xx answer; anything else says why in a few words. An https URL's
    certificate is verified against `cafile` (default: the system's trusted CAs)."""
    try:
        context = ClientTLS(cafile).context() if url.startswith("https:") else None
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as response:
            return Probe(True, str(response.status))
    except urllib.error.HTTPError as err:
        body = b""
        with contextlib.suppress(Exception):
            body = err.read(300)
        text = " ".join(body.decode("utf-8", "replace").split())[:200]
        return Probe(False, f"{url} answered {err.code}" + (f" {text}" if text else ""))
    except (OSError, ValueError, RiskwatchError) as err:
        reason = getattr(err, "reason", err)
        return Probe(False, f"{url} did not answer ({reason})")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One component: how to start it and where it says whether it is healthy."""

    name: str
    argv: list[str]  # the full command line
    env: dict[str, str] = field(default_factory=dict)  # added to the supervisor's environment
    health_url: str = ""  # empty: watched by its process exit only
    cwd: Path | None = None
    health_cafile: Path | None = None  # verifies an https health_url (default: the system's CAs)


class Process(Protocol):
    pid: int

    def poll(self) -> int | None: ...


class State(enum.Enum):
    STARTING = "starting"  # started, not yet healthy
    HEALTHY = "healthy"
    STOPPING = "stopping"  # asked to stop because it was unhealthy; restarted once it exited
    WAITING = "waiting"  # exited; restarted at restart_at
    STOPPED = "stopped"  # the supervisor is shutting down


@dataclass(frozen=True, slots=True)
class Restart:
    """The decision to restart a child: why, and in how long."""

    reason: str
    delay_s: float


@dataclass(slots=True)
class Child:
    """One supervised child and its restart bookkeeping; its methods are the (pure) decisions."""

    spec: ChildSpec
    backoff: Backoff
    health: HealthPolicy
    proc: Process | None = None
    state: State = State.STARTING
    started_at: float = 0.0
    healthy_since: float | None = None
    failures: int = 0  # consecutive failures since it was last stable: the backoff step
    restarts: int = 0  # restarts since the supervisor started
    bad_probes: int = 0
    next_probe_at: float = 0.0
    restart_at: float = 0.0
    kill_at: float = 0.0
    pending: str = ""  # why it is being stopped (STOPPING)

    @property
    def name(self) -> str:
        return self.spec.name

    def started(self, proc: Process, now: float) -> None:
        self.proc, self.state, self.started_at = proc, State.STARTING, now
        self.healthy_since, self.bad_probes, self.next_probe_at, self.pending = None, 0, now, ""

    def on_exit(self, code: int, now: float) -> Restart:
        """The process exited: restart it after the backoff. Also after status 0 when nobody asked it to
        stop: a component is meant to run until stopped, and one gone is the province going dark."""
        self.failures += 1
        reason = self.pending or f"{self.name} {describe_exit(code)}"
        return Restart(reason, self.backoff.delay(self.failures))

    def on_probe(self, probe: Probe, now: float) -> tuple[str, str]:
        """(a line to say, or "";  why to stop it, or ""). A healthy answer resets the count of failed
        probes (and, once healthy for stable_s, the backoff); a healthy child failing `unhealthy_after`
        probes in a row, or one not healthy within start_timeout_s of its start, is to be stopped and
        restarted."""
        self.next_probe_at = now + self.health.every_s
        if probe.ok:
            self.bad_probes = 0
            if self.state is State.STARTING:
                self.state, self.healthy_since = State.HEALTHY, now
                again = " again" if self.restarts else ""
                return f"{self.name} is healthy{again} (pid {self.proc.pid if self.proc else '?'})", ""
            if self.healthy_since is not None and now - self.healthy_since >= self.backoff.stable_s:
                self.failures = 0
            return "", ""
        if self.state is State.STARTING:
            if now - self.started_at >= self.health.start_timeout_s:
                limit = self.health.start_timeout_s
                return "", f"{self.name} did not become healthy within {limit:g} s ({probe.detail})"
            return "", ""
        self.bad_probes += 1
        if self.bad_probes >= self.health.unhealthy_after:
            return "", f"{self.name} is unhealthy: {probe.detail} ({self.bad_probes} checks in a row)"
        return "", ""

    def on_running(self, now: float) -> None:
        """No health endpoint: running counts as healthy once it has lasted a second."""
        if self.state is State.STARTING and now - self.started_at >= 1.0:
            self.state, self.healthy_since = State.HEALTHY, now
        elif self.healthy_since is not None and now - self.healthy_since >= self.backoff.stable_s:
            self.failures = 0


def spawn(spec: ChildSpec, run_dir: Path) -> subprocess.Popen[bytes]:
    """Start `spec` with its output appended to run_dir/logs/NAME.log and its pid in run_dir/pids/."""
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    with (run_dir / "logs" / f"{spec.name}.log").open("ab") as out:
        proc = subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env={**os.environ, **spec.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only, which stops children in order
        )
    (run_dir / "pids" / f"{spec.name}.pid").write_text(str(proc.pid))
    return proc


def terminate(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> int | None:
    """SIGTERM by pid, SIGKILL after `grace_s`; the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.poll()


def say_to(stream: TextIO | None, log_file: Path | None = None) -> Callable[[str], None]:
    """A `say` that prints timestamped lines to `stream` (None: nowhere) and appends them to `log_file`."""
    lock = threading.Lock()

    def say(text: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
        with lock:
            if stream is not None:
                print(line, file=stream, flush=True)
            if log_file is not None:
                log_file.parent.mkdir(parents=True, exist_ok=True)
                with log_file.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")

    return say


class Supervisor:
    """Starts children, watches them (`tick`, or `run` in a loop), restarts them with backoff and stops
    them all in reverse start order."""

    def __init__(
        self,
        run_dir: Path,
        say: Callable[[str], None],
        backoff: Backoff = Backoff(),
        health: HealthPolicy = HealthPolicy(),
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[[ChildSpec, Path], Process] = spawn,
        probe: Callable[[str, float, Path | None], Probe] = probe_http,
        signal_child: Callable[[int, int], None] = os.kill,
        on_start: Callable[[Child], None] | None = None,
        stop_grace_s: float = STOP_GRACE_S,
        terminate: Callable[[Process, float], int | None] = terminate,  # type: ignore[assignment]
    ) -> None:
        self.run_dir = run_dir
        self.say = say
        self.backoff, self.health = backoff, health
        self.clock, self._spawn, self._probe, self._signal = clock, spawn, probe, signal_child
        self.on_start = on_start
        self._terminate = terminate
        self.stop_grace_s = stop_grace_s
        self.children: dict[str, Child] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, spec: ChildSpec) -> Child:
        """Start `spec` now and supervise it from then on."""
        with self._lock:
            if spec.name in self.children and self.children[spec.name].state is not State.STOPPED:
                raise ValueError(f"{spec.name} is already supervised")
            child = Child(spec, self.backoff, self.health)
            self.children[spec.name] = child
            self._start(child)
            return child

    def _start(self, child: Child) -> None:
        proc = self._spawn(child.spec, self.run_dir)
        child.started(proc, self.clock())
        if self.on_start is not None:
            self.on_start(child)

    def _restart_later(self, child: Child, decision: Restart) -> None:
        child.restarts += 1
        child.state, child.restart_at, child.pending = State.WAITING, self.clock() + decision.delay_s, ""
        self.say(
            f"{decision.reason}; restarting in {decision.delay_s:g} s (restart {child.restarts}); "
            f"log {self.run_dir / 'logs' / (child.name + '.log')}"
        )

    def _stop_unhealthy(self, child: Child, reason: str) -> None:
        """SIGTERM now, SIGKILL if it has not exited within the grace; restarted once it has exited."""
        assert child.proc is not None
        child.state, child.pending = State.STOPPING, reason
        child.kill_at = self.clock() + min(self.stop_grace_s, 10.0)
        self.say(f"{reason}; stopping it (pid {child.proc.pid})")
        with contextlib.suppress(ProcessLookupError):
            self._signal(child.proc.pid, signal.SIGTERM)

    def tick(self) -> None:
        """One round over the children: exits, due probes, due restarts, overdue kills."""
        with self._lock:
            for child in list(self.children.values()):
                if self._stop.is_set():
                    return
                self._tick(child)

    def _tick(self, child: Child) -> None:
        now = self.clock()
        proc = child.proc
        if child.state in (State.STARTING, State.HEALTHY, State.STOPPING) and proc is not None:
            code = proc.poll()
            if code is not None:
                self._restart_later(child, child.on_exit(code, now))
                return
            if child.state is State.STOPPING:
                if now >= child.kill_at:
                    with contextlib.suppress(ProcessLookupError):
                        self._signal(proc.pid, signal.SIGKILL)
                return
            if not child.spec.health_url:
                child.on_running(now)
                if child.state is State.HEALTHY and child.healthy_since == now:
                    self.say(f"{child.name} is running (pid {proc.pid})")
            elif now >= child.next_probe_at:
                line, stop = child.on_probe(
                    self._probe(child.spec.health_url, self.health.timeout_s, child.spec.health_cafile), now
                )
                if line:
                    self.say(line)
                if stop:
                    self._stop_unhealthy(child, stop)
        elif child.state is State.WAITING and now >= child.restart_at:
            try:
                self._start(child)
            except OSError as exc:  # e.g. the interpreter or a folder went away: try again later
                child.failures += 1
                self._restart_later(child, Restart(f"{child.name} could not be started ({exc})",
                                                   self.backoff.delay(child.failures)))  # fmt: skip
                return
            self.say(
                f"{child.name} restarted (pid {child.proc.pid if child.proc else '?'}, restart {child.restarts})"
            )

    def run(self, stop: threading.Event, every_s: float = 0.25) -> None:
        """Tick until `stop` is set (then the caller stops the children with `stop_all`)."""
        while not stop.is_set() and not self._stop.is_set():
            self.tick()
            stop.wait(every_s)

    def start_thread(self) -> threading.Thread:
        """Supervise in a background thread (the demo); `stop_all` ends it."""
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="supervisor", daemon=True)
        self._thread.start()
        return self._thread

    def stop_all(self) -> None:
        """Stop every child in reverse start order, by its recorded pid; remove its pid file."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        with self._lock:
            for child in reversed(list(self.children.values())):
                proc = child.proc
                child.state = State.STOPPED
                if proc is not None:
                    if proc.poll() is None:
                        self.say(f"stopping {child.name} (pid {proc.pid})")
                    code = self._terminate(proc, self.stop_grace_s)
                    self.say(f"{child.name} stopped (status {code})")
                with contextlib.suppress(FileNotFoundError):
                    (self.run_dir / "pids" / f"{child.name}.pid").unlink()


# The port each component answers /healthz on, as named in deploy/systemd/riskwatch.env.
HEALTH_PORT_ENV = {
    "bridge": "RISKWATCH_BRIDGE_METRICS_PORT",
    "worker": "RISKWATCH_WORKER_PORT",
    "historian": "RISKWATCH_HISTORIAN_METRICS_PORT",
    "alerting": "RISKWATCH_ALERTING_PORT",
}
# A component whose certificate variable is set serves /healthz over HTTPS, verified against $RISKWATCH_CA.
HEALTH_TLS_CERT_ENV = {"alerting": "RISKWATCH_ALERTING_TLS_CERTFILE"}
CA_ENV = "RISKWATCH_CA"


def component_url(name: str, environ: dict[str, str], scheme: str = "http") -> str:
    """SCHEME://127.0.0.1:PORT/healthz of a component, its port from the environment (the units' env file)."""
    if name not in HEALTH_PORT_ENV:
        raise SystemExit(f"unknown component {name!r}; expected one of {', '.join(HEALTH_PORT_ENV)}")
    port = environ.get(HEALTH_PORT_ENV[name], "")
    if not port.isdigit():
        raise SystemExit(f"${HEALTH_PORT_ENV[name]} is not set to a port (got {port!r})")
    return f"{scheme}://127.0.0.1:{port}/healthz"


def check(
    urls: Sequence[str],
    tries: int,
    every_s: float,
    timeout_s: float,
    wait_s: float,
    cafile: Path | None = None,
) -> str:
    """The systemd health check: "" when every URL is healthy, else why not. With `wait_s`, wait that
    long for health (ExecStartPost: a unit counts as started only once healthy); otherwise unhealthy only
    after `tries` failed probes `every_s` apart, so one slow answer does not restart a component."""
    deadline = time.monotonic() + wait_s
    for url in urls:
        failed = 0
        while True:
            probe = probe_http(url, timeout_s, cafile)
            if probe.ok:
                break
            failed += 1
            if (wait_s and time.monotonic() >= deadline) or (not wait_s and failed >= tries):
                return f"{probe.detail} ({failed} checks)"
            time.sleep(every_s)
    return ""


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.supervisor", description="health checks for the systemd units"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="exit 0 when every URL answers 2xx, else say why and exit 1")
    c.add_argument("urls", nargs="*", metavar="URL")
    c.add_argument(
        "--component",
        choices=sorted(HEALTH_PORT_ENV),
        help="check this component's /healthz, its port from the environment (see HEALTH_PORT_ENV)",
    )
    c.add_argument(
        "--cafile",
        type=Path,
        metavar="PEM",
        help=f"CA of an https URL's certificate (default: ${CA_ENV} for a --component serving HTTPS, else "
        "the system's trusted CAs)",
    )
    c.add_argument("--tries", type=int, default=3, help="failed probes before unhealthy (default 3)")
    c.add_argument("--every", type=float, default=5.0, help="seconds between probes (default 5)")
    c.add_argument("--timeout", type=float, default=5.0, help="one probe's timeout (default 5 s)")
    c.add_argument("--wait", type=float, default=0.0, help="wait up to this long for health (start-up)")
    c.add_argument(
        "--restart", metavar="UNIT", help="when unhealthy, `systemctl restart --no-block UNIT` and say so"
    )
    args = parser.parse_args(argv)
    urls = list(args.urls)
    if args.component:
        env = dict(os.environ if environ is None else environ)
        https = bool(env.get(HEALTH_TLS_CERT_ENV.get(args.component, ""), ""))
        urls.append(component_url(args.component, env, "https" if https else "http"))
        if https and args.cafile is None and env.get(CA_ENV):
            args.cafile = Path(env[CA_ENV])
    if not urls:
        parser.error("give a URL or --component")
    why = check(urls, args.tries, args.every, args.timeout, args.wait, args.cafile)
    if not why:
        return 0
    print(f"unhealthy: {why}", file=sys.stderr, flush=True)
    if args.restart:
        print(f"restarting {args.restart}", file=sys.stderr, flush=True)
        subprocess.run(["systemctl", "restart", "--no-block", args.restart], check=False)
    return 1


if __name__ == "__main__":
    sys.exit(main())
