"""HTTP API with bearer tokens and roles, and the SSE live feed of alert events."""
