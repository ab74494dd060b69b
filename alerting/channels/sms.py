"""SMS through an HTTP gateway: JSON {mobiles, text, idempotency_key}, optional bearer token."""

from __future__ import annotations

from typing import ClassVar

from alerting.channels.base import ChannelSettings, HttpSettings, Message, SendResult
from alerting.channels.http import HttpPoster

MAX_SMS_CHARS = 300  # long SMS are split and billed per part by carriers; keep one short digest


class Settings(HttpSettings):
    signature_name: str = "riskwatch"  # carriers require a registered signature like 【riskwatch】


class Channel:
    settings_model: ClassVar[type[ChannelSettings]] = Settings

    def __init__(self, name: str, settings: Settings, secret: str | None) -> None:
        self.name, self._settings, self._secret = name, settings, secret
        self._http = HttpPoster(settings.timeout_s)

    async def send(self, message: Message) -> SendResult:
        if not message.mobiles:
            return SendResult.error("no mobile numbers to text: is anyone with a mobile on call?")
        text = f"【{self._settings.signature_name}】{message.text}"[:MAX_SMS_CHARS]
        doc = {"mobiles": list(message.mobiles), "text": text, "idempotency_key": message.key}
        headers = {"Idempotency-Key": message.key}
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret}"
        result, _ = await self._http.post_json(self._settings.url, doc, message, headers)
        return result or SendResult.ok()

    async def close(self) -> None:
        await self._http.close()
