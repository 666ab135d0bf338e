"""How health and alerts fit together: the one swarm rule the health loop and ``agentmon serve``
share, the alert signal table, and the wiring after a fork (a forked child's gauges)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otel_agentmon._health.swarm import swarm_state
from tests.support.receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.mark.subprocess
@pytest.mark.timeout(90)
def test_a_forked_childs_health_and_alert_gauges_reach_the_backend(rx: OTLPReceiver) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "fork_health.py"), rx.endpoint],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    points = {(m.name, p.attributes.get("gen_ai.agent.name"), p.value) for m in rx.metrics() for p in m.points
              if m.name in ("agentmon.agent.up", "agentmon.alert.firing")}
    # child-agent exists in the child only: these come from the gauges the child registered after the fork
    assert ("agentmon.agent.up", "child-agent", 1) in points
    assert ("agentmon.alert.firing", "child-agent", 1) in points
