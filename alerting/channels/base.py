"""The channel interface: one question, `send(message) -> SendResult`; the pipeline owns retries, limits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from riskwatch.secrets import redact_url

if TYPE_CHECKING:  # http.py imports this module
    from alerting.channels.http import HttpPoster


class SendStatus(StrEnum):
    """What the pipeline should do next: done, try again later, or give up and record why."""

    OK = "ok"
    RETRYABLE = "retryable"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendStatus
    detail: str = ""

    @classmethod
    def ok(cls, detail: str = "") -> SendResult:
        return cls(SendStatus.OK, detail)

    @classmethod
    def retryable(cls, detail: str) -> SendResult:
        return cls(SendStatus.RETRYABLE, detail)

    @classmethod
    def error(cls, detail: str) -> SendResult:
        return cls(SendStatus.ERROR, detail)


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered notification, stored in the outbox before it is sent, so a resend is identical."""

    key: str  # idempotency key: receivers de-duplicate by it
    channel: str
    title: str
    markdown: str
    text: str
    colour: str  # Colour label of the most severe alert in the message
    mobiles: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    alert_ids: tuple[str, ...] = ()
    link: str = ""
    language: str = "zh"

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Message:
        doc: dict[str, Any] = orjson.loads(raw)
        for name in ("mobiles", "emails", "alert_ids"):
            doc[name] = tuple(doc.get(name, ()))
        return cls(**doc)


class ChannelSettings(BaseModel):
    """Fields every channel accepts; a channel module subclasses this with its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    rate_per_minute: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=10.0, gt=0)
    secret_env: str | None = None  # the NAME of the environment variable holding the secret

    default_rate_per_minute: ClassVar[int | None] = None

    def effective_rate(self) -> int | None:
        return self.rate_per_minute if self.rate_per_minute is not None else self.default_rate_per_minute


class HttpSettings(ChannelSettings):
    """Channels that post to a URL. Robot URLs carry their access token, so the URL is treated as a
    secret: give it inline as `url`, or by environment variable NAME as `url_env`; never printed whole."""

    url: str = ""
    url_env: str | None = None

    @model_validator(mode="after")
    def _one_url(self) -> HttpSettings:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give exactly one of `url` or `url_env`")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "url" and value else value)


async def robot_post(
    http: HttpPoster,
    url: str,
    doc: dict[str, Any],
    message: Message,
    robot: str,
    code_keys: tuple[str, ...],
    retry_codes: frozenset[int],
) -> SendResult:
    """Post to a chat robot, which answers HTTP 200 with a JSON code: 0 sent, `retry_codes` try later.

    The code is the first of `code_keys` the answer has. Signing stays with each robot's channel.
    """
    result, body = await http.post_json(url, doc, message)
    if result is not None:
        return result
    if not isinstance(body, dict):
        return SendResult.error(f"{robot} answered without JSON: {body!r}"[:300])
    code = next((body[key] for key in code_keys if key in body), None)
    if code == 0:
        return SendResult.ok()
    detail = f"{robot} {code_keys[0]} {code}: {body!r}"[:300]
    return SendResult.retryable(detail) if code in retry_codes else SendResult.error(detail)


class Channel(Protocol):
    """A delivery channel. `send` never raises for delivery problems; it says what happened."""

    name: str

    async def send(self, message: Message) -> SendResult: ...

    async def close(self) -> None: ...
