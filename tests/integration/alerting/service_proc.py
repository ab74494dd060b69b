"""Run `riskwatch alerting` as a real separate process for integration tests; stopped by its pid only.

It serves HTTPS with the stack's certificate, as under `riskwatch run`; the tests' own requests verify it
against the stack's CA (`ServiceProcess.urlopen`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

from riskwatch.kafka_access import KafkaAccess
from riskwatch.tls import ClientTLS
from tests.integration.alerting.receivers import free_port

ROOT = Path(__file__).resolve().parents[3]
SECRETS = {"RW_T_DING": "SEC-ding-secret", "RW_T_FEISHU": "feishu-secret", "RW_T_HOOK": "hook-secret",
           "RW_T_SMS": "sms-token", "RW_T_TOKEN_DUTY": "duty-token", "RW_T_TOKEN_VIEW": "view-token"}  # fmt: skip


def routes_doc(http_url: str, smtp_port: int, api_port: int, **route: Any) -> dict[str, Any]:
    """A routes file whose channels all point at the local receivers; an officer on call all week."""
    doc: dict[str, Any] = {
        "defaults": {"ack_url": f"https://127.0.0.1:{api_port}/alerts/{{alert_id}}", "retry_initial": "0.2s",
                     "retry_max": "1s"},
        "people": {
            "zhang": {"name": "张伟", "mobile": "13800000001", "email": "zhang@example.cn"},
            "wang": {"name": "王强", "mobile": "13800000003", "email": "wang@example.cn"},
            "chen": {"name": "陈静", "mobile": "13800000004", "email": "chen@example.cn"},
        },
        "rosters": {"duty": {"timezone": "Asia/Shanghai", "shifts": [{"people": ["zhang"]}]}},
        "channels": {
            "ding": {"type": "dingtalk", "url": f"{http_url}/dingtalk?access_token=t", "secret_env": "RW_T_DING"},
            "wecom": {"type": "wecom", "url": f"{http_url}/wecom?key=k"},
            "feishu": {"type": "feishu", "url": f"{http_url}/feishu", "secret_env": "RW_T_FEISHU"},
            # A local relay without TLS: opted out explicitly (insecure anywhere else).
            "mail": {"type": "email", "host": "127.0.0.1", "port": smtp_port, "sender": "rw@example.cn",
                     "starttls": False},
            "sms": {"type": "sms", "url": f"{http_url}/sms", "secret_env": "RW_T_SMS"},
            "hook": {"type": "webhook", "url": f"{http_url}/hook", "secret_env": "RW_T_HOOK"},
            "hook-leader": {"type": "webhook", "url": f"{http_url}/hook?who=leader", "secret_env": "RW_T_HOOK"},
            "hook-director": {"type": "webhook", "url": f"{http_url}/hook?who=director",
                              "secret_env": "RW_T_HOOK"},
        },
        "receivers": {
            "officer": {"roster": "duty", "channels": ["ding", "wecom", "feishu", "mail", "sms", "hook"]},
            "leader": {"people": ["wang"], "channels": ["hook-leader"]},
            "director": {"people": ["chen"], "channels": ["hook-director"]},
        },
        "escalation_policies": {
            "esc": {"tiers": [{"receiver": "leader", "after": "5s"}, {"receiver": "director", "after": "5s"}]}
        },
        "sites": {"S1": {"name": "一号化工厂", "region": "R1", "industry": "hazchem"}},
        "route": {"receiver": "officer", "min_colour": "yellow", "group_wait": "0s", "group_interval": "0s",
                  "escalation": "esc", **route},
        "api_tokens": [{"user": "zhang", "role": "duty_officer", "token_env": "RW_T_TOKEN_DUTY"},
                       {"user": "board", "role": "viewer", "token_env": "RW_T_TOKEN_VIEW"}],
    }  # fmt: skip
    return doc


class ServiceProcess:
    def __init__(
        self, tmp: Path, routes: dict[str, Any], stack: Any, prefix: str, api_port: int, *extra: str
    ) -> None:
        self.kafka: KafkaAccess = stack.kafka("alerting")
        self.tmp, self.prefix, self.api_port = tmp, prefix, api_port
        self.stack, self.extra = stack, list(extra)
        self.base = f"https://127.0.0.1:{api_port}"
        self.tls = ClientTLS(stack.cafile).context()
        self.routes_file = tmp / "routes.yaml"
        self.routes_file.write_text(yaml.safe_dump(routes, allow_unicode=True), encoding="utf-8")
        self.db = tmp / "alerting.db"
        self.log = tmp / "alerting.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.group = f"riskwatch-alerting-{prefix}"  # the alerting account may use only these groups

    def start(self) -> ServiceProcess:
        cmd = [sys.executable, "-m", "riskwatch", "alerting", "--routes", str(self.routes_file), "--kafka",
               self.kafka.bootstrap, "--topic-prefix", self.prefix, "--db", str(self.db), "--port", str(self.api_port),
               "--group", self.group, "--tick-s", "0.2", "--tls-certfile", str(self.stack.https_certfile),
               "--tls-keyfile", str(self.stack.https_keyfile), *self.extra]  # fmt: skip
        env = {**os.environ, **SECRETS, **self.kafka.env(), "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            try:
                with self.urlopen("/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("alerting service did not come up:\n" + self.log.read_text(errors="replace"))

    def urlopen(self, what: str | urllib.request.Request, timeout: float = 5.0) -> Any:
        """GET a path (or a full URL, or a Request) of this service over HTTPS, verified with the stack's CA."""
        target = self.base + what if isinstance(what, str) and what.startswith("/") else what
        return urllib.request.urlopen(target, timeout=timeout, context=self.tls)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, exactly what a crash looks like."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def api(self, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.base}{path}", method=method,
            data=None if body is None else orjson.dumps(body),
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )  # fmt: skip
        try:
            with self.urlopen(request, timeout=5) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def api_port() -> int:
    return free_port()
