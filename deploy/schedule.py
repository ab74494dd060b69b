"""The daily bulletin on a schedule under `riskwatch run`: at a local time each day, yesterday's
bulletin is written by `riskwatch report daily` as a child process (a failure is said and retried the
next day; it never touches the services)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from riskwatch.errors import RiskwatchError


def parse_clock(text: str) -> time:
    try:
        hh, mm = text.split(":")
        return time(int(hh), int(mm))
    except ValueError:
        raise RiskwatchError(f"--bulletin-at: expected HH:MM (local time), got {text!r}") from None


def next_run(now: float, at: time, tz: str) -> float:
    """Epoch seconds of the next `at` (local to `tz`) strictly after `now`."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now, zone)
    due = datetime.combine(local.date(), at, zone)
    if due.timestamp() <= now:
        due = datetime.combine(local.date() + timedelta(days=1), at, zone)
    return due.timestamp()


def start_daily_bulletin(
    at: time, tz: str, argv: list[str], env: dict[str, str], cwd: Path, stop: threading.Event,
    say: Callable[[str], None], clock: Callable[[], float],
) -> threading.Thread:  # fmt: skip
    """A thread that runs `riskwatch report daily ARGV` at `at` every day until `stop` is set."""

    def loop() -> None:
        while not stop.wait(max(0.0, next_run(clock(), at, tz) - clock())):
            command = [sys.executable, "-m", "riskwatch", "report", "daily", *argv]
            done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
            if done.returncode == 0:
                say(f"daily bulletin written: {' '.join(done.stdout.split())}")
            else:
                say(f"daily bulletin failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")

    thread = threading.Thread(target=loop, name="daily-bulletin", daemon=True)
    thread.start()
    return thread
