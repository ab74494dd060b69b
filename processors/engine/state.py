"""Engine state: per-sensor, per-unit, per-site and per-region numpy arrays plus a few counters.

`evaluate` updates a state in place (copying 100k-sensor arrays per batch would cost more than the
evaluation) and returns it; take `copy()` or `to_bytes()` to keep a version. Snapshots round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from processors.engine.model import EngineModel, keep_bands

_PREFIX = b"RWENGINE"
# 2: sensor.seen added (a never-seen sensor's first reading is taken whatever its time) and since/usince
# -inf until a sensor first changes. A snapshot of another version is refused: its arrays mean otherwise.
VERSION = 2
_MAGIC = _PREFIX + str(VERSION).encode() + b"\n"

SENSOR_ARRAYS: dict[str, type] = {
    "code": np.int8,  # debounced internal code (see model.py)
    "cand": np.int8,  # candidate code waiting for its on/off delay
    "cand_since": np.float64,  # when the candidate started
    "since": np.float64,  # when `code` was entered (-inf: never changed)
    # stale timer start: the newest accepted reading, or the state's start while never seen (NaN: not
    # primed yet, see `primed`); once `seen`, readings older than it are out of order
    "last_ts": np.float64,
    "seen": np.int8,  # 1 once a reading was taken: a sensor's first reading is taken whatever its time
    "last_value": np.float64,
    "ucode": np.int8,  # code as last reported downstream (frozen while chattering); units use it
    # when `ucode` was entered (-inf: never changed, so a unit's time never comes from the state's start)
    "usince": np.float64,
    "chat": np.int8,  # 1 while chattering
    "t1": np.float64,  # times of the last two alarm-state changes, for chattering detection
    "t2": np.float64,
    "keep_lo": np.float64,  # open interval of good values that leave `code` unchanged (model.keep_band)
    "keep_hi": np.float64,
}
UNIT_ARRAYS: dict[str, type] = {
    "colour": np.int8,  # Colour value
    "colour_at": np.float64,
    "rule": np.int16,  # index of the rule that set the colour (-1 none)
    "due": np.float64,  # next time a time-based rule may change the colour (+inf: none)
    "maintenance": np.int8,
    "bypassed": np.int8,
    "valve_closed_at": np.float64,  # cut-off confirmed by an event at this time (+inf: not confirmed)
    "event_at": np.float64,  # last event time for the unit
}
SITE_ARRAYS: dict[str, type] = {"colour": np.int8, "colour_at": np.float64}
REGION_ARRAYS: dict[str, type] = {"colour": np.int8, "colour_at": np.float64}
# Entity kinds whose ids a state keeps (in its snapshot), so it can be migrated to an edited registry.
ID_KINDS = ("sensor", "unit", "site", "region", "gateway")
Ids = Mapping[str, tuple[str, ...]]


def model_ids(model: EngineModel) -> dict[str, tuple[str, ...]]:
    """The ids of a model's entities by kind, in index order (shared, not copied)."""
    return {
        "sensor": model.sensor_ids,
        "unit": model.unit_ids,
        "site": model.site_ids,
        "region": model.region_ids,
        "gateway": model.gateway_ids,
    }


