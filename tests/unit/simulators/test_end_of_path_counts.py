"""What `bench e2e` counts at the end of the path: readings named by dead letters, and paced connects."""

from __future__ import annotations

import time

import orjson
import pytest

from riskwatch.wire.deadletter import DeadItem, DeadLetter
from simulators.kafka_watch import DeadLetterCounter
from simulators.mqtt_loop import connect_paced


class _Reader:
    def __init__(self, records: list[bytes]) -> None:
        self.records = records

    def poll(self, timeout_s: float = 0.0) -> list[bytes]:
        out, self.records = self.records, []
        return out


def test_dead_letters_count_the_readings_they_name() -> None:
    items = tuple(DeadItem(i, "sensor_unknown", sensor=f"X{i}") for i in range(3))
    some = DeadLetter("sensor_unknown", "3 unknown", "rw/v1/S/G/telemetry", b"{}", 1.0, items=items)
    message = orjson.dumps({"gw": "G", "seq": 1, "readings": [{"s": "A", "v": 1, "t": 1}] * 7})
    whole = DeadLetter("payload_decode", "bad", "rw/v1/S/G/telemetry", message, 1.0)
    opaque = DeadLetter("batch_decode", "bad", "rw.telemetry", b"\x00\x01", 1.0, component="worker")
    # a retained status of a gateway this registry does not have (left by another registry's run), as
    # the bridge and as the worker refuse it: no readings in either
    status = orjson.dumps({"gw": "G9", "seq": 1, "online": True})
    by_bridge = DeadLetter("gateway_unknown", "unknown", "rw/v1/S/G9/status", status, 1.0)
    by_worker = DeadLetter("gateway_unknown", "unknown", "t1.gateway", b"\x00", 1.0, component="worker")
    letters = [some, whole, opaque, by_bridge, by_worker]
    counter = DeadLetterCounter(_Reader([d.to_bytes() for d in letters]))  # type: ignore[arg-type]
    assert counter.poll() == 3 + 7 + 1
    assert counter.reasons == {
        "sensor_unknown": 3,
        "payload_decode": 7,
        "batch_decode": 1,
        "gateway_unknown": 0,
    }
    assert counter.letters == 5


def test_connects_are_paced_and_a_refusal_is_named() -> None:
    started: list[int] = []
    outstanding: list[int] = []

    def start(item: int) -> None:
        outstanding.append(len([i for i in started if not connected(i)]))
        started.append(item)

    def connected(item: int) -> bool:
        return item < len(started) - 2  # each is answered once two more have been started

    with pytest.raises(RuntimeError, match="no CONNACK"):
        connect_paced(range(10), start, connected, lambda i: "", timeout_s=0.05, window=3)
    assert max(outstanding) <= 3  # never more than the window waiting
    refused = time.monotonic()
    with pytest.raises(RuntimeError, match="7: not authorised"):
        connect_paced(
            range(10), lambda i: None, lambda i: i < 7, lambda i: "not authorised" if i == 7 else "", 5.0
        )
    assert time.monotonic() - refused < 1.0
