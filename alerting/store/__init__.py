"""Durable store for alerts, the audit trail, notification intents and the outbox (SQLite, WAL, FULL sync)."""

from alerting.store.sqlite import Intent, OutboxRow, Store

__all__ = ["Intent", "OutboxRow", "Store"]
