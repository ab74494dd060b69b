"""Generic webhook: JSON body, HMAC-SHA256 of the body in `X-Riskwatch-Signature: sha256=<hex>`."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict
from typing import ClassVar

import orjson

from alerting.channels.base import ChannelSettings, HttpSettings, Message, SendResult
from alerting.channels.http import HttpPoster

SIGNATURE_HEADER = "X-Riskwatch-Signature"


class Settings(HttpSettings):
    """The receiver's URL (`url` or `url_env`) and the HMAC secret (`secret_env`)."""


def signature(secret: str, body: bytes) -> str:
    """What a receiver recomputes to trust the body: sha256=hex(HMAC-SHA256(secret, body))."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Channel:
    settings_model: ClassVar[type[ChannelSettings]] = Settings

    def __init__(self, name: str, settings: Settings, secret: str | None) -> None:
        self.name, self._settings, self._secret = name, settings, secret
        self._http = HttpPoster(settings.timeout_s)

    async def send(self, message: Message) -> SendResult:
        doc = asdict(message)
        doc["idempotency_key"] = message.key
        body = orjson.dumps(doc)
        headers = {"Idempotency-Key": message.key}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        result, _ = await self._http.post_bytes(self._settings.url, body, message, headers)
        return result or SendResult.ok()

    async def close(self) -> None:
        await self._http.close()
