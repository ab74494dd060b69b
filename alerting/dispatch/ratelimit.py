"""Per-channel sliding-window rate limit (docs/domain.md: 20 messages/min for DingTalk and WeCom robots)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

WINDOW_S = 60.0


class SlidingWindow:
    """At most `limit` messages in any `window` seconds. Seeded from the outbox after a restart."""

    def __init__(self, limit: int, window: float = WINDOW_S, history: Iterable[float] = ()) -> None:
        self.limit, self.window = limit, window
        self._sent: deque[float] = deque(sorted(history))

    def available(self, now: float) -> int:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        return max(0, self.limit - len(self._sent))

    def record(self, now: float) -> None:
        self._sent.append(now)

    def flood_pace_ok(self, now: float) -> bool:
        """Once half the budget is spent, send at most one (digest) message per 2 x window / limit.

        Half the budget absorbs a burst as single messages; the other half, paced, keeps digests flowing
        every few seconds (6 s at 20/min) instead of stalling until the window slides.
        """
        if self.available(now) > self.limit // 2 or not self._sent:
            return True
        return now >= self._sent[-1] + 2 * self.window / self.limit

    def next_free_at(self, now: float) -> float:
        """When the next message may go (now if there is room)."""
        return now if self.available(now) > 0 else self._sent[0] + self.window
