"""Secrets stay out of logs, exception texts and the audit trail; secret files are private from birth.

`redact` is applied wherever a text that may carry a secret (an exception, a receiver's answer) is
logged, audited or dead-lettered: URLs keep only scheme and host (robot URLs carry their access token
in the query or the path), `password=...`-like pairs lose their value, and values registered with
`remember` (the secrets a process resolved) are replaced wherever they appear.

`install_log_redaction` applies `redact` to every log record of the process, riskwatch's and its
libraries' alike (Kafka, MQTT and HTTP clients log URLs and errors too): the message with its arguments
filled in, the exception's traceback text and any stack text, before any handler or formatter sees them.
`riskwatch` installs it first thing, for every command.

`write_private` writes a file that is 0600 from the moment it exists: a temporary file in the same
directory created with that mode, synced, then renamed over the target, so a reader never sees a
half-written file and no other user ever sees its content.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import traceback
import urllib.parse
from pathlib import Path
from typing import Any

MASK = "***"
# Shorter values are too likely to occur in ordinary text to be replaced everywhere. Parts of a URL must
# look like a token (robots' are 32 to 64 characters): `?who=leader` or `/alerts` are not secrets.
MIN_REMEMBERED = 6
MIN_URL_PART = 16

_known: set[str] = set()

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{},]+")
# `name=value`, `name: value` and `'name': 'value'` (a dict's repr, as a client library logs its
# configuration), where the name is a secret's or ends in one (`sasl_plain_password`, `x-api-key`).
_PAIR = re.compile(
    r"(?i)(?<![A-Za-z0-9_-])((?:[A-Za-z0-9]+[_-])*"
    r"(?:(?:access[_-]?)?token|password|passwd|pwd|secret|api[_-]?key|apikey|sign|signature))"
    r"(['\"]?\s*[=:]\s*['\"]?)([^\s&'\",;)}\]]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")


def remember(*values: str | None) -> None:
    """Register secret values of this process: `redact` masks them wherever they appear. A URL is
    remembered with its query values and last path segment, the parts that usually hold the token."""
    for value in values:
        if not value:
            continue
        _known.update(_secret_forms(value))


def _secret_forms(value: str) -> set[str]:
    """The value itself and, for a URL, its token-like parts."""
    forms = {value} if len(value) >= MIN_REMEMBERED else set()
    return forms | {part for part in _url_parts(value) if len(part) >= MIN_URL_PART}


def _url_parts(value: str) -> list[str]:
    if "://" not in value:
        return []
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return []
    found = [v for _, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=False)]
    found += [s for s in (parts.password, parts.path.rstrip("/").rsplit("/", 1)[-1]) if s]
    return found


def redact_url(url: str) -> str:
    """Scheme and host (and port) only: user info, paths and queries of URLs may be credentials."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return MASK
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rsplit("@", 1)[-1]
    return f"{scheme}://{host}/{MASK}" if rest != host else f"{scheme}://{host}"


def redact(text: str, *known: str | None) -> str:
    """`text` without secrets: remembered and `known` values masked, URLs cut to their host,
    `password=...`-like values and bearer tokens masked."""
    values = set(_known)
    for value in known:
        if value:
            values.update(_secret_forms(value))
    # Longest first, so a URL is masked whole before the token inside it; encoded forms too, since an
    # error text may quote the value as it was sent.
    for value in sorted(values, key=len, reverse=True):
        for form in {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}:
            text = text.replace(form, MASK)
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)


def redact_record(record: logging.LogRecord) -> None:
    """Replace the record's message, exception text and stack text by their redacted forms."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it itself; nothing was filled in
        message = str(record.msg)
    record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters use exc_text as it is when it is set: the traceback is never formatted again.
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redact(text)
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install_log_redaction() -> None:
    """Redact every log record of this process when it is made (see the module docstring); idempotent."""
    base = logging.getLogRecordFactory()
    if getattr(base, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        redact_record(record)
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def write_private(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` atomically with mode 0600 from creation (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)  # exactly 0600 whatever the umask took away
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    """Make the rename itself durable; some file systems cannot open a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_private(path: Path) -> str:
    """The text of a secret file, refused (RiskwatchError naming the file) unless only its owner can read
    it: a password others can read is already leaked. Trailing newlines are dropped."""
    from riskwatch.errors import RiskwatchError

    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text()
    except OSError as exc:
        raise RiskwatchError(f"{path}: cannot read the secret file: {exc.strerror}") from None
    if mode & 0o077:
        raise RiskwatchError(f"{path}: mode {mode:o} lets others read this secret; chmod 600 {path}")
    return text.rstrip("\r\n")
