"""The robot channels (DingTalk, WeCom, Feishu) map their robots' JSON answers to send results.

The HTTP layer is stubbed here; tests/integration/alerting/test_channels.py runs them against a real
local receiver.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from alerting.channels import channel_module
from alerting.channels.base import Message, SendResult, SendStatus

MESSAGE = Message(key="k", channel="c", title="t", markdown="m", text="x", colour="red")


class StubPoster:
    """Answers every post with (result, body) and remembers what was posted."""

    def __init__(self, result: SendResult | None, body: Any) -> None:
        self.answer = (result, body)
        self.posted: list[tuple[str, Any]] = []

    async def post_json(
        self, url: str, doc: Any, message: Message, headers: dict[str, str] | None = None
    ) -> tuple[SendResult | None, Any]:
        self.posted.append((url, doc))
        return self.answer


def send(type_: str, result: SendResult | None, body: Any) -> tuple[SendResult, StubPoster]:
    module = channel_module(type_)
    settings = module.Settings(type=type_, url=f"http://robot.invalid/{type_}?access_token=t")
    channel = module.Channel("c", settings, None)
    channel._http = StubPoster(result, body)
    return asyncio.run(channel.send(MESSAGE)), channel._http


@pytest.mark.parametrize(
    ("type_", "body", "outcome", "detail"),
    [
        ("dingtalk", {"errcode": 0, "errmsg": "ok"}, SendStatus.OK, ""),
        (
            "dingtalk",
            {"errcode": 130101},
            SendStatus.RETRYABLE,
            "dingtalk errcode 130101: {'errcode': 130101}",
        ),
        ("dingtalk", {"errcode": 310000}, SendStatus.ERROR, "dingtalk errcode 310000: {'errcode': 310000}"),
        ("dingtalk", {"errmsg": "?"}, SendStatus.ERROR, "dingtalk errcode None: {'errmsg': '?'}"),
        ("wecom", {"errcode": 0}, SendStatus.OK, ""),
        ("wecom", {"errcode": 45009}, SendStatus.RETRYABLE, "wecom errcode 45009: {'errcode': 45009}"),
        ("wecom", {"errcode": -1}, SendStatus.RETRYABLE, "wecom errcode -1: {'errcode': -1}"),
        ("wecom", {"errcode": 93000}, SendStatus.ERROR, "wecom errcode 93000: {'errcode': 93000}"),
        ("feishu", {"code": 0, "msg": "success"}, SendStatus.OK, ""),
        ("feishu", {"StatusCode": 0}, SendStatus.OK, ""),
        ("feishu", {"code": 11232}, SendStatus.RETRYABLE, "feishu code 11232: {'code': 11232}"),
        ("feishu", {"code": 19021}, SendStatus.ERROR, "feishu code 19021: {'code': 19021}"),
        ("feishu", None, SendStatus.ERROR, "feishu answered without JSON: None"),
        ("dingtalk", [], SendStatus.ERROR, "dingtalk answered without JSON: []"),
        ("wecom", None, SendStatus.ERROR, "wecom answered without JSON: None"),
    ],
)
def test_robot_answers_map_to_results(type_: str, body: Any, outcome: SendStatus, detail: str) -> None:
    result, poster = send(type_, None, body)
    assert (result.outcome, result.detail) == (outcome, detail)
    assert [url for url, _ in poster.posted] == [f"http://robot.invalid/{type_}?access_token=t"]


@pytest.mark.parametrize("type_", ["dingtalk", "wecom", "feishu"])
def test_http_failures_pass_through(type_: str) -> None:
    failed = SendResult.retryable("HTTP 503: b''")
    assert send(type_, failed, None)[0] is failed


def test_a_long_answer_is_cut_in_the_detail() -> None:
    result, _ = send("wecom", None, {"errcode": 1, "errmsg": "x" * 1000})
    assert result.outcome is SendStatus.ERROR and len(result.detail) == 300
