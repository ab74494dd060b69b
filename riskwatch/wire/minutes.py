"""One site's closed minute of sensor aggregates as it travels on `rw.history` (JSON, version 1).

The worker publishes, when a minute closes, one record per site (keyed by site) with each sensor that
reported in that minute: min, max, mean and count of its readings, whether the minute credits it a
reading it owes (`credited`, data completeness: riskwatch/wire/history.py) and what the site's sensors
owe per minute (`owed`). The historian writes them to
InfluxDB. A site-minute published twice (a worker replay) carries the same series and time, so the
later write replaces the earlier.

`from_bytes` treats a record as untrusted: it returns a SiteMinute whose lists have equal lengths,
finite values and positive counts, or raises MinuteDecodeError; never another exception. A record
without `credited` and `owed` (an older worker's) is still a valid minute; it has no completeness.
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
    credited: list[bool] | None = None  # per sensor, as `sensor`
    owed: float | None = None  # readings the site's sensors owe per minute

    @property
    def key(self) -> bytes:
        return self.site.encode()

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
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
        if self.credited is not None and self.owed is not None:
            doc["credited"], doc["owed"] = self.credited, self.owed
        return orjson.dumps(doc)

    @classmethod
    def from_bytes(cls, raw: bytes) -> SiteMinute:
        try:
            doc: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MinuteDecodeError(f"not JSON: {exc}") from None
        if type(doc) is not dict or doc.get("v") != WIRE_VERSION:
            raise MinuteDecodeError(f"unsupported minute wire version in {bytes(raw[:80])!r}")
        site, region = _text(doc.get("site"), "site"), _text(doc.get("region"), "region")
        start = _number(doc.get("start"), "start")
        if not 0 <= start < 1e11:
            raise MinuteDecodeError("`start` must be epoch seconds")
        columns = [_list(doc.get(name), name) for name in ("sensor", "min", "max", "mean", "count")]
        n = len(columns[0])
        if n > MAX_SENSORS or any(len(c) != n for c in columns):
            raise MinuteDecodeError(f"the lists must have the same length, at most {MAX_SENSORS}")
        sensor = [_text(x, "sensor") for x in columns[0]]
        lo, hi, mean = (
            [_number(x, name) for x in c]
            for name, c in zip(("min", "max", "mean"), columns[1:4], strict=True)
        )
        count = [_count(x) for x in columns[4]]
        if doc.get("credited") is None and doc.get("owed") is None:
            return cls(site, region, start, sensor, lo, hi, mean, count)
        credited = _list(doc.get("credited"), "credited")
        if len(credited) != n or any(type(x) is not bool for x in credited):
            raise MinuteDecodeError("`credited` must hold a boolean per sensor")
        owed = _number(doc.get("owed"), "owed")
        if owed < 0:
            raise MinuteDecodeError("`owed` must not be negative")
        return cls(site, region, start, sensor, lo, hi, mean, count, [bool(x) for x in credited], owed)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise MinuteDecodeError(f"`{name}` must be a string of 1 to {MAX_ID_CHARS} characters")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MinuteDecodeError(f"`{name}` must hold finite numbers")
    return float(value)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MinuteDecodeError("`count` must hold positive integers")
    return value


def _list(value: object, name: str) -> list[object]:
    if not isinstance(value, list):
        raise MinuteDecodeError(f"`{name}` must be a list")
    return value
