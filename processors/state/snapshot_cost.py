"""What keeping open history minutes in the site snapshots costs: bytes per site and time per snapshot.

`python -m processors.state.snapshot_cost` builds a province-shaped registry (100 sensors per site on
average), feeds every sensor one reading a second for `--seconds` into the real engine and the minute
aggregator, as the worker does, then takes each site's snapshot without open minutes (what version 3
stored) and with them (version 4), and restores it. Times are process CPU time (the machine is shared).
Pure: no Kafka; the changelog carries these bytes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from processors.engine_port import load_engine
from processors.history.aggregate import MinuteAggregator
from processors.state.sites import SiteIndex
from processors.state.states import SiteStates
from riskwatch.registry import Registry
from riskwatch.wire.readings import Readings
from simulators.synthetic import province_doc


def measure(sensors: int, sites: int, seconds: int, open_minutes: int = 2) -> dict[str, float]:
    registry = Registry.from_dict(province_doc(sensors, enterprises=sites), source="<cost>")
    index = SiteIndex(registry)
    engine = load_engine()
    aggregator = MinuteAggregator(len(registry.sensor_list))
    states = SiteStates(index, engine, lambda site: None, minutes=aggregator)
    # Two open minutes is the worst case: the readings straddle a minute's end, and the first minute stays
    # open for the 30 s grace after it. One is the usual case.
    start = (time.time() // 60) * 60 + (60 - seconds / 2 if open_minutes == 2 else 0)
    for t in range(seconds):
        for site in index.site_ids:
            glob = np.asarray(index.sensors_of_site[site], np.int64)
            local = index.local_of_sensor[glob]
            value = np.full(glob.shape[0], 1.0 + t % 7)
            ts = np.full(glob.shape[0], start + t)
            states.evaluate(
                site, Readings(local, value, ts, np.zeros(glob.shape[0], np.uint8)), now=start + t
            )
            aggregator.add(glob, value, ts, now=start + t)
    out: dict[str, float] = {"sites": len(index.site_ids), "sensors": len(registry.sensor_list)}
    for label, minutes in (("without", None), ("with", aggregator)):
        states.minutes = minutes
        took = []
        for _ in range(3):  # best of three: the machine is shared
            for slot in states.slots.values():
                slot.dirty = True
            began = time.process_time()
            taken = dict(states.take_dirty())
            took.append((time.process_time() - began) * 1e3 / len(taken))
        out[f"take_ms_per_site_{label}"] = min(took)
        sizes = [len(raw) for raw in taken.values()]
        out[f"bytes_per_site_{label}"] = statistics.mean(sizes)
        out[f"bytes_per_sensor_{label}"] = sum(sizes) / len(registry.sensor_list)
        took = []
        for _ in range(3):
            restored = SiteStates(
                index, engine, taken.get, minutes=MinuteAggregator(len(registry.sensor_list))
            )
            began = time.process_time()
            for site in index.site_ids:
                restored.slot(site, start + seconds)
            took.append((time.process_time() - began) * 1e3 / len(taken))
        out[f"restore_ms_per_site_{label}"] = min(took)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=20_000)
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20, help="readings per sensor, one a second (<= 60)")
    parser.add_argument("--open-minutes", type=int, choices=(1, 2), default=2)
    args = parser.parse_args()
    for key, value in measure(args.sensors, args.sites, args.seconds, args.open_minutes).items():
        print(f"{key:28} {value:,.3f}")


if __name__ == "__main__":
    main()
