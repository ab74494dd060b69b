"""A site's snapshot as stored in the state table: engine state, open levels, recent gateway messages.

The open levels are the latest transition of every entity of the site that is not normal; they let the
HTTP views answer "current colour and cause" right after a restart, before any new input arrives. The
recent (gateway, seq) window (processors/state/seen.py) is stored with the state it describes, so a
replay after a restart de-duplicates exactly what the restored state already contains. The count of
readings the engine evaluated for the site is stored with them too, so it is exact across crashes and
rebalances (a replay evaluates again only what the snapshot does not cover): it is how loss is counted
at the end of the path.

Layout, version 3: magic b"RWSS" | version u8 | state length u32 | state bytes | open length u32 |
JSON list of open transitions | seen length u32 | JSON object gateway -> recent seqs |
JSON object {"evaluated": readings}.
Version 2 (still read): as 3 up to the open transitions, then the seen JSON to the end (no counts).
Version 1 (still read): magic | version | state length | state | JSON list of open transitions.
"""

from __future__ import annotations

import struct
from dataclasses import asdict
from typing import Any, NamedTuple

import orjson

from processors.state.seen import RecentSeqs
from riskwatch.errors import RiskwatchError
from riskwatch.wire.transitions import Cause, CauseItem, Transition

MAGIC = b"RWSS"
VERSION = 3
READABLE = (1, 2, 3)
_HEAD = struct.Struct("<4sBI")
_LEN = struct.Struct("<I")


class SnapshotError(RiskwatchError):
    """A stored snapshot is unreadable; the site starts from the initial state."""


class SiteSnapshot(NamedTuple):
    state: bytes
    open: tuple[Transition, ...]
    seen: RecentSeqs | None = None
    evaluated: int = 0  # readings of the site the engine evaluated, duplicates left out

    def to_bytes(self) -> bytes:
        open_json = orjson.dumps([asdict(t) for t in self.open])
        seen_json = orjson.dumps(self.seen.to_json() if self.seen is not None else {})
        return b"".join(
            (
                _HEAD.pack(MAGIC, VERSION, len(self.state)),
                self.state,
                _LEN.pack(len(open_json)),
                open_json,
                _LEN.pack(len(seen_json)),
                seen_json,
                orjson.dumps({"evaluated": self.evaluated}),
            )
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> SiteSnapshot:
        try:
            magic, version, size = _HEAD.unpack_from(raw)
            if magic != MAGIC or version not in READABLE:
                raise SnapshotError(
                    f"not a site snapshot of version {READABLE} (magic {magic!r}, version {version})"
                )
            start = _HEAD.size
            state = bytes(raw[start : start + size])
            if len(state) != size:
                raise SnapshotError("site snapshot truncated")
            rest = raw[start + size :]
            if version == 1:
                return cls(state, tuple(_transition(doc) for doc in orjson.loads(rest)), RecentSeqs())
            (open_size,) = _LEN.unpack_from(rest)
            open_json = rest[_LEN.size : _LEN.size + open_size]
            if len(open_json) != open_size:
                raise SnapshotError("site snapshot truncated")
            opened = tuple(_transition(doc) for doc in orjson.loads(open_json))
            rest = rest[_LEN.size + open_size :]
            if version == 2:
                return cls(state, opened, RecentSeqs.from_json(orjson.loads(rest)))
            (seen_size,) = _LEN.unpack_from(rest)
            seen_json = rest[_LEN.size : _LEN.size + seen_size]
            if len(seen_json) != seen_size:
                raise SnapshotError("site snapshot truncated")
            counts = orjson.loads(rest[_LEN.size + seen_size :])
            evaluated = counts["evaluated"]
            if not isinstance(evaluated, int) or isinstance(evaluated, bool) or evaluated < 0:
                raise SnapshotError(f"site snapshot: evaluated count {evaluated!r} is not a count")
            return cls(state, opened, RecentSeqs.from_json(orjson.loads(seen_json)), evaluated)
        except (struct.error, orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"unreadable site snapshot: {exc}") from exc


def _transition(doc: dict[str, Any]) -> Transition:
    cause = doc.pop("cause")
    items = tuple(CauseItem(**item) for item in cause.get("items", ()))
    return Transition(cause=Cause(cause["rule"], items, cause.get("text", "")), **doc)
