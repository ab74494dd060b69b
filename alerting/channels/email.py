"""SMTP email via the standard library, run in a worker thread so the event loop never blocks."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import formatdate
from typing import ClassVar

from alerting.channels.base import ChannelSettings, Message, SendResult


class Settings(ChannelSettings):
    host: str
    port: int = 25
    sender: str
    starttls: bool = False
    username: str | None = None  # the password comes from secret_env


class Channel:
    settings_model: ClassVar[type[ChannelSettings]] = Settings

    def __init__(self, name: str, settings: Settings, secret: str | None) -> None:
        self.name, self._settings, self._secret = name, settings, secret

    def _build(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = message.title
        mail["From"] = self._settings.sender
        mail["To"] = ", ".join(message.emails)
        mail["Date"] = formatdate(localtime=False)
        # The idempotency key is the Message-ID, so a resent mail is recognisably the same mail.
        mail["Message-ID"] = f"<{message.key}@riskwatch>"
        mail["X-Idempotency-Key"] = message.key
        body = message.text + (f"\n\n{message.link}" if message.link else "")
        mail.set_content(body, charset="utf-8")
        return mail

    def _send_blocking(self, mail: EmailMessage) -> None:
        s = self._settings
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
            if s.starttls:
                smtp.starttls()
            if s.username and self._secret:
                smtp.login(s.username, self._secret)
            smtp.send_message(mail)

    async def send(self, message: Message) -> SendResult:
        if not message.emails:
            return SendResult.error("no email addresses: is anyone with an email on call?")
        try:
            await asyncio.to_thread(self._send_blocking, self._build(message))
        except smtplib.SMTPRecipientsRefused as exc:
            return SendResult.error(f"recipients refused: {exc.recipients!r}"[:300])
        except smtplib.SMTPResponseException as exc:
            detail = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300]
            return SendResult.retryable(detail) if 400 <= exc.smtp_code < 500 else SendResult.error(detail)
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult.retryable(f"SMTP {self._settings.host}:{self._settings.port}: {exc!r}"[:300])
        return SendResult.ok()

    async def close(self) -> None:
        return None
