"""What supervisors read: the daily four-colour bulletin and the alarm-quality report (docs/reports.md)."""
