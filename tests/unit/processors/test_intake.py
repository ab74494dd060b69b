from __future__ import annotations

import numpy as np

from processors.intake import Intake
from riskwatch.wire.batch import encode
from riskwatch.wire.deadletter import DeadLetter
from riskwatch.wire.readings import Readings


def _batch(registry, site, ids, values, fingerprint=None, with_ids=True):  # type: ignore[no-untyped-def]
    readings = Readings.of([registry.sensors[i].index for i in ids], values, [100.0] * len(ids))
    return encode(
        site,
        fingerprint or registry.fingerprint,
        [("gw", 1, len(ids))],
        readings,
        registry.sensor_ids if with_ids else None,
    )


def test_good_batch_is_accepted_with_site_local_indices(registry, index):  # type: ignore[no-untyped-def]
    accepted, dead = Intake(index, lambda: 1.0).telemetry(
        _batch(registry, "S2", ["S2-G3", "S2-G1"], [1, 2]), "t"
    )
    assert dead == []
    assert accepted.site == "S2"
    assert accepted.readings.sensor.tolist() == [2, 0]
    assert accepted.global_sensor.tolist() == [
        registry.sensors["S2-G3"].index,
        registry.sensors["S2-G1"].index,
    ]


def test_truncated_record_is_dead_lettered_with_its_bytes(index):  # type: ignore[no-untyped-def]
    accepted, dead = Intake(index, lambda: 5.0).telemetry(b"RWTB\x01", "rw.telemetry")
    assert accepted is None
    letter = DeadLetter.from_bytes(dead[0].to_bytes())
    assert (letter.reason, letter.original, letter.source, letter.component) == (
        "batch_decode",
        b"RWTB\x01",
        "rw.telemetry",
        "processors",
    )


def test_bad_codec_version_is_dead_lettered(registry, index):  # type: ignore[no-untyped-def]
    raw = bytearray(_batch(registry, "S1", ["S1-G1"], [1.0]))
    raw[4] = 9
    accepted, dead = Intake(index, lambda: 5.0).telemetry(bytes(raw), "t")
    assert accepted is None and dead[0].reason == "batch_decode" and "version 9" in dead[0].detail


def test_readings_of_another_site_are_cut_out_and_named(registry, index):  # type: ignore[no-untyped-def]
    raw = _batch(registry, "S1", ["S1-G1", "S4-G2", "S1-G2"], [1, 2, 3])
    accepted, dead = Intake(index, lambda: 5.0).telemetry(raw, "t")
    assert accepted.readings.value.tolist() == [1, 3]
    assert accepted.n_in == 3
    assert dead[0].reason == "sensor_site_mismatch"
    assert [(i.index, i.sensor) for i in dead[0].items] == [(1, "S4-G2")]


def test_out_of_range_index_is_refused(registry, index):  # type: ignore[no-untyped-def]
    readings = Readings.of([0, 10_000], [1.0, 2.0], [1.0, 1.0])
    raw = encode("S0", registry.fingerprint, [], readings)
    accepted, dead = Intake(index, lambda: 5.0).telemetry(raw, "t")
    assert len(accepted.readings) == 1 and dead[0].reason == "sensor_unknown"


def test_unknown_site_is_refused_whole(registry, index):  # type: ignore[no-untyped-def]
    accepted, dead = Intake(index, lambda: 5.0).telemetry(
        _batch(registry, "S1", ["S1-G1"], [1.0]).replace(b"S1", b"Z1", 1), "t"
    )
    assert accepted is None and dead[0].reason == "registry_mismatch"


def test_other_registry_version_is_remapped_by_sensor_id(registry, index):  # type: ignore[no-untyped-def]
    raw = _batch(registry, "S3", ["S3-G2"], [7.0], fingerprint="older")
    accepted, dead = Intake(index, lambda: 5.0).telemetry(raw, "t")
    assert dead == [] and accepted.readings.sensor.tolist() == [1]
    no_ids = _batch(registry, "S3", ["S3-G2"], [7.0], fingerprint="older", with_ids=False)
    accepted, dead = Intake(index, lambda: 5.0).telemetry(no_ids, "t")
    assert accepted is None and dead[0].reason == "registry_mismatch"


def test_gateway_record_garbage_is_dead_lettered(index):  # type: ignore[no-untyped-def]
    record, dead = Intake(index, lambda: 5.0).gateway(b"{nope", "rw.gateway")
    assert record is None and dead[0].original == b"{nope"
    assert np.asarray(index.site_of_sensor).shape[0] == 18
