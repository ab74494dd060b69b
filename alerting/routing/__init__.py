"""Route tree matching: which receivers hear about an alert, with which timing and escalation."""
