"""Agent lifecycle at an independent receiver, with real programs: a program that finishes and shuts
down cleanly is *stopped* (no alert anywhere, let go after the grace period), one that is killed is
*down* within the heartbeat timeout and fires AgentDown, an agent waiting for work is *idle*; and
an alert evaluated both in the process and in serve is one alert (one row, counted once).

The programs are child processes (tests/scripts/agent_then_wait.py, the framework examples) that
export to an ``agentmon serve`` started in the test with ``start_in_process``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_agentmon import AlertRule, HealthPolicy, load_rules
from otel_agentmon._records.recording import read_recording
from otel_agentmon.analytics import analyze
from otel_agentmon.serve import Server, start_in_process
from tests.support.polling import wait_for

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "agent_then_wait.py"
(AGENT_DOWN,) = [r for r in load_rules(ROOT / "examples" / "alert_rules.yaml") if r.name == "AgentDown"]
TIMEOUT = 3.0  # serve's heartbeat timeout here (the children export metrics every 200 ms)
GRACE = 8.0
pytestmark = pytest.mark.subprocess


def state(srv: Server) -> dict[str, Any]:
    with urllib.request.urlopen(srv.url + "/api/state", timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def row(srv: Server, name: str) -> dict[str, Any]:
    return next((a for a in state(srv)["agents"] if a["name"] == name), {})


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Server]:
    server = start_in_process(0, policy=HealthPolicy(heartbeat_timeout=TIMEOUT, cpu_limit=None, stopped_grace=GRACE),
                              rules=[AGENT_DOWN], health_interval=0.05)
    try:
        yield server
    finally:
        server.stop()


def rule_file(tmp_path: Path, *rules: AlertRule) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": [
        {"name": r.name, "signal": r.signal, "op": r.op, "threshold": r.threshold, "for": r.for_,
         "window": r.window, "severity": r.severity} for r in rules]}), encoding="utf-8")
    return path


def spawn(srv: Server, agent: str, mode: str, rules: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, str(SCRIPT), srv.url, agent, mode, str(rules)], env=env, cwd=ROOT,
                            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "idle", proc.stderr.read() if proc.stderr else ""
    return proc


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    return out


def hold(seconds: float, check: Any) -> None:
    """``check()`` must hold all along (polled) for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check()
        time.sleep(0.1)


def never_alerted(srv: Server, agent: str) -> None:
    data = state(srv)
    assert data["alerts"] == {"firing": [], "resolved": []}, data["alerts"]
    assert not [e for e in data["events"] if e.get("agent") == agent and e["state"] in ("unhealthy", "firing")]


@pytest.mark.timeout(120)
def test_a_clean_exit_shows_stopped_raises_no_alert_and_is_let_go_after_the_grace_period(
        serve: Server, tmp_path: Path) -> None:
    proc = spawn(serve, "finisher", "shutdown", rule_file(tmp_path, AGENT_DOWN))
    try:
        # Waiting for work, well past the heartbeat timeout: idle (its process reports), not down.
        assert wait_for(lambda: row(serve, "finisher").get("lifecycle") == "idle", timeout=15)

        def idle() -> None:
            r = row(serve, "finisher")
            assert (r["lifecycle"], r["state"], r["up"]) == ("idle", "healthy", True), r
            never_alerted(serve, "finisher")

        hold(1.5 * TIMEOUT, idle)
        out = finish(proc)
    finally:
        proc.kill()
    assert "shutdown ok" in out and "done" in out
    # It said so on its way out: stopped, not unhealthy, not counted against the swarm, nothing fires
    # (neither its own AgentDown rule nor serve's).
    assert wait_for(lambda: row(serve, "finisher").get("lifecycle") == "stopped", timeout=10)

    def stopped() -> None:
        data = state(serve)
        (r,) = data["agents"]
        assert (r["name"], r["state"], r["lifecycle"], r["up"], r["source"]) == (
            "finisher", "stopped", "stopped", False, "reported"), r
        assert data["swarm"]["state"] == "healthy" and data["swarm"]["down"] == 0
        assert data["swarm"]["counts"] == {"stopped": 1}
        never_alerted(serve, "finisher")

    hold(1.5 * TIMEOUT, stopped)  # past the heartbeat timeout: still stopped, never down
    health_events = [e for e in state(serve)["events"] if e["kind"] == "health" and e["agent"] == "finisher"]
    assert health_events and health_events[0]["state"] == "stopped"
    assert serve.evaluator.loop.current.agents["finisher"].state == "stopped"  # serve's own judgement too
    # ... and after the grace period it is gone.
    assert wait_for(lambda: not state(serve)["agents"], timeout=GRACE + 10)
    assert wait_for(lambda: "finisher" not in serve.evaluator.loop.current.agents)  # the next tick


