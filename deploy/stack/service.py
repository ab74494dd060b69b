"""What every local service does: provision once, configure, start, prove it is ready, stop, report."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from deploy.stack.process import (
    PidFile,
    log_tail,
    require_free,
    start_process,
    stop_process,
    wait_until,
)
from deploy.stack.settings import StackSettings
from riskwatch.errors import StackError


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    address: str
    pid: int | None
    ready: bool
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "address": self.address,
            "pid": self.pid,
            "ready": self.ready,
            "detail": self.detail,
        }


class Service(ABC):
    """A server process of the local stack, with data and logs under `home/<name>`."""

    name: str
    start_timeout_s: float = 90.0

    def __init__(self, home: Path, cache: Path, settings: StackSettings) -> None:
        self.home = home
        self.cache = cache
        self.settings = settings
        self.dir = home / self.name
        self.log = self.dir / f"{self.name}.log"
        self.pidfile = PidFile(self.dir / f"{self.name}.pid")

    # -- what each service defines -------------------------------------------------------------
    @property
    @abstractmethod
    def address(self) -> str: ...

    @abstractmethod
    def ports(self) -> dict[str, int]:
        """Ports this service binds, by purpose (for the clear 'port in use' error)."""

    @abstractmethod
    def provision(self) -> None:
        """Fetch or build the binaries into the per-user cache, once per version."""

    @abstractmethod
    def prepare(self) -> None:
        """Write configuration and initialise storage under `self.dir` (idempotent)."""

    @abstractmethod
    def command(self) -> list[str]: ...

    # Run under SCHED_IDLE: only on CPU the alarm path (Mosquitto, Kafka, bridge, worker) leaves idle. For a service that
    # only stores history; a lower `nice` was not enough (it still took half a core in bursts).
    background: bool = False

    @abstractmethod
    def probe(self) -> None:
        """Raise unless the service really answers (used by readiness and status)."""

    def after_ready(self) -> None:  # noqa: B027 - optional hook, most services need nothing
        """One-time set-up that needs the running server (users, databases, topics)."""

    # -- shared behaviour ------------------------------------------------------------------------
    def pid(self) -> int | None:
        return self.pidfile.read()

    def start(self) -> bool:
        """Start unless already running; True if it was started now. Waits until ready."""
        if self.pid() is not None:
            self.wait_ready()
            return False
        for purpose, port in self.ports().items():
            require_free(self.name, port, f"{purpose} port")
        self.provision()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        command = self.command()
        if self.background:  # `chrt` execs the server, so the recorded pid is the server's own
            command = ["chrt", "--idle", "0", *command]
        start_process(command, self.pidfile, self.log, env=self.env(), cwd=self.dir)
        self.wait_ready()
        self.after_ready()
        return True

    def env(self) -> dict[str, str]:
        return {}

    def wait_ready(self) -> None:
        errors: list[str] = []

        def check() -> bool:
            if self.pid() is None:
                raise StackError(
                    f"{self.name} exited during start-up; last lines of {self.log}:\n{log_tail(self.log)}"
                )
            try:
                self.probe()
                return True
            except Exception as exc:
                errors[:] = [f"{type(exc).__name__}: {exc}"]
                return False

        try:
            ready = wait_until(check, self.start_timeout_s, interval=0.5)
        except StackError:
            raise
        if not ready:
            raise StackError(
                f"{self.name} did not become ready at {self.address} within {self.start_timeout_s:.0f} s "
                f"(last check: {errors[0] if errors else 'none'}); see {self.log}:\n{log_tail(self.log)}"
            )

    def stop(self) -> bool:
        return stop_process(self.pidfile)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        if pid is None:
            return ServiceStatus(self.name, self.address, None, False, "not running")
        try:
            self.probe()
        except Exception as exc:
            return ServiceStatus(self.name, self.address, pid, False, f"{type(exc).__name__}: {exc}")
        return ServiceStatus(self.name, self.address, pid, True, "ready")


def require_tool(name: str, hint: str, *fallbacks: str) -> str:
    """Path of an external tool, or a clear error saying how to install it."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in fallbacks:
        if Path(candidate).is_file():
            return candidate
    raise StackError(f"{name} not found on PATH; {hint}")
