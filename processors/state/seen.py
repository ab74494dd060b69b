"""Which gateway messages a site has already evaluated: the worker's (gateway, seq) de-duplication.

Delivery is at least once end to end: a bridge that restarts before acknowledging re-publishes, an MQTT
session redelivers, a worker replays from its last committed offset. The engine ignores a replayed
reading (older than its sensor's newest), but the 1-minute aggregates would count it twice; so every
batch source (one gateway message) is checked against the site's recent sequence numbers first.

A message is a duplicate only if its (gateway, seq) is recent *and* its stamp (the time of its first
reading) is the one remembered for that seq: a redelivery repeats the content, while a gateway that
restarted its counter (the protocol asks it not to, but a power cut can reset a counter kept in RAM)
sends new readings under old seqs, and dropping real readings is worse than any double count.

Per gateway the last `WINDOW` sequence numbers are kept, in arrival order, and stored with the site's
snapshot, so the window survives restarts and rebalances together with the state it describes. A seq
older than the window is let through.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

WINDOW = 256  # messages per gateway: minutes of redelivery at the gateways' ~1 message/s
UNKNOWN = math.nan  # stamp of a seq restored from a snapshot that kept none: any content matches


class RecentSeqs:
    """Per gateway, the last `window` sequence numbers seen, each with its message's stamp."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._seqs: dict[str, dict[int, float]] = {}  # insertion order = arrival order

    def check_and_add(self, gateway: str, seq: int, stamp: float = UNKNOWN) -> bool:
        """True if the message is new (and remember it); False if it repeats one already seen."""
        seqs = self._seqs.setdefault(gateway, {})
        old = seqs.pop(seq, None)
        if old is not None and (old == stamp or math.isnan(old) or math.isnan(stamp)):
            seqs[seq] = old
            return False
        seqs[seq] = stamp  # new, or a reused seq with other content: remember the latest
        if len(seqs) > self.window:
            del seqs[next(iter(seqs))]
        return True

    def last_seqs(self) -> dict[str, int]:
        """Per gateway, the seq that arrived last (for logs)."""
        return {gw: next(reversed(seqs)) for gw, seqs in self._seqs.items() if seqs}

    def to_json(self) -> dict[str, list[list[float | None]]]:
        return {
            gw: [[seq, None if math.isnan(t) else t] for seq, t in seqs.items()]
            for gw, seqs in self._seqs.items()
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Iterable[Any]], window: int = WINDOW) -> RecentSeqs:
        """Reads `{gw: [[seq, stamp], ...]}`, and the earlier `{gw: [seq, ...]}` (stamps unknown)."""
        seen = cls(window)
        for gw, entries in doc.items():
            for entry in entries:
                if isinstance(entry, list):
                    seq, stamp = entry
                    seen.check_and_add(str(gw), int(seq), UNKNOWN if stamp is None else float(stamp))
                else:
                    seen.check_and_add(str(gw), int(entry))
        return seen

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecentSeqs) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"RecentSeqs({sum(len(o) for o in self._seqs.values())} seqs of {len(self._seqs)} gateways)"
