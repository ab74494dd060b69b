"""Real local receivers for channel tests: an aiohttp server playing DingTalk, WeCom, Feishu, webhook and
SMS gateway, and an aiosmtpd SMTP server. They verify signatures with the algorithms as documented in
docs/domain.md (written out again here, not imported) and de-duplicate by idempotency key like a careful
receiver would. Each runs in its own thread so a service in another process can post to it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    kind: str
    key: str
    body: Any
    headers: dict[str, str]
    query: dict[str, str]
    signature_ok: bool | None  # None: this kind is not signed or no secret configured
    at: float


def dingtalk_signature_ok(secret: str, query: dict[str, str]) -> bool:
    """docs/domain.md: sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}")))."""
    ts = query.get("timestamp", "")
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    )
    fresh = ts.isdigit() and abs(int(ts) / 1000 - time.time()) < 3600  # DingTalk refuses > 1 h skew
    return fresh and hmac.compare_digest(query.get("sign", "").encode(), expected)


def feishu_signature_ok(secret: str, body: dict[str, Any]) -> bool:
    """docs/domain.md: sign = base64(HMAC-SHA256(key=f"{timestamp_s}\\n{secret}", msg=b""))."""
    ts = str(body.get("timestamp", ""))
    expected = base64.b64encode(hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()
    return ts.isdigit() and hmac.compare_digest(str(body.get("sign", "")), expected)


def webhook_signature_ok(secret: str, raw: bytes, header: str) -> bool:
    return hmac.compare_digest(header, "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest())


@dataclass
class HttpReceiver:
    """POST /dingtalk /wecom /feishu /hook /sms. `script[kind]` = responses to play before answering ok."""

    secrets: dict[str, str] = field(default_factory=dict)
    script: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def unique(self, kind: str | None = None) -> dict[str, Received]:
        """First request per idempotency key: what a de-duplicating receiver acts on."""
        out: dict[str, Received] = {}
        for r in self.records(kind):
            out.setdefault(r.key, r)
        return out

    def records(self, kind: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if kind is None or r.kind == kind]

    def key_counts(self) -> Counter[str]:
        return Counter(r.key for r in self.records())

    async def _handle(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        secret = self.secrets.get(kind)
        query = dict(request.query)
        ok: bool | None = None
        if secret and kind == "dingtalk":
            ok = dingtalk_signature_ok(secret, query)
        elif secret and kind == "feishu":
            ok = feishu_signature_ok(secret, body)
        elif secret and kind == "hook":
            ok = webhook_signature_ok(secret, raw, request.headers.get("X-Riskwatch-Signature", ""))
        elif secret and kind == "sms":
            ok = request.headers.get("Authorization") == f"Bearer {secret}"
        key = request.headers.get("X-Idempotency-Key", "")
        with self._lock:
            script = self.script.get(kind) or []
            status, answer = script.pop(0) if script else (200, None)
            if status == 200:  # only accepted requests count as received
                self.received.append(Received(kind, key, body, dict(request.headers), query, ok, time.time()))
        if self.delay_s:  # a slow receiver: lets a test kill the sender while a request is in flight
            await asyncio.sleep(self.delay_s)
        if answer is None:
            answer = {"dingtalk": {"errcode": 0, "errmsg": "ok"}, "wecom": {"errcode": 0, "errmsg": "ok"},
                      "feishu": {"code": 0, "msg": "success"}}.get(kind, {"ok": True})  # fmt: skip
        return web.json_response(answer, status=status)

    def start(self) -> HttpReceiver:
        self.port = self.port or free_port()
        started = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/{kind}", self._handle)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert started.wait(10), "receiver did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


class _SmtpHandler:
    def __init__(self, owner: SmtpReceiver) -> None:
        self.owner = owner

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.owner.script:
            return self.owner.script.pop(0)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        self.owner.mails.append((list(envelope.rcpt_tos), mail))
        return "250 OK"


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) on a free loopback port; `script` = replies to play first."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[tuple[list[str], Any]] = []
        self.script: list[str] = []
        self._controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
