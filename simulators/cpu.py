"""CPU seconds each process of the path spends during a benchmark step.

On a shared machine readings/s depend on what else runs; the CPU a component spends per reading does
much less, so these are the per-core inputs of the capacity model (docs/capacity.md). Read from
/proc/PID/stat (user + system time of the process and its threads), Linux only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()  # after "pid (comm)": fields from 3 (state) on


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds the process has used so far, None if it is gone."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / _TICK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all the machine's cores since boot (/proc/stat): idle and iowait
    are not busy; steal (time a virtual machine's host gave elsewhere) is."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


class CpuMeter:
    """CPU seconds per named process group between `start()` and `stop()`.

    `groups` is called at both ends and returns name -> pids; a process that appears only at the end
    (or restarted) is counted from zero, and one that is gone at the end counts what it had at the start
    as nothing further, so a restart during a step under-counts rather than inventing time."""

    def __init__(self, groups: Callable[[], Mapping[str, list[int]]]) -> None:
        self.groups = groups
        self._start: dict[int, float] = {}
        self._machine = (0, 0)
        # The whole machine's cores busy between start and stop, 0..1: what the groups leave unexplained
        # is spent elsewhere, and near 1 the step was bounded by CPU, not by a stall.
        self.machine_busy = 0.0

    def start(self) -> None:
        self._machine = machine_jiffies()
        self._start = {
            pid: cpu
            for pids in self.groups().values()
            for pid in pids
            if (cpu := cpu_seconds(pid)) is not None
        }

    def stop(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pids in self.groups().items():
            spent = 0.0
            for pid in pids:
                now = cpu_seconds(pid)
                if now is not None:
                    spent += now - self._start.get(pid, 0.0)
            out[name] = round(spent, 2)
        busy, total = machine_jiffies()
        self.machine_busy = (busy - self._machine[0]) / max(1, total - self._machine[1])
        return out
