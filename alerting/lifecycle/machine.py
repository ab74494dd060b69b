"""Pure alert transitions: (alert, input, now) -> (alert, audit events, notifications). No I/O, no clock."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from alerting.config import EscalationPolicy
from alerting.lifecycle.model import Alert, AlertEvent, InvalidInput, LifecycleError, NoteRequired
from riskwatch.levels import Colour
from riskwatch.wire.transitions import Transition

SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell a receiver about an alert, for a reason (opened, raised, cleared, escalated, renotify)."""

    alert_id: str
    reason: str
    receiver: str
    route: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    alert: Alert | None
    events: tuple[AlertEvent, ...] = ()
    notify: tuple[Notify, ...] = ()


@dataclass(frozen=True, slots=True)
class Routed:
    """Routing's answer for an alert's current colour: (route path, receiver) pairs and the policy."""

    targets: tuple[tuple[str, str], ...]
    escalation: str | None
    policy: EscalationPolicy | None


def _event(
    alert: Alert, type_: str, at: float, actor: str = SYSTEM, note: str = "", **detail: object
) -> AlertEvent:
    return AlertEvent(alert.id, type_, at, actor, alert.state.value, alert.colour, note, dict(detail))


def _schedule(alert: Alert, policy: EscalationPolicy | None, now: float) -> Alert:
    """Arm or disarm the escalation timer: only unacknowledged active alerts at the policy colour escalate."""
    eligible = (
        policy is not None
        and policy.tiers
        and alert.active
        and not alert.acked
        and not alert.closed
        and Colour.parse(alert.colour) >= policy.min_colour
        and alert.tier < len(policy.tiers) * (policy.loops + 1)
    )
    if not eligible:
        return replace(alert, next_escalation_at=None)
    if alert.next_escalation_at is not None:
        return alert
    assert policy is not None
    return replace(alert, next_escalation_at=now + policy.tiers[alert.tier % len(policy.tiers)].after)


def on_transition(current: Alert | None, t: Transition, colour: Colour, routed: Routed, now: float) -> Step:
    """Open, update, clear or re-activate the entity's alert for one transition."""
    cause = asdict(t.cause)
    if current is None or current.closed:
        if colour is Colour.NORMAL or not routed.targets:
            return Step(None)
        alert = Alert(
            id=f"al-{t.id}", kind=t.kind, entity_type=t.entity_type, entity=t.entity, site=t.site,
            region=t.region, unit=t.unit, level=t.new, colour=colour.label, peak_colour=colour.label,
            active=True, acked=False, closed=False, opened_at=now, updated_at=now,
            routes=tuple(p for p, _ in routed.targets), receivers=tuple(r for _, r in routed.targets),
            escalation=routed.escalation, cause=cause, event_at=t.at,
        )  # fmt: skip
        alert = _schedule(alert, routed.policy, now)
        notify = tuple(Notify(alert.id, "opened", r, p) for p, r in routed.targets)
        return Step(alert, (_event(alert, "opened", now, transition=t.id, level=t.new),), notify)

    base = replace(current, level=t.new, cause=cause, event_at=t.at, updated_at=now)
    old = Colour.parse(current.colour)
    if colour is Colour.NORMAL:
        if not current.active:
            return Step(base)
        alert = _schedule(replace(base, active=False, colour=colour.label), routed.policy, now)
        notify = tuple(Notify(alert.id, "cleared", r) for r in current.receivers)
        return Step(alert, (_event(alert, "cleared", now, transition=t.id),), notify)
    if not current.active or colour > old:
        # Back in alarm, or worse: someone must sign for it again.
        type_ = "reactivated" if not current.active else "raised"
        targets = routed.targets or tuple(zip(current.routes, current.receivers, strict=True))
        peak = max(colour, Colour.parse(current.peak_colour)).label
        alert = replace(
            base, active=True, acked=False, acked_by="", colour=colour.label, peak_colour=peak,
            routes=tuple(p for p, _ in targets), receivers=tuple(r for _, r in targets),
            escalation=routed.escalation or current.escalation, renotify_at=None,
        )  # fmt: skip
        alert = _schedule(alert, routed.policy, now)
        notify = tuple(Notify(alert.id, type_, r, p) for p, r in targets)
        return Step(alert, (_event(alert, type_, now, transition=t.id, previous=old.label),), notify)
    if colour < old:
        alert = _schedule(replace(base, colour=colour.label), routed.policy, now)
        return Step(alert, (_event(alert, "lowered", now, transition=t.id, previous=old.label),))
    return Step(base, (_event(base, "updated", now, transition=t.id),))


