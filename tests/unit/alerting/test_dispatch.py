"""Grouping, muting (shelve, maintenance, inhibition), rate limits with digests: injected clock, real SQLite."""

from __future__ import annotations

from pathlib import Path

from alerting.channels.base import Message
from alerting.config import RoutingConfig
from alerting.dispatch.dispatcher import Dispatcher
from alerting.dispatch.ratelimit import SlidingWindow
from alerting.lifecycle.manager import AlertManager
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from tests.unit.alerting.conftest import FakeClock, make_config, warning


def setup(cfg: RoutingConfig, clock: FakeClock, path: Path) -> tuple[AlertManager, Dispatcher]:
    store = Store(path)
    directory = SiteDirectory(cfg.sites)
    return AlertManager(store, cfg, directory, clock), Dispatcher(store, cfg, directory, clock())


def outbox(m: AlertManager) -> list[Message]:
    return [row.message for row in m.store.due_outbox(1e12, limit=10_000)]


def test_sliding_window() -> None:
    w = SlidingWindow(2, history=[0.0])
    assert w.available(1.0) == 1
    w.record(1.0)
    assert w.available(30.0) == 0 and w.next_free_at(30.0) == 60.0
    assert w.available(60.0) == 1


def test_group_wait_collects_a_site_burst_into_one_message(clock: FakeClock, db_path: Path) -> None:
    cfg = make_config("route: {receiver: leader, group_wait: 10s, group_interval: 60s}")
    m, d = setup(cfg, clock, db_path)
    for n in range(3):
        m.handle(warning(entity=f"U{n}", entity_type="unit", unit=f"U{n}", at=float(n)))
        clock.advance(1)
    assert d.step(clock()).messages == 0  # still inside the group wait
    clock.advance(8)
    assert d.step(clock()).messages == 1
    [msg] = outbox(m)
    assert len(msg.alert_ids) == 3 and "预警汇总" in msg.title and msg.mobiles == ("13800000003",)
    m.handle(warning(entity="U9", entity_type="unit", unit="U9", at=9.0))
    clock.advance(30)
    assert d.step(clock()).messages == 0  # group interval not over
    clock.advance(30)
    assert d.step(clock()).messages == 1
    assert outbox(m)[-1].alert_ids == ("al-" + warning(entity="U9", entity_type="unit", at=9.0).id,)


def test_a_worse_colour_skips_the_group_interval_but_not_the_group_wait(
    clock: FakeClock, db_path: Path
) -> None:
    cfg = make_config("route: {receiver: leader, group_wait: 2s, group_interval: 60s}")
    m, d = setup(cfg, clock, db_path)
    m.handle(warning(entity="U1", entity_type="unit", unit="U1", new="yellow", at=1.0))
    clock.advance(2)
    assert d.step(clock()).messages == 1  # the yellow, after the group wait
    m.handle(warning(entity="U2", entity_type="unit", unit="U2", new="red", at=3.0))
    assert d.step(clock()).messages == 0  # a red waits the group wait for company...
    clock.advance(2)
    assert d.step(clock()).messages == 1  # ...but not the 60 s interval behind the yellow
    assert outbox(m)[-1].colour == "red"
    m.handle(warning(entity="U3", entity_type="unit", unit="U3", new="orange", at=5.0))
    m.handle(warning(entity="U4", entity_type="unit", unit="U4", new="red", at=5.0))
    clock.advance(10)
    assert d.step(clock()).messages == 0  # nothing worse than the red already sent: the interval holds
    clock.advance(50)
    assert d.step(clock()).messages == 1


def test_site_red_inhibits_its_own_unit_alerts_but_not_other_sites(clock: FakeClock, db_path: Path) -> None:
    cfg = make_config("route: {receiver: leader, group_wait: 5s}")
    m, d = setup(cfg, clock, db_path)
    m.handle(warning(entity="U1", entity_type="unit", unit="U1", new="orange", at=1.0))
    m.handle(warning(entity="S1", entity_type="site", new="red", at=1.0))
    m.handle(warning(entity="U7", entity_type="unit", unit="U7", site="S2", new="orange", at=1.0))
    clock.advance(5)
    flushed = d.step(clock())
    assert flushed.suppressed == 1
    ids = {a for msg in outbox(m) for a in msg.alert_ids}
    unit_alert = m.store.open_alert_for("warning|unit|U1")
    assert unit_alert.id not in ids and len(ids) == 2
    [event] = [e for e in m.store.events_for(unit_alert.id) if e.type == "suppressed"]
    assert event.note.startswith("inhibited by site S1")


