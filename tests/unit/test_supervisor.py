"""The supervisor's decisions (deploy/supervisor.py) with a fake clock and fake processes: backoff, restart
on exit and on failed health checks, what it says, the stable-period reset, and the stop order."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deploy.supervisor import (
    Backoff,
    ChildSpec,
    HealthPolicy,
    Probe,
    State,
    Supervisor,
    describe_exit,
    main,
    spawn,
    terminate,
)


def test_backoff_doubles_from_one_second_to_sixty() -> None:
    b = Backoff()
    assert [b.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert Backoff(max_s=10).delay(20) == 10


def test_exit_statuses_are_explained() -> None:
    assert describe_exit(70) == "exited with status 70 (an internal thread or task died)"
    assert describe_exit(75).startswith("exited with status 75 (a temporary failure")
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with status 3 (an error; see its log)"


class FakeProc:
    pids = iter(range(1000, 10**6))

    def __init__(self) -> None:
        self.pid = next(FakeProc.pids)
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code


class World:
    """A fake clock, processes and health endpoints for a Supervisor."""

    def __init__(self, tmp_path: Path, **kw: object) -> None:
        self.now = 0.0
        self.lines: list[str] = []
        self.procs: dict[str, list[FakeProc]] = {}
        self.health: dict[str, Probe] = {}
        self.signals: list[tuple[int, int]] = []
        self.terminated: list[int] = []
        self.sup = Supervisor(
            tmp_path,
            self.lines.append,
            clock=lambda: self.now,
            spawn=self._spawn,
            probe=lambda url, timeout, cafile: self.health.get(
                url, Probe(False, f"{url} did not answer (refused)")
            ),
            signal_child=lambda pid, sig: self.signals.append((pid, sig)),
            terminate=self._terminate,
            **kw,  # type: ignore[arg-type]
        )

    def _spawn(self, spec: ChildSpec, run_dir: Path) -> FakeProc:
        proc = FakeProc()
        self.procs.setdefault(spec.name, []).append(proc)
        return proc

    def _terminate(self, proc: FakeProc, grace: float) -> int:
        self.terminated.append(proc.pid)
        proc.code = 0
        return 0

    def add(self, name: str, url: str = "") -> None:
        self.sup.add(ChildSpec(name, ["x"], health_url=url))

    def run_for(self, seconds: float, step: float = 0.25) -> None:
        end = self.now + seconds
        while self.now < end:
            self.sup.tick()
            self.now += step

    def proc(self, name: str) -> FakeProc:
        return self.procs[name][-1]


def test_a_crashed_child_is_restarted_after_the_backoff_and_the_log_says_why(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.health["h/worker"] = Probe(True, "200")
    w.add("worker", "h/worker")
    w.run_for(2)
    assert w.sup.children["worker"].state is State.HEALTHY
    first = w.proc("worker")
    for restart, delay in ((1, 1), (2, 2), (3, 4)):
        w.proc("worker").code = 70
        w.sup.tick()
        assert w.lines[-1].startswith(
            f"worker exited with status 70 (an internal thread or task died); restarting in {delay} s "
            f"(restart {restart})"
        ), w.lines[-1]
        w.run_for(delay - 0.5)
        assert len(w.procs["worker"]) == restart  # not before the delay
        w.run_for(1.0)
        assert len(w.procs["worker"]) == restart + 1
        assert f"worker restarted (pid {w.proc('worker').pid}, restart {restart})" in w.lines
        assert f"worker is healthy again (pid {w.proc('worker').pid})" in w.lines
    assert w.proc("worker") is not first


def test_backoff_resets_after_a_stable_period(tmp_path: Path) -> None:
    w = World(tmp_path, backoff=Backoff(stable_s=60))
    w.health["h"] = Probe(True, "200")
    w.add("bridge", "h")
    w.run_for(1)
    for _ in range(3):
        w.proc("bridge").code = -9
        w.run_for(10)
    assert w.sup.children["bridge"].failures == 3
    w.run_for(61)  # healthy for more than the stable period
    w.proc("bridge").code = -9
    w.sup.tick()
    assert w.lines[-1].startswith("bridge was killed by SIGKILL; restarting in 1 s (restart 4)"), w.lines[-1]


def test_an_unhealthy_child_is_stopped_and_restarted_after_three_failed_checks(tmp_path: Path) -> None:
    w = World(tmp_path, health=HealthPolicy(every_s=1.0, unhealthy_after=3))
    w.health["h"] = Probe(True, "200")
    w.add("alerting", "h")
    w.run_for(1)
    w.health["h"] = Probe(False, 'h answered 503 {"ok": false}')
    w.run_for(2)  # two failed checks: not yet
    assert not w.signals
    w.run_for(1)
    pid = w.proc("alerting").pid
    assert w.signals == [(pid, signal.SIGTERM)]
    assert w.lines[-1] == (
        f'alerting is unhealthy: h answered 503 {{"ok": false}} (3 checks in a row); stopping it (pid {pid})'
    )
    w.run_for(11)  # it ignores SIGTERM: killed after the grace
    assert (pid, signal.SIGKILL) in w.signals
    w.proc("alerting").code = -9
    w.health["h"] = Probe(True, "200")
    w.sup.tick()
    assert w.lines[-1].startswith(
        'alerting is unhealthy: h answered 503 {"ok": false} (3 checks in a row); restarting in 1 s (restart 1)'
    )
    w.run_for(2)
    assert len(w.procs["alerting"]) == 2 and w.sup.children["alerting"].state is State.HEALTHY


def test_one_failed_check_between_good_ones_restarts_nothing(tmp_path: Path) -> None:
    w = World(tmp_path, health=HealthPolicy(every_s=1.0, unhealthy_after=3))
    w.health["h"] = Probe(True, "200")
    w.add("worker", "h")
    for _ in range(5):
        w.run_for(1)
        w.health["h"] = Probe(False, "h did not answer (timed out)")
        w.run_for(2)
        w.health["h"] = Probe(True, "200")
    assert not w.signals and len(w.procs["worker"]) == 1


def test_a_child_never_healthy_is_restarted_after_the_start_timeout(tmp_path: Path) -> None:
    w = World(tmp_path, health=HealthPolicy(start_timeout_s=30))
    w.add("worker", "h")  # refused forever
    w.run_for(29)
    assert not w.signals
    w.run_for(2)
    assert (
        w.signals and "worker did not become healthy within 30 s (h did not answer (refused))" in w.lines[-1]
    )


def test_a_clean_exit_nobody_asked_for_is_restarted_too(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add("bridge")  # no health endpoint: watched by its exit
    w.run_for(2)
    w.proc("bridge").code = 0
    w.sup.tick()
    assert w.lines[-1].startswith("bridge exited with status 0 (it stopped on its own); restarting in 1 s")


def test_stop_all_stops_in_reverse_start_order_and_restarts_nothing(tmp_path: Path) -> None:
    w = World(tmp_path)
    for name in ("bridge", "worker", "alerting"):
        w.add(name)
    order = [w.proc(n).pid for n in ("alerting", "worker", "bridge")]
    w.sup.stop_all()
    assert w.terminated == order
    assert [line for line in w.lines if line.endswith("stopped (status 0)")] == [
        "alerting stopped (status 0)",
        "worker stopped (status 0)",
        "bridge stopped (status 0)",
    ]
    w.run_for(5)
    assert all(len(p) == 1 for p in w.procs.values())


def test_real_children_are_spawned_with_pid_files_and_stopped_by_pid(tmp_path: Path) -> None:
    lines: list[str] = []
    sup = Supervisor(tmp_path, lines.append, backoff=Backoff(first_s=0.1), stop_grace_s=5)
    sleeper = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    child = sup.add(ChildSpec("sleeper", sleeper))
    pid = child.proc.pid
    assert (tmp_path / "pids" / "sleeper.pid").read_text() == str(pid)
    stop = threading.Event()
    thread = threading.Thread(target=sup.run, args=(stop,))
    thread.start()
    try:
        time.sleep(1.5)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while child.proc.pid == pid and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.proc.pid != pid
        assert (tmp_path / "pids" / "sleeper.pid").read_text() == str(child.proc.pid)
        log = tmp_path / "logs" / "sleeper.log"
        while log.read_text().count("up") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.read_text() == "up\nup\n"  # both runs' output, appended
    finally:
        stop.set()
        thread.join()
        sup.stop_all()
    assert child.proc.poll() is not None
    assert not (tmp_path / "pids" / "sleeper.pid").exists()
    assert any("sleeper was killed by SIGKILL; restarting in 0.1 s (restart 1)" in line for line in lines)


def test_terminate_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    proc = spawn(ChildSpec("stubborn", [sys.executable, "-c", code]), tmp_path)
    time.sleep(0.5)
    assert terminate(proc, 1.0) == -signal.SIGKILL


def test_health_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m deploy.supervisor check URL` (the systemd health check) fails, saying why."""
    assert (
        main(["check", "--tries", "2", "--every", "0.05", "--timeout", "0.5", "http://127.0.0.1:9/healthz"])
        == 1
    )
    assert "unhealthy: http://127.0.0.1:9/healthz did not answer" in capsys.readouterr().err
    assert subprocess.run([sys.executable, "-m", "deploy.supervisor", "check", "--help"]).returncode == 0


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = (
            b'{"ok": false, "problems": ["the history writer thread died"]}' if self.status != 200 else b"{}"
        )
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [200, 503])
def test_check_by_component_reads_its_port_from_the_env_file(status: int, capsys) -> None:  # type: ignore[no-untyped-def]
    handler = type("H", (_Health,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"RISKWATCH_WORKER_PORT": str(server.server_address[1])}
        code = main(["check", "--component", "worker", "--tries", "2", "--every", "0.01"], environ=env)
    finally:
        server.shutdown()
    assert code == (0 if status == 200 else 1)
    if status == 503:
        err = capsys.readouterr().err
        assert "answered 503" in err and "the history writer thread died" in err and "(2 checks)" in err, err
    with pytest.raises(SystemExit, match="RISKWATCH_BRIDGE_METRICS_PORT is not set"):
        main(["check", "--component", "bridge"], environ={})


def test_a_restart_that_cannot_spawn_is_retried_with_backoff(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add("bridge")
    w.run_for(2)
    real = w.sup._spawn
    fail = {"left": 2}

    def flaky(spec: ChildSpec, run_dir: Path) -> FakeProc:
        if fail["left"]:
            fail["left"] -= 1
            raise FileNotFoundError(2, "No such file or directory", "/opt/riskwatch/.venv/bin/python")
        return real(spec, run_dir)  # type: ignore[return-value]

    w.sup._spawn = flaky  # type: ignore[assignment]
    w.proc("bridge").code = 1
    w.run_for(10)
    could_not = [line for line in w.lines if "bridge could not be started" in line]
    assert len(could_not) == 2 and "restarting in 2 s (restart 2)" in could_not[0], could_not
    assert len(w.procs["bridge"]) == 2 and w.sup.children["bridge"].state is State.HEALTHY
