"""Nothing a gateway, a Kafka record or an HTTP request sends can stop riskwatch.

One real pipeline for the module (bridge, worker, alerting routed to a local webhook, on its own topic
prefix) while legitimate gateways keep publishing. Each attack is sent with an independent client
(`mosquitto_pub`/`mosquitto_sub` with a gateway's account, `kcat` producing raw records, urllib over HTTPS) and
must come out as a dead letter with its reason, a 4xx, or a counted correction; after every attack a
legitimate red (two gas detectors of a fresh site above L2) must still reach the webhook within 20 s.
Attacks run in file order against the same pipeline, as an attacker would send them one after another.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
import signal
import time
import uuid
from collections.abc import Iterator

import orjson
import pytest

from deploy.stack import ensure_topics
from riskwatch.registry import load_registry
from riskwatch.topics import Topics
from riskwatch.wire.batch import encode
from riskwatch.wire.deadletter import MAX_ITEMS, MAX_RECORD_BYTES
from riskwatch.wire.gateway_protocol import MAX_PAYLOAD_BYTES, MQTT_PACKET_OVERHEAD
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Transition
from simulators.bench_e2e import ROUTES_TEMPLATE
from simulators.kafka_watch import TopicReader, TransitionReader
from simulators.pipeline import Pipeline
from simulators.simulated_gateway import Broker, announce_online
from simulators.webhook import WebhookReceiver
from tests.integration.hostile.world import (
    NORMAL,
    RED,
    DeadLetters,
    Legit,
    Victim,
    World,
    detectors,
    gateways_of,
    registry_doc,
    telemetry_sources,
)

pytestmark = pytest.mark.integration

API_TOKEN_ENV = "RW_HOSTILE_TOKEN"
WEBHOOK_SECRET_ENV = "RISKWATCH_DEMO_WEBHOOK_SECRET"


@pytest.fixture(scope="module")
def world(stack, stack_services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("hostile")
    topics = Topics(f"h{uuid.uuid4().hex[:10]}")
    ensure_topics(stack, topics, 3)
    doc = registry_doc()
    registry = workdir / "registry.json"
    registry.write_bytes(orjson.dumps(doc))
    gateways = gateways_of(doc)
    passwords = stack_services.add_gateways(sorted((site, gw) for gw, (site, _) in gateways.items()))
    broker = Broker(stack.mqtt_host, stack.mqtt_port, passwords, stack.client_tls)
    announce_online({gw: site for gw, (site, _) in gateways.items()}, broker)
    # Client ids are bound to accounts: this pipeline's bridge gets an account (and so a session) of its own.
    name = f"hostile-bridge-{topics.prefix}"
    info = dataclasses.replace(
        stack, bridge_user=name, bridge_password=stack_services.add_bridges([name])[name]
    )
    secret, token = secrets.token_hex(16), secrets.token_hex(16)
    receiver = WebhookReceiver(secret=secret).start()
    routes = workdir / "routes.yaml"
    template = ROUTES_TEMPLATE.read_text().replace("group_wait: 1s", "group_wait: 0s")
    routes.write_text(
        template.replace("{webhook_url}", receiver.url)
        + f"api_tokens:\n  - {{user: duty, role: duty_officer, token_env: {API_TOKEN_ENV}}}\n"
    )
    pipe = Pipeline(workdir / "run", registry, info, topics.prefix)
    legit = Legit(broker, {gw: v for gw, v in gateways.items() if gw not in ("HOST-GX", "HOST-GV")})
    deadletters = DeadLetters(stack.kafka("tools"), topics.deadletter).start()
    try:
        pipe.start_bridge()
        pipe.start_worker(ready_site="HOST-S00")
        pipe.start_historian()
        pipe.start_alerting(routes, env={WEBHOOK_SECRET_ENV: secret, API_TOKEN_ENV: token})
        pipe.wait_ready(120)
        legit.start()
        yield World(
            stack, stack_services, pipe, topics, doc, registry, receiver, legit, deadletters, passwords,
            token, workdir,
        )  # fmt: skip
    finally:
        legit.stop()
        pipe.stop()
        deadletters.stop()
        receiver.stop()


def telemetry(gw: str, marker: str, readings: list[dict[str, object]], seq: int | None = None) -> bytes:
    """A telemetry payload whose first field is the attack's marker (kept in any cut original)."""
    return orjson.dumps({"x": marker, "gw": gw, "seq": seq or time.time_ns() // 1000, "readings": readings})


def events(gw: str, marker: str, rows: list[dict[str, object]]) -> bytes:
    return orjson.dumps({"x": marker, "gw": gw, "seq": time.time_ns() // 1000, "events": rows})


def published(result: object) -> None:
    assert result.returncode == 0, f"mosquitto_pub failed: {result.stderr}"  # type: ignore[attr-defined]


# -- the baseline ---------------------------------------------------------------------------------------
def test_a_legitimate_red_reaches_the_webhook(world: World) -> None:
    world.red_reaches_webhook()
    world.alive()


# -- 1. lone surrogates ---------------------------------------------------------------------------------
def test_lone_surrogate_in_a_sensor_id_is_dead_lettered(world: World) -> None:
    marker, now = world.marker(), time.time()
    payload = (
        f'{{"x":"{marker}","gw":"HOST-G00","seq":{time.time_ns() // 1000},'
        f'"readings":[{{"s":"HOST-S00-GT1\\ud800","v":1.0,"t":{now}}}]}}'
    ).encode()
    published(world.mosquitto_pub("HOST-G00", payload))
    letter = world.deadletters.wait(marker.encode())
    assert letter.reason == "malformed_json"
    assert letter.gateway == "HOST-G00" and letter.source.endswith("/HOST-G00/telemetry")
    world.red_reaches_webhook()
    world.alive()


def test_lone_surrogate_in_an_event_note_is_dead_lettered(world: World) -> None:
    marker, now = world.marker(), time.time()
    payload = (
        f'{{"x":"{marker}","gw":"HOST-G00","seq":{time.time_ns() // 1000},"events":[{{"kind":"valve_closed",'
        f'"target":"HOST-S00-U1","t":{now},"note":"\\udfff"}}]}}'
    ).encode()
    published(world.mosquitto_pub("HOST-G00", payload, "events"))
    assert world.deadletters.wait(marker.encode()).reason == "malformed_json"
    world.red_reaches_webhook()
    world.alive()


# -- 2. sizes ---------------------------------------------------------------------------------------------
def test_payload_over_the_bridge_limit_but_under_the_broker_packet_size_is_dead_lettered(
    world: World,
) -> None:
    marker = world.marker()
    head = telemetry("HOST-G00", marker, [])[:-2]  # ... "readings":[
    filler = MAX_PAYLOAD_BYTES + MQTT_PACKET_OVERHEAD // 2 - len(head)
    payload = head + b'],"pad":"' + b"A" * filler + b'"}'
    assert MAX_PAYLOAD_BYTES < len(payload) < MAX_PAYLOAD_BYTES + MQTT_PACKET_OVERHEAD - 1024
    published(world.mosquitto_pub("HOST-G00", payload))
    letter = world.deadletters.wait(marker.encode())
    assert letter.reason == "oversized_payload"
    assert letter.original_length == len(payload) and len(letter.original) < len(payload)
    world.red_reaches_webhook()
    world.alive()


def test_payload_beyond_the_broker_packet_size_is_refused_by_the_broker(world: World) -> None:
    # ~800 KB: Mosquitto accepted it and the bridge's dead letter of it never fit Kafka, blocking the
    # spool for good. Now the broker's maximum packet size matches the bridge, so it never gets in.
    # MQTT 3.1.1, so the client sends it anyway (a v5 client learns the limit from CONNACK and holds back).
    marker = world.marker()
    payload = telemetry("HOST-G00", marker, [])[:-2] + b'],"pad":"' + b"B" * 800_000 + b'"}'
    broker_log = world.stack_services.service("mosquitto").dir / "broker.log"
    refusals = broker_log.read_text().count("HOST-G00 disconnected due to oversize packet")
    result = world.mosquitto_pub("HOST-G00", payload, version="mqttv311")
    # The broker drops the connection mid-packet: mosquitto_pub then fails with an error, or dies of
    # SIGPIPE still writing (2.0.21's client); either way it is the broker's log that says why.
    assert result.returncode != 0, "the broker accepted an 800 KB message"
    assert broker_log.read_text().count("HOST-G00 disconnected due to oversize packet") > refusals
    time.sleep(1.0)
    assert not world.deadletters.matching(marker.encode())
    world.red_reaches_webhook()
    world.alive()


def test_thousands_of_unknown_sensors_give_one_bounded_dead_letter(world: World) -> None:
    marker, now = world.marker(), round(time.time(), 1)
    n = 4_999  # just under the per-message limit: every one is an item of the dead letter
    rows = [{"s": f"NOPE-{i:05d}", "v": 1.0, "t": now} for i in range(n)]
    payload = telemetry("HOST-G00", marker, rows)
    assert len(payload) <= MAX_PAYLOAD_BYTES
    published(world.mosquitto_pub("HOST-G00", payload))
    letter = world.deadletters.wait(marker.encode())
    assert letter.reason == "sensor_unknown"
    assert letter.items_total == n and len(letter.items) == MAX_ITEMS
    assert max(world.deadletters.sizes) <= MAX_RECORD_BYTES
    world.red_reaches_webhook()
    world.alive()


def test_too_many_readings_in_one_message_are_dead_lettered(world: World) -> None:
    marker, now = world.marker(), round(time.time(), 1)
    rows = [{"s": "HOST-S00-CO", "v": 1.0, "t": now} for _ in range(5_001)]
    payload = telemetry("HOST-G00", marker, rows)
    assert len(payload) <= MAX_PAYLOAD_BYTES
    published(world.mosquitto_pub("HOST-G00", payload))
    assert world.deadletters.wait(marker.encode()).reason == "too_many_items"
    world.red_reaches_webhook()
    world.alive()


# -- 3. times --------------------------------------------------------------------------------------------
def test_a_first_reading_from_the_far_past_is_dead_lettered(world: World) -> None:
    marker, site = world.marker(), world.fresh_site()
    payload = telemetry("HOST-G" + site[-2:], marker, [{"s": detectors(site)[0], "v": RED, "t": -1e11}])
    published(world.mosquitto_pub("HOST-G" + site[-2:], payload))
    letter = world.deadletters.wait(marker.encode())
    assert letter.reason == "old_timestamp"
    assert [i.reason for i in letter.items] == ["old_timestamp"]
    world.red_reaches_webhook(site)  # the same site: its red is rendered and notified
    world.alive()


def test_a_reading_from_the_future_does_not_blind_its_sensor(world: World) -> None:
    # A reading stamped just inside the bridge's future tolerance made the engine ignore the sensor's
    # real readings until then. Now the worker takes it at its clock + a few seconds, and counts it.
    marker, site = world.marker(), world.fresh_site()
    gw = "HOST-G" + site[-2:]
    before = world.metric("worker", "riskwatch_timestamps_clamped", input="reading")
    rows = [{"s": s, "v": NORMAL, "t": time.time() + 240} for s in detectors(site)]
    published(world.mosquitto_pub(gw, telemetry(gw, marker, rows)))
    deadline = time.monotonic() + 10
    while world.metric("worker", "riskwatch_timestamps_clamped", input="reading") <= before:
        assert time.monotonic() < deadline, "the future-stamped readings were not counted as clamped"
        time.sleep(0.2)
    world.red_reaches_webhook(site)  # the same sensors, their real readings
    world.alive()


def test_an_out_of_order_reading_is_counted(world: World) -> None:
    marker, site = world.marker(), world.fresh_site()
    gw = "HOST-G" + site[-2:]
    before = world.metric("worker", "riskwatch_readings_ignored", reason="out_of_order")
    published(
        world.mosquitto_pub(
            gw, telemetry(gw, marker, [{"s": f"{site}-CO", "v": 1.0, "t": time.time() - 120}])
        )
    )
    deadline = time.monotonic() + 10
    while world.metric("worker", "riskwatch_readings_ignored", reason="out_of_order") <= before:
        assert time.monotonic() < deadline, "an out-of-order reading was neither dead-lettered nor counted"
        time.sleep(0.2)
    world.red_reaches_webhook(site)
    world.alive()


# -- 4. binding --------------------------------------------------------------------------------------------
def test_a_gateway_reporting_another_gateways_sensor_is_dead_lettered(world: World) -> None:
    marker = world.marker()
    rows = [{"s": s, "v": RED, "t": time.time()} for s in ("HOST-SM-B1", "HOST-SM-B2")]
    published(world.mosquitto_pub("HOST-GMA", telemetry("HOST-GMA", marker, rows)))
    letter = world.deadletters.wait(marker.encode())
    assert letter.reason == "sensor_gateway_mismatch"
    assert {i.sensor for i in letter.items} == {"HOST-SM-B1", "HOST-SM-B2"}
    world.red_reaches_webhook()
    world.alive()


def test_maintenance_on_a_unit_the_gateway_does_not_serve_is_dead_lettered(world: World) -> None:
    marker = world.marker()
    row = {"kind": "maintenance_on", "target": "HOST-SM-UB", "t": time.time(), "note": "not mine"}
    published(world.mosquitto_pub("HOST-GMA", events("HOST-GMA", marker, [row]), "events"))
    letter = world.deadletters.wait(marker.encode())
    assert letter.reason == "target_not_served"
    # The unit it tried to mute still goes red: its own gateway drives both detectors above L2.
    world.legit.set(["HOST-SM-B1", "HOST-SM-B2"], RED)
    try:
        world.red_reaches_webhook("HOST-SM")
    finally:
        world.legit.set(["HOST-SM-B1", "HOST-SM-B2"], NORMAL)
    world.alive()


def test_an_event_for_an_unknown_target_is_dead_lettered(world: World) -> None:
    marker = world.marker()
    row = {"kind": "interlock_bypassed", "target": "NO-SUCH-UNIT", "t": time.time()}
    published(world.mosquitto_pub("HOST-G01", events("HOST-G01", marker, [row]), "events"))
    assert world.deadletters.wait(marker.encode()).reason == "target_unknown"
    world.red_reaches_webhook()
    world.alive()


# -- 5. MQTT client ids -----------------------------------------------------------------------------------
def test_a_gateway_using_the_bridges_client_id_takes_nothing_over(world: World) -> None:
    # Without binding, this took over the bridge's persistent session: what was queued for it was lost.
    site = world.fresh_site()
    gw = "HOST-G" + site[-2:]
    bridge_argv = world.pipe.bridge_argv
    ids = {world.pipe.stack.bridge_user, bridge_argv[bridge_argv.index("--mqtt-client-id") + 1]}
    holders = [world.mosquitto_sub("HOST-GX", client_id, seconds=4) for client_id in sorted(ids)]
    sent: set[int] = set()
    base = time.time_ns() // 1000
    for k in range(20):
        seq = base + k
        rows = [{"s": f"{site}-CO", "v": 1.0, "t": time.time()}]
        published(world.mosquitto_pub(gw, telemetry(gw, world.marker(), rows, seq=seq)))
        sent.add(seq)
        time.sleep(0.15)
    for holder in holders:
        holder.wait(15)
    arrived = telemetry_sources(world.stack.kafka("tools"), world.topics.telemetry, gw, sent, 20.0)
    assert arrived == sent, (
        f"{len(sent - arrived)} of {len(sent)} messages lost while the bridge's id was used"
    )
    world.red_reaches_webhook(site)
    world.alive()


def test_a_gateway_cannot_kick_another_gateway_off(world: World) -> None:
    victim = Victim(
        Broker(world.stack.mqtt_host, world.stack.mqtt_port, world.passwords, world.stack.client_tls),
        "HOST-SX",
        "HOST-GV",
    )
    try:
        holder = world.mosquitto_sub("HOST-GX", "HOST-GV", seconds=3)
        holder.wait(15)
        time.sleep(1.0)
        assert victim.disconnects == 0, "a gateway using another gateway's client id kicked it off"
    finally:
        victim.close()
    world.red_reaches_webhook()
    world.alive()


# -- 7 and 8. numbers ---------------------------------------------------------------------------------------
def test_an_integer_beyond_64_bits_is_dead_lettered_as_schema(world: World) -> None:
    marker, now = world.marker(), time.time()
    payload = (
        f'{{"x":"{marker}","gw":"HOST-G01","seq":{2**80},'
        f'"readings":[{{"s":"HOST-S01-CO","v":{10**30},"t":{now}}}]}}'
    ).encode()
    published(world.mosquitto_pub("HOST-G01", payload))
    assert world.deadletters.wait(marker.encode()).reason == "schema"
    world.red_reaches_webhook()
    world.alive()


def test_readings_whose_minute_mean_overflows_do_not_stop_history(world: World) -> None:
    # Two readings of 1.7e308 made the minute's mean inf: InfluxDB refused the point and the history
    # writer retried it forever. Checked again (written or repaired) in test_history_kept_going below.
    marker, site = world.marker(), world.fresh_site()
    gw = "HOST-G" + site[-2:]
    now = time.time()
    rows = [{"s": f"{site}-CO", "v": 1.7e308, "t": now + dt} for dt in (0.0, 0.1)]
    published(world.mosquitto_pub(gw, telemetry(gw, marker, rows)))
    world.red_reaches_webhook()
    world.alive()


# -- my own: the MQTT edge --------------------------------------------------------------------------------
def test_a_message_on_an_unknown_channel_is_dead_lettered(world: World) -> None:
    marker = world.marker()
    published(
        world.mosquitto_pub("HOST-G01", telemetry("HOST-G01", marker, []), topic="rw/v1/HOST-S01/HOST-G01/x")
    )
    assert world.deadletters.wait(marker.encode()).reason == "wrong_topic"
    world.red_reaches_webhook()
    world.alive()


def test_a_payload_naming_another_gateway_is_dead_lettered(world: World) -> None:
    marker = world.marker()
    rows = [{"s": "HOST-S02-GT1", "v": RED, "t": time.time()}]
    published(world.mosquitto_pub("HOST-G01", telemetry("HOST-G02", marker, rows), site="HOST-S01"))
    assert world.deadletters.wait(marker.encode()).reason == "gateway_topic_mismatch"
    world.red_reaches_webhook()
    world.alive()


def test_deeply_nested_json_is_dead_lettered(world: World) -> None:
    marker = world.marker()
    payload = (
        f'{{"x":"{marker}","gw":"HOST-G01","seq":1,"readings":'.encode()
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}"
    )
    published(world.mosquitto_pub("HOST-G01", payload))
    assert world.deadletters.wait(marker.encode()).reason == "malformed_json"
    world.red_reaches_webhook()
    world.alive()


def test_binary_garbage_and_nan_are_dead_lettered(world: World) -> None:
    garbage, nan = world.marker(), world.marker()
    published(world.mosquitto_pub("HOST-G01", garbage.encode() + bytes(range(256)) * 4))
    rows = f'[{{"s":"HOST-S01-CO","v":NaN,"t":{time.time()}}}]'
    payload = f'{{"x":"{nan}","gw":"HOST-G01","seq":{time.time_ns() // 1000},"readings":{rows}}}'.encode()
    published(world.mosquitto_pub("HOST-G01", payload))
    assert world.deadletters.wait(garbage.encode()).reason == "malformed_json"
    assert world.deadletters.wait(nan.encode()).reason == "non_finite_value"
    world.red_reaches_webhook()
    world.alive()


def test_a_status_with_an_unknown_state_is_dead_lettered(world: World) -> None:
    marker = world.marker()
    payload = orjson.dumps({"x": marker, "gw": "HOST-G01", "state": "pwned", "t": time.time()})
    published(world.mosquitto_pub("HOST-G01", payload, "status"))
    assert world.deadletters.wait(marker.encode()).reason == "schema"
    world.red_reaches_webhook()
    world.alive()


# -- 6 and 9: raw records on rw.* (kcat) --------------------------------------------------------------------
def _kafka_letter(world: World, marker: str, topic: str, component: str = "") -> object:
    letter = world.deadletters.wait(marker.encode(), component=component)
    assert letter.source == topic, letter
    assert letter.partition is not None and letter.offset is not None, letter
    return letter


def test_garbage_on_the_telemetry_topic_is_dead_lettered_with_its_offset(world: World) -> None:
    marker = world.marker()
    world.kcat(world.topics.telemetry, marker.encode() + os.urandom(64), key="HOST-S03")
    assert _kafka_letter(world, marker, world.topics.telemetry).reason == "batch_decode"  # type: ignore[attr-defined]
    world.red_reaches_webhook()
    world.alive()


def test_a_batch_naming_sensors_beyond_the_registry_is_dead_lettered(world: World) -> None:
    marker = world.marker()
    registry = load_registry(world.registry)
    site = "HOST-S03"
    sensor = registry.sensor_ids.index(f"{site}-CO")
    readings = Readings.of([sensor, 10**6], [1.0, 1.0], [time.time()] * 2, [0, 0])
    raw = encode(site, registry.fingerprint, [(marker, 1)], readings)  # the marker is the source gateway
    world.kcat(world.topics.telemetry, raw, key=site)
    letter = _kafka_letter(world, marker, world.topics.telemetry)
    assert letter.reason == "sensor_unknown"  # type: ignore[attr-defined]
    world.red_reaches_webhook()
    world.alive()


def test_a_batch_from_the_far_past_straight_to_kafka_is_dead_lettered(world: World) -> None:
    marker = world.marker()
    registry = load_registry(world.registry)
    site = world.fresh_site()
    index = [registry.sensor_ids.index(s) for s in detectors(site)]
    readings = Readings.of(index, [RED, RED], [-1e11, -1e11], [0, 0])
    raw = encode(site, registry.fingerprint, [(marker, 1)], readings)
    world.kcat(world.topics.telemetry, raw, key=site)
    assert _kafka_letter(world, marker, world.topics.telemetry).reason == "old_timestamp"  # type: ignore[attr-defined]
    world.red_reaches_webhook(site)
    world.alive()


def _warning(marker: str, **change: object) -> bytes:
    doc: dict[str, object] = {
        "v": 1, "id": marker, "kind": "warning", "entity_type": "site", "entity": "HOST-S04",
        "old": "normal", "new": "red", "at": time.time(), "cause": {"rule": "x", "items": [], "text": marker},
        "site": "HOST-S04", "region": "HOST-R1", "unit": "", "counts": {},
    }  # fmt: skip
    doc.update(change)
    return orjson.dumps(doc)


def test_a_well_formed_warning_record_from_kcat_is_notified(world: World) -> None:
    # The control for the malformed records below: each differs from this one in one field only.
    site, started = world.fresh_site(), time.time()
    world.kcat(world.topics.warnings, _warning(world.marker(), entity=site, site=site), key=site)
    deadline = time.monotonic() + 20
    while not any(
        d.colour == "red" and d.mentions(site) and d.at >= started for d in world.receiver.unique()
    ):
        assert time.monotonic() < deadline, f"a well-formed red record for {site} was not notified"
        time.sleep(0.2)
    world.alive()


@pytest.mark.parametrize(
    "change",
    [
        {"id": [1]},
        {"new": "purple"},
        {"at": -1e11},  # rendering this time raised, the notification was stored: a crash loop
        {"at": 1e300},
        {"cause": "not an object"},
        {"counts": {"red": "many"}},
        {"v": 99},
    ],
    ids=["id_list", "unknown_colour", "far_past", "far_future", "cause_text", "counts_text", "version"],
)
def test_a_malformed_warning_record_is_dead_lettered_by_alerting(
    world: World, change: dict[str, object]
) -> None:
    marker = world.marker()
    world.kcat(world.topics.warnings, _warning(marker, **change), key="HOST-S04")
    # alerting and the historian both read rw.warnings: alerting's own check is what this test is about
    letter = _kafka_letter(world, marker, world.topics.warnings, component="alerting")
    assert letter.reason == "malformed_record"  # type: ignore[attr-defined]
    world.red_reaches_webhook()
    world.alive()


def test_garbage_and_null_records_on_the_warnings_topic_are_dead_lettered(world: World) -> None:
    marker = world.marker()
    world.kcat(world.topics.warnings, marker.encode() + b"\xff\xfe garbage", key="HOST-S04")
    world.kcat(world.topics.warnings, None, key="HOST-S04")  # a tombstone: no value at all
    assert _kafka_letter(world, marker, world.topics.warnings).reason == "malformed_record"  # type: ignore[attr-defined]
    world.red_reaches_webhook()
    world.alive()


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"type": "event", "gw": "HOST-G05", "kind": "maintenance_on", "target": "NOPE"}, "target_unknown"),
        (
            {"type": "event", "gw": "HOST-G05", "kind": "maintenance_on", "target": "HOST-S06-U1"},
            "target_not_served",
        ),
        ({"type": "status", "gw": ["HOST-G05"], "state": "offline"}, "malformed_record"),
        ({"type": "status", "gw": "HOST-G05", "state": "offline", "received": "soon"}, "malformed_record"),
    ],
    ids=["unknown_target", "target_elsewhere", "gw_list", "received_text"],
)
def test_a_hostile_gateway_record_is_dead_lettered_by_the_worker(
    world: World, record: dict[str, object], reason: str
) -> None:
    marker = world.marker()
    now = time.time()
    doc = {
        "v": 1,
        "site": "HOST-S05",
        "t": now,
        "received": now,
        "seq": 1,
        "index": 0,
        "note": marker,
        **record,
    }
    world.kcat(world.topics.gateway, orjson.dumps(doc), key="HOST-S05")
    assert _kafka_letter(world, marker, world.topics.gateway).reason == reason  # type: ignore[attr-defined]
    world.red_reaches_webhook()
    world.alive()


