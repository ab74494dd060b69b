"""SMTP email via the standard library, run in a worker thread so the event loop never blocks.

STARTTLS is on by default and the server's certificate is verified against the system's CAs (or
`ca_file`): a server that offers no STARTTLS, or whose certificate does not verify, gets no mail and no
password. `starttls: false` sends in clear and is meant only for a relay on the same host.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from functools import cached_property
from typing import ClassVar

from alerting.channels.base import ChannelSettings, Message, SendResult


class Settings(ChannelSettings):
    host: str
    port: int = 25
    sender: str
    starttls: bool = True  # false only for a relay on the same host: mail and password go in clear
    ca_file: str | None = None  # PEM bundle to verify the server with instead of the system's CAs
    username: str | None = None  # the password comes from secret_env


class _NoStartTls(Exception):
    """The server did not offer STARTTLS although the channel requires it."""


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

    @property
    def _where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    @cached_property
    def _tls(self) -> ssl.SSLContext:
        """Certificate and host name verified; built once (loading the CA bundle is not free)."""
        return ssl.create_default_context(cafile=self._settings.ca_file)

    def _send_blocking(self, mail: EmailMessage) -> None:
        s = self._settings
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
            if s.starttls:
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise _NoStartTls
                smtp.starttls(context=self._tls)
            if s.username and self._secret:
                smtp.login(s.username, self._secret)
            smtp.send_message(mail)

    async def send(self, message: Message) -> SendResult:
        if not message.emails:
            return SendResult.error("no email addresses: is anyone with an email on call?")
        try:
            await asyncio.to_thread(self._send_blocking, self._build(message))
        except _NoStartTls:  # retryable like a bad certificate: it may be an attacker stripping STARTTLS
            return SendResult.retryable(
                f"SMTP {self._where}: the server offers no STARTTLS, so nothing was sent "
                "(set starttls: false only for a relay on this host)"
            )
        except ssl.SSLCertVerificationError as exc:
            # Retryable: a renewed certificate or a fixed CA file lets the queued mail go later.
            return SendResult.retryable(
                f"SMTP {self._where}: the server's TLS certificate does not verify, so nothing was sent: "
                f"{exc.verify_message or exc.reason}"[:300]
            )
        except smtplib.SMTPRecipientsRefused as exc:
            return SendResult.error(f"recipients refused: {exc.recipients!r}"[:300])
        except smtplib.SMTPResponseException as exc:
            detail = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300]
            return SendResult.retryable(detail) if 400 <= exc.smtp_code < 500 else SendResult.error(detail)
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult.retryable(f"SMTP {self._where}: {exc!r}"[:300])
        return SendResult.ok()

    async def close(self) -> None:
        return None
