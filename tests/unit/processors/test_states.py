from __future__ import annotations

from processors.engine_port import load_engine
from processors.state.states import SiteStates
from riskwatch.wire.gateway_protocol import GatewayRecord
from riskwatch.wire.readings import Readings


def _readings(registry, index, values, ts):  # type: ignore[no-untyped-def]
    ids = list(values)
    local = [int(index.local_of_sensor[registry.sensors[i].index]) for i in ids]
    return Readings.of(local, [values[i] for i in ids], [ts] * len(ids))


def test_crossing_set_points_gives_alarm_and_site_warning_but_no_region(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    states = SiteStates(index, fake_engine, lambda site: None)
    out = states.evaluate("S1", _readings(registry, index, {"S1-G1": 60.0}, 100.0), now=100.0)
    assert [(t.entity_type, t.entity, t.new) for t in out] == [
        ("sensor", "S1-G1", "l2_high"),
        ("site", "S1", "yellow"),
    ]
    assert set(states.open_levels("S1")) == {("sensor", "S1-G1"), ("site", "S1")}


def test_snapshot_restore_continues_with_the_same_levels(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    first = SiteStates(index, fake_engine, lambda site: None)
    first.evaluate("S1", _readings(registry, index, {"S1-G1": 60.0}, 100.0), now=100.0)
    snaps = dict(first.take_dirty())
    assert first.take_dirty() == []  # clean until the next change
    second = SiteStates(index, fake_engine, snaps.get)
    # A replay of the same batch changes nothing and emits nothing (no repeated warning).
    assert second.evaluate("S1", _readings(registry, index, {"S1-G1": 60.0}, 100.0), now=101.0) == []
    assert second.open_levels("S1") == first.open_levels("S1")
    out = second.evaluate("S1", _readings(registry, index, {"S1-G1": 1.0}, 102.0), now=102.0)
    assert [(t.entity, t.old, t.new) for t in out] == [
        ("S1-G1", "l2_high", "normal"),
        ("S1", "yellow", "normal"),
    ]
    assert second.open_levels("S1") == {}


def test_tick_with_no_input_turns_silent_sensors_stale(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    states = SiteStates(index, fake_engine, lambda site: None)
    states.evaluate("S2", _readings(registry, index, {"S2-G1": 1.0}, 100.0), now=100.0)
    assert states.tick(["S2"], now=105.0) == []
    out = states.tick(["S2"], now=108.5)
    assert [(t.entity, t.new, t.at) for t in out if t.entity_type == "sensor"] == [("S2-G1", "stale", 108.0)]


def test_unreadable_snapshot_starts_fresh_and_is_counted(index, fake_engine):  # type: ignore[no-untyped-def]
    states = SiteStates(index, fake_engine, lambda site: b"garbage")
    assert states.slot("S0").open == {}
    assert states.restore_failures == 1


def test_gateway_offline_reaches_the_engine(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    states = SiteStates(index, fake_engine, lambda site: None)
    rec = GatewayRecord(type="status", site="S3", gw="S3-GW", t=50.0, received=51.0, state="offline")
    out = states.apply_gateway("S3", [rec], now=52.0)
    assert sorted(t.entity for t in out if t.entity_type == "sensor") == ["S3-G1", "S3-G2", "S3-G3"]


def test_a_site_started_by_a_tick_takes_older_first_readings(registry, index):  # type: ignore[no-untyped-def]
    states = SiteStates(index, load_engine(), lambda site: None)
    assert states.tick(["S1"], now=1000.0) == []
    # A gateway uploading buffered data from before the worker first saw the site: taken, at its time
    # (and stale 8 s later, this registry's timeout).
    out = states.evaluate("S1", _readings(registry, index, {"S1-G1": 60.0}, 960.0), now=1001.0)
    alarms = [(t.entity, t.new, t.at) for t in out if t.entity_type == "sensor"]
    assert alarms == [("S1-G1", "l2_high", 960.0), ("S1-G1", "stale", 968.0)]


def test_a_site_started_by_a_backlog_starts_silent_sensors_stale_timers_now(registry, index):  # type: ignore[no-untyped-def]
    states = SiteStates(index, load_engine(), lambda site: None)
    out = states.evaluate("S2", _readings(registry, index, {"S2-G1": 1.0}, 100.0), now=200.0)
    out += states.tick(["S2"], now=208.0)  # this registry's sensors go stale after 8 s
    stale = [(t.entity, t.at) for t in out if t.entity_type == "sensor"]
    assert stale == [("S2-G1", 108.0), ("S2-G2", 208.0), ("S2-G3", 208.0)]


def _edited_registry():  # type: ignore[no-untyped-def]
    """The test registry with S1-G3 removed and S1-G0 added at the front of S1 (every index moves)."""
    import yaml

    from riskwatch.registry import Registry
    from tests.integration.processors.harness import REGISTRY_YAML, STALE_S

    g3 = f"- {{id: S1-G3, type: flammable_gas, stale_after_s: {STALE_S}}}"
    g1 = f"- {{id: S1-G1, type: flammable_gas, stale_after_s: {STALE_S}}}"
    g0 = f"- {{id: S1-G0, type: flammable_gas, stale_after_s: {STALE_S}}}"
    assert g3 in REGISTRY_YAML and g1 in REGISTRY_YAML
    text = REGISTRY_YAML.replace(f"\n          {g3}", "").replace(g1, f"{g0}\n          {g1}")
    return Registry.from_dict(yaml.safe_load(text), source="<edited>")


def test_an_edited_registry_keeps_unchanged_state_by_id(registry, index):  # type: ignore[no-untyped-def]
    from processors.state.sites import SiteIndex

    engine = load_engine()
    first = SiteStates(index, engine, lambda site: None)
    first.evaluate("S1", _readings(registry, index, {"S1-G1": 60.0, "S1-G3": 60.0}, 100.0), now=100.0)
    assert {e for _, e in first.open_levels("S1")} >= {"S1-G1", "S1-G3"}
    snaps = dict(first.take_dirty())

    edited = _edited_registry()
    index2 = SiteIndex(edited)
    second = SiteStates(index2, engine, snaps.get)
    # Restored and migrated, no error; with S1-G3 gone one gas detector is at L2, no longer two: orange.
    out = second.tick(["S1"], now=101.0)
    assert [(t.entity, t.old, t.new) for t in out] == [("S1-U1", "red", "orange"), ("S1", "red", "orange")]
    assert {e for t, e in second.open_levels("S1") if t == "sensor"} == {"S1-G1"}  # S1-G3 removed
    out = second.evaluate("S1", _readings(edited, index2, {"S1-G0": 60.0}, 102.0), now=102.0)
    assert [(t.entity, t.new) for t in out if t.entity_type == "sensor"] == [("S1-G0", "l2_high")]
    out = second.evaluate("S1", _readings(edited, index2, {"S1-G1": 1.0}, 103.0), now=103.0)
    out += second.evaluate("S1", _readings(edited, index2, {"S1-G1": 1.0, "S1-G0": 60.0}, 106.0), 106.0)
    out += second.tick(["S1"], now=113.0)
    assert [(t.entity, t.old, t.new) for t in out if t.entity == "S1-G1"] == [
        ("S1-G1", "l2_high", "normal")  # the alarm kept through the edit, cleared by a real reading
    ]


def test_readings_evaluated_are_counted_per_site_and_survive_a_restart(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    first = SiteStates(index, fake_engine, lambda site: None)
    first.evaluate("S1", _readings(registry, index, {"S1-G1": 1.0, "S1-G2": 2.0}, 100.0), now=100.0)
    first.evaluate("S1", _readings(registry, index, {"S1-G1": 1.5}, 101.0), now=101.0)
    assert (first.evaluated("S1"), first.evaluated("S2")) == (3, 0)
    snaps = dict(first.take_dirty())
    second = SiteStates(index, fake_engine, snaps.get)
    assert second.evaluated("S1") == 3  # from the stored snapshot, before the site is loaded
    second.evaluate("S1", _readings(registry, index, {"S1-G2": 2.5}, 102.0), now=102.0)
    assert second.evaluated("S1") == 4


def test_the_engine_reports_its_offline_gateways_for_the_fleet_gauge(registry, index):  # type: ignore[no-untyped-def]
    engine = load_engine()
    states = SiteStates(index, engine, lambda site: None)
    assert engine.gateways(states.slot("S3", 40.0).state) == (0, 1)
    rec = GatewayRecord(type="status", site="S3", gw="S3-GW", t=50.0, received=51.0, state="offline")
    states.apply_gateway("S3", [rec], now=52.0)
    assert engine.gateways(states.slot("S3").state) == (1, 1)
    back = GatewayRecord(type="status", site="S3", gw="S3-GW", t=60.0, received=61.0, state="online")
    states.apply_gateway("S3", [back], now=62.0)
    assert engine.gateways(states.slot("S3").state) == (0, 1)


def _feed(states, aggregator, registry, index, site, values, ts):  # type: ignore[no-untyped-def]
    """What the worker's step does with a batch: evaluate it, then fold it into the open minutes."""
    import numpy as np

    states.evaluate(site, _readings(registry, index, values, ts), now=ts)
    glob = np.array([registry.sensors[i].index for i in values])
    aggregator.add(glob, np.array(list(values.values())), np.full(len(values), ts), now=ts)


def test_open_minutes_resume_from_the_snapshot_after_a_crash(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    from processors.history.aggregate import MinuteAggregator

    n = len(registry.sensor_list)
    agg1 = MinuteAggregator(n)
    first = SiteStates(index, fake_engine, lambda site: None, minutes=agg1)
    for k, v in enumerate([1.0, 2.0, 4.0]):  # minute 10 (600 s), covered by the snapshot below
        _feed(first, agg1, registry, index, "S1", {"S1-G1": v, "S1-G2": 10 * v}, 600.0 + k)
    _feed(first, agg1, registry, index, "S2", {"S2-G1": 7.0}, 601.0)
    snaps = dict(first.take_dirty())
    # SIGKILL: agg1 is gone. The next worker restores the site and gets only what came after the snapshot.
    agg2 = MinuteAggregator(n)
    second = SiteStates(index, fake_engine, snaps.get, minutes=agg2)
    _feed(second, agg2, registry, index, "S1", {"S1-G1": 9.0}, 630.0)
    _feed(second, agg2, registry, index, "S1", {"S1-G1": 3.0}, 661.0)  # the next minute
    closed = {a.start: a for a in agg2.close_due(now=10_000.0)}
    assert sorted(closed) == [600.0, 660.0]
    m = closed[600.0]
    ids = [registry.sensor_list[i].id for i in m.sensor.tolist()]
    got = dict(
        zip(
            ids,
            zip(m.min.tolist(), m.max.tolist(), m.mean.tolist(), m.count.tolist(), strict=True),
            strict=True,
        )
    )
    assert got == {"S1-G1": (1.0, 9.0, 4.0, 4), "S1-G2": (10.0, 40.0, 70.0 / 3, 3)}  # S2 not restored yet
    second.slot("S2")  # a tick or a record restores S2, with its part of minute 10
    assert [(a.start, a.count.tolist()) for a in agg2.close_due(now=10_000.0)] == [(600.0, [1])]


def test_a_revoked_site_leaves_its_open_minutes_to_the_next_owner(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    import numpy as np

    from processors.history.aggregate import MinuteAggregator

    agg = MinuteAggregator(len(registry.sensor_list))
    states = SiteStates(index, fake_engine, lambda site: None, minutes=agg)
    _feed(states, agg, registry, index, "S1", {"S1-G1": 1.0}, 600.0)
    _feed(states, agg, registry, index, "S2", {"S2-G1": 2.0}, 600.0)
    states.drop(["S1"])  # its partition moved: the snapshot carries S1's part, this worker must not close it
    [m] = agg.close_due(now=10_000.0)
    assert m.sensor.tolist() == [registry.sensors["S2-G1"].index] and m.count.tolist() == [1]
    assert np.isfinite(m.mean).all()


def test_open_minutes_of_a_sensor_the_registry_no_longer_has_are_dropped(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    from processors.history.aggregate import MinuteAggregator
    from processors.state.snapshot import SiteSnapshot, StoredMinute

    first = SiteStates(index, fake_engine, lambda site: None)
    first.evaluate("S1", _readings(registry, index, {"S1-G1": 1.0}, 600.0), now=600.0)
    snap = SiteSnapshot.from_bytes(dict(first.take_dirty())["S1"])
    stored = StoredMinute(
        10, ("S1-G1", "GONE", "S2-G1"), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0), (1, 1, 1)
    )
    raw = {"S1": snap._replace(minutes=(stored,)).to_bytes()}
    agg = MinuteAggregator(len(registry.sensor_list))
    SiteStates(index, fake_engine, raw.get, minutes=agg).slot("S1")
    [m] = agg.close_due(now=10_000.0)
    assert (m.start, m.sensor.tolist(), m.count.tolist()) == (600.0, [registry.sensors["S1-G1"].index], [1])


def test_a_slow_sensors_credited_window_survives_a_crash(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    """A sensor owing one reading per 5 minutes, credited in minute 10, is not credited again in minute 11
    (the same owed window) by the worker that restores its site after a crash."""
    import numpy as np

    from processors.history.aggregate import MinuteAggregator

    n = len(registry.sensor_list)
    windows = np.full(n, 60.0)
    windows[registry.sensors["S1-G1"].index] = 300.0  # window [600, 900)

    def run(restart: bool) -> list[list[bool]]:
        agg = MinuteAggregator(n, window_s=windows)
        states = SiteStates(index, fake_engine, lambda site: None, minutes=agg)
        _feed(states, agg, registry, index, "S1", {"S1-G1": 1.0}, 601.0)
        credits = [m.credited.tolist() for m in agg.close_due(now=10_000.0)]  # minute 10: credited
        snaps = dict(states.take_dirty())
        if restart:  # SIGKILL after the snapshot: a new worker, a new aggregator
            agg = MinuteAggregator(n, window_s=windows)
            states = SiteStates(index, fake_engine, snaps.get, minutes=agg)
        _feed(states, agg, registry, index, "S1", {"S1-G1": 2.0}, 661.0)
        return credits + [m.credited.tolist() for m in agg.close_due(now=10_000.0)]

    assert run(restart=False) == [[True], [False]]
    assert run(restart=True) == run(restart=False)
