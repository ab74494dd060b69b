"""Builds and runs one bridge process from its settings; `stop` flushes everything in flight."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from ingest.bridge import Worker, run_loop
from ingest.lookup import RegistryLike
from ingest.metrics import BridgeMetrics
from ingest.mqtt import Inbound, MqttSource
from ingest.settings import BridgeSettings
from ingest.sink import KafkaSink
from ingest.spool import Spool
from riskwatch.topics import Topics

log = logging.getLogger(__name__)


def make_producer(settings: BridgeSettings) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.mqtt_client_id}",
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
        self.source = MqttSource(settings, self.inbox, self.metrics)
        self.worker = Worker(
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
            target=run_loop, args=(self.worker, self.inbox, self._stop), name="bridge-worker", daemon=True
        )
        self._http: Any = None

    def start(self) -> None:
        if self.settings.metrics_port:
            self._http, _ = start_http_server(
                self.settings.metrics_port, self.settings.metrics_host, registry=self.metrics_registry
            )
        self.sink.start()
        self._thread.start()
        self.source.start()
        log.info(
            "bridge started: MQTT %s:%s -> Kafka %s (prefix %s)",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            self.settings.kafka_bootstrap,
            self.settings.topic_prefix,
        )

    def stop(self) -> bool:
        """Stop taking messages, finish the ones received, make them durable, acknowledge, disconnect."""
        started = time.monotonic()
        self.source.accepting = False  # later deliveries stay unacknowledged: the broker keeps them
        self._stop.set()
        self._thread.join(self.settings.shutdown_timeout_s)
        while True:  # what arrived before `accepting` flipped
            try:
                self.worker.handle(self.inbox.get_nowait())
            except queue.Empty:
                break
        remaining = max(1.0, self.settings.shutdown_timeout_s - (time.monotonic() - started))
        clean = self.worker.flush(remaining)
        if not clean:
            log.warning(
                "shutdown: %d messages not durable in time; the broker will redeliver them",
                len(self.worker.tracker),
            )
        self.source.stop()
        self.sink.close()
        if self._http is not None:
            self._http.shutdown()
        return clean
