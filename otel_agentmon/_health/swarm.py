"""The swarm rule, in one place: the health loop and ``agentmon serve`` both judge a swarm with it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

SwarmState = Literal["healthy", "degraded", "unhealthy"]


def swarm_state(states: Iterable[str]) -> SwarmState:
    """Unhealthy when at least half of the agents that are not stopped are unhealthy, degraded when
    any of them is degraded or unhealthy, healthy otherwise (and with no agent). A stopped agent
    counts neither for nor against the swarm."""
    live = [s for s in states if s != "stopped"]
    unhealthy = sum(s == "unhealthy" for s in live)
    if live and unhealthy * 2 >= len(live):
        return "unhealthy"
    if unhealthy or any(s == "degraded" for s in live):
        return "degraded"
    return "healthy"
