"""Health: per-agent states, user checks, the health endpoint."""
