"""Plant simulators, scenarios, load generator and the end-to-end benchmark."""
