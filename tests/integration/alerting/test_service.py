"""The alerting service as a real process against real Kafka and real local receivers."""

from __future__ import annotations

import http.client as http_client
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from riskwatch.kafka_access import KafkaAccess
from riskwatch.topics import Topics
from riskwatch.wire.transitions import Cause, CauseItem, Transition, transition_id
from tests.integration.alerting.receivers import HttpReceiver, SmtpReceiver
from tests.integration.alerting.service_proc import ServiceProcess, api_port, routes_doc, wait_for


def red(
    site: str, entity: str | None = None, at: float | None = None, entity_type: str = "site"
) -> Transition:
    at = at or time.time()
    entity = entity or site
    item = CauseItem("GT-101", "flammable_gas", "l2_high", 55.0, 50.0, "%LEL", at - 20)
    return Transition(transition_id("warning", entity_type, entity, "red", at), "warning", entity_type,  # type: ignore[arg-type]
                      entity, "yellow", "red", at, Cause("gas_l2_two_detectors", (item,), "两个探测器二级报警"),
                      site=site, region="R1")  # fmt: skip


def produce(kafka: KafkaAccess, topic: str, records: list[bytes], keys: list[bytes] | None = None) -> None:
    producer = KafkaProducer(**kafka.kafka_python(), acks="all")
    for i, raw in enumerate(records):
        producer.send(topic, raw, key=(keys[i] if keys else b"S1"))
    producer.flush(30)
    producer.close()


def start(
    tmp_path: Path, stack: Any, topics: Topics, http: HttpReceiver, smtp: SmtpReceiver, **route: Any
) -> ServiceProcess:
    port = api_port()
    return ServiceProcess(tmp_path, routes_doc(http.url, smtp.port, port, **route), stack, topics.prefix,
                          port).start()  # fmt: skip