def tick(alert: Alert, policy: EscalationPolicy | None, now: float) -> Step:
    """Fire due timers: shelve expiry, escalation to the next tier, reminder after acknowledgement."""
    events: list[AlertEvent] = []
    notify: list[Notify] = []
    if alert.shelved_until is not None and now >= alert.shelved_until:
        alert = replace(alert, shelved_until=None)
        events.append(_event(alert, "unshelved", now, reason="expired"))
    if alert.next_escalation_at is not None and now >= alert.next_escalation_at and policy and policy.tiers:
        tier = policy.tiers[alert.tier % len(policy.tiers)]
        alert = replace(alert, tier=alert.tier + 1, next_escalation_at=None)
        alert = _schedule(alert, policy, now)
        events.append(_event(alert, "escalated", now, tier=alert.tier, receiver=tier.receiver))
        notify.append(Notify(alert.id, "escalated", tier.receiver))
    if alert.renotify_at is not None and now >= alert.renotify_at:
        timeout = policy.ack_timeout if policy else None
        due = alert.acked and not alert.closed and timeout
        alert = replace(alert, renotify_at=now + timeout if due and timeout else None)
        if due:
            events.append(_event(alert, "renotify", now, acked_by=alert.acked_by))
            notify.extend(Notify(alert.id, "renotify", r) for r in alert.receivers)
    return Step(alert, tuple(events), tuple(notify))


def acknowledge(alert: Alert, user: str, note: str, policy: EscalationPolicy | None, now: float) -> Step:
    """Sign for the alert: escalation stops; a reminder is armed if the policy has an ack timeout."""
    if alert.closed:
        raise LifecycleError(f"alert {alert.id} is closed")
    if alert.acked:
        raise LifecycleError(f"alert {alert.id} was already acknowledged by {alert.acked_by}")
    timeout = policy.ack_timeout if policy else None
    alert = replace(alert, acked=True, acked_by=user, updated_at=now, next_escalation_at=None,
                    renotify_at=now + timeout if timeout else None)  # fmt: skip
    return Step(alert, (_event(alert, "acknowledged", now, user, note.strip()),))


def add_note(alert: Alert, user: str, text: str, now: float) -> Step:
    """Feedback on the disposal, allowed in every state (also after closing)."""
    if not text.strip():
        raise NoteRequired("a note needs text")
    return Step(replace(alert, updated_at=now), (_event(alert, "noted", now, user, text.strip()),))


def close(alert: Alert, user: str, note: str, now: float) -> Step:
    """Close the loop: needs an acknowledgement first and a disposal note."""
    if not note.strip():
        raise NoteRequired("closing needs a disposal note: what was done and what was found")
    if alert.closed:
        raise LifecycleError(f"alert {alert.id} is already closed")
    if not alert.acked:
        raise LifecycleError(f"alert {alert.id} is not acknowledged: acknowledge it before closing")
    alert = replace(alert, closed=True, closed_by=user, disposal=note.strip(), updated_at=now,
                    next_escalation_at=None, renotify_at=None, shelved_until=None)  # fmt: skip
    return Step(alert, (_event(alert, "closed", now, user, note.strip()),))


def shelve(alert: Alert, user: str, until: float, reason: str, now: float) -> Step:
    """Mute notifications until `until` (audited, with a reason); the alert itself stays as it is."""
    if not reason.strip():
        raise NoteRequired("shelving needs a reason")
    if alert.closed:
        raise LifecycleError(f"alert {alert.id} is closed")
    if until <= now:
        raise InvalidInput("shelve expiry must be in the future")
    alert = replace(alert, shelved_until=until, updated_at=now)
    return Step(alert, (_event(alert, "shelved", now, user, reason.strip(), until=until),))
