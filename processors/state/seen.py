"""Which gateway messages a site has already evaluated: the worker's (gateway, seq) de-duplication.

Delivery is at least once end to end: a bridge that restarts before acknowledging re-publishes, an MQTT
session redelivers, a worker replays from its last committed offset. The engine ignores a replayed
reading (older than its sensor's newest), but the 1-minute aggregates would count it twice; so every
batch source (one gateway message) is checked against the site's recent sequence numbers first.

Per gateway the last `WINDOW` sequence numbers are kept, in arrival order, and stored with the site's
snapshot, so the window survives restarts and rebalances together with the state it describes. A seq
older than the window is let through: gateways may restart their counters (the protocol asks them not
to), and dropping a real reading is worse than counting a very late duplicate twice in an aggregate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

WINDOW = 256  # messages per gateway: minutes of redelivery at the gateways' ~1 message/s


class RecentSeqs:
    """Per gateway, the last `window` sequence numbers seen."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._order: dict[str, deque[int]] = {}
        self._members: dict[str, set[int]] = {}

    def check_and_add(self, gateway: str, seq: int) -> bool:
        """True if (gateway, seq) is new (and remember it); False if it is a duplicate."""
        members = self._members.get(gateway)
        if members is None:
            members = self._members[gateway] = set()
            self._order[gateway] = deque()
        if seq in members:
            return False
        order = self._order[gateway]
        order.append(seq)
        members.add(seq)
        if len(order) > self.window:
            members.discard(order.popleft())
        return True

    def last_seqs(self) -> dict[str, int]:
        """Per gateway, the seq that arrived last (for logs)."""
        return {gw: next(reversed(order)) for gw, order in self._order.items() if order}

    def to_json(self) -> dict[str, list[int]]:
        return {gw: list(order) for gw, order in self._order.items()}

    @classmethod
    def from_json(cls, doc: Mapping[str, Iterable[int]], window: int = WINDOW) -> RecentSeqs:
        seen = cls(window)
        for gw, seqs in doc.items():
            for seq in seqs:
                seen.check_and_add(str(gw), int(seq))
        return seen

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecentSeqs) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"RecentSeqs({sum(len(o) for o in self._order.values())} seqs of {len(self._order)} gateways)"
