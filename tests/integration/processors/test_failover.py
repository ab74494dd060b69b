"""Two workers in one group; one is SIGKILLed mid-stream; its partitions move and nothing changes downstream."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from deploy.stack import ensure_topics
from riskwatch.registry import Registry
from riskwatch.topics import Topics
from tests.conftest import TEST_PARTITIONS
from tests.integration.processors.harness import WorkerProcess, batch, drain, metric, produce, write_registry

ROUNDS = 30
SITES = [f"S{n}" for n in range(6)]


def _input(reg: Registry, base: float, rounds: range) -> list[tuple[bytes, bytes]]:
    """Values that cross L1/L2 and clear again, differently per site, at fixed event times."""
    levels = (5.0, 30.0, 60.0, 30.0, 5.0)
    out = []
    for r in rounds:
        for n, site in enumerate(SITES):
            values = {
                f"{site}-G1": levels[(r + n) % 5],
                f"{site}-G2": levels[(r * 2 + n) % 5],
                f"{site}-G3": 1.0,
            }
            out.append((site.encode(), batch(reg, site, values, base + r, seq=r)))
    return out


def _by_id(transitions: list) -> dict[str, tuple]:  # type: ignore[type-arg]
    return {t.id: (t.entity, t.old, t.new, t.at) for t in transitions if t.entity_type != "region"}


def _wait_assigned(workers: list[WorkerProcess], timeout: float = 60) -> list[float]:
    """Wait until each worker owns partitions and all sites are owned; returns sites per worker."""
    end = time.time() + timeout
    while time.time() < end:
        parts = [metric(w.metrics_port, "riskwatch_partitions_owned") for w in workers]
        owned = [metric(w.metrics_port, "riskwatch_sites_owned") for w in workers]
        if all(parts) and None not in owned and sum(owned) == len(SITES):  # type: ignore[arg-type]
            return owned  # type: ignore[return-value]
        time.sleep(0.5)
    raise AssertionError(
        f"workers never split the partitions: {owned}; " + " ;; ".join(w.output() for w in workers)
    )


def test_killed_worker_hands_over_with_the_same_state(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reg_path, reg = write_registry(tmp_path, stale_s=3600)
    base = time.time() - 300
    names = [Topics(f"t{uuid.uuid4().hex[:10]}") for _ in range(2)]
    for t in names:
        ensure_topics(stack.kafka_bootstrap, t.all(), TEST_PARTITIONS)
    single_topics, pair_topics = names

    # Reference: one worker, the whole input.
    single = WorkerProcess(stack, single_topics, reg_path, tmp_path / "single")
    try:
        produce(stack.kafka_bootstrap, single_topics.telemetry, _input(reg, base, range(ROUNDS)))
        reference = drain(stack.kafka_bootstrap, [single_topics.alarms, single_topics.warnings], 6, 120)
    finally:
        single.stop()
    assert len(_by_id(reference)) > 40, single.output()

    # Two workers; the first is killed half way through the input.
    first = WorkerProcess(stack, pair_topics, reg_path, tmp_path / "first")
    second = WorkerProcess(stack, pair_topics, reg_path, tmp_path / "second")
    try:
        owned = _wait_assigned([first, second])
        if owned[0] < owned[1]:  # kill the worker that owns more sites (a partition may hold none)
            first, second = second, first
        produce(stack.kafka_bootstrap, pair_topics.telemetry, _input(reg, base, range(ROUNDS // 2)))
        drain(stack.kafka_bootstrap, [pair_topics.alarms], 2, 60)
        first.kill()
        produce(stack.kafka_bootstrap, pair_topics.telemetry, _input(reg, base, range(ROUNDS // 2, ROUNDS)))
        end = time.time() + 90
        while time.time() < end and metric(second.metrics_port, "riskwatch_sites_owned") != len(SITES):
            time.sleep(0.5)
        seen = drain(stack.kafka_bootstrap, [pair_topics.alarms, pair_topics.warnings], 8, 120)
    finally:
        first.kill()
        second.stop()
    assert _by_id(seen) == _by_id(reference), second.output()
    # Region roll-ups depend on the order sites' changes meet across partitions; their end state must
    # agree. A region's transitions are all in one partition, so the last one read is its current colour.
    final = {t.entity: t.new for t in reference if t.entity_type == "region"}
    final_pair = {t.entity: t.new for t in seen if t.entity_type == "region"}
    assert final_pair == final
