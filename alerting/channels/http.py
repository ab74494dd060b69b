"""Shared HTTP plumbing for the robot, webhook and SMS channels: one session, one status classification."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from yarl import URL

from alerting.channels.base import Message, SendResult
from riskwatch.secrets import redact

# Statuses worth retrying: the receiver is overloaded, throttling, or briefly broken.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpPoster:
    """Posts JSON with a timeout and turns transport problems into SendResults."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post_json(
        self, url: str, doc: Any, message: Message, headers: dict[str, str] | None = None
    ) -> tuple[SendResult | None, Any]:
        """POST; returns (result, parsed body). result is None when the HTTP status was 2xx."""
        body = orjson.dumps(doc)
        return await self.post_bytes(url, body, message, headers)

    async def post_bytes(
        self, url: str, body: bytes, message: Message, headers: dict[str, str] | None = None
    ) -> tuple[SendResult | None, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        all_headers = {"Content-Type": "application/json", "X-Idempotency-Key": message.key}
        all_headers.update(headers or {})
        try:
            async with self._session.post(url, data=body, headers=all_headers) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # aiohttp's exception texts may quote the URL, and with it the robot's access token.
            return SendResult.retryable(redact(f"cannot reach {_host(url)}: {exc!r}", url)), None
        if status in _RETRY_STATUSES:
            return SendResult.retryable(f"HTTP {status}: {raw[:200]!r}"), None
        if not 200 <= status < 300:
            return SendResult.error(f"HTTP {status}: {raw[:200]!r}"), None
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        return None, parsed

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _host(url: str) -> str:
    """The host part only: URLs of robots carry access tokens that must not reach logs."""
    try:
        return URL(url).host or "?"
    except ValueError:
        return "?"
