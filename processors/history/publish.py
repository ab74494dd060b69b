"""Closed minutes as `rw.history` records: one SiteMinute per site, for the historian to write.

The worker no longer writes InfluxDB itself: what it hands to Kafka is durable (the historian commits
its offsets only once InfluxDB has the points), so a worker killed during an InfluxDB outage loses none.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from processors.history.aggregate import MinuteAggregate
from riskwatch.registry import Registry
from riskwatch.wire.history import MINUTE_S, owed_window_s
from riskwatch.wire.minutes import SiteMinute


class MinutePublisher:
    """Splits a closed minute (all sensors of this worker) into per-site records."""

    def __init__(self, sensor_ids: Sequence[str], sensor_site: npt.NDArray[np.int64], sites: Sequence[str],
                 regions: Sequence[str], site_owed: Sequence[float] | None = None) -> None:  # fmt: skip
        self.sensor_ids = list(sensor_ids)
        # readings each site's sensors owe per minute (for the site_1m summary)
        self.site_owed = list(site_owed) if site_owed is not None else [0.0] * len(sites)
        self.sensor_site = sensor_site  # registry sensor index -> index into `sites`
        self.sites, self.regions = list(sites), list(regions)

    @classmethod
    def for_registry(cls, registry: Registry) -> MinutePublisher:
        sensors = registry.sensor_list
        sites = list(registry.sites)
        number = {site: i for i, site in enumerate(sites)}
        owed = [0.0] * len(sites)
        for s in sensors:
            owed[number[s.site]] += MINUTE_S / owed_window_s(s.stale_after_s)
        return cls(
            [s.id for s in sensors],
            np.array([number[s.site] for s in sensors], np.int64),
            sites,
            [registry.sites[site].region for site in sites],
            owed,
        )

    def records(self, agg: MinuteAggregate) -> list[SiteMinute]:
        if not len(agg):
            return []
        site = self.sensor_site[agg.sensor]
        order = np.argsort(site, kind="stable")
        site = site[order]
        bounds = [0, *(np.flatnonzero(np.diff(site)) + 1).tolist(), len(site)]
        sensor, lo, hi = agg.sensor[order].tolist(), agg.min[order].tolist(), agg.max[order].tolist()
        mean, count = agg.mean[order].tolist(), agg.count[order].tolist()
        credited = agg.credited[order].tolist()
        out = []
        for a, b in itertools.pairwise(bounds):
            s = int(site[a])
            out.append(
                SiteMinute(
                    self.sites[s],
                    self.regions[s],
                    agg.start,
                    [self.sensor_ids[i] for i in sensor[a:b]],
                    lo[a:b],
                    hi[a:b],
                    mean[a:b],
                    count[a:b],
                    credited[a:b],
                    self.site_owed[s],
                )
            )
        return out
