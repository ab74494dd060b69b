"""Builds and runs one bridge process from its settings; `stop` flushes everything in flight."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from ingest.bridge import Bridge, run_loop
from ingest.lookup import RegistryLike
from ingest.metrics import BridgeMetrics
from ingest.mqtt import Inbound, MqttSource
from ingest.settings import BridgeSettings
from ingest.sink import KafkaSink
from ingest.spool import Spool
from riskwatch.clock import clock_of
from riskwatch.errors import RiskwatchError
from riskwatch.httpheaders import secure_wsgi
from riskwatch.topics import Topics

log = logging.getLogger(__name__)


def make_producer(settings: BridgeSettings) -> Any:
    from kafka import KafkaProducer

    if settings.kafka is None:
        raise RiskwatchError("the bridge has no Kafka account configured (BridgeSettings.kafka)")
    return KafkaProducer(
        **settings.kafka.kafka_python(),
        client_id=settings.client_id,
        acks="all",
        enable_idempotence=True,
        compression_type=None if settings.compression == "none" else settings.compression,
        linger_ms=settings.linger_ms,
        batch_size=settings.producer_batch_bytes,
        max_request_size=max(settings.producer_batch_bytes, 1024 * 1024),
        delivery_timeout_ms=int(settings.delivery_timeout_s * 1000),
        request_timeout_ms=min(30000, int(settings.delivery_timeout_s * 1000) - 100),
        max_block_ms=2000,  # a blocked send stalls the worker; beyond this the record is spooled
        retry_backoff_ms=200,
        reconnect_backoff_max_ms=2000,
        bootstrap_timeout_ms=5000,  # Kafka down at start: spool after 5 s rather than 30
    )


class BridgeService:
    """One bridge: MQTT source, worker thread, Kafka sink with spool, metrics endpoint."""

    def __init__(
        self,
        settings: BridgeSettings,
        registry: RegistryLike,
        metrics_registry: CollectorRegistry | None = None,
        producer_factory: Callable[[BridgeSettings], Any] = make_producer,
    ) -> None:
        self.settings = settings
        self.metrics_registry = metrics_registry or CollectorRegistry()
        self.metrics = BridgeMetrics(self.metrics_registry)
        self.inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        topics = Topics(settings.topic_prefix)
        self.sink = KafkaSink(
            lambda: producer_factory(settings),
            self.spool,
            self.metrics,
            settings.delivery_timeout_s,
            deadletter_topic=topics.deadletter,
        )
        # messages are stamped on arrival with the time of day (simulated with --clock); the rest is real time
        self.source = MqttSource(settings, self.inbox, self.metrics, wall_clock=clock_of(settings.clock))
        self.bridge = Bridge(
            registry,
            topics,
            self.sink,
            self.source,
            self.metrics,
            {
                "max_payload": settings.max_payload,
                "future_tolerance_s": settings.future_tolerance_s,
                "max_age_s": settings.max_age_s,
                "max_readings": settings.max_readings,
                "topic_root": settings.topic_root,
            },
            settings.batch_max_readings,
            settings.batch_linger_s,
            settings.codec_compression,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_fatal_logged(run_loop),
            args=(self.bridge, self.inbox, self._stop),
            name="bridge-worker",
            daemon=True,
        )
        self._metrics_app = make_wsgi_app(self.metrics_registry)
        self._http: Any = None
        self._http_thread: threading.Thread | None = None
        self._started = False

    def start(self) -> None:
        if self.settings.metrics_port:
            self._http = make_server(
                self.settings.metrics_host,
                self.settings.metrics_port,
                secure_wsgi(self._http_app),
                _HttpServer,
                handler_class=_QuietHandler,
            )
            self._http_thread = threading.Thread(
                target=self._http.serve_forever, name="bridge-http", daemon=True
            )
            self._http_thread.start()
        self.sink.start()
        self._thread.start()
        self.source.start()
        self._started = True
        log.info(
            "bridge started: MQTT %s:%s -> Kafka %s (prefix %s)",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            self.settings.kafka.bootstrap if self.settings.kafka else "-",
            self.settings.topic_prefix,
        )

    def threads(self) -> dict[str, bool]:
        """Whether each of the bridge's internal threads is alive (after `start`)."""
        threads = {
            "worker": self._thread.is_alive(),
            "kafka-sink": self.sink.alive(),
            "mqtt": self.source.alive(),
        }
        if self._http_thread is not None:
            threads["http"] = self._http_thread.is_alive()
        return threads

    def healthy(self) -> bool:
        """False once any internal thread has died: the bridge would sit connected and idle, so it must
        say so (`/healthz` answers 503) and exit non-zero rather than look healthy."""
        return self._started and all(self.threads().values())

    def abort(self) -> None:
        """Stop after an internal failure without trusting the worker: nothing more is acknowledged, so
        the broker redelivers whatever was not yet durable to the next bridge on this session."""
        self.source.accepting = False
        self._stop.set()
        for step in (self.source.stop, self.sink.close):
            try:
                step()
            except Exception:
                log.exception("aborting the bridge: %s failed", getattr(step, "__qualname__", step))
        if self._http is not None:
            self._http.shutdown()
            self._http = None

    def _http_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """`/healthz` (200 or 503, with each thread's state); anything else is the Prometheus metrics."""
        if environ.get("PATH_INFO") == "/healthz":
            ok = self.healthy()
            body = orjson.dumps({"ok": ok, "threads": self.threads()})
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return self._metrics_app(environ, start_response)

    def stop(self) -> bool:
        """Stop taking messages, finish the ones received, make them durable, acknowledge, disconnect."""
        started = time.monotonic()
        self.source.accepting = False  # later deliveries stay unacknowledged: the broker keeps them
        self._stop.set()
        self._thread.join(self.settings.shutdown_timeout_s)
        while True:  # what arrived before `accepting` flipped
            try:
                self.bridge.handle(self.inbox.get_nowait())
            except queue.Empty:
                break
        remaining = max(1.0, self.settings.shutdown_timeout_s - (time.monotonic() - started))
        clean = self.bridge.flush(remaining)
        if not clean:
            log.warning(
                "shutdown: %d messages not durable in time; the broker will redeliver them",
                len(self.bridge.tracker),
            )
        self.source.stop()
        self.sink.close()
        if self._http is not None:
            self._http.shutdown()
        return clean


def _fatal_logged(target: Callable[..., None]) -> Callable[..., None]:
    """A thread body whose death is logged loudly (health then reports it)."""

    def run(*args: Any) -> None:
        try:
            target(*args)
        except BaseException:  # the thread ends here; `healthy()` reports it
            log.critical("bridge thread %s died", threading.current_thread().name, exc_info=True)

    return run


class _HttpServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass
