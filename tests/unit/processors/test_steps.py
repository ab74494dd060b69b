"""Each Kafka record is one guarded step: evaluated, or dead-lettered with its topic, partition and offset."""

from __future__ import annotations

from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from processors.app import WorkerContext, WorkerSettings
from processors.engine_port import load_engine
from processors.health import EXIT_TASK_DIED, Health
from processors.metrics import WorkerMetrics
from processors.steps import Record, Steps
from riskwatch.kafka_access import KafkaAccess
from riskwatch.registry import Registry
from riskwatch.wire.batch import encode
from riskwatch.wire.deadletter import DeadLetter
from riskwatch.wire.gateway_protocol import GatewayRecord
from riskwatch.wire.readings import Readings

NOW = 1_000_000.0


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _steps(registry, engine=None, clock=None):  # type: ignore[no-untyped-def]
    settings = WorkerSettings(
        registry=Path("unused"),
        kafka=KafkaAccess("-", "riskwatch-worker", "pw"),
        data_dir=Path("/nonexistent"),
        partitions=4,
    )
    metrics = WorkerMetrics(CollectorRegistry())
    ctx = WorkerContext(settings, registry, engine or load_engine(), metrics, clock or Clock())
    return Steps(ctx), ctx


def _batch(registry, site, values, ts, seq=1):  # type: ignore[no-untyped-def]
    ids = list(values)
    readings = Readings.of([registry.sensors[i].index for i in ids], list(values.values()), [ts] * len(ids))
    return encode(site, registry.fingerprint, [(f"{site}-GW", seq, len(ids))], readings, registry.sensor_ids)


def _rec(value: bytes, offset: int = 0, topic: str = "rw.telemetry", partition: int = 3) -> Record:
    return Record(topic, partition, offset, value)


def _metric(ctx, name, **labels):  # type: ignore[no-untyped-def]
    return ctx.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_record_whose_evaluation_raises_is_dead_lettered_and_the_next_is_evaluated(registry) -> None:  # type: ignore[no-untyped-def]
    real = load_engine()

    def evaluate(model, state, readings, now):  # type: ignore[no-untyped-def]
        if model.site_ids == ("S1",):
            raise RuntimeError("engine bug")
        return real.evaluate(model, state, readings, now)

    steps, ctx = _steps(registry, real._replace(evaluate=evaluate))
    bad = _batch(registry, "S1", {"S1-G1": 60.0}, NOW)
    out = steps.telemetry(_rec(bad, offset=41))
    assert out.transitions == []
    letter = DeadLetter.from_bytes(out.dead[0].to_bytes())
    assert (letter.reason, letter.source, letter.partition, letter.offset, letter.site) == (
        "evaluation_error",
        "rw.telemetry",
        3,
        41,
        "S1",
    )
    assert letter.original == bad and "engine bug" in letter.detail
    assert _metric(ctx, "riskwatch_evaluation_errors_total", stage="telemetry") == 1
    # The partition goes on: the next record (another site of it) is evaluated.
    good = steps.telemetry(_rec(_batch(registry, "S2", {"S2-G1": 60.0}, NOW), offset=42))
    assert good.dead == [] and [t.entity for t in good.transitions if t.kind == "alarm"] == ["S2-G1"]


def test_undecodable_records_are_dead_lettered_with_their_place(registry) -> None:  # type: ignore[no-untyped-def]
    steps, _ = _steps(registry)
    (letter,) = steps.telemetry(_rec(b"RWTB\x02garbage", offset=7)).dead
    assert (letter.reason, letter.partition, letter.offset) == ("batch_decode", 3, 7)
    (letter,) = steps.gateway(_rec(b"{not json", offset=8, topic="rw.gateway")).dead
    assert (letter.reason, letter.source, letter.partition, letter.offset) == (
        "malformed_record",
        "rw.gateway",
        3,
        8,
    )


