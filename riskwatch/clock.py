"""The clock every component reads the time of day from: real time, or a simulated day run faster.

`--clock 2026-11-29T00:00:00+08:00@720x@1795996800` says: at the real instant 1795996800 (epoch seconds, or
an ISO time) the simulated time is 2026-11-29 00:00 +08:00, and it runs 720 times faster than real time
from there (a day in two real minutes). Every component given the same setting reads the same simulated
time, give or take how far their host clocks disagree times the speed. Without the real instant, the
simulated origin is when the process starts: fine for one process, wrong across several (`riskwatch run`
fills the instant in for the components it starts).

Between two readings a simulated clock advances with the monotonic clock (a host clock stepped by NTP
does not make simulated time jump). What follows this clock is what makes the day's numbers: event
timestamps, staleness and offline detection, minute closing, acknowledgement deadlines, escalations.
Transport timers (MQTT keep-alive, Kafka sessions and commits, HTTP sessions) stay on real time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Annotated, Any

from pydantic import BeforeValidator

from riskwatch.options import option

Clock = Callable[[], float]
"""Epoch seconds now: `time.time` or a SimulatedClock."""


@dataclass(frozen=True, slots=True)
class ClockSpec:
    """A simulated clock: `origin` (epoch s) at the real instant `anchor` (epoch s; None: at start-up),
    then `speed` simulated seconds per real second."""

    origin: float
    speed: float
    anchor: float | None = None

    def __str__(self) -> str:
        origin = datetime.fromtimestamp(self.origin).astimezone().isoformat()
        anchor = "" if self.anchor is None else f"@{self.anchor:.3f}"
        return f"{origin}@{self.speed:g}x{anchor}"

    def anchored(self, anchor: float) -> ClockSpec:
        """The same clock with its real instant fixed (to give several processes one simulated time)."""
        return ClockSpec(self.origin, self.speed, self.anchor if self.anchor is not None else anchor)


def parse_instant(text: str, what: str, tz: tzinfo | None = None) -> float:
    """Epoch seconds, or an ISO time (a time without its UTC offset is in `tz`; without `tz` an error)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is neither epoch seconds nor an ISO time") from None
    if moment.tzinfo is None:
        if tz is None:
            raise ValueError(
                f"{what} {text!r} needs its UTC offset (e.g. +08:00): a day starts at local midnight"
            )
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def parse_clock(text: str) -> ClockSpec:
    """`ORIGIN@SPEEDx[@REAL]` (see the module's doc); ValueError saying what is wrong."""
    parts = text.strip().split("@")
    if len(parts) not in (2, 3) or not parts[1].lower().endswith("x"):
        raise ValueError(f"{text!r}: expected ORIGIN@SPEEDx[@REAL], e.g. 2026-11-29T00:00:00+08:00@720x")
    try:
        speed = float(parts[1][:-1])
    except ValueError:
        raise ValueError(f"{text!r}: speed {parts[1]!r} is not a number followed by x") from None
    if not 0 < speed <= MAX_SPEED:
        raise ValueError(f"{text!r}: speed must be above 0 and at most {MAX_SPEED:g}x")
    anchor = parse_instant(parts[2], "real instant") if len(parts) == 3 else None
    return ClockSpec(parse_instant(parts[0], "origin"), speed, anchor)


# Above this a second of real time is more than an hour of simulated time: timers and pipeline latency
# would blur every figure of the day (docs/reports.md, "A simulated day").
MAX_SPEED = 3600.0


def _spec(value: Any) -> Any:
    if isinstance(value, str):
        return parse_clock(value) if value.strip() else None
    return value


ClockOption = Annotated[ClockSpec | None, BeforeValidator(_spec)]


CLOCK_METAVAR = "ORIGIN@SPEEDx[@REAL]"


def clock_option() -> Any:
    """The `--clock` option, the same in every component that reads the time of day."""
    return option(
        None,
        "run on simulated time: ORIGIN (ISO with its offset) at the real instant REAL (epoch s or ISO; "
        "default: start-up), then SPEED times real time, e.g. 2026-11-29T00:00:00+08:00@720x "
        "(docs/reports.md, 'A simulated day')",
        metavar=CLOCK_METAVAR,
        shown_default="real time",
    )


def add_clock_argument(parser: argparse.ArgumentParser, purpose: str) -> None:
    """`--clock` for the commands outside the settings models (`simulate`, `report`): the same syntax
    and parser as `clock_option`; `purpose` says what the command does with it."""

    def parsed(text: str) -> ClockSpec:
        try:
            return parse_clock(text)
        except ValueError as exc:  # argparse prints its own message for a ValueError, not this one
            raise argparse.ArgumentTypeError(str(exc)) from None

    parser.add_argument(
        "--clock", type=parsed, default=None, metavar=CLOCK_METAVAR,
        help=f"{purpose} (docs/reports.md, 'A simulated day'; default: real time)",
    )  # fmt: skip


class SimulatedClock:
    """Simulated epoch seconds, advancing `speed` times as fast as the monotonic clock."""

    def __init__(self, spec: ClockSpec, real: Clock = time.time, monotonic: Clock = time.monotonic) -> None:
        self.spec, self.speed = spec, spec.speed
        self._monotonic = monotonic
        self._real0, self._mono0 = real(), monotonic()
        self._anchor = spec.anchor if spec.anchor is not None else self._real0

    def __call__(self) -> float:
        real_now = self._real0 + (self._monotonic() - self._mono0)
        return self.spec.origin + (real_now - self._anchor) * self.speed

    def __repr__(self) -> str:
        return f"SimulatedClock({self.spec})"


def clock_of(spec: ClockSpec | None) -> Clock:
    """The clock a setting names: real time without one."""
    return time.time if spec is None else SimulatedClock(spec)


def speed_of(clock: Clock) -> float:
    """Simulated seconds per real second (1 for real time and for any plain function)."""
    speed = getattr(clock, "speed", 1.0)
    return float(speed) if isinstance(speed, int | float) else 1.0


def real_seconds(clock: Clock, simulated_s: float) -> float:
    """How long `simulated_s` of this clock lasts in real time (to sleep for)."""
    return simulated_s / speed_of(clock)
