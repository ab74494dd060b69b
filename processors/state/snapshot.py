"""A site's snapshot as stored in the state table: engine state, open levels, recent gateway messages.

The open levels are the latest transition of every entity of the site that is not normal; they let the
HTTP views answer "current colour and cause" right after a restart, before any new input arrives. The
recent (gateway, seq) window (processors/state/seen.py) is stored with the state it describes, so a
replay after a restart de-duplicates exactly what the restored state already contains.

Layout, version 2: magic b"RWSS" | version u8 | state length u32 | state bytes | open length u32 |
JSON list of open transitions | JSON object gateway -> recent seqs.
Version 1 (still read): magic | version | state length | state | JSON list of open transitions.
"""

from __future__ import annotations

import struct
from dataclasses import asdict
from typing import NamedTuple

import orjson

from processors.state.seen import RecentSeqs
from riskwatch.errors import RiskwatchError
from riskwatch.wire.transitions import Cause, CauseItem, Transition

MAGIC = b"RWSS"
VERSION = 2
READABLE = (1, 2)
_HEAD = struct.Struct("<4sBI")
_LEN = struct.Struct("<I")


class SnapshotError(RiskwatchError):
    """A stored snapshot is unreadable; the site starts from the initial state."""


class SiteSnapshot(NamedTuple):
    state: bytes
    open: tuple[Transition, ...]
    seen: RecentSeqs | None = None

    def to_bytes(self) -> bytes:
        open_json = orjson.dumps([asdict(t) for t in self.open])
        return b"".join(
            (
                _HEAD.pack(MAGIC, VERSION, len(self.state)),
                self.state,
                _LEN.pack(len(open_json)),
                open_json,
                orjson.dumps(self.seen.to_json() if self.seen is not None else {}),
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
            docs = orjson.loads(open_json)
            seen = RecentSeqs.from_json(orjson.loads(rest[_LEN.size + open_size :]))
            return cls(state, tuple(_transition(doc) for doc in docs), seen)
        except (struct.error, orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"unreadable site snapshot: {exc}") from exc


def _transition(doc: dict) -> Transition:  # type: ignore[type-arg]
    cause = doc.pop("cause")
    items = tuple(CauseItem(**item) for item in cause.get("items", ()))
    return Transition(cause=Cause(cause["rule"], items, cause.get("text", "")), **doc)
