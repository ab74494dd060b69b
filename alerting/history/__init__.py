"""History read back: InfluxDB (minute aggregates, colour and alarm transitions) and the alert store
(alerts, their audit trail, notifications), for `riskwatch history`, the API and the reports."""
