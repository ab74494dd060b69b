"""The process-wide log redaction: no secret reaches a log line, a traceback or a stack text, whichever
logger (riskwatch's or a library's) wrote it and however the handler formats it."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from riskwatch import secrets as rs

ROBOT = "https://oapi.dingtalk.com/robot/send?access_token=9f8e7d6c5b4a39281706f5e4d3c2b1a0"
FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
MQTT_PASSWORD = "Mq7-bridge-pass-Zx81"
TOKENS = ("9f8e7d6c5b4a39281706f5e4d3c2b1a0", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", MQTT_PASSWORD)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A library-like logger writing through an ordinary handler, with redaction installed."""
    previous = logging.getLogRecordFactory()
    rs.install_log_redaction()
    rs.install_log_redaction()  # idempotent: one layer only
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger(f"somelibrary.{id(out)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)
        logging.setLogRecordFactory(previous)


def _clean(text: str) -> None:
    for token in TOKENS:
        assert token not in text, f"{token!r} leaked into: {text}"


def test_urls_with_keys_in_arguments_and_messages_are_cut_to_their_host(captured) -> None:  # type: ignore[no-untyped-def]
    logger, out = captured
    logger.warning("POST %s failed", ROBOT)
    logger.error(f"feishu hook {FEISHU} answered 500")
    text = out.getvalue()
    _clean(text)
    assert "POST https://oapi.dingtalk.com/*** failed" in text
    assert "feishu hook https://open.feishu.cn/*** answered 500" in text


def test_exception_text_and_traceback_are_redacted(captured) -> None:  # type: ignore[no-untyped-def]
    logger, out = captured
    rs.remember(MQTT_PASSWORD)
    try:
        raise ConnectionError(f"cannot reach {ROBOT}; login with {MQTT_PASSWORD} refused")
    except ConnectionError:
        logger.exception("delivery failed")
    text = out.getvalue()
    _clean(text)
    assert "Traceback (most recent call last)" in text and "ConnectionError: cannot reach" in text
    assert "login with *** refused" in text


def test_remembered_passwords_and_config_dumps_are_masked(captured) -> None:  # type: ignore[no-untyped-def]
    logger, out = captured
    rs.remember(MQTT_PASSWORD)
    logger.info("connecting as riskwatch-bridge with %r", MQTT_PASSWORD)
    config = {"bootstrap_servers": "k:9093", "sasl_plain_password": "sasl-Secret-774", "api_key": "k-99812"}
    logger.debug("producer config %s", config)
    logger.info("sasl_plain_password=hunter2-kafka token: tok-abcdef Authorization: Bearer abcdefghijkl")
    text = out.getvalue()
    _clean(text)
    for leaked in ("sasl-Secret-774", "k-99812", "hunter2-kafka", "tok-abcdef", "abcdefghijkl"):
        assert leaked not in text, text
    assert "'bootstrap_servers': 'k:9093'" in text  # what is not a secret stays readable
    # Names of variables are not secrets: configuration errors stay useful.
    logger.error("routes.yaml: api_tokens[0].token_env: environment variable RW_TOKEN is not set")
    assert "token_env: environment variable RW_TOKEN" in out.getvalue()


def test_stack_info_is_redacted(captured) -> None:  # type: ignore[no-untyped-def]
    logger, out = captured
    # A stack text quotes source lines, which may hold a URL with its key.
    stack = f'Stack (most recent call last):\n  File "send.py", line 7, in post\n    requests.post("{ROBOT}")'
    record = logger.makeRecord(
        logger.name, logging.INFO, "send.py", 7, "about to post", None, None, sinfo=stack
    )
    logger.handle(record)
    text = out.getvalue()
    assert "Stack (most recent call last)" in text and "https://oapi.dingtalk.com/***" in text
    _clean(text)


def test_every_riskwatch_command_installs_it() -> None:
    """`riskwatch COMMAND` logs through the redacting factory (checked in a fresh interpreter)."""
    code = (
        "import logging, riskwatch.cli as c, riskwatch.secrets as s\n"
        "try:\n    c.main(['config', '--no-such-flag'])\nexcept SystemExit:\n    pass\n"
        "print(getattr(logging.getLogRecordFactory(), 'redacting', False))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().endswith("True"), done.stdout + done.stderr
