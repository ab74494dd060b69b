from __future__ import annotations

from processors.intake import Intake
from processors.state.seen import RecentSeqs
from processors.state.states import SiteStates
from riskwatch.wire.batch import encode
from riskwatch.wire.readings import Readings


def test_a_repeated_gateway_message_is_a_duplicate_per_gateway() -> None:
    seen = RecentSeqs(window=3)
    assert seen.check_and_add("A", 1)
    assert not seen.check_and_add("A", 1)
    assert seen.check_and_add("B", 1)  # same seq, other gateway: new


def test_a_reused_seq_with_other_content_is_new_and_its_repeat_a_duplicate() -> None:
    seen = RecentSeqs()
    assert seen.check_and_add("A", 1, 100.0)
    assert not seen.check_and_add("A", 1, 100.0)  # redelivered: same content
    assert seen.check_and_add("A", 1, 160.0)  # the gateway restarted its counter: new readings
    assert not seen.check_and_add("A", 1, 160.0)


def test_seqs_from_an_older_snapshot_without_stamps_match_any_content() -> None:
    seen = RecentSeqs.from_json({"A": [1, 2]})
    assert not seen.check_and_add("A", 2, 123.0)
    assert seen.check_and_add("A", 3, 123.0)
    back = RecentSeqs.from_json(seen.to_json())
    assert back == seen and not back.check_and_add("A", 3, 123.0) and back.check_and_add("A", 3, 124.0)


def test_the_window_forgets_the_oldest_so_a_restarted_counter_is_not_silenced() -> None:
    seen = RecentSeqs(window=3)
    for seq in (1, 2, 3, 4):
        assert seen.check_and_add("A", seq)
    assert seen.check_and_add("A", 1)  # fell out of the window: let through, never dropped
    assert not seen.check_and_add("A", 4)


def _batch(registry, site, sources, t0: float = 100.0):  # type: ignore[no-untyped-def]
    """A batch with one reading per (gateway, seq, sensor, value) source, message `seq` read at t0 + seq."""
    readings = Readings.of(
        [registry.sensors[s].index for _, _, s, _ in sources],
        [v for *_, v in sources],
        [t0 + seq for _, seq, _, _ in sources],
    )
    return encode(
        site, registry.fingerprint, [(gw, seq, 1) for gw, seq, _, _ in sources], readings, registry.sensor_ids
    )


def test_intake_leaves_out_gateway_messages_already_evaluated(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    states = SiteStates(index, fake_engine, lambda site: None)
    intake = Intake(index, lambda: 200.0)
    first, _ = intake.telemetry(
        _batch(registry, "S1", [("GW", 1, "S1-G1", 60.0), ("GW", 2, "S1-G2", 1.0)]), "t", states.fresh_sources
    )
    assert (len(first.readings), first.duplicates) == (2, 0)
    # Redelivered message 2 alongside a new message 3: only message 3's reading remains.
    again, dead = intake.telemetry(
        _batch(registry, "S1", [("GW", 2, "S1-G2", 1.0), ("GW", 3, "S1-G3", 2.0)]), "t", states.fresh_sources
    )
    assert dead == []
    assert (len(again.readings), again.duplicates) == (1, 1)
    assert again.global_sensor.tolist() == [registry.sensors["S1-G3"].index]


def test_the_window_travels_with_the_snapshot(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    first = SiteStates(index, fake_engine, lambda site: None)
    raw = _batch(registry, "S1", [("GW", 5, "S1-G1", 60.0)])
    accepted, _ = Intake(index, lambda: 200.0).telemetry(raw, "t", first.fresh_sources)
    first.evaluate("S1", accepted.readings, 200.0)
    snaps = dict(first.take_dirty())
    # The next owner restores the snapshot: a replay of the same message is left out.
    second = SiteStates(index, fake_engine, snaps.get)
    replay, _ = Intake(index, lambda: 201.0).telemetry(raw, "t", second.fresh_sources)
    assert (len(replay.readings), replay.duplicates) == (0, 1)


def test_a_gateway_that_restarts_its_counter_is_not_silenced(registry, index, fake_engine):  # type: ignore[no-untyped-def]
    states = SiteStates(index, fake_engine, lambda site: None)
    intake = Intake(index, lambda: 200.0)
    before, _ = intake.telemetry(
        _batch(registry, "S1", [("GW", 1, "S1-G1", 60.0)]), "t", states.fresh_sources
    )
    assert before.duplicates == 0
    # Power cut: the gateway counts from 1 again, with readings taken a minute later.
    after, _ = intake.telemetry(
        _batch(registry, "S1", [("GW", 1, "S1-G1", 5.0)], t0=160.0), "t", states.fresh_sources
    )
    assert (len(after.readings), after.duplicates) == (1, 0)
    assert after.readings.value.tolist() == [5.0]
