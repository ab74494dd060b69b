"""Feishu/Lark custom bot: interactive card with a header coloured by level, signed in the body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any, ClassVar

from alerting.channels.base import ChannelSettings, HttpSettings, Message, SendResult, robot_post
from alerting.channels.http import HttpPoster

_RETRY_CODES = frozenset({11232, 9499})  # 11232: frequency limited
# Card header templates (docs/domain.md: red/orange/yellow/blue); normal (cleared) shows green.
_TEMPLATE = {"red": "red", "orange": "orange", "yellow": "yellow", "blue": "blue", "normal": "green"}


class Settings(HttpSettings):
    # url: https://open.feishu.cn/open-apis/bot/v2/hook/...
    default_rate_per_minute: ClassVar[int | None] = 100  # docs/domain.md: 100/min and 5/s per bot


def sign(secret: str, timestamp_s: int) -> str:
    """docs/domain.md: base64(HMAC-SHA256(key=f"{timestamp_s}\\n{secret}", msg=b""))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def card(message: Message) -> dict[str, Any]:
    elements: list[dict[str, Any]] = [{"tag": "markdown", "content": message.markdown}]
    if message.link:
        label = "确认处置" if message.language == "zh" else "Acknowledge"
        button = {"tag": "button", "text": {"tag": "plain_text", "content": label}, "url": message.link}
        elements.append({"tag": "action", "actions": [{**button, "type": "danger"}]})
    return {
        "config": {"wide_screen_mode": True},
        "header": {
            "title": {"tag": "plain_text", "content": message.title},
            "template": _TEMPLATE.get(message.colour, "grey"),
        },
        "elements": elements,
    }


class Channel:
    settings_model: ClassVar[type[ChannelSettings]] = Settings

    def __init__(
        self, name: str, settings: Settings, secret: str | None, clock: Callable[[], float] = time.time
    ) -> None:
        self.name, self._settings, self._secret, self._clock = name, settings, secret, clock
        self._http = HttpPoster(settings.timeout_s)

    async def send(self, message: Message) -> SendResult:
        doc: dict[str, Any] = {"msg_type": "interactive", "card": card(message)}
        if self._secret:
            timestamp = int(self._clock())
            doc = {"timestamp": str(timestamp), "sign": sign(self._secret, timestamp), **doc}
        url = self._settings.url
        return await robot_post(self._http, url, doc, message, "feishu", ("code", "StatusCode"), _RETRY_CODES)

    async def close(self) -> None:
        await self._http.close()
