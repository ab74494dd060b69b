"""Who is on call at a moment: shifts by weekday and local time (Asia/Shanghai by default, via zoneinfo)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alerting.config import WEEKDAYS, Roster, Shift


def _covers(shift: Shift, local: datetime) -> bool:
    now, day = local.time(), WEEKDAYS[local.weekday()]
    if shift.start < shift.end:
        return day in shift.days and shift.start <= now < shift.end
    if shift.start == shift.end:  # a whole day
        return day in shift.days
    # Overnight shift: it belongs to the weekday on which it starts.
    previous = WEEKDAYS[(local.weekday() - 1) % 7]
    return (day in shift.days and now >= shift.start) or (previous in shift.days and now < shift.end)


def on_call(roster: Roster, at: float) -> tuple[str, ...]:
    """Person ids on call at epoch second `at`, in roster order, each once."""
    local = datetime.fromtimestamp(at, ZoneInfo(roster.timezone))
    people: dict[str, None] = {}
    for shift in roster.shifts:
        if _covers(shift, local):
            people.update(dict.fromkeys(shift.people))
    return tuple(people)