@dataclass(eq=False)
class EngineState:
    """Hot state. `sensor`, `unit`, `site`, `region` map array names to arrays of that entity's length."""

    fingerprint: str
    sensor: dict[str, npt.NDArray[Any]]
    unit: dict[str, npt.NDArray[Any]]
    site: dict[str, npt.NDArray[Any]]
    region: dict[str, npt.NDArray[Any]]
    gateway_offline: npt.NDArray[np.int8]
    watch: npt.NDArray[np.int32]  # sensors with a pending delay or chattering, checked on every `now`
    stale_due: float = -np.inf  # no sensor turns stale before this (lower bound); -inf: scan next time
    watch_due: float = np.inf  # no watched sensor has a delay or chattering ending before this
    unit_due: float = np.inf  # no unit has a time-based change before this
    primed: bool = False  # never-seen sensors got the state's start as their last_ts (stale timer)
    out_of_order: int = 0  # readings older than their sensor's newest accepted one (ignored, counted)
    rejected: int = 0  # readings for unknown sensors or with a bad timestamp
    evaluations: int = 0
    # Every unit, site and region is rolled up at the next evaluation (set after a migration to an edited
    # registry: a removed unit may have held its site's colour, a changed rule set may decide otherwise).
    resync: bool = False
    ids: Ids | None = None  # entity ids by kind (`model_ids`); None in a snapshot that kept none
    # per-sensor work array of `evaluate` (meaningless between calls, never saved; made on first use)
    scratch: npt.NDArray[np.int32] | None = field(default=None, repr=False, compare=False)
    # every sensor was seen (a cache, never saved: `seen` only ever goes from 0 to 1 in a state)
    all_seen: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def initial(cls, model: EngineModel, now: float | None = None) -> EngineState:
        """All sensors normal and unseen; stale timers start at `now`, or at the first evaluation."""
        n, nu, ns, nr = model.n_sensors, len(model.unit_ids), len(model.site_ids), len(model.region_ids)
        sensor: dict[str, npt.NDArray[Any]] = {k: np.zeros(n, dt) for k, dt in SENSOR_ARRAYS.items()}
        for k in ("t1", "t2", "since", "usince"):
            sensor[k][:] = -np.inf
        sensor["last_ts"][:] = np.nan if now is None else now
        sensor["last_value"][:] = np.nan
        sensor["keep_lo"][:], sensor["keep_hi"][:] = keep_bands(model, np.arange(n), sensor["code"])
        unit: dict[str, npt.NDArray[Any]] = {k: np.zeros(nu, dt) for k, dt in UNIT_ARRAYS.items()}
        unit["rule"][:] = -1
        unit["due"][:] = np.inf
        unit["valve_closed_at"][:] = np.inf
        unit["event_at"][:] = -np.inf
        return cls(
            fingerprint=model.fingerprint,
            sensor=sensor,
            unit=unit,
            site={k: np.zeros(ns, dt) for k, dt in SITE_ARRAYS.items()},
            region={k: np.zeros(nr, dt) for k, dt in REGION_ARRAYS.items()},
            gateway_offline=np.zeros(len(model.gateway_ids), np.int8),
            watch=np.zeros(0, np.int32),
            primed=now is not None,
            ids=model_ids(model),
        )

    def work(self) -> npt.NDArray[np.int32]:
        """The per-sensor int32 work array (any contents)."""
        n = len(self.sensor["code"])
        if self.scratch is None or self.scratch.shape[0] != n:
            self.scratch = np.empty(n, np.int32)
        return self.scratch

    def every_sensor_seen(self) -> bool:
        """Whether every sensor has had a reading; looked at anew every 64 evaluations until it holds."""
        if not self.all_seen and self.evaluations % 64 == 0:
            self.all_seen = not np.count_nonzero(self.sensor["seen"] == 0)
        return self.all_seen

    def bytes_per_sensor(self) -> float:
        """Hot state size divided by the number of sensors (units/sites/regions included)."""
        total = sum(
            a.nbytes for group in (self.sensor, self.unit, self.site, self.region) for a in group.values()
        )
        total += self.gateway_offline.nbytes + self.watch.nbytes
        return total / max(1, len(self.sensor["code"]))

    def copy(self) -> EngineState:
        def dup(group: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
            return {k: v.copy() for k, v in group.items()}

        scalars = {f.name: getattr(self, f.name) for f in fields(self) if f.name in _SCALARS}
        return EngineState(
            fingerprint=self.fingerprint,
            sensor=dup(self.sensor),
            unit=dup(self.unit),
            site=dup(self.site),
            region=dup(self.region),
            gateway_offline=self.gateway_offline.copy(),
            watch=self.watch.copy(),
            ids=self.ids,
            **scalars,
        )

    def to_bytes(self) -> bytes:
        """Snapshot: a JSON header (names, dtypes, lengths, counters) then the raw little-endian arrays."""
        arrays = self._arrays()
        header = {
            "fingerprint": self.fingerprint,
            "scalars": {name: _encode(getattr(self, name)) for name in _SCALARS},
            "arrays": [[name, a.dtype.str, int(a.shape[0])] for name, a in arrays],
        }
        if self.ids is not None:
            header["ids"] = {kind: list(self.ids[kind]) for kind in ID_KINDS}
        head = orjson.dumps(header)
        body = b"".join(
            np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes() for _, a in arrays
        )
        return _MAGIC + len(head).to_bytes(4, "little") + head + body

    @classmethod
    def from_bytes(cls, raw: bytes) -> EngineState:
        if not raw.startswith(_PREFIX):
            raise ValueError("not an engine state snapshot (bad magic)")
        if not raw.startswith(_MAGIC):
            end = raw.find(b"\n", 0, 24)
            found = raw[len(_PREFIX) : end if end > 0 else 24].decode("ascii", "replace")
            raise ValueError(
                f"engine state snapshot version {found} is not readable by this build (version {VERSION});"
                " start the state afresh"
            )
        start = len(_MAGIC)
        size = int.from_bytes(raw[start : start + 4], "little")
        header = orjson.loads(raw[start + 4 : start + 4 + size])
        offset = start + 4 + size
        groups: dict[str, dict[str, npt.NDArray[Any]]] = {"sensor": {}, "unit": {}, "site": {}, "region": {}}
        loose: dict[str, npt.NDArray[Any]] = {}
        for name, dtype_str, length in header["arrays"]:
            dtype = np.dtype(dtype_str).newbyteorder("<")
            nbytes = dtype.itemsize * length
            array = np.frombuffer(raw, dtype, count=length, offset=offset).astype(dtype.newbyteorder("="))
            offset += nbytes
            group, _, key = name.partition(".")
            (groups[group] if key else loose)[key or group] = array
        if offset != len(raw):
            raise ValueError(f"engine state snapshot has {len(raw) - offset} trailing bytes")
        for group, layout in (("sensor", SENSOR_ARRAYS), ("unit", UNIT_ARRAYS), ("site", SITE_ARRAYS)):
            if set(groups[group]) != set(layout) or len({a.shape[0] for a in groups[group].values()}) > 1:
                raise ValueError(
                    f"engine state snapshot has another {group} layout (made by another version)"
                )
        scalars = {k: _decode(v) for k, v in header["scalars"].items() if k in _SCALARS}
        state = cls(
            fingerprint=header["fingerprint"],
            gateway_offline=loose["gateway_offline"],
            watch=loose["watch"],
            ids=_ids(header.get("ids")),
            sensor=groups["sensor"],
            unit=groups["unit"],
            site=groups["site"],
            region=groups["region"],
            **scalars,  # type: ignore[arg-type]  # only the names of _SCALARS, written by to_bytes
        )
        if state.ids is not None:
            lengths = {
                "sensor": len(state.sensor["code"]),
                "unit": len(state.unit["colour"]),
                "site": len(state.site["colour"]),
                "region": len(state.region["colour"]),
                "gateway": len(state.gateway_offline),
            }
            if any(len(state.ids[kind]) != n for kind, n in lengths.items()):
                raise ValueError("engine state snapshot has ids that do not match its arrays")
        return state

    def _arrays(self) -> list[tuple[str, npt.NDArray[Any]]]:
        out: list[tuple[str, npt.NDArray[Any]]] = []
        for group in ("sensor", "unit", "site", "region"):
            out.extend((f"{group}.{k}", v) for k, v in getattr(self, group).items())
        out.append(("gateway_offline", self.gateway_offline))
        out.append(("watch", self.watch))
        return out


_SCALARS = (
    "stale_due",
    "watch_due",
    "unit_due",
    "primed",
    "out_of_order",
    "rejected",
    "evaluations",
    "resync",
)


def _ids(doc: object) -> Ids | None:
    """The ids of a snapshot's header (absent in snapshots made before they were kept)."""
    if doc is None:
        return None
    if not isinstance(doc, dict) or set(doc) != set(ID_KINDS):
        raise ValueError("engine state snapshot has a malformed id table")
    out = {}
    for kind in ID_KINDS:
        ids = doc[kind]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"engine state snapshot has malformed {kind} ids")
        out[kind] = tuple(ids)
    return out


def _encode(value: object) -> object:
    if isinstance(value, float) and not np.isfinite(value):
        return {"float": repr(value)}
    return value


def _decode(value: object) -> object:
    if isinstance(value, dict):
        return float(value["float"])
    return value