def _gw(**fields):  # type: ignore[no-untyped-def]
    doc = {"v": 1, "type": "event", "site": "S1", "gw": "S1-GW", "t": NOW, "received": NOW}
    doc.update(kind="maintenance_on", target="S1-U1")
    doc.update(fields)
    return orjson.dumps(doc)


def test_gateway_records_of_the_wrong_types_are_malformed(registry) -> None:  # type: ignore[no-untyped-def]
    steps, _ = _steps(registry)
    for bad in (
        {"t": "soon"},
        {"site": 5},
        {"seq": [1]},
        {"received": float("nan")},
        {"kind": "explode"},
        {"type": "other"},
        {"type": "status", "state": "maybe"},
        {"note": {"a": 1}},
    ):
        out = steps.gateway(_rec(_gw(**bad), topic="rw.gateway"))
        assert [d.reason for d in out.dead] == ["malformed_record"], bad
        assert out.transitions == []


def test_gateway_records_must_name_their_sites_gateway_and_units(registry) -> None:  # type: ignore[no-untyped-def]
    steps, _ = _steps(registry)
    cases = {
        "target_unknown": {"target": "NO-SUCH-UNIT"},
        "target_not_served": {"target": "S2-U1"},
        "gateway_unknown": {"gw": "NO-GW"},
        "gateway_site_mismatch": {"gw": "S2-GW"},
    }
    for reason, fields in cases.items():
        out = steps.gateway(_rec(_gw(**fields), topic="rw.gateway", offset=5))
        assert [(d.reason, d.offset) for d in out.dead] == [(reason, 5)], fields
    out = steps.gateway(_rec(_gw(), topic="rw.gateway"))
    assert out.dead == []
    record = GatewayRecord.from_bytes(_gw())
    assert record.target == "S1-U1"


def test_a_far_future_stamp_blinds_a_sensor_for_the_tolerance_at_most(registry) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    steps, ctx = _steps(registry, clock=clock)
    out = steps.telemetry(_rec(_batch(registry, "S1", {"S1-G1": 1.0}, NOW + 299.0, seq=1)))
    assert out.dead == []
    assert _metric(ctx, "riskwatch_timestamps_clamped_total", input="reading") == 1
    clock.t = NOW + 6.0  # the real clock passes the clamped stamp (NOW + 5 s)
    out = steps.telemetry(_rec(_batch(registry, "S1", {"S1-G1": 60.0}, NOW + 6.0, seq=2), offset=1))
    assert [(t.entity, t.new) for t in out.transitions if t.kind == "alarm"] == [("S1-G1", "l2_high")]
    assert _metric(ctx, "riskwatch_readings_ignored_total", reason="out_of_order") == 0


def test_out_of_order_readings_are_counted_in_a_metric(registry) -> None:  # type: ignore[no-untyped-def]
    steps, ctx = _steps(registry)
    steps.telemetry(_rec(_batch(registry, "S1", {"S1-G1": 1.0, "S1-G2": 1.0}, NOW, seq=1)))
    steps.telemetry(_rec(_batch(registry, "S1", {"S1-G1": 60.0, "S1-G2": 60.0}, NOW - 10, seq=2), 1))
    assert _metric(ctx, "riskwatch_readings_ignored_total", reason="out_of_order") == 2


def test_readings_older_than_the_maximum_age_are_dead_lettered_the_rest_evaluated(registry) -> None:  # type: ignore[no-untyped-def]
    steps, _ = _steps(registry)
    ids = ["S1-G1", "S1-G2"]
    readings = Readings.of([registry.sensors[i].index for i in ids], [60.0, 60.0], [NOW, -1e11])
    raw = encode("S1", registry.fingerprint, [("S1-GW", 1, 2)], readings, registry.sensor_ids)
    out = steps.telemetry(_rec(raw))
    (letter,) = out.dead
    assert letter.reason == "old_timestamp" and [(i.index, i.sensor) for i in letter.items] == [(1, "S1-G2")]
    assert [t.entity for t in out.transitions if t.kind == "alarm"] == ["S1-G1"]


