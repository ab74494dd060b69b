"""A local webhook receiver: where the demo and the benchmark route alerts, printing what arrives.

It speaks the generic webhook channel (alerting/channels/webhook.py: JSON body, HMAC-SHA256 in
`X-Riskwatch-Signature: sha256=<hex>`, `Idempotency-Key`), checks the signature when it knows the
secret, and counts each idempotency key once, as a real receiver must.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

SIGNATURE_HEADER = "X-Riskwatch-Signature"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification as received."""

    at: float
    key: str
    doc: dict[str, Any]
    signature_ok: bool | None  # None: no secret configured, nothing to check
    duplicate: bool

    @property
    def title(self) -> str:
        return str(self.doc.get("title", ""))

    @property
    def colour(self) -> str:
        return str(self.doc.get("colour", ""))

    def mentions(self, text: str) -> bool:
        return any(text in str(self.doc.get(k, "")) for k in ("title", "text", "markdown"))


class WebhookReceiver:
    """HTTP server on 127.0.0.1 (a free port by default) in a background thread."""

    def __init__(
        self,
        secret: str | None = None,
        port: int = 0,
        on_delivery: Callable[[Delivery], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret, self.clock, self.on_delivery = secret, clock, on_delivery
        self.deliveries: list[Delivery] = []
        self.rejected = 0
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._receive(
                    body, self.headers.get(SIGNATURE_HEADER), self.headers.get("Idempotency-Key")
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok":true}' if status == 200 else b'{"ok":false}')

            def log_message(self, format: str, *args: Any) -> None:  # keep the console for the live view
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/riskwatch"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _receive(self, body: bytes, signature: str | None, key: str | None) -> int:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            with self._lock:
                self.rejected += 1
            return 400
        ok: bool | None = None
        if self.secret:
            expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            ok = signature is not None and hmac.compare_digest(expected, signature)
            if not ok:
                with self._lock:
                    self.rejected += 1
                return 401
        key = key or str(doc.get("idempotency_key", ""))
        with self._lock:
            duplicate = key in self._keys
            self._keys.add(key)
            delivery = Delivery(self.clock(), key, doc, ok, duplicate)
            self.deliveries.append(delivery)
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        return 200

    def unique(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if not d.duplicate]

    def repeated_under_new_keys(self) -> dict[str, set[str]]:
        """Notifications sent under more than one idempotency key (a redelivered warning notified again
        as new): each line of a delivery (one alert: colour, reason, event time, link) -> its keys."""
        keys: dict[str, set[str]] = {}
        with self._lock:
            deliveries = list(self.deliveries)
        for d in deliveries:
            text = str(d.doc.get("text", ""))
            lines = [text] if len(d.doc.get("alert_ids", ())) == 1 else text.splitlines()[1:]
            for line in lines:
                keys.setdefault(line, set()).add(str(d.key))
        return {line: k for line, k in keys.items() if len(k) > 1}
