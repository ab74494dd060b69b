"""The CPU meter of the end-to-end benchmarks: per process group, and the whole machine's busy share."""

from __future__ import annotations

import os
import time

from simulators.cpu import CpuMeter, machine_jiffies


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_busy_process_is_counted_in_its_group_and_in_the_machine() -> None:
    meter = CpuMeter(lambda: {"this test": [os.getpid()]})
    meter.start()
    began = time.monotonic()
    _spin(0.3)
    spent = meter.stop()
    wall = time.monotonic() - began
    assert 0.25 <= spent["this test"] <= wall + 0.05
    # at least this process's share of the machine's cores was busy, and never more than all of them
    cores = os.cpu_count() or 1
    assert spent["this test"] / (wall * cores) * 0.8 <= meter.machine_busy <= 1.0


def test_the_machine_counters_only_grow_and_busy_is_part_of_total() -> None:
    busy, total = machine_jiffies()
    _spin(0.05)
    busy2, total2 = machine_jiffies()
    assert 0 <= busy <= total and busy <= busy2 and total < total2
