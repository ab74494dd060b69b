"""A site's snapshot as stored in the state table: engine state bytes plus its open (non-normal) levels.

The open levels are the latest transition of every entity of the site that is not normal; they let the
HTTP views answer "current colour and cause" right after a restart, before any new input arrives.

Layout: magic b"RWSS" | version u8 | state length u32 | state bytes | JSON list of transitions.
"""

from __future__ import annotations

import struct
from dataclasses import asdict
from typing import NamedTuple

import orjson

from riskwatch.errors import RiskwatchError
from riskwatch.wire.transitions import Cause, CauseItem, Transition

MAGIC = b"RWSS"
VERSION = 1
_HEAD = struct.Struct("<4sBI")


class SnapshotError(RiskwatchError):
    """A stored snapshot is unreadable; the site starts from the initial state."""


class SiteSnapshot(NamedTuple):
    state: bytes
    open: tuple[Transition, ...]

    def to_bytes(self) -> bytes:
        return (
            _HEAD.pack(MAGIC, VERSION, len(self.state))
            + self.state
            + orjson.dumps([asdict(t) for t in self.open])
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> SiteSnapshot:
        try:
            magic, version, size = _HEAD.unpack_from(raw)
            if magic != MAGIC or version != VERSION:
                raise SnapshotError(
                    f"not a version {VERSION} site snapshot (magic {magic!r}, version {version})"
                )
            start = _HEAD.size
            state = bytes(raw[start : start + size])
            if len(state) != size:
                raise SnapshotError("site snapshot truncated")
            docs = orjson.loads(raw[start + size :])
            return cls(state, tuple(_transition(doc) for doc in docs))
        except (struct.error, orjson.JSONDecodeError, TypeError, KeyError) as exc:
            raise SnapshotError(f"unreadable site snapshot: {exc}") from exc


def _transition(doc: dict) -> Transition:  # type: ignore[type-arg]
    cause = doc.pop("cause")
    items = tuple(CauseItem(**item) for item in cause.get("items", ()))
    return Transition(cause=Cause(cause["rule"], items, cause.get("text", "")), **doc)
