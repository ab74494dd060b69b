"""One contract suite run against every channel, each against a real local receiver (HTTP or SMTP)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller

from alerting.channels import CHANNEL_TYPES, build_channel, channel_module
from alerting.channels.base import Message, SendStatus
from tests.integration.alerting.receivers import HttpReceiver, SmtpReceiver, _SmtpHandler, free_port

SECRET = "SECtest-secret-0123456789"
KIND = {"dingtalk": "dingtalk", "wecom": "wecom", "feishu": "feishu", "webhook": "hook", "sms": "sms"}


def message(key: str = "k-1", colour: str = "red") -> Message:
    return Message(
        key=key, channel="c", title="【红色预警】一号化工厂 U1", markdown="### 【红色预警】\n- **原因**：可燃气体",
        text="【红色预警】一号化工厂 U1 原因：可燃气体", colour=colour, mobiles=("13800000001",),
        emails=("zhang@example.cn",), alert_ids=("al-1",), link="http://127.0.0.1/alerts/al-1",
    )  # fmt: skip


@pytest.fixture(scope="module")
def http() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(secrets={k: SECRET for k in ("dingtalk", "feishu", "hook", "sms")}).start()
    yield receiver
    receiver.stop()


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the channel is told to trust
    cert: Path  # 127.0.0.1's certificate, issued by that CA
    key: Path
    rogue_cert: Path  # a self-signed certificate for 127.0.0.1: right name, nobody vouches for it
    rogue_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA and server certificates, made with the openssl tool for this module only."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=riskwatch test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "server.ext", "-out", "server.pem")  # fmt: skip
    openssl("req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.pem", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1")  # fmt: skip
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "rogue.pem", d / "rogue.key")


class TlsSmtpReceiver(SmtpReceiver):
    """The SMTP receiver, requiring STARTTLS with the given certificate before anything else."""

    def __init__(self, cert: Path, key: Path, ca_file: Path | None = None) -> None:
        super().__init__()
        self.ca_file = ca_file
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._controller = Controller(
            _SmtpHandler(self),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
        )


@pytest.fixture(scope="module")
def smtp(pki: Pki) -> Iterator[SmtpReceiver]:
    """Every channel test mails over verified STARTTLS, the default."""
    receiver = TlsSmtpReceiver(pki.cert, pki.key, pki.ca).start()
    yield receiver
    receiver.stop()


def make(type_: str, http: HttpReceiver, smtp: SmtpReceiver, port: int | None = None) -> Any:
    if type_ == "email":
        raw: dict[str, Any] = {"type": "email", "host": "127.0.0.1", "port": port or smtp.port,
                               "sender": "riskwatch@example.cn", "timeout_s": 5}  # fmt: skip
        if ca_file := getattr(smtp, "ca_file", None):
            raw["ca_file"] = str(ca_file)
    else:
        base = f"http://127.0.0.1:{port}" if port else http.url
        raw = {"type": type_, "url": f"{base}/{KIND[type_]}?access_token=t", "timeout_s": 5}
        if type_ != "wecom":
            raw["secret_env"] = "X"
    settings = channel_module(type_).Settings.model_validate(raw)
    return build_channel("c", settings, SECRET if raw.get("secret_env") else None)


def send(channel: Any, msg: Message) -> Any:
    async def go() -> Any:
        try:
            return await channel.send(msg)
        finally:
            await channel.close()

    return asyncio.run(go())


def script_failure(type_: str, http: HttpReceiver, smtp: SmtpReceiver, retryable: bool) -> None:
    if type_ == "email":
        smtp.script.append("451 4.3.0 try again later" if retryable else "550 5.1.1 mailbox unavailable")
    else:
        http.script[KIND[type_]] = [(503 if retryable else 400, {"error": "scripted"})]


ALL = sorted(CHANNEL_TYPES)


@pytest.mark.parametrize("type_", ALL)
def test_delivers_once_with_key_and_valid_signature(
    type_: str, http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    key = f"ok-{type_}"
    result = send(make(type_, http, smtp), message(key))
    assert result.outcome is SendStatus.OK, result.detail
    if type_ == "email":
        [(rcpt, mail)] = [(r, m) for r, m in smtp.mails if m["X-Idempotency-Key"] == key]
        assert rcpt == ["zhang@example.cn"] and mail["Message-ID"] == f"<{key}@riskwatch>"
        assert "一号化工厂" in mail["Subject"] and "http://127.0.0.1/alerts/al-1" in mail.get_content()
        return
    [got] = [r for r in http.records(KIND[type_]) if r.key == key]
    assert got.signature_ok is (None if type_ == "wecom" else True)
    assert "一号化工厂" in orjson.dumps(got.body).decode()


@pytest.mark.parametrize("type_", ALL)
def test_temporary_failure_is_retryable(type_: str, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    script_failure(type_, http, smtp, retryable=True)
    assert send(make(type_, http, smtp), message()).outcome is SendStatus.RETRYABLE


@pytest.mark.parametrize("type_", ALL)
def test_permanent_failure_is_an_error(type_: str, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    script_failure(type_, http, smtp, retryable=False)
    assert send(make(type_, http, smtp), message()).outcome is SendStatus.ERROR


@pytest.mark.parametrize("type_", ALL)
def test_unreachable_receiver_is_retryable(type_: str, http: HttpReceiver, smtp: SmtpReceiver) -> None:
    result = send(make(type_, http, smtp, port=free_port()), message())
    assert result.outcome is SendStatus.RETRYABLE and "secret" not in result.detail


def test_dingtalk_markdown_mentions_on_call_mobiles_and_maps_errcodes(
    http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    send(make("dingtalk", http, smtp), message("ding-md"))
    [got] = [r for r in http.records("dingtalk") if r.key == "ding-md"]
    assert got.body["msgtype"] == "markdown" and got.body["at"]["atMobiles"] == ["13800000001"]
    assert "@13800000001" in got.body["markdown"]["text"]
    http.script["dingtalk"] = [(200, {"errcode": 130101, "errmsg": "send too fast"})]
    assert send(make("dingtalk", http, smtp), message()).outcome is SendStatus.RETRYABLE
    http.script["dingtalk"] = [(200, {"errcode": 310000, "errmsg": "sign not match"})]
    assert send(make("dingtalk", http, smtp), message()).outcome is SendStatus.ERROR


def test_dingtalk_wrong_secret_fails_the_receivers_check(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    settings = channel_module("dingtalk").Settings(type="dingtalk", url=f"{http.url}/dingtalk?access_token=t")
    send(build_channel("c", settings, "not-the-secret"), message("ding-bad"))
    [got] = [r for r in http.records("dingtalk") if r.key == "ding-bad"]
    assert got.signature_ok is False


@pytest.mark.parametrize(("colour", "template"), [("red", "red"), ("orange", "orange"), ("blue", "blue")])
def test_feishu_card_header_is_coloured_by_level(
    colour: str, template: str, http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    key = f"fs-{colour}"
    send(make("feishu", http, smtp), message(key, colour))
    [got] = [r for r in http.records("feishu") if r.key == key]
    assert got.body["msg_type"] == "interactive"
    assert got.body["card"]["header"]["template"] == template
    assert got.body["card"]["elements"][1]["actions"][0]["url"] == "http://127.0.0.1/alerts/al-1"


def test_wecom_markdown_uses_font_colour_and_fits_4096_bytes(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    long = replace(message("wc-long"), markdown="预警" * 3000)
    send(make("wecom", http, smtp), long)
    [got] = [r for r in http.records("wecom") if r.key == "wc-long"]
    content = got.body["markdown"]["content"]
    assert '<font color="warning">' in content and len(content.encode()) <= 4096


def test_sms_without_mobiles_is_an_error_not_a_silent_drop(http: HttpReceiver, smtp: SmtpReceiver) -> None:
    msg = replace(message(), mobiles=())
    assert send(make("sms", http, smtp), msg).outcome is SendStatus.ERROR


def mail(settings: dict[str, Any], receiver: SmtpReceiver, key: str) -> Any:
    raw = {"type": "email", "host": "127.0.0.1", "port": receiver.port, "sender": "rw@example.cn",
           "timeout_s": 5, "username": "rw", "secret_env": "X", **settings}  # fmt: skip
    channel = build_channel("c", channel_module("email").Settings.model_validate(raw), SECRET)
    result = send(channel, message(key))
    return result, [m for _, m in receiver.mails if m["X-Idempotency-Key"] == key]


def test_email_refuses_a_server_that_offers_no_starttls() -> None:
    plain = SmtpReceiver().start()
    try:
        result, got = mail({}, plain, "no-tls")
    finally:
        plain.stop()
    assert result.outcome is SendStatus.RETRYABLE and "offers no STARTTLS" in result.detail
    assert got == [] and SECRET not in result.detail


@pytest.mark.parametrize("case", ["self-signed", "unknown CA"])
def test_email_refuses_a_certificate_that_does_not_verify(case: str, pki: Pki) -> None:
    if case == "self-signed":  # the right name on it, but signed by nobody the channel trusts
        receiver, settings = TlsSmtpReceiver(pki.rogue_cert, pki.rogue_key), {"ca_file": str(pki.ca)}
    else:  # issued by a CA the system does not know, and no ca_file given
        receiver, settings = TlsSmtpReceiver(pki.cert, pki.key), {}
    receiver.start()
    try:
        result, got = mail(settings, receiver, f"bad-cert-{case}")
    finally:
        receiver.stop()
    assert result.outcome is SendStatus.RETRYABLE, result
    assert "certificate does not verify" in result.detail
    assert ("self-signed" if case == "self-signed" else "local issuer") in result.detail
    assert got == []


def test_email_over_verified_starttls_delivers(smtp: SmtpReceiver, pki: Pki) -> None:
    result, got = mail({"ca_file": str(pki.ca), "username": None, "secret_env": None}, smtp, "tls-ok")
    assert result.outcome is SendStatus.OK, result.detail
    assert len(got) == 1


def test_email_starttls_false_sends_in_clear_to_a_local_relay() -> None:
    plain = SmtpReceiver().start()
    try:
        result, got = mail({"starttls": False, "username": None, "secret_env": None}, plain, "relay")
    finally:
        plain.stop()
    assert result.outcome is SendStatus.OK, result.detail
    assert len(got) == 1
