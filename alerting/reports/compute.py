"""The numbers of the bulletin and the alarm-quality report, as pure functions over plain data.

No I/O here: the report modules read InfluxDB and the alert store and call these, and the unit tests
call them directly. Times are epoch seconds; an interval is [start, end).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from riskwatch.levels import Colour
from riskwatch.wire.history import owed_window_s

COLOURS = tuple(c.label for c in Colour)  # normal, blue, yellow, orange, red
RANK = {c.label: int(c) for c in Colour}
FLOOD_PER_10_MIN = 10  # EEMUA 191 / ISA-18.2: more than 10 alarms in 10 minutes is a flood
CHATTER_COUNT, CHATTER_WINDOW_S = 3, 60.0  # 3 or more activations within a minute: chattering
STANDING_S = 24 * 3600.0  # active for more than 24 hours: a standing alarm


def level_timeline(
    initial: str, changes: Sequence[tuple[float, str]], start: float, end: float
) -> list[tuple[float, float, str]]:
    """(from, to, level) pieces covering [start, end): `initial` at `start`, then each change
    (event time, new level) in time order; changes outside the interval only move the level."""
    pieces: list[tuple[float, float, str]] = []
    level, since = initial, start
    for at, new in sorted(changes, key=lambda c: c[0]):
        if at >= end:
            break
        if at > since:
            pieces.append((since, at, level))
            since = at
        level = new
    if end > since:
        pieces.append((since, end, level))
    return pieces


def time_at_level(pieces: Iterable[tuple[float, float, str]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for lo, hi, level in pieces:
        out[level] = out.get(level, 0.0) + (hi - lo)
    return out


def peak(pieces: Iterable[tuple[float, float, str]]) -> str:
    """The highest colour held at any time in the pieces (a colour held for no time does not count)."""
    levels = [level for lo, hi, level in pieces if hi > lo]
    return max(levels, key=lambda c: RANK.get(c, 0)) if levels else "normal"


def count_by(group_of: dict[str, str], colour_of: dict[str, str]) -> dict[str, dict[str, int]]:
    """Number of entities at each colour per group (region, industry): {group: {colour: n}}."""
    out: dict[str, dict[str, int]] = {}
    for entity, group in group_of.items():
        row = out.setdefault(group, dict.fromkeys(COLOURS, 0))
        row[colour_of.get(entity, "normal")] += 1
    return dict(sorted(out.items()))


def colour_change(today: dict[str, int], yesterday: dict[str, int]) -> dict[str, int]:
    return {c: today.get(c, 0) - yesterday.get(c, 0) for c in COLOURS}


def offline_intervals(
    events: Sequence[tuple[float, bool]], offline_at_start: bool, start: float, end: float
) -> list[tuple[float, float]]:
    """Offline intervals within [start, end) of one gateway from (time, offline?) events."""
    out: list[tuple[float, float]] = []
    down_since = start if offline_at_start else None
    for at, offline in sorted(events):
        at = min(max(at, start), end)
        if offline and down_since is None:
            down_since = at
        elif not offline and down_since is not None:
            if at > down_since:
                out.append((down_since, at))
            down_since = None
    if down_since is not None and end > down_since:
        out.append((down_since, end))
    return out


def online_rate(offline: Sequence[tuple[float, float]], start: float, end: float) -> float:
    down = sum(hi - lo for lo, hi in offline)
    return max(0.0, 1.0 - down / (end - start))


def expected_readings(period_s: float, stale_after_s: float) -> float:
    """Readings a sensor owes in a period: one per `stale_after_s` (silent longer, the engine marks it
    stale), at most one a minute (a minute with data counts once however many readings)."""
    return period_s / owed_window_s(stale_after_s)


def credited_windows(minute_starts: Iterable[float], stale_after_s: float, start: float, end: float) -> int:
    """One sensor's owed readings paid in [start, end), from the starts of its minutes with data (those
    before `start` too): a window of `owed_window_s` pays once, in the first minute it has data, and
    counts if that minute is in the period. The worker's site_1m summary credits the same way."""
    window = owed_window_s(stale_after_s)
    first: dict[int, float] = {}
    for t in minute_starts:
        k = int(t // window)
        first[k] = min(t, first.get(k, t))
    return sum(start <= t < end for t in first.values())


def completeness(credited: float, owed: float) -> float:
    """Share of the owed readings that were paid (at most 1: a window that began before the period and
    was paid in it counts in the period)."""
    return min(1.0, credited / owed) if owed > 0 else 1.0


# -- alert handling
ON_TIME, LATE, NOT_ACKED = "on_time", "late", "not_acknowledged"


def ack_verdict(opened_at: float, acked_at: float | None, deadline_s: float, now: float) -> str:
    """Acknowledged within the policy's time, late, or not (yet) acknowledged. An alert still
    unacknowledged after its deadline is late already."""
    if acked_at is not None:
        return ON_TIME if acked_at - opened_at <= deadline_s else LATE
    return LATE if now - opened_at > deadline_s else NOT_ACKED


def closed_loop_rate(closed: Sequence[bool]) -> float | None:
    """Share of alerts acknowledged, disposed and closed (the closed loop); None without alerts."""
    return float(np.mean(closed)) if len(closed) else None


# -- alarm quality
def per_window(times: Sequence[float], start: float, end: float, window_s: float = 600.0) -> np.ndarray:
    """Counts of `times` in consecutive windows of `window_s` from `start` (the last may be shorter)."""
    n = max(1, int(np.ceil((end - start) / window_s)))
    t = np.asarray(times, float)
    t = t[(t >= start) & (t < end)]
    return np.bincount(((t - start) // window_s).astype(np.int64), minlength=n)[:n]


def flood_share(counts: np.ndarray, threshold: int = FLOOD_PER_10_MIN) -> float:
    return float(np.mean(counts > threshold)) if counts.size else 0.0


def chattering(
    activations: Sequence[float], count: int = CHATTER_COUNT, window_s: float = CHATTER_WINDOW_S
) -> bool:
    """True if `count` activations fall within `window_s` anywhere (ISA-18.2 chattering)."""
    t = np.sort(np.asarray(activations, float))
    if t.size < count:
        return False
    return bool(np.any(t[count - 1 :] - t[: t.size - count + 1] <= window_s))


def active_intervals(
    initial_active: bool, changes: Sequence[tuple[float, bool]], start: float, end: float
) -> list[tuple[float, float]]:
    """Intervals in which an alarm is active within [start, end) from (time, active?) changes."""
    return offline_intervals(changes, initial_active, start, end)


def standing(active: Sequence[tuple[float, float]], end: float) -> bool:
    """Active for more than 24 h at `end` (the intervals must reach back more than 24 h before it)."""
    return bool(active) and active[-1][1] >= end and end - active[-1][0] > STANDING_S


@dataclass(frozen=True, slots=True)
class Suggestion:
    kind: str  # "delay", "deadband" or "set_point"
    value: float
    text: str
    removes: int  # activations in the period it would have removed


def suggest(
    activations: Sequence[float],
    durations: Sequence[float],
    setpoint: float | None,
    deadband: float,
    on_delay_s: float,
    minute_max: Sequence[float],
    uom: str = "",
) -> Suggestion:
    """A concrete change for a frequent alarm from its own history:
    - most activations short (median under 5 minutes): an on-delay that the p90 short activation
      would not have outlasted (the activations shorter than it would not have been raised);
    - activations packed close together (re-raised within 5 minutes of clearing): a deadband wide enough
      to hold the alarm across the values it bounced through (p90 of minute max - set point, at least
      twice the current deadband);
    - else the alarm is the process's normal state: a set point above the p95 of its minute maxima,
      to be confirmed against the design (the set point is a safety decision, not a statistic).
    """
    d = np.asarray(durations, float)
    n = len(activations)
    if d.size and np.median(d) < 300.0:
        delay = float(np.ceil(np.percentile(d, 90) / 5.0) * 5.0) + 5.0
        removes = int(np.count_nonzero(d < delay))
        return Suggestion("delay", delay, f"on-delay {on_delay_s:g} s → {delay:g} s", removes)
    t = np.asarray(activations, float)
    # time from each clearing to the next activation
    gaps = t[1:] - (t[:-1] + d[: t.size - 1]) if t.size > 1 and d.size >= t.size - 1 else np.zeros(0)
    if gaps.size and np.median(gaps) < 300.0 and setpoint is not None:
        over = np.asarray(minute_max, float) - setpoint
        over = over[over > 0]
        width = max(2 * deadband, float(np.percentile(over, 90)) if over.size else 2 * deadband)
        width = float(np.round(width, 3))
        return Suggestion(
            "deadband", width, f"deadband {deadband:g} → {width:g} {uom}".strip(), int(gaps.size)
        )
    mx = np.asarray(minute_max, float)
    value = float(np.round(np.percentile(mx, 95), 3)) if mx.size else float(setpoint or 0.0)
    was = "none" if setpoint is None else f"{setpoint:g}"
    return Suggestion(
        "set_point", value, f"review set point {was} → {value:g} {uom} (p95 of minute maxima)".strip(), n
    )
