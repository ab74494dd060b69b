"""200 warnings in a minute to one DingTalk robot: digests keep it within 20 messages/min, nothing lost.

The pipeline runs in-process with an injected clock (the minute is simulated), the robot is a real local
HTTP server that checks every signature.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from alerting.channels import build_channel
from alerting.dispatch.dispatcher import Dispatcher
from alerting.dispatch.outbox import Deliverer
from alerting.lifecycle.manager import AlertManager
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from tests.integration.alerting.receivers import HttpReceiver
from tests.unit.alerting.conftest import FakeClock, make_config, warning

SECRET = "SEC-flood"


def test_flood_of_200_warnings_to_one_dingtalk_robot(tmp_path: Path) -> None:
    http = HttpReceiver(secrets={"dingtalk": SECRET}).start()
    try:
        sent_at, store = asyncio.run(_flood(http, tmp_path / "alerts.db"))
    finally:
        http.stop()
    records = http.records("dingtalk")
    assert records and all(r.signature_ok for r in records)
    assert len(records) == len(sent_at) and len(http.unique("dingtalk")) == len(records)
    for t in sent_at:  # docs/domain.md: 20 messages/min per robot, in every sliding minute
        assert sum(1 for s in sent_at if t - 60 < s <= t) <= 20
    # Nothing lost: the robot's messages account for all 200 alerts (a digest lists up to 20 in full and
    # counts the rest), and the audit trail has a delivery to the robot for every alert.
    counted = 0
    for r in records:
        digest = re.match(r"【预警汇总】(\d+) 条", r.body["markdown"]["title"])
        counted += int(digest.group(1)) if digest else 1
    assert counted == 200 and any("预警汇总" in r.body["markdown"]["title"] for r in records)
    everyone = {a.id for a in store.list_alerts(limit=1000)}
    linked = {m for r in records for m in re.findall(r"/alerts/(al-[0-9a-f]+)", r.body["markdown"]["text"])}
    assert len(everyone) == 200 and linked <= everyone
    notified = {e.alert_id for e in store.events_after(0, limit=10_000) if e.type == "notified"}
    assert notified == everyone


async def _flood(http: HttpReceiver, db: Path) -> tuple[list[float], Store]:
    cfg = make_config(
        f"channels: {{ding: {{type: dingtalk, url: '{http.url}/dingtalk?access_token=t', secret_env: X}},"
        f" hook: {{type: webhook, url: '{http.url}/hook'}}}}\n"
        "route: {receiver: officer, group_wait: 0s, group_interval: 0s, group_by: [entity]}"
    )
    clock = FakeClock()
    store = Store(db)
    directory = SiteDirectory(cfg.sites)
    manager = AlertManager(store, cfg, directory, clock)
    dispatcher = Dispatcher(store, cfg, directory, clock())
    ding = build_channel("ding", cfg.channels["ding"], SECRET)
    deliverer = Deliverer(store, {"ding": ding}, cfg.defaults)  # type: ignore[dict-item]
    sent_at: list[float] = []

    async def step() -> None:
        dispatcher.step(clock())
        sent_at.extend([clock()] * (await deliverer.step(clock())).ok)

    start = clock()
    for n in range(200):
        manager.handle(
            warning(entity=f"U{n}", entity_type="unit", unit=f"U{n}", new="red", at=start + n * 0.3)
        )
        clock.advance(0.3)
        await step()
    for _ in range(150):
        clock.advance(1.0)
        await step()
    await ding.close()  # type: ignore[attr-defined]
    assert store.pending_intents() == [] and store.outbox_status() == {"delivered": len(sent_at)}
    return sent_at, store
