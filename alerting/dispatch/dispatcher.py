"""Turns pending intents into outbox messages: mute, group (wait/interval), rate-limit with digests.

Nothing here is held only in memory: intents are durable until they are part of an outbox message, and
the message and the settling of its intents are one transaction. After a crash, the same intents come
back as pending and are grouped again; the rate window is re-seeded from the outbox.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from alerting.channels.base import Message
from alerting.config import RoutingConfig
from alerting.deadletters import DeadLetters, as_bytes, store_failed
from alerting.dispatch.mute import mute_reason
from alerting.dispatch.ratelimit import WINDOW_S, SlidingWindow
from alerting.lifecycle.machine import SYSTEM
from alerting.lifecycle.model import Alert, AlertEvent
from alerting.messages import render
from alerting.routing.recipients import recipients
from alerting.routing.sites import SiteDirectory
from alerting.store import Intent, Store
from riskwatch.levels import Colour
from riskwatch.secrets import redact
from riskwatch.wire.deadletter import Reason


@dataclass(frozen=True, slots=True)
class Flushed:
    messages: int
    suppressed: int


def _colour(alert: Alert | None) -> Colour:
    return Colour.parse(alert.colour) if alert is not None else Colour.NORMAL


def _item(alert: Alert, reason: str, raised_here: bool) -> tuple[Alert, str]:
    """An alert's line in a message. One that was raised and cleared again before its group was sent (a
    red replayed late after a worker restart, a short spike inside the group wait) is told at its peak
    colour, "cleared since": the officer must learn that the red happened, not only that all is normal."""
    if reason == "cleared" and raised_here and alert.peak_colour != alert.colour:
        return replace(alert, colour=alert.peak_colour), "raised_and_cleared"
    return alert, reason


def message_key(channel: str, intents: list[Intent]) -> str:
    """Deterministic idempotency key: the same intents on the same channel are the same message."""
    text = channel + "|" + ",".join(str(i.id) for i in sorted(intents, key=lambda i: i.id))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Dispatcher:
    def __init__(
        self, store: Store, cfg: RoutingConfig, directory: SiteDirectory, now: float,
        dead: DeadLetters | None = None,
    ) -> None:  # fmt: skip
        self.store, self.cfg, self.directory = store, cfg, directory
        self.dead = dead if dead is not None else DeadLetters(store)
        self._flushed: dict[tuple[str, str], float] = {}
        self._sent_colour: dict[tuple[str, str], Colour] = {}  # the worst colour each group has sent
        self._limits: dict[str, SlidingWindow] = {}
        for name, channel in cfg.channels.items():
            rate = channel.effective_rate()
            if rate is not None:
                self._limits[name] = SlidingWindow(rate, history=store.sends_since(name, now - WINDOW_S))

    def step(self, now: float) -> Flushed:
        """Flush every group that is due; returns how many messages were queued and intents muted."""
        groups: dict[tuple[str, str], list[Intent]] = defaultdict(list)
        for intent in self.store.pending_intents():
            groups[(intent.channel, intent.group_key)].append(intent)
        ready: dict[str, list[list[Intent]]] = defaultdict(list)
        alerts: dict[str, Alert | None] = {}
        for (channel, key), intents in sorted(groups.items(), key=lambda kv: kv[1][0].id):
            first, flushed = intents[0], self._flushed.get((channel, key))
            if flushed is None:
                due = now >= first.created_at + first.wait
            else:
                # A colour worse than any this group has sent goes out like a first notification (after
                # the group wait, not the interval): a red must not wait behind the yellow before it.
                worse = self._worse_than_sent(channel, key, intents, alerts)
                due = now >= flushed + first.interval or (worse is not None and now >= worse + first.wait)
            if due:
                ready[channel].append(intents)
        muted: dict[str, str | None] = {}
        messages = suppressed = 0
        for channel, batch in ready.items():
            limit = self._limits.get(channel)
            if limit is not None and (limit.available(now) == 0 or not limit.flood_pace_ok(now)):
                continue  # wait for the window to slide; intents stay pending, nothing is lost
            with self.store.transaction():
                kept = []
                for group in batch:
                    live = [i for i in group if not self._muted(i, alerts, muted, now)]
                    suppressed += len(group) - len(live)
                    if live:
                        kept.append(live)
                    else:
                        self._flushed[(channel, group[0].group_key)] = now
            messages += self._flush_channel(channel, kept, alerts, now)
        self._forget(now)
        return Flushed(messages, suppressed)

    def _worse_than_sent(
        self, channel: str, key: str, intents: list[Intent], alerts: dict[str, Alert | None]
    ) -> float | None:
        """When the first intent whose alert is worse than anything the group has sent was made."""
        sent = self._sent_colour.get((channel, key), Colour.NORMAL)
        for intent in intents:
            if _colour(self._alert(intent.alert_id, alerts)) > sent:
                return intent.created_at
        return None

    def _alert(self, alert_id: str, alerts: dict[str, Alert | None]) -> Alert | None:
        if alert_id not in alerts:
            alerts[alert_id] = self.store.get_alert(alert_id)
        return alerts[alert_id]

    def _muted(
        self, intent: Intent, alerts: dict[str, Alert | None], muted: dict[str, str | None], now: float
    ) -> bool:
        """Mute check at flush time (a later site red still inhibits); suppressions are audited."""
        alert = self._alert(intent.alert_id, alerts)
        if intent.alert_id not in muted:
            muted[intent.alert_id] = (
                "alert missing" if alert is None else mute_reason(alert, self.store, self.cfg, now)
            )
        reason = muted[intent.alert_id]
        if reason is None:
            return False
        self.store.settle_intents([intent.id], "suppressed")
        if alert is not None:
            self.store.append_event(self._event(alert, "suppressed", now, reason, intent))
        return True

    def _flush_channel(
        self, channel: str, batch: list[list[Intent]], alerts: dict[str, Alert | None], now: float
    ) -> int:
        if not batch:
            return 0
        limit = self._limits.get(channel)
        room = len(batch) if limit is None else limit.available(now)
        if limit is not None and room <= limit.limit // 2:
            room = 1  # flood: one paced digest at a time
        # Within budget: one message per group. Over budget: everything ready in one digest.
        messages = batch if len(batch) <= room else [[i for group in batch for i in group]]
        for intents in messages:
            self._queue(channel, intents, alerts, now)
            if limit is not None:
                limit.record(now)
        for group in batch:
            key = (channel, group[0].group_key)
            self._flushed[key] = now
            worst = max((_colour(alerts.get(i.alert_id)) for i in group), default=Colour.NORMAL)
            self._sent_colour[key] = max(worst, self._sent_colour.get(key, Colour.NORMAL))
        return len(messages)

    def _queue(
        self, channel: str, intents: list[Intent], alerts: dict[str, Alert | None], now: float
    ) -> None:
        """Render one message and put it in the outbox with the intents it settles: one guarded step. A
        message that cannot be made is marked failed, audited and dead-lettered: it never stays pending
        to fail again on every round (or after every restart)."""
        seen: dict[str, str] = {}
        raised: set[str] = set()
        for intent in intents:  # one line per alert, the latest reason wins
            seen[intent.alert_id] = intent.reason
            if intent.reason != "cleared":
                raised.add(intent.alert_id)
        items = [_item(alert, r, a in raised) for a, r in seen.items() if (alert := alerts[a]) is not None]
        try:
            people: dict[str, object] = {}
            for receiver in dict.fromkeys(i.receiver for i in intents):
                if receiver in self.cfg.receivers:
                    for pid, person in recipients(self.cfg, receiver, now).people:
                        people[pid] = person
            mobiles = tuple(dict.fromkeys(p.mobile for p in people.values() if p.mobile))  # type: ignore[attr-defined]
            emails = tuple(dict.fromkeys(p.email for p in people.values() if p.email))  # type: ignore[attr-defined]
            d = self.cfg.defaults
            rendered = render(items, self.directory, d.language, d.ack_url)
            message = Message(
                key=message_key(channel, intents), channel=channel, title=rendered.title,
                markdown=rendered.markdown, text=rendered.text, colour=rendered.colour, mobiles=mobiles,
                emails=emails, alert_ids=tuple(seen), link=rendered.link, language=d.language,
            )  # fmt: skip
            with self.store.transaction():
                self.store.add_outbox(message, now)
                self.store.settle_intents([i.id for i in intents], "queued", message.key)
        except Exception as exc:
            if store_failed(exc):
                raise
            self._unsendable(channel, intents, items, exc, now)

    def _unsendable(
        self, channel: str, intents: list[Intent], items: Sequence[tuple[Alert | None, str]], exc: Exception,
        now: float,
    ) -> None:  # fmt: skip
        detail = redact(f"notification on {channel} could not be made: {type(exc).__name__}: {exc}")
        original = {
            "channel": channel,
            "intents": [{"id": i.id, "alert_id": i.alert_id, "reason": i.reason, "receiver": i.receiver}
                        for i in intents],
            "alerts": [a.to_doc() for a, _ in items if a is not None],
        }  # fmt: skip
        with self.store.transaction():
            self.store.settle_intents([i.id for i in intents], "failed")
            for alert, _ in items:
                if alert is not None:
                    event = AlertEvent(alert.id, "delivery_failed", now, SYSTEM, alert.state.value, alert.colour,
                                       detail, {"channel": channel})  # fmt: skip
                    self.store.append_event(event)
            site = next((a.site for a, _ in items if a is not None), "")
            self.dead.record(Reason.NOTIFICATION_ERROR, detail, channel, as_bytes(original), now, site=site)

    def _event(self, alert: Alert, type_: str, now: float, note: str, intent: Intent) -> AlertEvent:
        detail = {"channel": intent.channel, "receiver": intent.receiver, "reason": intent.reason}
        return AlertEvent(alert.id, type_, now, SYSTEM, alert.state.value, alert.colour, note, detail)

    def _forget(self, now: float) -> None:
        """Group flush times older than a day carry no information any more."""
        for key in [k for k, t in self._flushed.items() if t < now - 86400]:
            del self._flushed[key]
            self._sent_colour.pop(key, None)
