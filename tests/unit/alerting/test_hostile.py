"""Hostile and broken input never stops alerting: records are checked before use and dead-lettered with
their topic, partition and offset; a notification that cannot be made is failed, audited and
dead-lettered; API bodies are bounded; audit events always fit a Kafka record; a dead task is reported."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, RecordTooLargeError
from prometheus_client import CollectorRegistry

from alerting.deadletters import DeadLetters
from alerting.dispatch.dispatcher import Dispatcher
from alerting.health import Health, TaskDied, supervise
from alerting.lifecycle.manager import AlertManager
from alerting.lifecycle.model import MAX_EVENT_BYTES, AlertEvent
from alerting.routing.sites import SiteDirectory
from alerting.service import AlertingService, ServiceOptions, _send_each
from alerting.store import Store
from alerting.store.sqlite import REFUSED
from riskwatch.kafka_access import KafkaAccess
from tests.unit.alerting.conftest import FakeClock, make_config, warning
from tests.unit.alerting.test_api import call, with_api

WARNINGS = "rw.warnings"
_config = functools.cache(make_config)  # configs are frozen; parsing one per fuzz example is slow


class Pipeline:
    """The service's own ingest step over a real store, no Kafka: what a consumed record goes through."""

    def __init__(self, db: Path, cfg_overrides: str = "route: {receiver: leader, group_wait: 0s}") -> None:
        self.clock = FakeClock()
        cfg = _config(cfg_overrides)
        self.registry = CollectorRegistry()
        self.service = AlertingService(
            ServiceOptions(kafka=KafkaAccess("unused:9092", "riskwatch-alerting", "pw"), db=db),
            cfg,
            None,
            clock=self.clock,
            registry=self.registry,  # type: ignore[arg-type]
        )
        self.store = Store(db)
        self.dead = DeadLetters(self.store, self.service.metrics)
        directory = SiteDirectory(cfg.sites)
        self.manager = AlertManager(self.store, cfg, directory, self.clock, dead=self.dead)
        self.dispatcher = Dispatcher(self.store, cfg, directory, self.clock(), self.dead)

    def ingest(self, raw: bytes, topic: str = WARNINGS, offset: int = 7) -> bool:
        return self.service.ingest(self.manager, self.dead, topic, raw, 3, offset)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def good_doc(**changes: Any) -> dict[str, Any]:
    doc = orjson.loads(warning().to_bytes())
    doc.update(changes)
    return doc


def test_a_warning_stamped_far_in_the_past_is_dead_lettered_and_the_next_one_handled(db_path: Path) -> None:
    p = Pipeline(db_path)
    assert not p.ingest(warning(at=-1e11).to_bytes())  # crash-looped alerting when rendered
    [letter] = p.store.deadletters()
    assert letter.reason == "malformed_record" and "'at' must be epoch seconds" in letter.detail
    assert p.ingest(warning(entity="S2", site="S2").to_bytes())
    assert p.dispatcher.step(p.clock()).messages == 1


def test_an_alert_whose_time_cannot_be_shown_is_sent_with_its_time_marked_invalid(db_path: Path) -> None:
    p = Pipeline(db_path)  # alerts stored before records were checked, or any time a calendar cannot show
    p.manager.handle(warning(at=-1e11))
    p.manager.handle(warning(entity="S2", site="S2", at=1e300))
    assert p.dispatcher.step(p.clock()).messages == 2  # rendering used to raise here, every round
    texts = [row.message.text for row in p.store.due_outbox(1e12)]
    assert any("时间：-100000000000.0 (invalid time)" in t for t in texts), texts
    assert any("1e+300 (invalid time)" in t for t in texts), texts
    assert all("55%LEL" in t for t in texts)  # the rest of the warning is all there


