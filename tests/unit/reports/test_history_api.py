"""The history routes of the API on a real loopback server over a real alert store: scoping, formats,
Chinese surviving CSV and Excel. (The InfluxDB routes are exercised against the real InfluxDB by
tests/integration/reports.)"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import orjson
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook

from alerting.api.app import build_app
from alerting.api.auth import TokenAuth, User
from alerting.api.feed import EventHub
from alerting.history.export import csv_bytes, text_table
from alerting.lifecycle.manager import AlertManager
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from riskwatch.registry.registry import Registry
from tests.unit.alerting.conftest import FakeClock, make_config, warning

TOKENS = {"tok-province": User("prov", "viewer"), "tok-county": User("county", "viewer", frozenset({"R2"}))}
REGISTRY = {
    "regions": [{"id": "R1", "name": "一区"}, {"id": "R2", "name": "二区"}],
    "sites": [
        {"id": "S1", "region": "R1", "name": "一号化工厂", "industry": "hazardous_chemicals", "units": []},
        {"id": "S3", "region": "R2", "name": "三号尾矿库", "industry": "tailings_pond", "units": []},
    ],
}


def run(db: Path, body) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        cfg = make_config()
        hub = EventHub()
        clock = FakeClock()
        manager = AlertManager(Store(db), cfg, SiteDirectory(cfg.sites), clock, hub.notify)
        manager.handle(warning(new="red", entity="S1", site="S1", region="R1", at=clock()))
        manager.handle(warning(new="red", entity="S3", site="S3", region="R2", at=clock()))
        first = manager.store.list_alerts(site="S1")[0].id
        manager.acknowledge(first, "zhang", "=已签收，现场确认")
        registry = Registry.from_dict(REGISTRY)
        app = build_app(manager, TokenAuth(TOKENS), hub, registry=registry)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await body(client, clock())

    asyncio.run(go())


async def get(client: TestClient, path: str, token: str) -> tuple[int, bytes, str]:
    async with client.get(path, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.read(), r.headers.get("Content-Type", "")


def test_alert_export_is_scoped_and_keeps_chinese_in_csv_and_excel(tmp_path: Path) -> None:
    async def body(client: TestClient, now: float) -> None:
        span = f"from={now - 3600:.0f}&to={now + 3600:.0f}"
        status, raw, _ = await get(client, f"/api/history/alerts?{span}", "tok-province")
        rows = orjson.loads(raw)["rows"]
        assert status == 200 and {r[1] for r in rows} == {"S1", "S3"}
        assert [r[9] for r in rows if r[1] == "S1"] == ["opened", "acknowledged"]
        status, raw, _ = await get(client, f"/api/history/alerts?{span}", "tok-county")
        assert status == 200 and {r[1] for r in orjson.loads(raw)["rows"]} == {"S3"}
        status, raw, _ = await get(client, f"/api/history/alerts?{span}&site=S1", "tok-county")
        assert status == 403
        status, raw, kind = await get(
            client, f"/api/history/alerts?{span}&site=S1&format=xlsx", "tok-province"
        )
        assert status == 200 and kind.startswith("application/vnd.openxmlformats")
        sheet = load_workbook(io.BytesIO(raw)).active
        notes = [row[12] for row in sheet.iter_rows(min_row=2, values_only=True)]
        assert "'=已签收，现场确认" in notes  # a note never becomes an Excel formula
        status, raw, kind = await get(client, f"/api/history/alerts?{span}&format=csv", "tok-province")
        assert status == 200 and kind.startswith("text/csv") and raw.startswith(b"\xef\xbb\xbf")
        assert "=已签收，现场确认" in raw.decode("utf-8-sig")
        status, raw, _ = await get(client, "/api/history/alerts?from=10&to=5", "tok-province")
        assert status == 400
        status, raw, _ = await get(client, f"/api/history/sensor/S1?{span}", "tok-province")
        assert status == 503  # no InfluxDB configured: said so, not a crash
        status, raw, _ = await get(client, f"/api/history/colours/S1?{span}", "tok-county")
        assert status == 403

    run(tmp_path / "alerts.db", body)


def test_text_and_csv_tables() -> None:
    assert csv_bytes(["企业", "n"], [["一号化工厂", 1]]).decode("utf-8-sig") == "企业,n\r\n一号化工厂,1\r\n"
    assert text_table(["a", "bb"], [["xyz", 1]]).splitlines() == ["a    bb", "---  --", "xyz  1"]
