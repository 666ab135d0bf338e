"""The failing-swarm example against an independent OTLP receiver: the health and alert bars."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_failing_swarm_reports_down_unhealthy_stuck_and_alerts() -> None:
    with OTLPReceiver() as rx:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = rx.endpoint
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / "failing_swarm.py")], env=env,
                              capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
        assert proc.returncode == 0, proc.stderr
        metrics = rx.metrics()
        logs = rx.logs()
        spans = rx.spans()

    # The dead agent's up metric went to 0; the others stayed up until the clean shutdown, whose
    # last export says every agent stopped (up 0 together with health{stopped} 1).
    up = [(p.attributes["gen_ai.agent.name"], p.value) for m in metrics if m.name == "agentmon.agent.up"
          for p in m.points]
    assert ("doomed", 0) in up
    assert ("steady", 1) in up and up[-4:] == [(a, 0) for a, _ in up[-4:]]
    assert [v for a, v in up if a == "steady"][-1] == 0 and 0 not in [v for a, v in up if a == "steady"][:-1]

    # Health states: the status-metric pattern, the right state for the right agents.
    ones = [(p.attributes["gen_ai.agent.name"], p.attributes["agentmon.health.state"])
            for m in metrics if m.name == "agentmon.agent.health" for p in m.points if p.value == 1]
    current = set(ones)
    assert ("doomed", "unhealthy") in current
    assert ("hanger", "degraded") in current
    assert ("flaky", "unhealthy") in current or ("flaky", "degraded") in current
    assert {state for agent, state in current if agent == "steady"} == {"healthy", "stopped"}
    assert sorted(ones[-4:]) == [(a, "stopped") for a in ("doomed", "flaky", "hanger", "steady")]

    # The stuck task is signalled while it still runs: its log record (and the stuck gauge) arrive
    # before the task's own span does.
    stuck_logs = [r for r in logs if r.event_name == "agentmon.task.stuck"]
    assert stuck_logs and stuck_logs[0].attributes["gen_ai.agent.name"] == "hanger"
    stuck_task_id = stuck_logs[0].attributes["agentmon.task.id"]
    (stuck_span,) = [s for s in spans if s.attributes.get("agentmon.task.id") == stuck_task_id]
    assert stuck_logs[0].arrival < stuck_span.arrival
    assert any(e[0] == "agentmon.task.stuck" for e in stuck_span.events)
    assert any(p.value >= 1 for m in metrics if m.name == "agentmon.tasks.stuck" for p in m.points  # type: ignore[operator]  # a gauge's points always carry a value
               if p.attributes.get("gen_ai.agent.name") == "hanger")

    # Alert transitions arrive as log records, firing and resolved.
    alerts = {(r.attributes["agentmon.alert.rule"], r.attributes.get("gen_ai.agent.name"),
               r.attributes["agentmon.alert.state"]) for r in logs if r.event_name == "agentmon.alert"}
    assert ("AgentDown", "doomed", "firing") in alerts
    assert {agent for rule, agent, state in alerts if rule == "AgentDown" and state == "firing"} == {"doomed"}
    assert ("TaskStuck", "hanger", "firing") in alerts and ("TaskStuck", "hanger", "resolved") in alerts
    assert ("AgentErrorRateHigh", "flaky", "firing") in alerts
    assert ("AgentErrorRateHigh", "flaky", "resolved") in alerts
    firing = [p for m in metrics if m.name == "agentmon.alert.firing" for p in m.points if p.value == 1]
    assert {p.attributes["agentmon.alert.rule"] for p in firing} >= {"AgentDown", "TaskStuck"}

    # And the run printed the transitions as they happened.
    assert "ALERT AgentDown doomed FIRING" in proc.stdout
    assert "HEALTH doomed -> unhealthy" in proc.stdout
