"""Alert lifecycle through the manager and a real SQLite file: states, audit, escalation timers."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.config import RoutingConfig
from alerting.lifecycle.manager import AlertManager, UnknownAlert
from alerting.lifecycle.model import AlertState, InvalidInput, LifecycleError, NoteRequired
from alerting.routing.sites import SiteDirectory
from alerting.store import Store
from tests.unit.alerting.conftest import FakeClock, warning


def manager(config: RoutingConfig, clock: FakeClock, path: Path) -> AlertManager:
    return AlertManager(Store(path), config, SiteDirectory(config.sites), clock)


def events(m: AlertManager, alert_id: str) -> list[str]:
    return [e.type for e in m.store.events_for(alert_id)]


def intents(m: AlertManager) -> list[tuple[str, str, str]]:
    return [(i.reason, i.receiver, i.channel) for i in m.store.pending_intents()]


def test_red_warning_opens_an_alert_and_notifies_each_routed_receiver(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    assert m.handle(warning(new="red"))
    [alert] = m.store.list_alerts()
    assert alert.state is AlertState.ACTIVE_UNACK and alert.colour == "red"
    assert events(m, alert.id) == ["opened"]
    assert intents(m) == [("opened", "officer", "ding"), ("opened", "leader", "hook")]


def test_a_replayed_transition_changes_nothing(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    t = warning()
    assert m.handle(t) is True
    assert m.handle(t) is False
    assert len(m.store.list_alerts()) == 1 and len(m.store.pending_intents()) == 2


def test_below_routed_colour_opens_nothing(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    m.handle(warning(new="blue", entity="S3", site="S3", region="R2"))
    assert m.store.list_alerts() == []


def test_raise_lower_clear_and_reactivate(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    m.handle(warning(new="orange", at=1.0))
    alert_id = m.store.list_alerts()[0].id
    m.acknowledge(alert_id, "zhang")
    m.handle(warning(new="red", old="orange", at=2.0))  # worse: needs a new sign-for
    assert m.store.get_alert(alert_id).state is AlertState.ACTIVE_UNACK
    m.handle(warning(new="yellow", old="red", at=3.0))
    m.handle(warning(new="normal", old="yellow", at=4.0))
    alert = m.store.get_alert(alert_id)
    assert (alert.state, alert.peak_colour) == (AlertState.CLEARED_UNACK, "red")
    m.handle(warning(new="orange", old="normal", at=5.0))
    assert m.store.get_alert(alert_id).state is AlertState.ACTIVE_UNACK
    assert events(m, alert_id) == ["opened", "acknowledged", "raised", "lowered", "cleared", "reactivated"]


def test_close_needs_acknowledgement_and_a_note_then_a_new_episode_opens(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    m.handle(warning(new="red", at=1.0))
    alert_id = m.store.list_alerts()[0].id
    with pytest.raises(NoteRequired, match="disposal note"):
        m.close(alert_id, "zhang", "  ")
    with pytest.raises(LifecycleError, match="acknowledge it before closing"):
        m.close(alert_id, "zhang", "阀门已关闭")
    m.acknowledge(alert_id, "zhang", "已签收")
    with pytest.raises(LifecycleError, match="already acknowledged by zhang"):
        m.acknowledge(alert_id, "li")
    m.add_note(alert_id, "zhang", "现场检查中")
    closed = m.close(alert_id, "zhang", "泄漏点已堵漏，浓度恢复正常")
    assert closed.state is AlertState.CLOSED and closed.disposal == "泄漏点已堵漏，浓度恢复正常"
    audit = m.store.events_for(alert_id)
    assert [(e.type, e.actor) for e in audit[1:]] == [
        ("acknowledged", "zhang"),
        ("noted", "zhang"),
        ("closed", "zhang"),
    ]
    m.handle(warning(new="orange", old="red", at=2.0))
    assert len(m.store.list_alerts()) == 2
    with pytest.raises(UnknownAlert):
        m.acknowledge("nope", "zhang")


def test_unacknowledged_red_escalates_tier_by_tier_and_loops_as_configured(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    m.handle(warning(new="red"))
    alert_id = m.store.list_alerts()[0].id
    m.store.settle_intents([i.id for i in m.store.pending_intents()], "sent")
    escalated_to = []
    for _ in range(12):  # 10s leader, 20s director, loop once more, then stop
        clock.advance(5)
        m.tick()
        for intent in m.store.pending_intents():
            escalated_to.append((round(clock.now - 1_795_000_000.0), intent.receiver))
            m.store.settle_intents([intent.id], "sent")
    assert escalated_to == [(10, "leader"), (30, "director"), (40, "leader"), (60, "director")]
    assert m.store.get_alert(alert_id).next_escalation_at is None


def test_acknowledgement_stops_escalation_and_arms_the_reminder(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    m.handle(warning(new="red"))
    alert_id = m.store.list_alerts()[0].id
    m.store.settle_intents([i.id for i in m.store.pending_intents()], "sent")
    clock.advance(5)
    m.acknowledge(alert_id, "zhang")
    clock.advance(30)
    m.tick()
    assert m.store.pending_intents() == []  # no escalation after the acknowledgement
    clock.advance(30)  # 60 s after the ack: the ack timeout
    m.tick()
    assert intents(m) == [("renotify", "officer", "ding"), ("renotify", "leader", "hook")]
    assert "escalated" not in events(m, alert_id) and events(m, alert_id)[-1] == "renotify"


def test_orange_below_policy_colour_does_not_escalate_when_policy_needs_red(clock, db_path) -> None:
    from tests.unit.alerting.conftest import make_config

    cfg = make_config("escalation_policies: {esc: {min_colour: red, tiers: [{receiver: leader, after: 1s}]}}")
    m = manager(cfg, clock, db_path)
    m.handle(warning(new="orange"))
    assert m.store.list_alerts()[0].next_escalation_at is None


def test_shelving_needs_a_reason_and_expires_audited(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    m.handle(warning(new="red", entity="S3", site="S3", region="R2"))  # a route without escalation
    alert_id = m.store.list_alerts()[0].id
    with pytest.raises(NoteRequired):
        m.shelve(alert_id, "wang", clock.now + 60, "")
    with pytest.raises(InvalidInput):
        m.shelve(alert_id, "wang", clock.now - 1, "检修")
    m.shelve(alert_id, "wang", clock.now + 60, "传感器标定")
    clock.advance(61)
    m.tick()
    assert m.store.get_alert(alert_id).shelved_until is None
    assert events(m, alert_id) == ["opened", "shelved", "unshelved"]


def test_state_and_audit_survive_reopening_the_store(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    m.handle(warning(new="red"))
    alert_id = m.store.list_alerts()[0].id
    m.acknowledge(alert_id, "zhang", "收到")
    m.store.close()
    again = manager(config, clock, db_path)
    assert again.store.get_alert(alert_id).state is AlertState.ACTIVE_ACK
    assert events(again, alert_id) == ["opened", "acknowledged"]
    assert again.handle(warning(new="red")) is False  # de-duplication survives too


def test_alarm_states_map_to_colours_and_unknown_states_are_refused(config, clock, db_path) -> None:
    from riskwatch.wire.transitions import Cause, Transition

    m = manager(config, clock, db_path)
    alarm = Transition("a1", "alarm", "sensor", "GT-101", "normal", "l2_high", 1.0, Cause("l2"), site="S2",
                       region="R1", unit="U1")  # fmt: skip
    m.handle(alarm)  # l2 -> yellow by default -> r1 route (leader)
    [alert] = m.store.list_alerts()
    assert (alert.colour, alert.receivers) == ("yellow", ("leader",))
    with pytest.raises(ValueError, match="no colour"):
        m.handle(
            Transition("a2", "alarm", "sensor", "GT-102", "normal", "wobbly", 1.0, Cause("x"), site="S2")
        )


def test_a_batch_is_one_transaction_and_a_failing_step_is_undone_alone(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    with m.store.transaction():
        m.handle(warning(entity="S1", new="red"))
        with pytest.raises(RuntimeError), m.store.transaction():
            m.store.mark_seen("half-done", 1.0)
            raise RuntimeError("a step failing half-way")
        m.handle(warning(entity="S2", site="S2", new="red"))
    assert len(m.store.list_alerts()) == 2
    assert not m.store.seen("half-done")  # rolled back to its savepoint, the rest committed
    with pytest.raises(RuntimeError), m.store.transaction():
        m.handle(warning(entity="S3", site="S3", region="R2", new="red"))
        raise RuntimeError("the whole batch fails")
    assert len(m.store.list_alerts()) == 2 and not m.store.seen(
        warning(entity="S3", site="S3", region="R2").id
    )


def test_old_transition_ids_are_pruned_recent_ones_kept(config, clock, db_path) -> None:
    m = manager(config, clock, db_path)
    with m.store.transaction():
        m.store.mark_seen("old", 100.0)
        m.store.mark_seen("new", 200.0)
        assert m.store.prune_seen(150.0) == 1
    assert not m.store.seen("old") and m.store.seen("new")


def test_store_benchmark_reports_figures_and_ratio() -> None:
    import argparse

    from alerting.bench import configure, measure

    parser = argparse.ArgumentParser()
    configure(parser)
    figures = measure(parser.parse_args(["--transitions", "50", "--batch", "25"]))
    assert figures["readings_per_s"] > 0 and figures["baseline_readings_per_s"] > 0
    assert figures["ratio"] > 0 and figures["unit"] == "transitions"
