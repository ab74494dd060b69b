"""The board against the real pipeline (bridge, worker, alerting on the session's stack), in Debian's
chromium driven by Playwright: no browser is downloaded (`./dev setup` installs the chromium package).

The board is served over HTTPS with the stack's certificate. Chromium trusts exactly that certificate's
key (`--ignore-certificate-errors-spki-list` with its SPKI hash; any other certificate still fails), and
Playwright's own requests (`page.request`) trust the stack's CA (NODE_EXTRA_CA_CERTS); neither skips
certificate checks."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.api.auth import hash_password
from deploy.stack import add_gateways, ensure_topics
from deploy.stack.certs import chromium_trust_args
from riskwatch.registry import load_registry
from riskwatch.topics import Topics
from simulators.cli import DEFAULT_REGISTRY
from simulators.pipeline import Pipeline
from simulators.simulated_gateway import Broker, announce_online
from simulators.webhook import WebhookReceiver

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
TOKENS = {"RW_B_TOKEN_CENTRE": "centre-token-0123456789", "RW_B_TOKEN_COUNTY": "county-token-0123456789"}
PASSWORD = "province-duty-pass"
HOOK_SECRET = "board-hook-secret"


@dataclass(slots=True)
class BoardPipeline:
    pipe: Pipeline
    topics: Topics
    url: str  # alerting's HTTP address: the board is at url + "/board/"
    worker_url: str  # the worker's web view, for the colours the engine holds


def routes_doc(webhook_url: str) -> dict[str, Any]:
    """Everything yellow or worse to a local webhook; a province centre (password and token) and a county
    officer who sees only region SX-JC (晋城)."""
    return {
        "people": {"duty": {"name": "值班员", "mobile": "13800000000"}},
        "channels": {"hook": {"type": "webhook", "url": webhook_url, "secret_env": "RW_B_HOOK"}},
        "receivers": {"duty": {"people": ["duty"], "channels": ["hook"]}},
        "route": {"receiver": "duty", "min_colour": "yellow", "group_wait": "0s", "group_interval": "0s"},
        "api_tokens": [
            {"user": "centre", "role": "supervisor", "token_env": "RW_B_TOKEN_CENTRE",
             "password_env": "RW_B_PASSWORD_CENTRE"},
            {"user": "county", "role": "duty_officer", "token_env": "RW_B_TOKEN_COUNTY",
             "scope": {"regions": ["SX-JC"]}},
        ],
    }  # fmt: skip


@pytest.fixture(scope="module")
def board(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoardPipeline]:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run ./dev setup")
    run_dir = tmp_path_factory.mktemp("board-pipeline")
    topics = Topics(f"b{uuid.uuid4().hex[:10]}")
    ensure_topics(stack, topics, 3)
    receiver = WebhookReceiver(secret=HOOK_SECRET).start()
    routes = run_dir / "routes.yaml"
    routes.write_text(yaml.safe_dump(routes_doc(receiver.url), allow_unicode=True), encoding="utf-8")
    registry = load_registry(DEFAULT_REGISTRY)
    passwords = add_gateways(stack, [(g.site, g.id) for g in registry.gateways.values()])
    announce_online(
        {g.id: g.site for g in registry.gateways.values()},
        Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls),
    )
    pipe = Pipeline(run_dir, DEFAULT_REGISTRY, stack, topics.prefix)
    env = {**TOKENS, "RW_B_HOOK": HOOK_SECRET, "RW_B_PASSWORD_CENTRE": hash_password(PASSWORD)}
    try:
        pipe.start_bridge()
        worker = pipe.start_worker(ready_site="CHEM-01")
        alerting = pipe.start_alerting(routes, env=env)
        pipe.wait_ready(120)
        url = alerting.ready_url.rstrip("/")
        worker_url = worker.ready_url.split("/site/")[0]
        yield BoardPipeline(pipe, topics, url, worker_url)
    finally:
        pipe.stop()
        receiver.stop()


@pytest.fixture(scope="module")
def browser(stack: Any) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    before = os.environ.get("NODE_EXTRA_CA_CERTS")
    os.environ["NODE_EXTRA_CA_CERTS"] = str(stack.cafile)  # read by Playwright's driver when it starts
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *chromium_trust_args(stack.https_certfile)]
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if before is None:
            os.environ.pop("NODE_EXTRA_CA_CERTS", None)
        else:
            os.environ["NODE_EXTRA_CA_CERTS"] = before