@pytest.mark.timeout(120)
def test_a_killed_process_is_down_within_the_heartbeat_timeout_and_fires(serve: Server, tmp_path: Path) -> None:
    proc = spawn(serve, "victim", "hang", rule_file(tmp_path, AGENT_DOWN))
    try:
        assert wait_for(lambda: row(serve, "victim").get("lifecycle") == "idle", timeout=15)
        # serve has seen its export cadence (several exports)
        assert wait_for(lambda: any(i.metric_batches >= 4 for i in serve.store.instances.values()), timeout=15)
        assert row(serve, "victim")["state"] == "healthy"
        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert wait_for(lambda: row(serve, "victim").get("lifecycle") == "down", timeout=TIMEOUT + 10)
    took = time.monotonic() - killed
    assert took <= TIMEOUT + 1.5, f"down {took:.2f}s after SIGKILL (heartbeat timeout {TIMEOUT}s)"
    r = row(serve, "victim")
    assert (r["state"], r["up"]) == ("unhealthy", False)
    assert "stopped reporting" in r["reasons"][0] and "without saying so" in r["reasons"][0]
    # AgentDown fires (after its rule's `for`), evaluated by serve: the process can no longer say anything.
    assert wait_for(lambda: state(serve)["alerts"]["firing"], timeout=10)
    (alert,) = state(serve)["alerts"]["firing"]
    assert (alert["rule"], alert["agent"], alert["severity"], alert["where"]) == (
        "AgentDown", "victim", "critical", "serve")


@pytest.mark.timeout(120)
def test_a_framework_example_that_finishes_is_stopped_not_flapping(serve: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = serve.url
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "frameworks" / "langgraph.py")], env=env,
                          capture_output=True, text=True, timeout=90, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert wait_for(lambda: row(serve, "weather").get("lifecycle") == "stopped", timeout=10)

    def stopped() -> None:
        r = row(serve, "weather")
        assert (r["state"], r["lifecycle"]) == ("stopped", "stopped"), r
        never_alerted(serve, "weather")

    hold(1.5 * TIMEOUT, stopped)


@pytest.mark.timeout(120)
def test_an_alert_evaluated_in_the_process_and_in_serve_is_one_row_and_counted_once(
        tmp_path: Path) -> None:
    rule = AlertRule("Failing", "error_rate", ">", 0.5, window=5.0, severity="critical")
    server = start_in_process(0, policy=HealthPolicy(heartbeat_timeout=30, cpu_limit=None), rules=[rule],
                              health_interval=0.05)
    try:
        proc = spawn(server, "flaky", "fail", rule_file(tmp_path, rule))
        try:
            # both evaluators fire: the process (its record arrives) and serve (on the received spans)
            def both_or_split() -> bool:
                firing = state(server)["alerts"]["firing"]
                return len(firing) > 1 or any(a["where"] == "both" for a in firing)

            assert wait_for(both_or_split, timeout=15)
            firing = state(server)["alerts"]["firing"]
            assert len(firing) == 1, firing
            (alert,) = firing
            assert (alert["rule"], alert["agent"], alert["where"]) == ("Failing", "flaky", "both")
            assert sorted(s.split("/")[0] for s in alert["sources"]) == ["lifecycle-child", "serve"]
            # the window empties: both resolve, one resolved row
            assert wait_for(lambda: not state(server)["alerts"]["firing"], timeout=20)
            resolved = state(server)["alerts"]["resolved"]
            assert [(a["rule"], a["agent"], a["where"]) for a in resolved] == [("Failing", "flaky", "both")]
            finish(proc)
        finally:
            proc.kill()
        recording = tmp_path / "run.jsonl"
        recording.write_bytes(server.export_bytes())
    finally:
        server.stop()
    rec = read_recording(recording)
    assert sorted({a.labels["source"].split("/")[0] for a in rec.alerts}) == ["lifecycle-child", "serve"]
    assert len([a for a in rec.alerts if a.state == "firing"]) == 2  # one per evaluator on the wire ...
    (summary,) = analyze(rec.spans, rec.alerts, rec.metrics).alerts
    assert (summary.rule, summary.agent, summary.fired, summary.last_state) == ("Failing", "flaky", 1, "resolved")
    assert len(summary.sources) == 2  # ... one alert, fired once, evaluated in both
