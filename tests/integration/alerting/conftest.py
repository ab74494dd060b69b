"""Fixtures of the alerting integration tests: local HTTP and SMTP receivers for every channel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.alerting.receivers import HttpReceiver, SmtpReceiver
from tests.integration.alerting.service_proc import SECRETS


@pytest.fixture
def receivers() -> Iterator[tuple[HttpReceiver, SmtpReceiver]]:
    http = HttpReceiver(secrets={"dingtalk": SECRETS["RW_T_DING"], "feishu": SECRETS["RW_T_FEISHU"],
                                 "hook": SECRETS["RW_T_HOOK"], "sms": SECRETS["RW_T_SMS"]}).start()  # fmt: skip
    smtp = SmtpReceiver().start()
    yield http, smtp
    http.stop()
    smtp.stop()
