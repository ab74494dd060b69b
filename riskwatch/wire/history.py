"""What the history in InfluxDB looks like: the contract between whoever writes it and whoever reads it.

- `sensor_1m`: tags sensor, site, region; fields min, max, mean (float), count (integer); time = the
  minute's start. One point per sensor and minute in which it reported.
- `site_1m`: tags site, region; fields credited, sensors (integer), owed (float); time = the minute's
  start. One point per site and minute in which any of its sensors reported: `credited` readings owed
  that the minute's data pays (each sensor at most once per owed window, below), `sensors` sensors that
  reported, `owed` readings the site's sensors owe per minute (the registry's promise, for a dashboard's
  per-minute rate; the bulletin takes what is owed from the registry, so a silent site owes too).
  A sensor owes one reading per window of `owed_window_s` (its `stale_after_s`, at least a minute);
  windows are aligned on the epoch (window k = [k·W, (k+1)·W)), a minute belongs to the window its start
  is in, and a sensor is credited in the first minute of a window in which it reported. Summed over a
  day this equals the per-sensor count of windows with data (alerting/reports/compute.py:
  `credited_windows`) read from `sensor_1m`, with 2,000 sites × 1,440 points instead of one per sensor.
- `transition`: tags kind (alarm | warning), entity_type (sensor | unit | site | region), entity, site,
  region; fields id, old, new, rule (strings) and cause (the Cause as JSON); time = the transition's
  event time. A replayed transition lands on the same series and time, so InfluxDB keeps one point.
"""

from __future__ import annotations

AGGREGATE_MEASUREMENT = "sensor_1m"
SITE_MINUTE_MEASUREMENT = "site_1m"
TRANSITION_MEASUREMENT = "transition"
AGGREGATE_FIELDS = ("min", "max", "mean", "count")
TRANSITION_FIELDS = ("id", "old", "new", "rule", "cause")
SITE_MINUTE_FIELDS = ("credited", "sensors", "owed")
MINUTE_S = 60.0


def owed_window_s(stale_after_s: float) -> float:
    """A sensor owes one reading per this many seconds: silent longer, the engine marks it stale; a
    minute with data counts once, so a window is never shorter than a minute."""
    return max(MINUTE_S, stale_after_s)
