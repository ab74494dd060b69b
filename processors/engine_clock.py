"""The engine's clock: the wall clock, held back by how late the readings reaching the engine are.

The engine's timers (a sensor turns stale `stale_after_s` after its last reading, on/off delays, "L2
lasting 10 min") compare reading times with `now`. On the wall clock, a path that falls behind upstream
of the worker (a bridge working through Mosquitto's queue, offered more than it can carry) turns every
sensor stale while its next readings are still queued; and when they arrive they are older than the
moment the sensor went stale, so the engine sets them aside (a reading from before a sensor went stale
does not bring it back: processors/engine/evaluation.py). In a `bench e2e` offered 200,000 readings/s
at the province shape, ~1.4x what two cores carried, readings reached Kafka up to 131 s late, and 6 of
20 injected gas incidents (two detectors at 80 %LEL for 15 s) were never warned.

So the timers run on the input's clock: the wall clock minus the input lag beyond `grace_s`. The input
lag is the median, over sites, of how long before its evaluation the newest reading of the site's
latest records was taken: one vote per site, so a gateway with a wrong clock, or an attacker's, moves
only its own site's vote. In normal operation the lag is a second or less and the clock is the wall
clock. The clock never runs backwards, and never falls more than `max_behind_s` behind the wall clock
(10 minutes in the worker: a deployment whose gateways all send local time as UTC still sees a silent
gateway turn stale, that much late). When readings stop arriving altogether the votes stay as they
were, and the clock goes on at the wall clock's pace: a gateway, or the whole input, that falls silent
still turns stale, only as much later as readings were late when it stopped.

The engine takes readings newer than its `now` as it takes those of a gateway whose clock is ahead: a
reading moves its sensor to the reading's time, and timers wait until `now` reaches their due time. So
a site whose readings are less late than the median's is timed as late as the median.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np


class EngineClock:
    def __init__(
        self,
        sites: Iterable[str],
        wall: Callable[[], float],
        grace_s: float,
        max_behind_s: float,
        refresh_s: float = 0.0,
    ) -> None:
        """`refresh_s`: the median is taken again at most this often (it is asked once per site and take:
        a median over thousands of sites each time cost the worker ~10 % of its time)."""
        self._slot = {site: i for i, site in enumerate(sites)}
        self._lag = np.full(len(self._slot), np.nan)  # each site's vote; NaN: none yet (or forgotten)
        self._median = 0.0
        self._changed = False  # a vote changed since the median was taken
        self._taken_at = -np.inf
        self.wall, self.grace_s, self.max_behind_s, self.refresh_s = wall, grace_s, max_behind_s, refresh_s
        self._last = -np.inf

    def observe(self, site: str, newest_ts: float, evaluated_at: float) -> None:
        """Site `site`'s records just evaluated at wall time `evaluated_at` held readings up to `newest_ts`."""
        slot = self._slot.get(site)
        if slot is not None:
            self._lag[slot] = evaluated_at - newest_ts
            self._changed = True

    def forget(self, sites: Iterable[str]) -> None:
        """Sites this worker no longer evaluates (their partition went to another worker)."""
        slots = [self._slot[s] for s in sites if s in self._slot]
        if slots:
            self._lag[slots] = np.nan
            self._changed = True

    @property
    def input_lag(self) -> float:
        """Median over the sites of how late their newest readings were evaluated (0 before any), as of
        at most `refresh_s` ago."""
        if self._changed:
            now = self.wall()
            if now - self._taken_at >= self.refresh_s:
                votes = self._lag[~np.isnan(self._lag)]
                self._median = float(np.median(votes)) if votes.size else 0.0
                self._changed, self._taken_at = False, now
        return self._median

    @property
    def behind(self) -> float:
        """How far the engine's clock is held behind the wall clock now."""
        return min(self.max_behind_s, max(0.0, self.input_lag - self.grace_s))

    def __call__(self) -> float:
        self._last = max(self._last, self.wall() - self.behind)
        return float(self._last)
