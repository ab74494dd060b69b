"""Hostile input against the real alerting process and real Kafka: records it cannot use are
dead-lettered and skipped, a warning with an impossible time still reaches the officer, oversized
API bodies are refused while the audit trail keeps flowing, and a dead task stops the process."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from riskwatch.topics import Topics
from tests.integration.alerting.receivers import HttpReceiver, SmtpReceiver
from tests.integration.alerting.service_proc import wait_for
from tests.integration.alerting.test_service import produce, read_audit, read_topic, red, start


def test_malformed_records_and_far_past_times_are_dead_lettered_and_the_red_behind_them_arrives(
    tmp_path: Path, stack: Any, topics: Topics, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    http, smtp = receivers
    service = start(tmp_path, stack, topics, http, smtp, escalation=None)
    try:
        good = orjson.loads(red("S1", "U1", entity_type="unit").to_bytes())
        bad = [
            orjson.dumps({**good, "id": [1]}),  # made alerting exit with sqlite3.ProgrammingError
            orjson.dumps({**good, "new": "purple"}),
            orjson.dumps({**good, "new": 5}),
            orjson.dumps({**good, "entity": "E" * 5000}),
            red("S1", "U2", at=-1e11, entity_type="unit").to_bytes(),  # crash-looped alerting when rendered
        ]
        produce(stack.kafka("tools"), topics.warnings, [*bad, red("S1").to_bytes()])
        wait_for(lambda: http.records("hook"), 30, "the red behind the bad records")
        letters = read_topic(stack.kafka("tools"), topics.deadletter, lambda docs: len(docs) >= 5)
        assert {(d["reason"], d["source"], d["component"]) for d in letters} == {
            ("malformed_record", topics.warnings, "alerting")
        }
        assert len({d["partition"] for d in letters}) == 1 and [d["offset"] for d in letters] == [
            0,
            1,
            2,
            3,
            4,
        ]
        details = [d["detail"] for d in letters]
        assert "must be strings" in details[0] and "colour labels" in details[1]
        assert "at most 200" in details[3] and "'at' must be epoch seconds" in details[4]
        [hook] = http.records("hook")  # the site's red, and nothing made of the bad records
        assert "一号化工厂" in hook.body["text"] and len(hook.body["alert_ids"]) == 1
        assert service.proc is not None and service.proc.poll() is None
        status, doc = service.api("GET", "/healthz")
        assert (status, doc["ok"]) == (200, True)
    finally:
        service.stop()


def test_an_oversized_note_is_refused_and_the_audit_trail_keeps_flowing(
    tmp_path: Path, stack: Any, topics: Topics, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    http, smtp = receivers
    service = start(tmp_path, stack, topics, http, smtp, escalation=None)
    try:
        produce(stack.kafka("tools"), topics.warnings, [red("S1").to_bytes()])
        wait_for(lambda: http.records("hook"), 30, "the alert")
        [alert] = service.api("GET", "/api/alerts", "view-token")[1]["alerts"]
        path = f"/api/alerts/{alert['id']}/ack"
        status, doc = service.api("POST", path, "duty-token", {"note": "x" * (1024 * 1024)})
        assert status == 413 and "request body is over" in doc["error"]  # once stopped rw.alerts for good
        status, doc = service.api("POST", path, "duty-token", {"note": "x" * 2001})
        assert (status, doc["error"]) == (422, "`note` is 2001 characters; at most 2000")
        assert service.api("POST", path, "duty-token", {"note": "已签收" * 600})[0] == 200
        status, doc = service.api(
            "POST", f"/api/alerts/{alert['id']}/notes", "duty-token", {"note": "已关阀"}
        )
        assert status == 200
        audit = read_audit(
            stack.kafka("tools"), topics.alerts, lambda evs: any(e["type"] == "noted" for e in evs)
        )
        assert [e["note"] for e in audit if e["type"] in ("acknowledged", "noted")] == [
            "已签收" * 600,
            "已关阀",
        ]
    finally:
        service.stop()


def test_a_dead_task_makes_alerting_exit_non_zero_and_a_restart_carries_on(
    tmp_path: Path, stack: Any, topics: Topics, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    http, smtp = receivers
    service = start(tmp_path, stack, topics, http, smtp, escalation=None)
    assert service.proc is not None
    # Another process holds the store's write lock past the busy timeout: the store fails under the
    # service's tasks, which must not sit there healthy and idle.
    with sqlite3.connect(service.db, timeout=10, isolation_level=None) as db:
        db.execute("BEGIN EXCLUSIVE")
        try:
            service.proc.wait(30)
        finally:
            db.execute("ROLLBACK")
    assert service.proc.returncode == 70  # EX_SOFTWARE, as the bridge and the worker
    log = service.log.read_text(errors="replace")
    assert "alerting task '" in log and "died: OperationalError: database is locked" in log
    service.start()
    try:
        produce(stack.kafka("tools"), topics.warnings, [red("S1").to_bytes()])
        wait_for(lambda: http.records("hook"), 30, "a red after the restart")
    finally:
        service.stop()