def test_shelved_and_maintenance_alerts_are_recorded_but_not_sent(clock: FakeClock, db_path: Path) -> None:
    cfg = make_config("route: {receiver: leader, group_wait: 0s}")
    m, d = setup(cfg, clock, db_path)
    m.add_maintenance("S2", "", clock() - 1, clock() + 3600, "停产检修", "wang")
    m.handle(warning(entity="S2", site="S2", new="red", at=1.0))
    m.handle(warning(entity="S1", new="red", at=1.0))
    m.shelve(m.store.open_alert_for("warning|site|S1").id, "wang", clock() + 60, "误报核查")
    assert d.step(clock()).suppressed == 2 and outbox(m) == []
    notes = {e.note for e in m.store.events_after(0) if e.type == "suppressed"}
    assert notes == {"maintenance: 停产检修", "shelved"}


def test_flood_of_200_warnings_stays_within_20_per_minute_and_loses_nothing(
    clock: FakeClock, db_path: Path
) -> None:
    cfg = make_config("route: {receiver: officer, group_wait: 0s, group_interval: 0s, group_by: [entity]}")
    m, d = setup(cfg, clock, db_path)
    start = clock()
    sent_at: list[float] = []
    for n in range(200):  # 200 warnings in one minute, each its own group
        m.handle(warning(entity=f"U{n}", entity_type="unit", unit=f"U{n}", new="red", at=start + n * 0.3))
        clock.advance(0.3)
        sent_at += [clock()] * d.step(clock()).messages
    for _ in range(120):  # then let the window slide for two minutes
        clock.advance(1)
        sent_at += [clock()] * d.step(clock()).messages
    assert m.store.pending_intents() == []
    for t in sent_at:  # any 60 s window holds at most 20 messages (docs/domain.md: DingTalk 20/min)
        assert sum(1 for s in sent_at if t - 60 < s <= t) <= 20
    messages = outbox(m)
    covered = [a for msg in messages for a in msg.alert_ids]
    assert len(covered) == 200 and len(set(covered)) == 200  # nothing lost, nothing twice
    assert any(len(msg.alert_ids) > 1 for msg in messages)  # digests, not drops
    assert len(messages) <= 40


def test_rate_window_is_reseeded_from_the_outbox_after_a_restart(clock: FakeClock, db_path: Path) -> None:
    cfg = make_config("route: {receiver: officer, group_wait: 0s, group_interval: 0s, group_by: [entity]}")
    m, d = setup(cfg, clock, db_path)
    for n in range(10):  # a burst spends half the DingTalk budget as single messages
        m.handle(warning(entity=f"U{n}", entity_type="unit", unit=f"U{n}", at=float(n)))
        d.step(clock())
    assert len(outbox(m)) == 10
    restarted = Dispatcher(m.store, cfg, SiteDirectory(cfg.sites), clock())
    for n in range(10, 15):
        m.handle(warning(entity=f"U{n}", entity_type="unit", unit=f"U{n}", at=float(n)))
    assert restarted.step(clock()).messages == 0  # still in flood pacing after the restart
    clock.advance(6)  # 2 x 60 s / 20: the paced digest may go
    assert restarted.step(clock()).messages == 1
    assert len(outbox(m)[-1].alert_ids) == 5


def test_a_red_raised_and_cleared_inside_the_group_wait_is_still_told_as_red(
    clock: FakeClock, db_path: Path
) -> None:
    """A red replayed late (a worker restarted mid-incident) arrives with its clear a moment after: the
    message must say a red happened, not only "back to normal"."""
    cfg = make_config("route: {receiver: leader, group_wait: 2s, group_interval: 60s}")
    m, d = setup(cfg, clock, db_path)
    m.handle(warning(entity="U1", entity_type="unit", unit="U1", new="red", at=1.0))
    clock.advance(0.2)
    m.handle(warning(entity="U1", entity_type="unit", unit="U1", old="red", new="normal", at=1.2))
    clock.advance(2)
    assert d.step(clock()).messages == 1
    [msg] = outbox(m)
    assert msg.colour == "red" and "红色" in msg.title
    assert "发生后已恢复正常" in msg.text
    # A clear told on its own (the red went out before) stays a plain "back to normal".
    m.handle(warning(entity="U2", entity_type="unit", unit="U2", new="red", at=10.0))
    clock.advance(70)
    d.step(clock())
    m.handle(warning(entity="U2", entity_type="unit", unit="U2", old="red", new="normal", at=80.0))
    clock.advance(70)
    d.step(clock())
    last = outbox(m)[-1]
    assert last.colour == "normal" and "已恢复" in last.title
