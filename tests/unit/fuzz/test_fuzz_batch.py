"""Fuzz the worker's decoders: arbitrary bytes and mutated valid records are decoded or refused with the
decoder's own error (BatchDecodeError, TransitionDecodeError), never another exception; the worker's
intake turns anything into engine input or dead letters."""

from __future__ import annotations

import dataclasses
import zlib

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.intake import Intake
from processors.state.sites import SiteIndex
from riskwatch.registry import Registry
from riskwatch.wire.batch import (
    BODY_CODECS,
    MAGIC,
    BatchDecodeError,
    decode,
    encode,
    keep_sources,
    remap_sensors,
    source_stamps,
)
from riskwatch.wire.readings import Readings
from riskwatch.wire.transitions import Cause, CauseItem, Transition, TransitionDecodeError
from tests.integration.processors.harness import REGISTRY_YAML

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REGISTRY = Registry.from_dict(yaml.safe_load(REGISTRY_YAML), source="<fuzz>")
INDEX = SiteIndex(REGISTRY)


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    """A valid batch of site S1's sensors (or any index), with or without id table and compression."""
    n = draw(st.integers(0, 12))
    sensors = draw(st.lists(st.integers(-3, len(REGISTRY.sensor_ids) + 3), min_size=n, max_size=n))
    values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
    ts = draw(st.lists(st.floats(-1e12, 1e12), min_size=n, max_size=n))
    quality = draw(st.lists(st.integers(0, 255), min_size=n, max_size=n))
    cut = draw(st.integers(0, n))
    sources = [("S1-GW", draw(st.integers(0, 2**64 - 1)), cut), ("S1-GW", 7, n - cut)]
    known = all(0 <= s < len(REGISTRY.sensor_ids) for s in sensors)
    ids = REGISTRY.sensor_ids if known and draw(st.booleans()) else None
    fingerprint = draw(st.sampled_from([REGISTRY.fingerprint, "older"]))
    return encode(
        draw(st.sampled_from(["S1", "S2", "ZZ"])),
        fingerprint,
        sources,
        Readings.of(sensors, values, ts, quality),
        ids,
        compress=draw(st.sampled_from(BODY_CODECS)),
    )


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    raw = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "extend"]))
        if op == "flip" and raw:
            at = draw(st.integers(0, len(raw) - 1))
            raw[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del raw[draw(st.integers(0, len(raw))) :]
        elif op == "insert":
            at = draw(st.integers(0, len(raw)))
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            raw.extend(draw(st.binary(min_size=1, max_size=8)))
    return bytes(raw)


def headed(tail: bytes, version: int, flags: int) -> bytes:
    return MAGIC + bytes([version, flags, 0, 0]) + tail


ANY_BATCH = st.one_of(
    st.binary(max_size=200),
    st.builds(headed, st.binary(max_size=200), st.sampled_from([1, 2]), st.integers(0, 3)),
    mutated(batches()),
)


def _use(raw: bytes) -> None:
    """Decode and do everything the worker does with a batch; only BatchDecodeError may come out."""
    try:
        batch = decode(raw)
        stamps = source_stamps(batch)
        assert len(stamps) == len(batch.sources)
        keep_sources(batch, [i % 2 == 0 for i in range(len(batch.sources))])
        dict(batch.sensor_ids)
        readings, unknown = remap_sensors(batch, {s.id: s.index for s in REGISTRY.sensor_list})
        assert len(readings) + sum(1 for _ in unknown) >= 0
    except BatchDecodeError:
        pass


@FUZZ
@given(ANY_BATCH)
def test_batch_decoder_accepts_or_refuses_with_its_own_error(raw: bytes) -> None:
    _use(raw)


@FUZZ
@given(batches())
def test_valid_batches_decode_to_what_was_encoded(raw: bytes) -> None:
    batch = decode(raw)
    assert sum(s.count for s in batch.sources) == len(batch.readings)


@FUZZ
@given(ANY_BATCH)
def test_worker_intake_never_raises_on_any_record(raw: bytes) -> None:
    accepted, dead = Intake(INDEX, lambda: 1e9).telemetry(raw, "rw.telemetry")
    assert accepted is not None or dead
    for letter in dead:
        assert len(letter.to_bytes()) <= 256 * 1024
    if accepted is not None:
        n = len(INDEX.sensors_of_site[accepted.site])
        assert ((accepted.readings.sensor >= 0) & (accepted.readings.sensor < n)).all()


def test_a_zlib_bomb_is_refused_without_inflating_it() -> None:
    plain = encode("S1", "f", [], Readings.of([0], [1.0], [1.0]))
    header = plain[: len(plain) - 21]  # one reading's columns follow the (padded) header
    bomb = bytearray(header + zlib.compress(b"\0" * (50 << 20), 9))
    bomb[5] |= 0x02  # flags: compressed body
    assert len(bomb) < 100_000
    try:
        decode(bytes(bomb))
    except BatchDecodeError as exc:
        assert "more than" in str(exc)
    else:
        raise AssertionError("a body far larger than its reading count was decoded")


def test_remapping_does_not_allocate_by_the_producers_indices() -> None:
    raw = bytearray(encode("S1", "older", [], Readings.of([5], [1.0], [1.0]), {5: "S1-G1"}))
    body = len(raw) - (21 + 4 + 4 + 2 + len(b"S1-G1"))  # one reading, then a one-entry id table
    huge = (2**31 - 1).to_bytes(4, "little")
    raw[body + 16 : body + 20] = huge  # the reading's sensor index
    raw[body + 25 : body + 29] = huge  # and its entry in the id table
    mapped, unknown = remap_sensors(decode(bytes(raw)), {"S1-G1": 3})
    assert mapped.sensor.tolist() == [3] and unknown == []


# -- transitions ------------------------------------------------------------------------------------

VALID = Transition(
    "abc",
    "warning",
    "site",
    "S1",
    "normal",
    "red",
    1.7e9,
    Cause("gas_l2", (CauseItem("G1", "flammable_gas", "l2_high", 60.0, 50.0, "%LEL", 1.7e9),), "why"),
    "S1",
    "R1",
    "",
    {"red": 1},
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [f.name for f in dataclasses.fields(Transition)] + ["v", "rule", "items", "text", "extra"]


@st.composite
def edited_transitions(draw: st.DrawFn) -> bytes:
    """A valid transition's JSON with fields (top level, cause or a cause item) replaced or removed."""
    doc = orjson.loads(VALID.to_bytes())
    for _ in range(draw(st.integers(1, 3))):
        places = [doc]
        cause = doc.get("cause")
        if isinstance(cause, dict):
            places.append(cause)
            items = cause.get("items")
            if isinstance(items, list) and items and isinstance(items[0], dict):
                places.append(items[0])
        where = draw(st.sampled_from(places))
        key = draw(st.sampled_from(FIELDS + list(where)))
        if draw(st.booleans()):
            where[key] = draw(JSON)
        else:
            where.pop(key, None)
    return orjson.dumps(doc)


ANY_TRANSITION = st.one_of(
    st.binary(max_size=200),
    edited_transitions(),
    mutated(st.just(VALID.to_bytes())),
    st.builds(orjson.dumps, JSON),
)


@FUZZ
@given(ANY_TRANSITION)
def test_transition_decoder_accepts_or_refuses_with_its_own_error(raw: bytes) -> None:
    try:
        t = Transition.from_bytes(raw)
    except TransitionDecodeError:
        return
    assert Transition.from_bytes(t.to_bytes()) == t  # what it accepts is well-formed enough to resend
    assert isinstance(t.at, int | float) and isinstance(t.entity, str) and isinstance(t.key, bytes)


def test_valid_transitions_round_trip_and_bad_ones_are_named() -> None:
    assert Transition.from_bytes(VALID.to_bytes()) == VALID
    for bad in (
        {"id": [1]},
        {"new": "purple"},
        {"at": -1e11},
        {"counts": {"red": "1"}},
        {"kind": "other"},
    ):
        doc = {**orjson.loads(VALID.to_bytes()), **bad}
        try:
            Transition.from_bytes(orjson.dumps(doc))
        except TransitionDecodeError:
            continue
        raise AssertionError(f"accepted {bad}")
