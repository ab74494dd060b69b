"""Is this worker (or the historian) doing its job? A dead agent, timer or loop must not leave it looking healthy.

Faust restarts a crashed agent in place and a crashed timer just stops, while the web and metrics ports
keep answering: the worker would sit idle and look alive. So any task that dies reports here, and the
worker exits with `EXIT_TASK_DIED` for its supervisor to restart it (nothing is lost: events are acked
only after their state is stored, and the next start replays from the committed offset). `GET /healthz`
answers 503 once a task died or the timer has not run for `stale_after_s`, on the metrics port (a plain
thread, `serve_metrics`) and on the Faust web port.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from riskwatch.errors import EXIT_TASK_DIED
from riskwatch.httpheaders import secure_wsgi

log = logging.getLogger(__name__)


class Health:
    """Heartbeats of the worker's loops and the first fatal problem; exits on a fatal one."""

    def __init__(
        self,
        stale_after_s: float = 30.0,
        exit: Callable[[int], Any] = os._exit,
        clock: Callable[[], float] = time.monotonic,
        startup_s: float = 180.0,
    ) -> None:
        self.stale_after_s = stale_after_s
        # Faust starts timers only once the tables are restored, which may take minutes after a start:
        # until a loop first runs it is late only after this long (the recovery timeout).
        self.startup_s = startup_s
        self.exit = exit
        self.clock = clock
        self.problem: str | None = None
        self.beats: dict[str, float] = {}
        self.started = clock()

    def beat(self, name: str) -> None:
        """`name` (a timer, a loop) ran just now."""
        self.beats[name] = self.clock()

    def failed(self, why: str) -> None:
        """A task of the worker died: report it and exit non-zero (the supervisor restarts the worker)."""
        if self.problem is None:
            self.problem = why
        log.critical("%s: exiting with status %d so the supervisor restarts this worker", why, EXIT_TASK_DIED)
        logging.shutdown()
        self.exit(EXIT_TASK_DIED)

    def status(self, expected: tuple[str, ...] = ("tick", "flush")) -> tuple[bool, dict[str, Any]]:
        """(healthy?, a JSON document saying why) for `GET /healthz`."""
        now = self.clock()
        ages = {name: round(now - at, 3) for name, at in self.beats.items()}
        late = [
            name
            for name in expected
            if (
                now - self.beats[name] > self.stale_after_s
                if name in self.beats
                else now - self.started > self.startup_s
            )
        ]
        problems = ([self.problem] if self.problem else []) + [
            f"{name} has not completed for {now - self.beats.get(name, self.started):.0f} s" for name in late
        ]
        return not problems, {"ok": not problems, "problems": problems, "last_run_s_ago": ages}


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: not worth a line
        pass


def serve_metrics(addr: str, port: int, registry: CollectorRegistry, health: Health) -> WSGIServer:
    """Serve Prometheus metrics, and `GET /healthz` from `health`, on a daemon thread."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok, doc = health.status()
            body = orjson.dumps(doc)
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return metrics(environ, start_response)

    server = make_server(addr, port, secure_wsgi(app), _Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
