"""What the history in InfluxDB looks like: the contract between whoever writes it and whoever reads it.

- `sensor_1m`: tags sensor, site, region; fields min, max, mean (float), count (integer); time = the
  minute's start. One point per sensor and minute in which it reported.
- `transition`: tags kind (alarm | warning), entity_type (sensor | unit | site | region), entity, site,
  region; fields id, old, new, rule (strings) and cause (the Cause as JSON); time = the transition's
  event time. A replayed transition lands on the same series and time, so InfluxDB keeps one point.
"""

from __future__ import annotations

AGGREGATE_MEASUREMENT = "sensor_1m"
TRANSITION_MEASUREMENT = "transition"
AGGREGATE_FIELDS = ("min", "max", "mean", "count")
TRANSITION_FIELDS = ("id", "old", "new", "rule", "cause")