def test_a_task_that_dies_fails_health_and_exits_non_zero() -> None:
    exits: list[int] = []
    t = [0.0]
    health = Health(stale_after_s=30.0, exit=exits.append, clock=lambda: t[0], startup_s=180.0)
    t[0] = 100.0
    assert health.status()[0]  # timers start once tables are restored: not late before the startup bound
    t[0] = 181.0
    assert not health.status()[0]
    health.beat("tick")
    assert not health.status()[0]  # the snapshot flush, a timer of its own, has not run yet
    health.beat("flush")
    assert health.status()[0]
    t[0] = 212.0
    ok, doc = health.status()
    assert not ok and "tick has not completed for 31 s" in doc["problems"][0] and exits == []
    health.beat("tick")
    ok, doc = health.status()
    assert not ok and doc["problems"] == ["flush has not completed for 31 s"]
    health.beat("flush")
    assert health.status()[0]
    health.failed("the timer has failed for 60 s")
    assert exits == [EXIT_TASK_DIED] and not health.status()[0]
    health.failed("agent telemetry crashed")
    assert exits == [EXIT_TASK_DIED] * 2 and health.problem == "the timer has failed for 60 s"


def test_the_worker_app_builds_and_an_agent_that_raises_exits_the_worker(registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import pytest

    from processors.app import build_app

    settings = WorkerSettings(
        registry=Path("unused"),
        kafka=KafkaAccess("127.0.0.1:1", "riskwatch-worker", "pw"),
        data_dir=tmp_path,
        partitions=4,
    )
    app, ctx = build_app(settings, registry, load_engine())
    assert sorted(app.agents) == ["gateway", "regions", "telemetry"]
    exits: list[int] = []
    ctx.health.exit = exits.append

    class BrokenStream:
        def noack_take(self, max_: int, within: float) -> object:
            raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError):
        asyncio.run(app.agents["telemetry"].fun(BrokenStream()))
    assert exits == [EXIT_TASK_DIED] and "telemetry" in (ctx.health.problem or "")


def test_healthz_on_the_metrics_port_answers_503_once_a_task_died() -> None:
    import json
    import urllib.error
    import urllib.request

    import pytest

    from processors.health import serve_metrics

    registry = CollectorRegistry()
    WorkerMetrics(registry)
    health = Health(exit=lambda code: None)
    health.beat("tick")
    health.beat("flush")
    server = serve_metrics("127.0.0.1", 0, registry, health)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
            assert r.status == 200 and json.load(r)["ok"] is True
        assert b"riskwatch_readings_total" in urllib.request.urlopen(f"{base}/metrics", timeout=5).read()
        health.failed("agent telemetry crashed")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert err.value.code == 503 and b"telemetry crashed" in err.value.read()
    finally:
        server.shutdown()


def test_the_site_view_shows_the_live_colour_its_static_grade_and_the_picture_they_make() -> None:
    import yaml

    from processors.web import site_document
    from tests.integration.processors.harness import REGISTRY_YAML

    doc = yaml.safe_load(REGISTRY_YAML)
    site = next(s for s in doc["sites"] if s["id"] == "S1")
    site["static_score"] = 65  # 应急〔2018〕19号: 60 to below 75 is orange, grade C
    registry = Registry.from_dict(doc, source="<test>")
    steps, ctx = _steps(registry, clock=Clock(1000.0))
    assert site_document(ctx, "S1")["picture"] == "normal"  # no live warning: nothing to raise
    steps.telemetry(_rec(_batch(registry, "S1", {"S1-G2": 60.0}, 999.0)))  # flammable gas L2: orange
    view = site_document(ctx, "S1")
    assert (view["colour"], view["static_grade"], view["grade"], view["picture"]) == (
        "orange",
        "orange",
        "C",
        "red",
    )
    other = site_document(ctx, "S2")  # no static grade in the registry
    assert (other["grade"], other["picture"]) == ("", "normal")