def test_red_warning_reaches_the_on_call_officer_on_every_channel_signed(
    tmp_path: Path, stack: Any, topics: Topics, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    http, smtp = receivers
    service = start(tmp_path, stack, topics, http, smtp, escalation=None)
    try:
        produce(stack.kafka("tools"), topics.warnings, [red("S1").to_bytes()])
        kinds = ("dingtalk", "wecom", "feishu", "sms", "hook")
        wait_for(lambda: all(http.records(k) for k in kinds) and smtp.mails, 30, "every channel")
        for kind in ("dingtalk", "feishu", "sms", "hook"):
            assert [r.signature_ok for r in http.records(kind)] == [True], kind
        ding = http.records("dingtalk")[0].body
        assert "红色预警" in ding["markdown"]["title"] and "一号化工厂" in ding["markdown"]["text"]
        assert "55%LEL（设定值 50%LEL）" in ding["markdown"]["text"]
        assert ding["at"]["atMobiles"] == ["13800000001"]  # the officer on call, nobody else
        assert http.records("feishu")[0].body["card"]["header"]["template"] == "red"
        assert http.records("sms")[0].body["mobiles"] == ["13800000001"]
        [(rcpt, mail)] = smtp.mails
        assert rcpt == ["zhang@example.cn"]
        link = re.search(r"https://127\.0\.0\.1:\d+/alerts/al-[0-9a-f]+", mail.get_content()).group(0)
        alert_id = link.rsplit("/", 1)[1]
        with service.urlopen(link, timeout=5) as response:  # the link opens the board's desk at it
            assert response.status == 200 and "<html" in response.read().decode()
            assert response.url.endswith(f"/board/#desk/{alert_id}"), response.url
        audit = read_audit(
            stack.kafka("tools"), topics.alerts, lambda evs: sum(e["type"] == "notified" for e in evs) >= 6
        )
        assert audit[0]["type"] == "opened" and {e["detail"]["channel"] for e in audit[1:]} == {
            "ding", "wecom", "feishu", "mail", "sms", "hook"}  # fmt: skip
    finally:
        service.stop()


def read_audit(kafka: KafkaAccess, topic: str, done: Any, timeout: float = 30) -> list[dict[str, Any]]:
    return sorted(read_topic(kafka, topic, done, timeout), key=lambda e: e["seq"])


def test_unacknowledged_red_escalates_and_acknowledgement_stops_it(
    tmp_path: Path, stack: Any, topics: Topics, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    http, smtp = receivers
    service = start(tmp_path, stack, topics, http, smtp)
    try:
        produce(stack.kafka("tools"), topics.warnings, [red("S1").to_bytes(), red("S2").to_bytes()],
                [b"S1", b"S2"])  # fmt: skip
        wait_for(
            lambda: len(service.api("GET", "/api/alerts", "view-token")[1]["alerts"]) == 2, 20, "2 alerts"
        )
        alerts = {a["site"]: a["id"] for a in service.api("GET", "/api/alerts", "view-token")[1]["alerts"]}
        status, doc = service.api("POST", f"/api/alerts/{alerts['S2']}/ack", "duty-token", {"note": "已签收"})
        assert status == 200, doc

        def tiers(who: str) -> list[str]:
            return [a for r in http.records("hook") if r.query.get("who") == who for a in r.body["alert_ids"]]

        wait_for(lambda: tiers("director"), 30, "the second tier")
        assert tiers("leader") == [alerts["S1"]] and tiers("director") == [alerts["S1"]]
        leader_msg = next(r.body for r in http.records("hook") if r.query.get("who") == "leader")
        assert "超时未签收" in leader_msg["text"] and leader_msg["mobiles"] == ["13800000003"]
        status, doc = service.api("POST", f"/api/alerts/{alerts['S1']}/close", "duty-token", {"note": "x"})
        assert status == 409  # sign for before disposing
        status, doc = service.api("POST", f"/api/alerts/{alerts['S1']}/ack", "view-token", {})
        assert status == 403
        status, doc = service.api("POST", f"/api/alerts/{alerts['S1']}/ack", None, {})
        assert status == 401
        assert service.api("POST", f"/api/alerts/{alerts['S1']}/ack", "duty-token", {})[0] == 200
        assert service.api("POST", f"/api/alerts/{alerts['S1']}/close", "duty-token", {})[0] == 400
        status, doc = service.api(
            "POST", f"/api/alerts/{alerts['S1']}/close", "duty-token", {"note": "已堵漏"}
        )
        assert (status, doc["alert"]["state"]) == (200, "closed")
    finally:
        service.stop()


def test_killed_mid_delivery_and_restarted_delivers_each_notification_exactly_once(
    tmp_path: Path, stack: Any, topics: Topics, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    http, smtp = receivers
    http.delay_s = 0.3  # slow receiver: there is always a request in flight when we pull the plug
    route = {"escalation": None, "group_by": ["entity"], "receiver": "crash"}
    port = api_port()
    doc = routes_doc(http.url, smtp.port, port, **route)
    doc["receivers"]["crash"] = {"roster": "duty", "channels": ["hook"]}
    service = ServiceProcess(tmp_path, doc, stack, topics.prefix, port).start()
    n = 30
    now = time.time()
    warnings = [red("S1", f"U{i}", now + i * 0.001, "unit").to_bytes() for i in range(n)]
    try:
        produce(stack.kafka("tools"), topics.warnings, warnings)
        wait_for(lambda: len(http.records("hook")) >= 8, 60, "some deliveries")
        service.kill()
        before = len(http.records("hook"))
        assert before < n, "the kill came too late to be mid-delivery"
        service.start()  # same store, same consumer group
        wait_for(lambda: len(http.unique("hook")) >= n, 90, "every notification after the restart")
        time.sleep(1.0)  # anything still to come would be a duplicate or an extra
    finally:
        service.stop()
    unique = http.unique("hook")
    alert_ids = [a for r in unique.values() for a in r.body["alert_ids"]]
    assert len(unique) == n and sorted(alert_ids) == sorted(set(alert_ids)) and len(alert_ids) == n
    assert all(r.signature_ok for r in http.records("hook"))
    # The message in flight at the kill was sent again with the same key (and only that one: each
    # message is settled right after its send): the receiver's de-duplication makes it exactly once.
    counts = http.key_counts()
    assert sum(counts.values()) - len(counts) == 1 and max(counts.values()) == 2


def test_bad_records_are_dead_lettered_with_a_reason_and_do_not_stop_the_service(
    tmp_path: Path, stack: Any, topics: Topics, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    http, smtp = receivers
    service = start(tmp_path, stack, topics, http, smtp, escalation=None)
    try:
        produce(stack.kafka("tools"), topics.warnings, [b"not json", b'{"v": 1}', red("S1").to_bytes()])
        wait_for(lambda: http.records("hook"), 30, "the good record after two bad ones")
        with service.urlopen("/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'riskwatch_alerting_transitions_total{result="rejected"} 2.0' in metrics
        assert 'riskwatch_alerting_transitions_total{result="applied"} 1.0' in metrics
        assert 'riskwatch_deadletters_total{reason="malformed_record"} 2.0' in metrics
        assert "riskwatch_alerting_open_alerts 1.0" in metrics
        letters = read_topic(stack.kafka("tools"), topics.deadletter, lambda docs: len(docs) >= 2)
        assert [(d["reason"], d["source"], d["component"]) for d in letters] == [
            ("malformed_record", topics.warnings, "alerting")] * 2  # fmt: skip
        assert (
            "malformed transition record" in letters[0]["detail"]
            and letters[0]["offset"] + 1 == letters[1]["offset"]
        )
    finally:
        service.stop()


def read_topic(kafka: KafkaAccess, topic: str, done: Any, timeout: float = 30) -> list[dict[str, Any]]:
    """Every JSON record on `topic` (from the start) once `done(records)` holds, in offset order."""
    consumer = KafkaConsumer(topic, **kafka.kafka_python(), auto_offset_reset="earliest",
                             consumer_timeout_ms=1000, group_id=None)  # fmt: skip
    docs: list[dict[str, Any]] = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and not done(docs):
            for record in consumer:
                docs.append(orjson.loads(record.value))
    finally:
        consumer.close()
    assert done(docs), docs
    return docs


def test_kafka_outage_delays_the_audit_trail_but_loses_nothing(
    tmp_path: Path, stack: Any, topics: Topics, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    from deploy.stack import Stack

    http, smtp = receivers
    service = start(tmp_path, stack, topics, http, smtp, escalation=None)
    try:
        produce(stack.kafka("tools"), topics.warnings, [red("S1").to_bytes()])
        wait_for(lambda: http.records("hook"), 30, "the first alert")
        [alert] = service.api("GET", "/api/alerts", "view-token")[1]["alerts"]
        local = Stack(stack.home)
        local.stop_service("kafka")
        try:
            # The duty officer keeps working while Kafka is away: the store has it, the topic gets it later.
            status, _ = service.api(
                "POST", f"/api/alerts/{alert['id']}/ack", "duty-token", {"note": "已签收"}
            )
            assert status == 200
            time.sleep(2)
        finally:
            local.start_service("kafka")
        produce(stack.kafka("tools"), topics.warnings, [red("S2").to_bytes()], [b"S2"])
        wait_for(lambda: any(r.body["alert_ids"] != [alert["id"]] for r in http.records("hook")), 90, "S2")
        audit = read_audit(stack.kafka("tools"), topics.alerts,
                           lambda evs: any(e["type"] == "acknowledged" for e in evs), timeout=60)  # fmt: skip
        assert [e["actor"] for e in audit if e["type"] == "acknowledged"] == ["zhang"]
    finally:
        service.stop()


def test_https_is_verified_plain_http_refused_and_metrics_served_apart(
    tmp_path: Path, stack: Any, topics: Topics, receivers: tuple[HttpReceiver, SmtpReceiver]
) -> None:
    http, smtp = receivers
    port, metrics_port = api_port(), api_port()
    doc = routes_doc(http.url, smtp.port, port, escalation=None)
    service = ServiceProcess(tmp_path, doc, stack, topics.prefix, port, "--metrics-port", str(metrics_port))
    service.start()
    try:
        with service.urlopen("/healthz") as response:  # verified against the stack's CA, host name checked
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        # Without the stack's CA the certificate does not verify; plain HTTP gets no HTTP answer at all.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=5)
        with pytest.raises((urllib.error.URLError, http_client.HTTPException, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        # /metrics only on the separate address, not on the API port.
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            assert "riskwatch_alerting_open_alerts" in response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing:
            service.urlopen("/metrics")
        assert missing.value.code == 404
    finally:
        service.stop()