# -- 7. the API -------------------------------------------------------------------------------------------
def test_api_bodies_are_bounded_and_validated(world: World) -> None:
    alerts = world.api_json("/api/alerts?limit=1")["alerts"]
    assert alerts, "no alert to act on: the earlier reds should have opened some"
    alert = alerts[0]["id"]
    note = orjson.dumps({"note": "N" * (1024 * 1024)})
    assert world.api("POST", f"/api/alerts/{alert}/notes", note) in (413, 422)
    assert world.api("POST", f"/api/alerts/{alert}/notes", b"A" * (3 * 1024 * 1024)) == 413
    assert world.api("POST", f"/api/alerts/{alert}/notes", b'{"note": ') == 400
    assert world.api("POST", f"/api/alerts/{alert}/notes", b'{"note": ["x"]}') in (400, 422)
    assert world.api("POST", f"/api/alerts/{alert}/notes", b'{"note": "\\ud800"}') in (400, 422)
    assert world.api("POST", "/api/alerts/" + "x" * 5000 + "/ack", b"{}") in (400, 404, 414, 422)
    assert world.api("GET", "/api/alerts?limit=99999999999999999999") == 400
    assert world.api("POST", f"/api/alerts/{alert}/notes", b'{"note": "ok"}', token="wrong") == 401
    assert world.api("POST", f"/api/alerts/{alert}/notes", b'{"note": "still works"}') == 200
    world.red_reaches_webhook()
    world.alive()


