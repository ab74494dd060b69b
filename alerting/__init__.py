"""Alerting: routing, channels, alert lifecycle (ack, escalate, close), live feed."""
