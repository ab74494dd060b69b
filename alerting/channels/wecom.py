"""WeCom (企业微信) group robot: markdown with <font color> by level, at most 4096 bytes (docs/domain.md)."""

from __future__ import annotations

from typing import ClassVar

from alerting.channels.base import ChannelSettings, HttpSettings, Message, SendResult, robot_post
from alerting.channels.http import HttpPoster

MAX_MARKDOWN_BYTES = 4096  # docs/domain.md: WeCom markdown <= 4096 bytes
_RETRY_CODES = frozenset({45009, -1})  # 45009: API frequency limit exceeded
# WeCom markdown knows only three font colours: warning (orange), info (green), comment (grey).
_FONT = {"red": "warning", "orange": "warning", "yellow": "comment", "blue": "info", "normal": "info"}


class Settings(HttpSettings):
    # url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
    default_rate_per_minute: ClassVar[int | None] = 20  # docs/domain.md: 20 messages/min per robot


def truncate_utf8(text: str, limit: int) -> str:
    """Cut to at most `limit` UTF-8 bytes without splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "…"


class Channel:
    settings_model: ClassVar[type[ChannelSettings]] = Settings

    def __init__(self, name: str, settings: Settings, secret: str | None) -> None:
        self.name, self._settings = name, settings
        self._http = HttpPoster(settings.timeout_s)

    async def send(self, message: Message) -> SendResult:
        font = _FONT.get(message.colour, "comment")
        content = f'## <font color="{font}">{message.title}</font>\n{message.markdown}'
        if message.mobiles:
            content += "\n" + " ".join(f"@{m}" for m in message.mobiles)
        doc = {"msgtype": "markdown", "markdown": {"content": truncate_utf8(content, MAX_MARKDOWN_BYTES)}}
        url = self._settings.url
        return await robot_post(self._http, url, doc, message, "wecom", ("errcode",), _RETRY_CODES)

    async def close(self) -> None:
        await self._http.close()
