"""The one mute step (Alertmanager shares it between silences and inhibitions): shelved, maintenance,
inhibited. A muted notification is not sent but is recorded as suppressed in the audit trail."""

from __future__ import annotations

from alerting.config import RoutingConfig
from alerting.lifecycle.model import Alert
from alerting.store import Store
from riskwatch.levels import Colour


def mute_reason(alert: Alert, store: Store, cfg: RoutingConfig, now: float) -> str | None:
    if alert.shelved_until is not None and alert.shelved_until > now:
        return "shelved"
    window = store.in_maintenance(alert.site, alert.unit, now)
    if window is not None:
        return f"maintenance: {window}"
    for rule in cfg.inhibit:
        if alert.entity_type not in rule.target_entity_types:
            continue
        for source in store.open_alerts_at_site(alert.site):
            if (
                source.id != alert.id
                and source.active
                and source.entity_type in rule.source_entity_types
                and Colour.parse(source.colour) >= rule.source_min_colour
                and all(getattr(source, f, None) == getattr(alert, f, None) for f in rule.equal)
            ):
                return f"inhibited by {source.entity_type} {source.entity} ({source.colour})"
    return None