def test_a_digest_with_an_invalid_time_is_sent_too(db_path: Path) -> None:
    p = Pipeline(db_path, "route: {receiver: leader, group_wait: 5s}")
    for n, at in enumerate((-1e11, 1_795_000_000.0)):
        p.manager.handle(warning(entity=f"U{n}", entity_type="unit", unit=f"U{n}", at=at))
    p.clock.advance(5)
    assert p.dispatcher.step(p.clock()).messages == 1
    [row] = p.store.due_outbox(1e12)
    assert "(invalid time)" in row.message.text and len(row.message.alert_ids) == 2


def test_a_notification_that_cannot_be_made_is_failed_audited_and_dead_lettered(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = Pipeline(db_path)
    p.ingest(warning().to_bytes())

    def broken(*args: object) -> None:
        raise ValueError("a template bug")

    monkeypatch.setattr("alerting.dispatch.dispatcher.render", broken)
    p.dispatcher.step(p.clock())  # used to raise, and the stored intent made it raise after every restart
    assert p.store.pending_intents() == [] and p.store.due_outbox(1e12) == []
    [alert] = p.store.list_alerts()
    failed = [e for e in p.store.events_for(alert.id) if e.type == "delivery_failed"]
    assert len(failed) == 1 and "a template bug" in failed[0].note
    [letter] = p.store.deadletters()
    assert (letter.reason, letter.component, letter.site) == ("notification_error", "alerting", "S1")
    assert alert.id.encode() in letter.original
    assert p.metric("riskwatch_deadletters_total", reason="notification_error") == 1
    monkeypatch.undo()
    p.ingest(warning(entity="S2", site="S2").to_bytes())
    assert p.dispatcher.step(p.clock()).messages == 1  # the next alert goes out as usual


def test_a_channel_that_raises_fails_its_message_not_the_loop(db_path: Path) -> None:
    from alerting.dispatch.outbox import Deliverer

    class Raising:
        name = "hook"

        async def send(self, message: object) -> object:
            raise RuntimeError("bug in a channel")

    p = Pipeline(db_path)
    p.ingest(warning().to_bytes())
    p.dispatcher.step(p.clock())
    deliverer = Deliverer(p.store, {"hook": Raising()}, p.manager.cfg.defaults, p.service.metrics, p.dead)  # type: ignore[dict-item]
    result = asyncio.run(deliverer.step(p.clock()))
    assert (result.ok, result.failed) == (0, 1) and p.store.outbox_status() == {"failed": 1}
    assert [d.reason for d in p.store.deadletters()] == ["notification_error"]


TEXTS = "must be strings"
ITEM = {"sensor": "S", "quantity": "q", "state": "x"}
BAD_RECORDS = [
    (orjson.dumps(good_doc(id=[1])), TEXTS),  # made alerting exit with sqlite3.ProgrammingError
    (orjson.dumps(good_doc(new="purple")), "old and new must be colour labels"),
    (orjson.dumps(good_doc(new=5)), TEXTS),
    (orjson.dumps(good_doc(old="l2_high")), "old and new must be colour labels"),
    (orjson.dumps(good_doc(kind="alarm", new="l1_high", old="normal")), "expected 'warning'"),
    (orjson.dumps(good_doc(entity_type="planet")), "entity_type one of"),
    (orjson.dumps(good_doc(at="yesterday")), "'at' must be epoch seconds"),
    (orjson.dumps(good_doc(at=True)), "'at' must be epoch seconds"),
    (orjson.dumps(good_doc(at=1e300)), "'at' must be epoch seconds"),
    (b'{"v":1,"at":1e400}', "number is infinity"),
    (orjson.dumps(good_doc(id="x" * 121)), "`id` must be 1 to 120"),
    (orjson.dumps(good_doc(id="<script>")), "`id` must be 1 to 120"),
    (orjson.dumps(good_doc(entity="E" * 201)), "`entity` is 201 characters; at most 200"),
    (orjson.dumps(good_doc(entity="")), "`entity` is required"),
    (orjson.dumps(good_doc(cause={"rule": "r", "text": "t" * 2001})), "`cause.text` is 2001 characters"),
    (orjson.dumps(good_doc(cause="fire")), "'cause' must be an object"),
    (
        orjson.dumps(good_doc(cause={"rule": "r", "items": [{**ITEM, "value": "hot"}]})),
        "must be numbers or null",
    ),
    (orjson.dumps(good_doc(cause={"rule": "r", "items": [ITEM] * 201})), "`cause.items` has 201 items"),
    (orjson.dumps(good_doc(extra=1)), "unexpected keyword argument 'extra'"),
    (orjson.dumps(good_doc(v=2)), "unsupported transition wire version"),
    (orjson.dumps([1, 2]), "unsupported transition wire version"),
    (b"not json", "malformed transition record"),
    (b'{"id": "\\ud800"}', "malformed transition record"),
    (b"", "empty record"),
    (b" " * (256 * 1024 + 1), "at most 262144"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD_RECORDS)
def test_a_record_it_cannot_use_is_dead_lettered_with_topic_partition_offset(
    db_path: Path, raw: bytes, reason: str
) -> None:
    p = Pipeline(db_path)
    assert p.ingest(raw, offset=41) is False
    [letter] = p.store.deadletters()
    assert (letter.reason, letter.source, letter.partition, letter.offset, letter.component) == (
        "malformed_record",
        WARNINGS,
        3,
        41,
        "alerting",
    )
    assert reason in letter.detail
    assert letter.original == raw[:65536] and letter.original_length == len(raw)
    assert p.metric("riskwatch_deadletters_total", reason="malformed_record") == 1
    assert p.metric("riskwatch_alerting_transitions_total", result="rejected") == 1
    assert p.store.list_alerts() == []
    assert p.ingest(warning().to_bytes(), offset=42)  # and the next record is handled as usual
    assert len(p.store.list_alerts()) == 1


def test_alarm_records_are_checked_against_alarm_states(db_path: Path) -> None:
    p = Pipeline(db_path)
    alarm = good_doc(kind="alarm", entity_type="sensor", entity="GT-101", old="normal", new="l2_high")
    assert p.ingest(orjson.dumps(alarm), topic="rw.alarms")
    assert not p.ingest(orjson.dumps({**alarm, "new": "red"}), topic="rw.alarms")
    assert not p.ingest(orjson.dumps(alarm), topic=WARNINGS)  # an alarm on the warnings topic
    assert [d.source for d in p.store.deadletters()] == ["rw.alarms", WARNINGS]


def test_an_alarm_state_without_a_colour_is_dead_lettered_not_fatal(db_path: Path) -> None:
    p = Pipeline(db_path, "defaults: {alarm_colours: {l2_high: yellow}}")
    alarm = good_doc(kind="alarm", entity_type="sensor", entity="GT-101", old="normal", new="fault")
    assert not p.ingest(orjson.dumps(alarm), topic="rw.alarms")
    [letter] = p.store.deadletters()
    assert letter.reason == "notification_error" and "no colour" in letter.detail and letter.site == "S1"


def test_a_failing_store_stops_the_consumer_instead_of_dead_lettering_good_records(db_path: Path) -> None:
    import sqlite3

    p = Pipeline(db_path)
    p.store._db.execute("PRAGMA query_only = ON")  # every write now fails, as on a full or read-only disk
    with pytest.raises(sqlite3.OperationalError):
        p.ingest(warning().to_bytes())


# -- HTTP API bounds


def test_oversized_bodies_and_fields_are_refused_with_a_reason(db_path: Path) -> None:
    async def body(client: Any, manager: AlertManager, alert_id: str) -> None:
        path = f"/api/alerts/{alert_id}/notes"
        status, doc = await call(client, "POST", path, "tok-duty", {"note": "火" * (1024 * 1024)})
        assert status == 413 and "request body is over 65536 bytes" in doc["error"]
        status, doc = await call(client, "POST", path, "tok-duty", {"note": "n" * 2001})
        assert (status, doc["error"]) == (422, "`note` is 2001 characters; at most 2000")
        assert (await call(client, "POST", path, "tok-duty", {"note": "n" * 2000}))[0] == 200
        cases = [
            ("/api/maintenance", {"site": "S" * 201, "start": 0, "end": 10, "reason": "r"}, 422, "`site` is 201"),
            ("/api/maintenance", {"site": "S1", "start": 0, "end": 1e308, "reason": "r"}, 400, "out of range"),
            ("/api/maintenance", {"site": "S1", "start": 0, "end": 1e30, "reason": "r"}, 400, "out of range"),
            ("/api/maintenance", {"site": "S1", "start": 0, "end": 4e9, "reason": "r"}, 400, "at most 366 days"),
            (f"/api/alerts/{alert_id}/shelve", {"minutes": 1e308, "reason": "r"}, 400, "at most 43200"),
            (f"/api/alerts/{alert_id}/shelve", {"until": "2099-12-31T23:59:59+08:00", "reason": "r"}, 400,
             "more than 30 days"),
        ]  # fmt: skip
        for path, doc_, code, reason in cases:
            status, doc = await call(client, "POST", path, "tok-sup", doc_)
            assert status == code and reason in doc["error"], (path, doc)
        status, doc = await call(client, "GET", "/api/events?after=" + "9" * 30, "tok-view")
        assert status == 400 and "sequence number" in doc["error"]
        status, doc = await call(client, "POST", "/api/alerts/%ED%A0%80x/ack", "tok-duty", {})
        assert status == 404
        events = manager.store.events_for(alert_id)
        assert max(len(e.to_bytes()) for e in events) < 10_000

    with_api(db_path, body)


def test_an_error_inside_a_request_is_answered_and_the_server_goes_on(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    async def body(client: Any, manager: AlertManager, alert_id: str) -> None:
        real = manager.store.list_alerts
        for exc, code, reason in [
            (RuntimeError("bug"), 500, "internal error: RuntimeError"),
            (sqlite3.OperationalError("database is locked"), 503, "the alert store is unavailable"),
        ]:
            monkeypatch.setattr(
                manager.store, "list_alerts", lambda *a, exc=exc, **k: (_ for _ in ()).throw(exc)
            )
            status, doc = await call(client, "GET", "/api/alerts", "tok-view")
            assert status == code and reason in doc["error"]
        monkeypatch.setattr(manager.store, "list_alerts", real)
        assert (await call(client, "GET", "/api/alerts", "tok-view"))[0] == 200
        status, doc = await call(client, "GET", "/no/such/path")
        assert (status, doc["error"]) == (404, "Not Found")

    with_api(db_path, body)


def test_audit_events_always_fit_one_kafka_record() -> None:
    huge = AlertEvent("al-1", "noted", 1.0, "zhang", "closed", "red", "火" * 1_000_000, {"x": "y" * 10**6})
    raw = huge.to_bytes()
    assert len(raw) <= MAX_EVENT_BYTES
    doc = orjson.loads(raw)
    assert (
        doc["note"].startswith("火" * 100) and "chars)" in doc["note"] and doc["detail"]["truncated"] is True
    )
    odd = AlertEvent("al-1", "noted", 1.0, "zhang", "closed", "red", "bad \ud800 text")
    assert b"bad \\\\ud800 text" in odd.to_bytes()
    assert AlertEvent.from_bytes(AlertEvent("a", "noted", 1.0, "u", "s", "red", "ok").to_bytes()).note == "ok"


# -- publishing: a record Kafka refuses for good does not block the ones behind it


class Producer:
    """Answers like aiokafka: `send` returns a future; the answers are scripted per value."""

    def __init__(self, refuse: set[bytes], away: set[bytes] = frozenset()) -> None:  # type: ignore[assignment]
        self.refuse, self.away, self.sent = refuse, away, []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if value in self.refuse:
            future.set_exception(RecordTooLargeError())
        elif value in self.away:
            future.set_exception(KafkaConnectionError())
        else:
            self.sent.append(value)
            future.set_result(None)
        return future


def test_a_refused_audit_event_is_set_aside_and_the_rest_published(db_path: Path) -> None:
    p = Pipeline(db_path)
    with p.store.transaction():
        for n in range(3):
            p.store.append_event(AlertEvent(f"al-{n}", "noted", 1.0, "u", "s", "red", f"note {n}"))
    events = p.store.unpublished_events()
    records = [("rw.alerts", e.alert_id.encode(), e.to_bytes()) for e in events]
    producer = Producer(refuse={records[1][2]}, away={records[2][2]})
    results = asyncio.run(_send_each(producer, records))  # type: ignore[arg-type]
    retry = p.service._settle_published(p.store, p.dead, 3, [e.seq for e in events], records, results)
    assert isinstance(retry, KafkaConnectionError)  # the broker being away is retried ...
    assert [e.note for e in p.store.unpublished_events()] == ["note 2"]  # ... the refused one is not
    refused = p.store._db.execute("SELECT count(*) FROM audit WHERE published = ?", (REFUSED,)).fetchone()[0]
    assert refused == 1
    [letter] = p.store.deadletters()
    assert (
        letter.reason == "notification_error"
        and letter.source == "rw.alerts"
        and b"note 1" in letter.original
    )


# -- health: a dead task is reported and stops the process


def test_a_task_that_dies_makes_health_fail_and_stops_the_service() -> None:
    async def go() -> tuple[Health, BaseException]:
        health = Health()

        async def consume() -> None:
            await asyncio.sleep(0.01)
            raise RuntimeError("consumer broke")

        async def notify() -> None:
            await asyncio.sleep(60)

        tasks = [asyncio.create_task(consume(), name="consume"), asyncio.create_task(notify(), name="notify")]
        with pytest.raises(TaskDied) as info:
            await supervise(tasks, asyncio.Event(), health)  # type: ignore[arg-type]
        assert tasks[1].cancelled()
        return health, info.value

    health, exc = asyncio.run(go())
    assert not health.ok and health.failed == {"consume": "died: RuntimeError: consumer broke"}
    assert "alerting task 'consume' died: RuntimeError: consumer broke" in str(exc)


def test_a_task_that_merely_returns_is_a_death_too_and_stop_is_clean() -> None:
    async def go() -> Health:
        async def quits() -> None:
            return None

        with pytest.raises(TaskDied, match="'publish' died: returned"):
            await supervise([asyncio.create_task(quits(), name="publish")], asyncio.Event(), Health())  # type: ignore[list-item]
        health, stop = Health(), asyncio.Event()
        stop.set()
        await supervise([asyncio.create_task(asyncio.sleep(60), name="notify")], stop, health)  # type: ignore[list-item]
        return health

    health = asyncio.run(go())
    assert health.ok and health.tasks == {"notify": "stopped"}


def test_healthz_answers_503_naming_the_dead_task(db_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from alerting.api.app import build_app
    from alerting.api.auth import TokenAuth
    from alerting.api.feed import EventHub

    async def go() -> list[tuple[int, dict[str, Any]]]:
        cfg = make_config()
        manager = AlertManager(Store(db_path), cfg, SiteDirectory(cfg.sites), FakeClock())
        health = Health()
        release = asyncio.Event()
        task = asyncio.create_task(release.wait(), name="consume")
        health.watch(task)  # type: ignore[arg-type]
        answers = []
        async with TestClient(
            TestServer(build_app(manager, TokenAuth({}), EventHub(), None, health))
        ) as client:
            answers.append(await call(client, "GET", "/healthz"))
            release.set()
            await task
            await asyncio.sleep(0)  # the done callback
            answers.append(await call(client, "GET", "/healthz"))
        return answers

    (s1, d1), (s2, d2) = asyncio.run(go())
    assert (s1, d1["ok"], d1["tasks"]) == (200, True, {"consume": "running"})
    assert (s2, d2["ok"], d2["tasks"]) == (503, False, {"consume": "died: returned"})