# -- 7, checked once a minute has closed --------------------------------------------------------------------
def test_history_kept_going_after_the_overflowing_minute(world: World) -> None:
    deadline = time.monotonic() + 100  # the minute of the 1.7e308 readings closes, then is paced out
    while True:
        repaired = world.metric("worker", "riskwatch_history_repaired_fields")
        rejected = world.metric("historian", "riskwatch_history_rejected_points")
        if repaired + rejected > 0:
            break
        assert time.monotonic() < deadline, "the overflowing minute was neither repaired nor dropped"
        time.sleep(1.0)
    written = world.metric("historian", "riskwatch_history_points_written")
    deadline = time.monotonic() + 90
    while world.metric("historian", "riskwatch_history_points_written") <= written:
        assert time.monotonic() < deadline, "history writing stopped after the overflowing minute"
        time.sleep(1.0)
    world.red_reaches_webhook()
    world.alive()


# -- 6. a registry edit ---------------------------------------------------------------------------------------
def test_a_worker_restarted_on_an_edited_registry_keeps_going(world: World) -> None:
    # The restored state carried the old fingerprint and every evaluation raised, for ever.
    held = world.fresh_site()
    world.red_reaches_webhook(held, keep=True)  # red across the restart: its state must be kept
    doc = orjson.loads(world.registry.read_bytes())
    doc["sites"][0]["units"][0]["sensors"][2]["l2_high"] = 35.0  # a changed set point
    doc["sites"].append(  # a new site
        {"id": "HOST-SNEW", "region": "HOST-R1", "industry": "hazardous_chemicals",
         "gateways": [{"id": "HOST-GNEW"}],
         "units": [{"id": "HOST-SNEW-U1", "kind": "tank_farm", "sensors": [{"id": "HOST-SNEW-CO", "type": "co"}]}]}
    )  # fmt: skip
    edited = world.workdir / "registry-edited.json"
    edited.write_bytes(orjson.dumps(doc))
    warnings = TransitionReader(
        TopicReader(world.stack.kafka("tools"), world.topics.warnings, from_beginning=True)
    )
    try:
        before = _drain(warnings)
        worker = world.pipe.services.pop("worker")
        os.kill(worker.proc.pid, signal.SIGTERM)
        worker.proc.wait(60)
        world.pipe.registry = edited
        world.pipe.start_worker(ready_site="HOST-S00")
        world.pipe.wait_ready(120)
        fresh = world.fresh_site()
        world.red_reaches_webhook(fresh)
        after = _drain(warnings)
    finally:
        warnings.reader.close()
        world.legit.set(detectors(held), NORMAL)
    evaluation_errors = [d for d in world.deadletters.letters if d.reason == "evaluation_error"]
    assert not evaluation_errors, [d.detail for d in evaluation_errors[:3]]
    # Sites kept their state: a red replayed from Kafka carries the id it had (alerting de-duplicates it),
    # and only the fresh site is red as news.
    known = {t.id for t in before}
    raised = {t.entity for t in after if t.entity_type == "site" and t.new == "red" and t.id not in known}
    assert raised == {fresh}, raised
    world.alive()


def _drain(reader: TransitionReader) -> list[Transition]:
    """Every transition until the topic has been quiet for a second."""
    out: list[Transition] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 1.0:
        got = reader.poll(0.2)
        if got:
            out.extend(got)
            quiet_since = time.monotonic()
    return out


def test_every_dead_letter_fits_one_kafka_record(world: World) -> None:
    assert world.deadletters.letters, "no dead letter was read at all"
    assert max(world.deadletters.sizes) <= MAX_RECORD_BYTES
    assert not world.deadletters.undecodable, [
        base64.b64encode(r[:60]) for r in world.deadletters.undecodable[:3]
    ]
    world.alive()


@pytest.fixture(autouse=True)
def _report_legit_errors(world: World) -> Iterator[None]:
    yield
    assert not world.legit.errors, f"the legitimate gateways failed to publish: {world.legit.errors[:3]}"
