"""Delivery channels, registered by their `type:` name: adding a channel is one module and one line here.

Each module exposes `Settings` (a ChannelSettings subclass) and `Channel(name, settings, secret)`.
Modules are imported when a config names them, never at package import.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from riskwatch.secrets import remember

CHANNEL_TYPES: dict[str, str] = {
    "webhook": "alerting.channels.webhook",
    "dingtalk": "alerting.channels.dingtalk",
    "wecom": "alerting.channels.wecom",
    "feishu": "alerting.channels.feishu",
    "email": "alerting.channels.email",
    "sms": "alerting.channels.sms",
}


def channel_module(type_name: str) -> ModuleType:
    """The module implementing a channel type; KeyError names the known types."""
    if type_name not in CHANNEL_TYPES:
        raise KeyError(f"unknown channel type {type_name!r}; known: {', '.join(sorted(CHANNEL_TYPES))}")
    return importlib.import_module(CHANNEL_TYPES[type_name])


def build_channel(name: str, settings: object, secret: str | None, url: str | None = None) -> object:
    """Instantiate a configured channel (an `alerting.channels.base.Channel`); `url` from `url_env`."""
    module = channel_module(settings.type)  # type: ignore[attr-defined]
    # Whatever text this channel's errors carry later, these values are masked before it is recorded.
    remember(secret, url or getattr(settings, "url", None))
    if url:
        settings = settings.model_copy(update={"url": url})  # type: ignore[attr-defined]
    return module.Channel(name, settings, secret)
