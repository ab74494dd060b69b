"""Local server processes: free ports, start with a recorded pid, stop by that pid only.

A pid file holds the pid and the process start time (from /proc), so a stale pid reused by an unrelated
process is never signalled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from riskwatch.errors import StackError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port free on loopback right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def require_free(service: str, port: int, what: str = "port") -> None:
    """Fail fast, naming the service and port, instead of letting a server hang or die obscurely."""
    if port_in_use(port):
        raise StackError(
            f"{service}: {what} {port} on {LOOPBACK} is already in use by another process; "
            f"stop that process or choose another port (riskwatch stack up --help)"
        )


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) comes after the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True, slots=True)
class PidFile:
    """Where a service's pid is recorded, with the process start time to guard against pid reuse."""

    path: Path

    def write(self, pid: int) -> None:
        self.path.write_text(f"{pid} {_start_time(pid) or ''}\n")

    def read(self) -> int | None:
        """The recorded pid if that very process is still alive, else None (and the file is removed)."""
        try:
            pid_text, _, started = self.path.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        alive = _start_time(pid)
        if alive is None or (started and alive != started) or _is_zombie(pid):
            self.path.unlink(missing_ok=True)
            return None
        return pid

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def start_process(
    argv: Sequence[str],
    pidfile: PidFile,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a server in its own session (so terminal signals don't reach it); record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    pidfile.write(proc.pid)
    return proc.pid


def stop_process(pidfile: PidFile, timeout: float = 30.0) -> bool:
    """SIGTERM the recorded process, SIGKILL after `timeout`; True if something was stopped."""
    pid = pidfile.read()
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: pidfile.read() is None or _reap(pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: pidfile.read() is None or _reap(pid), 10.0)
    pidfile.clear()
    return True


def _reap(pid: int) -> bool:
    """Collect our own exited child so it does not linger as a zombie; True once it is gone."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return _start_time(pid) is None or _is_zombie(pid)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except Exception:  # a readiness probe failing is the normal "not yet"
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise provisioning between concurrent runs (several test sessions share one cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
