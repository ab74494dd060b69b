"""DingTalk custom robot: markdown, signed with `timestamp` and `sign` query parameters (docs/domain.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable
from typing import ClassVar

from alerting.channels.base import ChannelSettings, HttpSettings, Message, SendResult, robot_post
from alerting.channels.http import HttpPoster

# DingTalk error codes that mean "later, not never": 130101 = sending too fast (docs/domain.md: 20/min).
_RETRY_CODES = frozenset({130101, 130102, -1})


class Settings(HttpSettings):
    # url: https://oapi.dingtalk.com/robot/send?access_token=...
    default_rate_per_minute: ClassVar[int | None] = 20  # docs/domain.md: 20 messages/min per robot


def sign(secret: str, timestamp_ms: int) -> str:
    """docs/domain.md: urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}")))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


class Channel:
    settings_model: ClassVar[type[ChannelSettings]] = Settings

    def __init__(
        self, name: str, settings: Settings, secret: str | None, clock: Callable[[], float] = time.time
    ) -> None:
        self.name, self._settings, self._secret, self._clock = name, settings, secret, clock
        self._http = HttpPoster(settings.timeout_s)

    async def send(self, message: Message) -> SendResult:
        text = message.markdown
        if message.mobiles:  # DingTalk only pings mobiles that also appear as @mobile in the text
            text += "\n\n" + " ".join(f"@{m}" for m in message.mobiles)
        doc = {
            "msgtype": "markdown",
            "markdown": {"title": message.title, "text": text},
            "at": {"atMobiles": list(message.mobiles), "isAtAll": False},
        }
        url = self._settings.url
        if self._secret:
            url = signed_url(url, self._secret, int(self._clock() * 1000))
        return await robot_post(self._http, url, doc, message, "dingtalk", ("errcode",), _RETRY_CODES)

    async def close(self) -> None:
        await self._http.close()
