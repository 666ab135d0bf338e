"""The one swarm rule the health loop and `agentmon serve` share; the alert signal table."""

from __future__ import annotations

import pytest

from otel_agentmon._health.swarm import swarm_state


@pytest.mark.parametrize(("states", "expected"), [
    ([], "healthy"),
    (["stopped", "stopped"], "healthy"),
    (["healthy", "healthy"], "healthy"),
    (["healthy", "degraded"], "degraded"),
    (["healthy", "healthy", "unhealthy"], "degraded"),
    (["healthy", "unhealthy"], "unhealthy"),  # half of the live agents
    (["unhealthy", "stopped", "stopped", "healthy"], "unhealthy"),  # stopped agents do not dilute it
    (["unhealthy", "stopped"], "unhealthy"),
])
def test_swarm_state(states: list[str], expected: str) -> None:
    assert swarm_state(states) == expected


def test_every_rule_signal_has_one_row_in_the_signal_table() -> None:
    from otel_agentmon._alerts.engine import SIGNALS
    from otel_agentmon._alerts.signals import READ_SIGNALS

    assert READ_SIGNALS == SIGNALS
