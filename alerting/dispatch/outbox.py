"""Delivers outbox messages: send, then mark delivered; retry with exponential back-off; give up audited.

A crash between a successful send and `mark_delivered` resends the same message with the same
idempotency key, so a receiver that de-duplicates by key sees it once: at-least-once plus idempotency.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from alerting.channels.base import Channel, SendResult, SendStatus
from alerting.config import Defaults
from alerting.deadletters import DeadLetters
from alerting.lifecycle.machine import SYSTEM
from alerting.lifecycle.model import AlertEvent
from alerting.metrics import AlertingMetrics
from alerting.store import OutboxRow, Store
from riskwatch.secrets import redact
from riskwatch.wire.deadletter import Reason


@dataclass(frozen=True, slots=True)
class Delivered:
    ok: int
    retrying: int
    failed: int


def backoff(attempts: int, initial: float, cap: float) -> float:
    """Seconds to wait after the `attempts`-th failure: initial, 2x, 4x ... capped."""
    return min(cap, initial * (2 ** max(0, attempts - 1)))


class Deliverer:
    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        defaults: Defaults,
        metrics: AlertingMetrics | None = None,
        dead: DeadLetters | None = None,
    ) -> None:
        self.store, self.channels, self.defaults, self.metrics = store, dict(channels), defaults, metrics
        self.dead = dead if dead is not None else DeadLetters(store, metrics)

    async def step(self, now: float) -> Delivered:
        """Send every due message; channels in parallel, each channel's messages in order."""
        by_channel: dict[str, list[OutboxRow]] = defaultdict(list)
        for row in self.store.due_outbox(now):
            by_channel[row.message.channel].append(row)
        results = await asyncio.gather(
            *(self._send_all(name, rows, now) for name, rows in by_channel.items())
        )
        outcomes = [outcome for per_channel in results for outcome in per_channel]
        return Delivered(
            *(outcomes.count(o) for o in (SendStatus.OK, SendStatus.RETRYABLE, SendStatus.ERROR))
        )

    async def _send_all(self, name: str, rows: list[OutboxRow], now: float) -> list[SendStatus]:
        channel = self.channels.get(name)
        out = []
        for row in rows:
            if channel is None:
                result = SendResult.error(f"channel {name!r} is no longer configured")
            else:
                try:
                    result = await channel.send(row.message)
                except Exception as exc:  # a channel must not raise; one that does fails this message
                    result = SendResult.error(redact(f"{name} raised {type(exc).__name__}: {exc}")[:300])
                    self.dead.record(
                        Reason.NOTIFICATION_ERROR, result.detail, name, row.message.to_bytes(), now
                    )
            # The detail goes to the outbox, the audit trail and the log: never with a secret in it.
            result = replace(result, detail=redact(result.detail))
            # Settle each message right after its send: a crash then resends at most the one in flight.
            with self.store.transaction():
                out.append(self._settle(row, result, now))
            if result.outcome is SendStatus.RETRYABLE:
                break  # the channel is struggling: keep the rest in order for the next round
        return out

    def _settle(self, row: OutboxRow, result: SendResult, now: float) -> SendStatus:
        message, attempts = row.message, row.attempts + 1
        if self.metrics is not None:
            self.metrics.notifications.labels(message.channel, result.outcome.value).inc()
        detail = {"channel": message.channel, "key": message.key, "attempts": attempts}
        outcome = result.outcome
        if outcome is SendStatus.RETRYABLE and attempts >= self.defaults.max_attempts:
            outcome = SendStatus.ERROR
        if outcome is SendStatus.OK:
            self.store.mark_delivered(message.key, now)
            type_ = "notified"
        elif outcome is SendStatus.RETRYABLE:
            delay = backoff(attempts, self.defaults.retry_initial, self.defaults.retry_max)
            self.store.mark_retry(message.key, now + delay, result.detail)
            return outcome
        else:
            self.store.mark_failed(message.key, result.detail)
            type_ = "delivery_failed"
        for alert_id in message.alert_ids:
            alert = self.store.get_alert(alert_id)
            state, colour = (alert.state.value, alert.colour) if alert else ("", "")
            self.store.append_event(
                AlertEvent(alert_id, type_, now, SYSTEM, state, colour, result.detail, detail)
            )
        return outcome