def _transitions(out):  # type: ignore[no-untyped-def]
    return [(t.entity_type, t.entity, t.old, t.new) for t in out.transitions]


def test_records_taken_together_give_the_transitions_of_one_evaluation_each() -> None:
    # A red (L2) that clears in the next record of its site (no on/off delays), among quiet records of
    # two sites: taken together, the sensor's crossing and the site's passing colour are reported as
    # one by one (one engine call for all of S1's records would see S1 normal at its end only).
    import yaml

    from tests.integration.processors.harness import REGISTRY_YAML, STALE_S

    no_delays = f"stale_after_s: {STALE_S}, on_delay_s: 0, off_delay_s: 0"
    registry = Registry.from_dict(
        yaml.safe_load(REGISTRY_YAML.replace(f"stale_after_s: {STALE_S}", no_delays)), source="<test>"
    )
    values = [
        ("S1", {"S1-G1": 3.0, "S1-G2": 4.0}),
        ("S2", {"S2-G1": 3.0}),
        ("S1", {"S1-G1": 60.0}),
        ("S1", {"S1-G1": 3.0}),
        ("S2", {"S2-G1": 4.0}),
        ("S1", {"S1-G2": 5.0}),
    ]
    records = [
        _rec(_batch(registry, site, v, NOW + i, seq=i + 1), offset=i) for i, (site, v) in enumerate(values)
    ]
    alone, _ = _steps(registry)
    together, ctx = _steps(registry)
    one_by_one = [t for r in records for t in _transitions(alone.telemetry(r))]
    out = together.telemetry_many(records)
    assert out.dead == []
    assert sorted(_transitions(out)) == sorted(one_by_one)
    assert ("sensor", "S1-G1", "normal", "l2_high") in one_by_one
    assert ("site", "S1", "normal", "orange") in one_by_one and (
        "site",
        "S1",
        "orange",
        "normal",
    ) in one_by_one
    assert _metric(ctx, "riskwatch_readings_total") == 7 and _metric(ctx, "riskwatch_batches_total") == 6


def test_quiet_records_of_a_site_taken_together_cost_one_engine_call(registry) -> None:  # type: ignore[no-untyped-def]
    real = load_engine()
    calls: list[int] = []

    def evaluate(model, state, readings, now):  # type: ignore[no-untyped-def]
        calls.append(len(readings))
        return real.evaluate(model, state, readings, now)

    steps, ctx = _steps(registry, real._replace(evaluate=evaluate))
    records = [
        _rec(_batch(registry, "S3", {"S3-G1": 3.0 + i, "S3-G2": 2.0}, NOW + i, seq=i + 1), offset=i)
        for i in range(5)
    ]
    out = steps.telemetry_many(records)
    assert (out.transitions, out.dead, calls) == ([], [], [10])
    assert ctx.states.evaluated("S3") == 10


def test_a_bad_record_among_those_taken_together_is_dead_lettered_alone(registry) -> None:  # type: ignore[no-untyped-def]
    real = load_engine()

    def evaluate(model, state, readings, now):  # type: ignore[no-untyped-def]
        if 66.0 in readings.value:
            raise RuntimeError("engine bug")
        return real.evaluate(model, state, readings, now)

    steps, ctx = _steps(registry, real._replace(evaluate=evaluate))
    records = [
        _rec(_batch(registry, "S1", {"S1-G1": 3.0}, NOW, seq=1), offset=10),
        _rec(b"RWTB\x02garbage", offset=11),
        _rec(_batch(registry, "S1", {"S1-G1": 66.0}, NOW + 1, seq=2), offset=12),
        _rec(_batch(registry, "S1", {"S1-G2": 60.0}, NOW + 2, seq=3), offset=13),
    ]
    out = steps.telemetry_many(records)
    assert sorted((d.reason, d.offset) for d in out.dead) == [("batch_decode", 11), ("evaluation_error", 12)]
    assert ("sensor", "S1-G2", "normal", "l2_high") in _transitions(out)
    assert ctx.states.evaluated("S1") == 2
