"""The in-process lifecycle: an agent waiting for work is idle (never down, never an alert), and a
clean shutdown reports every agent stopped (records, the last export's gauges, resolved alerts)."""

from __future__ import annotations

import time

import pytest

import otel_agentmon as agentmon
from tests.conftest import FAST_HEALTH
from tests.support.polling import wait_for
from tests.test_health import Make, by_agent, changes, health_metric, records, run_task

FAST_TIMEOUT = FAST_HEALTH.heartbeat_timeout


@pytest.mark.timeout(20)
def test_an_agent_waiting_for_work_is_idle_not_down(health_capture: Make) -> None:
    # The process is alive, so an agent with no task is idle: it never went quiet "without a word".
    got: list[agentmon.AlertEvent] = []
    cap = health_capture(alert_rules=[agentmon.AlertRule("AgentDown", "up", "<", 1)],
                         notifiers=[agentmon.CallbackNotifier(got.append)])
    run_task("waiter")
    deadline = time.monotonic() + 4 * FAST_TIMEOUT  # well past the heartbeat timeout, ticking all along
    while time.monotonic() < deadline:
        health = cap.monitor.evaluate_health().agents["waiter"]
        assert (health.up, health.state, health.lifecycle) == (True, "healthy", "idle"), health
        time.sleep(0.05)
    assert changes(cap, "waiter") == [] and got == []
    assert by_agent(cap, "agentmon.agent.up") == {"waiter": 1} and health_metric(cap) == {"waiter": ["healthy"]}
    with agentmon.task("next", agent="waiter"):
        assert cap.monitor.evaluate_health().agents["waiter"].lifecycle == "busy"


@pytest.mark.timeout(20)
def test_shutdown_reports_every_agent_stopped_not_down(health_capture: Make) -> None:
    got: list[agentmon.AlertEvent] = []
    cap = health_capture(alert_rules=[agentmon.AlertRule("AgentDown", "up", "<", 1),
                                      agentmon.AlertRule("Failing", "error_rate", ">", 0.5, window=5)],
                         notifiers=[agentmon.CallbackNotifier(got.append)])
    cap.monitor.heartbeat("beater")  # promised heartbeats; a clean shutdown still is no crash
    for _ in range(6):
        run_task("failing", fail=True)
    run_task("fine")
    assert wait_for(lambda: [(e.rule.name, e.state) for e in got] == [("Failing", "firing")])
    assert cap.monitor.shutdown(2.0)
    health = cap.monitor.health()
    assert {n: (h.state, h.lifecycle, h.up) for n, h in health.agents.items()} == {
        n: ("stopped", "stopped", False) for n in ("beater", "failing", "fine")}
    assert health.state == "healthy" and health.firing == ()
    assert [(e.rule.name, e.state) for e in got] == [("Failing", "firing"), ("Failing", "resolved")]
    for agent in ("beater", "fine"):
        assert changes(cap, agent) == [("healthy", "stopped")]
    (rec,) = [r for r in records(cap, "agentmon.health.changed")
              if (r.attributes or {}).get("gen_ai.agent.name") == "fine"]
    assert rec.severity_text == "INFO" and (rec.attributes or {})["agentmon.agent.lifecycle"] == "stopped"
    # The last export says so: up 0 together with health{stopped} 1, the alert gauge 0.
    assert by_agent(cap, "agentmon.agent.up") == {"beater": 0, "failing": 0, "fine": 0}
    assert health_metric(cap) == {"beater": ["stopped"], "failing": ["stopped"], "fine": ["stopped"]}
    assert {(p.attributes or {}).get("agentmon.alert.rule"): p.value for p in cap.points("agentmon.alert.firing")
            if (p.attributes or {}).get("gen_ai.agent.name") == "failing"} == {"AgentDown": 0, "Failing": 0}


@pytest.mark.timeout(20)
def test_a_retired_agent_that_works_again_is_back(health_capture: Make) -> None:
    cap = health_capture()
    run_task("rover")
    cap.monitor.forget_agent("rover")
    assert cap.monitor.evaluate_health().agents["rover"].lifecycle == "stopped"
    assert cap.monitor.evaluate_health().agents["rover"].lifecycle == "stopped"  # no new work: still retired
    with agentmon.task("again", agent="rover"):
        back = cap.monitor.evaluate_health().agents["rover"]
        assert (back.state, back.lifecycle, back.up) == ("healthy", "busy", True)
    assert changes(cap, "rover") == [("healthy", "stopped"), ("stopped", "healthy")]
