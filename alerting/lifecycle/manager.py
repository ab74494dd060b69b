"""Applies lifecycle steps durably: alert, audit events and notification intents in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from alerting.config import EscalationPolicy, RoutingConfig
from alerting.deadletters import DeadLetters, as_bytes, store_failed
from alerting.lifecycle import machine
from alerting.lifecycle.machine import Notify, Routed, Step
from alerting.lifecycle.model import Alert, AlertEvent, InvalidInput, LifecycleError, NoteRequired
from alerting.routing.sites import SiteDirectory
from alerting.routing.tree import Facts, Route, build_tree, match_routes
from alerting.store import Intent, Store
from riskwatch.levels import Colour
from riskwatch.wire.deadletter import Reason
from riskwatch.wire.transitions import Transition

Clock = Callable[[], float]
# Escalations and reminders are never held back for grouping: they exist because time already ran out.
_URGENT = frozenset({"escalated", "renotify"})


class UnknownAlert(LifecycleError):
    """No alert with that id (HTTP 404)."""


class AlertManager:
    """The one writer of alert state. Every public method is one store transaction."""

    def __init__(
        self,
        store: Store,
        cfg: RoutingConfig,
        directory: SiteDirectory,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
        dead: DeadLetters | None = None,
    ) -> None:
        self.store, self.cfg, self.directory, self.clock = store, cfg, directory, clock
        self.dead = dead if dead is not None else DeadLetters(store)
        self._on_change = on_change
        self.tree = build_tree(cfg.route)
        self._routes: dict[str, Route] = {}
        self._index(self.tree)

    def _index(self, route: Route) -> None:
        self._routes[route.path] = route
        for child in route.children:
            self._index(child)

    def colour_of(self, t: Transition) -> Colour:
        """Warnings carry colours; alarm states map to a colour by `defaults.alarm_colours`."""
        if t.kind == "warning" or t.new == "normal":
            return Colour.parse(t.new)
        colour = self.cfg.defaults.alarm_colours.get(t.new)
        if colour is None:
            raise ValueError(f"alarm state {t.new!r} has no colour in defaults.alarm_colours")
        return colour

    def routed(self, t: Transition, colour: Colour) -> Routed:
        facts = self.directory.facts(t.site, t.region)
        found = match_routes(self.tree, Facts(colour, t.site, facts.region, facts.industry))
        escalation = next((r.escalation for r in found if r.escalation), None)
        policy = self.cfg.escalation_policies.get(escalation) if escalation else None
        return Routed(tuple((r.path, r.receiver) for r in found), escalation, policy)

    def _policy(self, alert: Alert) -> EscalationPolicy | None:
        return self.cfg.escalation_policies.get(alert.escalation) if alert.escalation else None

    def handle(self, t: Transition) -> bool:
        """Apply one transition; False if its id was seen before (a replay) and nothing changed."""
        colour = self.colour_of(t)
        now = self.clock()
        with self.store.transaction():
            if self.store.seen(t.id):
                return False
            self.store.mark_seen(t.id, now)
            key = f"{t.kind}|{t.entity_type}|{t.entity}"
            current = self.store.open_alert_for(key)
            if colour is Colour.NORMAL:
                routed = Routed(
                    (), current.escalation if current else None, self._policy(current) if current else None
                )
            else:
                routed = self.routed(t, colour)
            self._apply(machine.on_transition(current, t, colour, routed, now), now)
        self._on_change()
        return True

    def tick(self) -> int:
        """Fire every due timer (escalation, reminder, shelve expiry); returns how many alerts changed."""
        now = self.clock()
        with self.store.transaction():
            due = self.store.due_timers(now)
            for alert in due:  # each alert one guarded step: one that cannot be handled stops only itself
                try:
                    with self.store.transaction():
                        self._apply(machine.tick(alert, self._policy(alert), now), now)
                except Exception as exc:
                    if store_failed(exc):
                        raise
                    self._timer_failed(alert, exc, now)
        if due:
            self._on_change()
        return len(due)

    def _timer_failed(self, alert: Alert, exc: Exception, now: float) -> None:
        """Disarm the alert's timers (or it would fail again every tick), audit and dead-letter it."""
        detail = f"timers of alert {alert.id} could not be handled: {type(exc).__name__}: {exc}"
        with self.store.transaction():
            self.store.put_alert(
                replace(alert, next_escalation_at=None, renotify_at=None, shelved_until=None)
            )
            self.store.append_event(
                AlertEvent(alert.id, "delivery_failed", now, machine.SYSTEM, alert.state.value, alert.colour,
                           detail)
            )  # fmt: skip
            self.dead.record(
                Reason.NOTIFICATION_ERROR, detail, "timers", as_bytes(alert.to_doc()), now, alert.site
            )

    def _get(self, alert_id: str) -> Alert:
        alert = self.store.get_alert(alert_id)
        if alert is None:
            raise UnknownAlert(f"no alert {alert_id!r}")
        return alert

    def _act(self, alert_id: str, action: Callable[[Alert, float], Step]) -> Alert:
        now = self.clock()
        with self.store.transaction():
            step = action(self._get(alert_id), now)
            self._apply(step, now)
        self._on_change()
        assert step.alert is not None
        return step.alert

    def acknowledge(self, alert_id: str, user: str, note: str = "") -> Alert:
        return self._act(alert_id, lambda a, now: machine.acknowledge(a, user, note, self._policy(a), now))

    def add_note(self, alert_id: str, user: str, text: str) -> Alert:
        return self._act(alert_id, lambda a, now: machine.add_note(a, user, text, now))

    def close(self, alert_id: str, user: str, note: str) -> Alert:
        return self._act(alert_id, lambda a, now: machine.close(a, user, note, now))

    def shelve(self, alert_id: str, user: str, until: float, reason: str) -> Alert:
        return self._act(alert_id, lambda a, now: machine.shelve(a, user, until, reason, now))

    def add_maintenance(self, site: str, unit: str, start: float, end: float, reason: str, user: str) -> int:
        """A maintenance window mutes notifications for a site or one unit; audited like any action."""
        if not reason.strip():
            raise NoteRequired("a maintenance window needs a reason")
        if end <= start:
            raise InvalidInput("maintenance end must be after its start")
        now = self.clock()
        with self.store.transaction():
            window = self.store.add_maintenance(site, unit, start, end, reason.strip(), user)
            event = AlertEvent(
                f"maintenance-{window}", "maintenance", now, user, "", "", reason.strip(),
                {"site": site, "unit": unit, "start": start, "end": end},
            )  # fmt: skip
            self.store.append_event(event)
        self._on_change()
        return window

    def _apply(self, step: Step, now: float) -> None:
        if step.alert is None:
            return
        self.store.put_alert(step.alert)
        for event in step.events:
            self.store.append_event(event)
        for notify in step.notify:
            for intent in self._intents(step.alert, notify, now):
                self.store.add_intent(intent)

    def _intents(self, alert: Alert, notify: Notify, now: float) -> list[Intent]:
        receiver = self.cfg.receivers.get(notify.receiver)
        if receiver is None:  # config changed since the alert opened; the audit says so
            self.store.append_event(
                AlertEvent(alert.id, "delivery_failed", now, machine.SYSTEM, alert.state.value,
                                   alert.colour, f"receiver {notify.receiver!r} no longer configured")
            )  # fmt: skip
            return []
        path = notify.route
        if not path and notify.receiver in alert.receivers:
            path = alert.routes[alert.receivers.index(notify.receiver)]
        route = self._routes.get(path, self.tree)
        if notify.reason in _URGENT:
            group, wait, interval = f"{notify.reason}|{alert.id}|{alert.tier}", 0.0, 0.0
        else:
            values = "|".join(str(getattr(alert, field, "")) for field in route.group_by)
            group, wait, interval = f"{route.path}|{values}", route.group_wait, route.group_interval
        return [
            Intent(0, alert.id, notify.reason, notify.receiver, channel, f"{notify.receiver}|{group}", now,
                   wait, interval)
            for channel in receiver.channels
        ]  # fmt: skip
