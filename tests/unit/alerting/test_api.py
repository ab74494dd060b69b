"""The HTTP API on a real loopback server: tokens, roles, reasons for 400/401/403/404/409, SSE feed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from alerting.api.app import build_app
from alerting.api.auth import TokenAuth, User
from alerting.api.feed import EventHub
from alerting.lifecycle.manager import AlertManager
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from tests.unit.alerting.conftest import FakeClock, make_config, warning

TOKENS = {"tok-duty": User("zhang", "duty_officer"), "tok-sup": User("wang", "supervisor"),
          "tok-view": User("board", "viewer")}  # fmt: skip


def H(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_api(db: Path, body: Callable[[TestClient, AlertManager, str], Awaitable[None]]) -> None:
    async def go() -> None:
        cfg = make_config()
        hub = EventHub()
        manager = AlertManager(Store(db), cfg, SiteDirectory(cfg.sites), FakeClock(), hub.notify)
        manager.handle(warning(new="red"))
        alert_id = manager.store.list_alerts()[0].id
        async with TestClient(
            TestServer(build_app(manager, TokenAuth(TOKENS), hub), host="127.0.0.1")
        ) as client:
            await body(client, manager, alert_id)

    asyncio.run(go())


async def call(client: TestClient, method: str, path: str, token: str | None = None, body: Any = None,
               raw: bytes | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    async with client.request(method, path, headers=H(token) if token else {}, data=data) as response:
        return response.status, orjson.loads(await response.read())


def test_authentication_and_roles(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, alert_id: str) -> None:
        status, doc = await call(client, "GET", "/api/alerts")
        assert (status, doc["error"]) == (401, "missing or unknown bearer token")
        assert (await call(client, "GET", "/api/alerts", "wrong"))[0] == 401
        status, doc = await call(client, "GET", "/api/alerts", "tok-view")
        assert status == 200 and [a["id"] for a in doc["alerts"]] == [alert_id]
        status, doc = await call(client, "POST", f"/api/alerts/{alert_id}/ack", "tok-view", {})
        assert (status, doc["error"]) == (403, "role viewer may not ack")
        assert (await call(client, "POST", f"/api/alerts/{alert_id}/shelve", "tok-duty", {}))[0] == 403
        assert manager.store.get_alert(alert_id).acked is False  # refused requests change nothing

    with_api(db_path, body)


def test_ack_note_close_loop_and_close_without_note_is_refused(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, alert_id: str) -> None:
        status, doc = await call(
            client, "POST", f"/api/alerts/{alert_id}/close", "tok-duty", {"note": "done"}
        )
        assert status == 409 and "acknowledge it before closing" in doc["error"]
        status, doc = await call(
            client, "POST", f"/api/alerts/{alert_id}/ack", "tok-duty", {"note": "已签收"}
        )
        assert (status, doc["alert"]["state"]) == (200, "active-acknowledged")
        status, doc = await call(client, "POST", f"/api/alerts/{alert_id}/close", "tok-duty", {})
        assert status == 400 and "disposal `note`" in doc["error"]
        status, _ = await call(
            client, "POST", f"/api/alerts/{alert_id}/notes", "tok-duty", {"note": "已关阀"}
        )
        assert status == 200
        status, doc = await call(
            client, "POST", f"/api/alerts/{alert_id}/close", "tok-duty", {"note": "已处置"}
        )
        assert (status, doc["alert"]["state"], doc["alert"]["closed_by"]) == (200, "closed", "zhang")
        status, doc = await call(client, "GET", f"/api/alerts/{alert_id}", "tok-view")
        assert [(e["type"], e["actor"], e["note"]) for e in doc["audit"]] == [
            ("opened", "system", ""), ("acknowledged", "zhang", "已签收"), ("noted", "zhang", "已关阀"),
            ("closed", "zhang", "已处置"),
        ]  # fmt: skip
        status, doc = await call(client, "GET", "/api/alerts?state=closed", "tok-view")
        assert len(doc["alerts"]) == 1

    with_api(db_path, body)


def test_malformed_requests_get_400_with_a_reason(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, alert_id: str) -> None:
        cases = [
            ("POST", f"/api/alerts/{alert_id}/ack", None, b"{not json", "not valid JSON"),
            ("POST", f"/api/alerts/{alert_id}/ack", [1], None, "must be a JSON object"),
            ("POST", f"/api/alerts/{alert_id}/notes", {"note": 5}, None, "`note` must be a string"),
            ("GET", "/api/alerts?state=burning", None, None, "unknown state 'burning'"),
            ("GET", "/api/alerts?limit=x", None, None, "`limit` must be an integer"),
            ("POST", f"/api/alerts/{alert_id}/shelve", {"minutes": 30}, None, "`reason` is required"),
            (
                "POST",
                f"/api/alerts/{alert_id}/shelve",
                {"until": "tomorrow", "reason": "x"},
                None,
                "ISO time",
            ),
            ("POST", "/api/maintenance", {"site": "S1", "start": 0, "end": 10}, None, "`reason` is required"),
        ]
        for method, path, doc, raw, reason in cases:
            status, answer = await call(client, method, path, "tok-sup", doc, raw)
            assert status == 400 and reason in answer["error"], (path, answer)
        status, answer = await call(client, "POST", "/api/alerts/nope/ack", "tok-sup", {})
        assert (status, answer["error"]) == (404, "no alert 'nope'")

    with_api(db_path, body)


def test_supervisor_shelves_and_opens_a_maintenance_window(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, alert_id: str) -> None:
        status, doc = await call(client, "POST", f"/api/alerts/{alert_id}/shelve", "tok-sup",
                                 {"minutes": 30, "reason": "传感器标定"})  # fmt: skip
        assert status == 200 and doc["alert"]["shelved_until"] == manager.clock() + 1800
        window = {"site": "S1", "unit": "U1", "start": "2026-11-23T08:00+08:00", "end": "2026-11-23T18:00+08:00",
                  "reason": "检修"}  # fmt: skip
        status, doc = await call(client, "POST", "/api/maintenance", "tok-sup", window)
        assert status == 201
        assert [e.type for e in manager.store.events_after(0)][-1] == "maintenance"

    with_api(db_path, body)


def test_sse_stream_delivers_events_and_resumes_from_last_event_id(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, alert_id: str) -> None:
        async with client.get("/api/events?after=0", headers=H("tok-view")) as response:
            assert response.headers["Content-Type"] == "text/event-stream"
            frames = await read_frames(response, 1)
            assert frames[0]["event"] == "opened"
            manager.acknowledge(alert_id, "zhang", "收到")
            frames = await read_frames(response, 1)
            assert (
                frames[0]["event"] == "acknowledged" and orjson.loads(frames[0]["data"])["actor"] == "zhang"
            )
            last = frames[0]["id"]
        manager.add_note(alert_id, "zhang", "处置中")
        async with client.get("/api/events", headers={**H("tok-view"), "Last-Event-ID": last}) as response:
            frames = await read_frames(response, 1)
            assert frames[0]["event"] == "noted"
        assert (await call(client, "GET", "/api/events"))[0] == 401

    with_api(db_path, body)


async def read_frames(response: Any, n: int) -> list[dict[str, str]]:
    frames: list[dict[str, str]] = []
    current: dict[str, str] = {}
    while len(frames) < n:
        line = (await asyncio.wait_for(response.content.readline(), 5)).decode().rstrip("\n")
        if not line:
            if current:
                frames.append(current)
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    return frames


def test_acknowledge_link_page_needs_no_token_and_refuses_odd_ids(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, alert_id: str) -> None:
        async with client.get(f"/alerts/{alert_id}") as response:
            page = await response.text()
            assert response.status == 200 and f'const id = "{alert_id}"' in page
        async with client.get("/alerts/x%22%3Balert(1)") as response:
            assert response.status == 400 and "alert(" not in await response.text()

    with_api(db_path, body)
