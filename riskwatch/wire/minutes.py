"""One site's closed minute of sensor aggregates as it travels on `rw.history` (JSON, version 1).

The worker publishes, when a minute closes, one record per site (keyed by site) with each sensor that
reported in that minute: min, max, mean and count of its readings. The historian writes them to
InfluxDB. A site-minute published twice (a worker replay) carries the same series and time, so the
later write replaces the earlier.

`from_bytes` treats a record as untrusted: it returns a SiteMinute whose lists have equal lengths,
finite values and positive counts, or raises MinuteDecodeError; never another exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from riskwatch.errors import RiskwatchError

WIRE_VERSION = 1
MAX_SENSORS = 100_000  # one site's sensors; a record beyond this is refused as hostile
MAX_ID_CHARS = 200


class MinuteDecodeError(RiskwatchError):
    """A minute-aggregate record could not be decoded."""


@dataclass(frozen=True, slots=True)
class SiteMinute:
    site: str
    region: str
    start: float  # epoch seconds of the minute's start
    sensor: list[str]
    min: list[float]
    max: list[float]
    mean: list[float]
    count: list[int]

    @property
    def key(self) -> bytes:
        return self.site.encode()

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": WIRE_VERSION,
                "site": self.site,
                "region": self.region,
                "start": self.start,
                "sensor": self.sensor,
                "min": self.min,
                "max": self.max,
                "mean": self.mean,
                "count": self.count,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> SiteMinute:
        try:
            doc: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MinuteDecodeError(f"not JSON: {exc}") from None
        if type(doc) is not dict or doc.get("v") != WIRE_VERSION:
            raise MinuteDecodeError(f"unsupported minute wire version in {bytes(raw[:80])!r}")
        for name in ("site", "region"):
            value = doc.get(name)
            if type(value) is not str or not 0 < len(value) <= MAX_ID_CHARS:
                raise MinuteDecodeError(f"`{name}` must be a string of 1 to {MAX_ID_CHARS} characters")
        start = doc.get("start")
        if type(start) not in (int, float) or not math.isfinite(start) or not 0 <= start < 1e11:
            raise MinuteDecodeError("`start` must be epoch seconds")
        columns = {name: doc.get(name) for name in ("sensor", "min", "max", "mean", "count")}
        for name, column in columns.items():
            if type(column) is not list:
                raise MinuteDecodeError(f"`{name}` must be a list")
        n = len(columns["sensor"])  # type: ignore[arg-type]
        if n > MAX_SENSORS or any(len(c) != n for c in columns.values()):  # type: ignore[arg-type]
            raise MinuteDecodeError(f"the lists must have the same length, at most {MAX_SENSORS}")
        for s in columns["sensor"]:  # type: ignore[union-attr]
            if type(s) is not str or not 0 < len(s) <= MAX_ID_CHARS:
                raise MinuteDecodeError(f"a `sensor` must be a string of 1 to {MAX_ID_CHARS} characters")
        for name in ("min", "max", "mean"):
            for x in columns[name]:  # type: ignore[union-attr]
                if type(x) not in (int, float) or not math.isfinite(x):
                    raise MinuteDecodeError(f"`{name}` must hold finite numbers")
        for c in columns["count"]:  # type: ignore[union-attr]
            if type(c) is not int or c < 1:
                raise MinuteDecodeError("`count` must hold positive integers")
        return cls(doc["site"], doc["region"], float(start), *columns.values())  # type: ignore[arg-type]
