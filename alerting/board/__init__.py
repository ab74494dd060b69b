"""The monitoring-centre board: map, sites table, alert desk, served by alerting."""
