"""Alert rules: the inactive -> pending -> firing -> resolved state machine (deterministic, on
explicit clock values), rule validation, rule files, and alerts end to end through a Monitor."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

import otel_agentmon as agentmon
from otel_agentmon import AlertEvent, AlertRule, CallbackNotifier, load_rules
from otel_agentmon._alerts.engine import AlertEngine
from otel_agentmon._alerts.rules import parse_duration
from otel_agentmon.testing import Capture, capture
from tests.support.polling import wait_for

EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "examples" / "alert_rules.yaml"


class Signals:  # a fake signal reader: values[(rule, agent)], or values[rule] for every agent

    def __init__(self) -> None:
        self.values: dict[object, float | None] = {}

    def __call__(self, rule: AlertRule, agent: str | None) -> float | None:
        return self.values.get((rule.name, agent), self.values.get(rule.name))


def steps(engine: AlertEngine, read: Signals, *values: tuple[float, float | None]) -> list[list[tuple[str, str]]]:
    """Evaluate at each (now, value); return each tick's (previous, state) transitions."""
    out: list[list[tuple[str, str]]] = []
    for now, value in values:
        read.values["r"] = value
        out.append([(e.previous, e.state) for e in engine.evaluate(["a"], read, now)])
    return out


# --- the state machine ---------------------------------------------------------------------------


@pytest.mark.timeout(5)
def test_pending_then_firing_after_for_then_resolved() -> None:
    engine, read = AlertEngine([AlertRule("r", "error_rate", ">", 0.5, for_=2.0)]), Signals()
    assert steps(engine, read, (0, 0.1), (10, 0.9), (11, 0.9), (11.99, 0.9), (12, 0.9), (13, 0.9), (14, 0.1),
                 (15, 0.1)) == [
        [], [("inactive", "pending")], [], [], [("pending", "firing")], [], [("firing", "resolved")], []]
    assert engine.states() == {("r", "a"): "inactive"}


@pytest.mark.timeout(5)
def test_pending_that_clears_early_goes_back_to_inactive() -> None:
    engine, read = AlertEngine([AlertRule("r", "error_rate", ">", 0.5, for_=5.0)]), Signals()
    read.values["r"] = 0.9
    (pending,) = engine.evaluate(["a"], read, 0.0)
    assert (pending.state, pending.agent, pending.value) == ("pending", "a", 0.9) and pending.active_since
    read.values["r"] = 0.2
    (cleared,) = engine.evaluate(["a"], read, 1.0)
    assert (cleared.previous, cleared.state, cleared.active_since) == ("pending", "inactive", None)
    # The for_ clock restarts: 4 s after a new start is still pending.
    assert steps(engine, read, (2, 0.9), (6, 0.9), (7, 0.9)) == [[("inactive", "pending")], [], [("pending", "firing")]]


@pytest.mark.timeout(5)
def test_for_zero_fires_at_once_and_events_carry_the_start_time() -> None:
    engine, read = AlertEngine([AlertRule("r", "stuck_tasks", ">", 0)]), Signals()
    read.values["r"] = 2.0
    (firing,) = engine.evaluate(["a"], read, 0.0)
    assert (firing.previous, firing.state, firing.value) == ("inactive", "firing", 2.0)
    assert engine.firing() == [(engine.rules[0], "a", 2.0)]
    read.values["r"] = 0.0
    (resolved,) = engine.evaluate(["a"], read, 1.0)
    assert resolved.state == "resolved" and resolved.active_since == firing.active_since
    assert engine.firing() == []
    read.values["r"] = 1.0  # resolved -> firing again
    assert [e.previous for e in engine.evaluate(["a"], read, 2.0)] == ["resolved"]


@pytest.mark.timeout(5)
def test_hysteresis_keeps_firing_between_resolve_and_threshold() -> None:
    engine, read = AlertEngine([AlertRule("r", "error_rate", ">", 0.5, resolve=0.2)]), Signals()
    assert steps(engine, read, (0, 0.6), (1, 0.4), (2, 0.21), (3, 0.2), (4, 0.4), (5, 0.51)) == [
        [("inactive", "firing")], [], [], [("firing", "resolved")], [], [("inactive", "firing")]]


@pytest.mark.timeout(5)
def test_less_than_ops_with_hysteresis() -> None:
    engine, read = AlertEngine([AlertRule("r", "throughput", "<", 1.0, resolve=2.0)]), Signals()
    assert steps(engine, read, (0, 1.0), (1, 0.5), (2, 1.5), (3, 2.0)) == [
        [], [("inactive", "firing")], [], [("firing", "resolved")]]
    engine, read = AlertEngine([AlertRule("r", "up", "<=", 0)]), Signals()
    assert steps(engine, read, (0, 1.0), (1, 0.0), (2, 1.0)) == [[], [("inactive", "firing")], [("firing", "resolved")]]


@pytest.mark.timeout(5)
def test_missing_value_never_fires_and_resolves_a_firing_alert() -> None:
    engine, read = AlertEngine([AlertRule("r", "latency_p95", ">", 1.0, for_=1.0)]), Signals()
    assert steps(engine, read, (0, None), (1, 2.0), (1.5, None), (2, 2.0), (3, 2.0), (4, None)) == [
        [], [("inactive", "pending")], [("pending", "inactive")], [("inactive", "pending")],
        [("pending", "firing")], [("firing", "resolved")]]


@pytest.mark.timeout(5)
def test_one_instance_per_agent_named_agent_and_process_signals() -> None:
    rules = [AlertRule("each", "in_flight", ">", 0), AlertRule("only_b", "in_flight", ">", 0, agent="b"),
             AlertRule("cpu", "cpu", ">", 0.5), AlertRule("mem", "memory", ">", 100)]
    engine, read = AlertEngine(rules), Signals()
    read.values.update({("each", "a"): 1, ("each", "b"): 0, ("only_b", "b"): 3, "cpu": 0.9, "mem": 50})
    events = engine.evaluate(["a", "b"], read, 0.0)
    assert {(e.rule.name, e.agent, e.state) for e in events} == {
        ("each", "a", "firing"), ("only_b", "b", "firing"), ("cpu", None, "firing")}
    assert set(engine.states()) == {("each", "a"), ("each", "b"), ("only_b", "b"), ("cpu", None), ("mem", None)}
    cpu = next(e for e in events if e.rule.name == "cpu")
    assert "agent" not in cpu.labels and cpu.labels == {"alertname": "cpu", "severity": "warning"}
    # An agent-specific rule evaluates its agent even when that agent has not reported yet.
    assert [e.agent for e in AlertEngine([rules[1]]).evaluate([], read, 0.0)] == ["b"]


# --- rule validation -----------------------------------------------------------------------------


@pytest.mark.timeout(5)
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"signal": "bogus"}, "unknown signal"),
    ({"op": "=="}, "op must be"),
    ({"name": "has space"}, "name"),
    ({"name": ""}, "name"),
    ({"for_": -1.0}, "'for'"),
    ({"window": 0.0}, "'window'"),
    ({"op": ">", "threshold": 0.5, "resolve": 0.6}, "resolve"),
    ({"op": "<", "threshold": 1.0, "resolve": 0.5}, "resolve"),
])
def test_invalid_rules_are_rejected(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"name": "r", "signal": "error_rate", "op": ">", "threshold": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        AlertRule(**args)


@pytest.mark.timeout(5)
def test_resolve_at_the_threshold_is_allowed_and_duplicates_are_rejected() -> None:
    AlertRule("r", "error_rate", ">", 0.5, resolve=0.5)
    AlertRule("r", "up", "<", 1, resolve=1)
    with pytest.raises(ValueError, match="unique"):
        AlertEngine([AlertRule("r", "up", "<", 1), AlertRule("r", "cpu", ">", 0.9)])


@pytest.mark.timeout(10)
@pytest.mark.usefixtures("fresh_log_limiter")
def test_configure_keeps_the_first_of_duplicate_rules_and_skips_non_rules_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    cap, close = capture(alert_rules=[AlertRule("r", "up", "<", 1), AlertRule("r", "cpu", ">", 0.9), "AgentDown",
                                      AlertRule("s", "cpu", ">", 0.9)])
    try:
        health = cap.monitor._health
        assert health is not None and [(r.name, r.signal) for r in health.engine.rules] == [("r", "up"), ("s", "cpu")]
    finally:
        close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "otel_agentmon" and r.levelno == logging.WARNING]
    assert warnings == ["alert_rules: skipping 2 alert rule(s): 'r' (name already used), str (not an AlertRule); "
                        "expected a list of otel_agentmon.AlertRule with unique names"]


# --- rule files ----------------------------------------------------------------------------------


@pytest.mark.timeout(5)
def test_parse_duration() -> None:
    assert [parse_duration(v) for v in ("500ms", "5s", "2m", "1h", "1.5s", " 7 ", 3, 0.25)] == [
        0.5, 5.0, 120.0, 3600.0, 1.5, 7.0, 3.0, 0.25]
    for bad in ("soon", "5d", "-1s", "", "1 s 2", True):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


@pytest.mark.timeout(5)
def test_example_rule_file_loads() -> None:
    raw = yaml.safe_load(EXAMPLE_RULES.read_text(encoding="utf-8"))["rules"]
    rules = load_rules(EXAMPLE_RULES)
    assert [r.name for r in rules] == [d["name"] for d in raw]
    assert {"AgentDown", "AgentErrorRateHigh", "TaskStuck"} <= {r.name for r in rules}
    for rule, d in zip(rules, raw, strict=True):
        assert (rule.signal, rule.op, rule.threshold) == (d["signal"], d["op"], float(d["threshold"]))
        assert rule.for_ == parse_duration(d.get("for", 0)) and rule.window == parse_duration(d.get("window", "1m"))
        assert rule.resolve == d.get("resolve") and rule.severity == d.get("severity", "warning")
        assert dict(rule.labels) == d.get("labels", {}) and dict(rule.annotations) == d.get("annotations", {})
        assert rule.agent == "*"
    err = next(r for r in rules if r.name == "AgentErrorRateHigh")
    assert err.resolve is not None and err.resolve < err.threshold and err.for_ == 1.0
    AlertEngine(rules)  # names are unique


RULE = "  - name: R\n    signal: error_rate\n    op: '>'\n"


@pytest.mark.timeout(5)
@pytest.mark.parametrize(("text", "match"), [
    ("rules:\n" + RULE + "    threshold: 1\n    colour: red\n", "rules.yaml:6: rule 'R': unknown key 'colour'"),
    ("rules:\n" + RULE, "missing 'threshold'"),
    ("rules:\n" + RULE + "    threshold: 1\n    for: soon\n", "not a duration: 'soon'"),
    ("rules:\n" + RULE + "    threshold: 1\n    window: 10x\n", "not a duration"),
    ("rules:\n" + RULE + "    threshold: 1\n    labels: [a, b]\n", "labels must be a mapping"),
    ("rules:\n  - name: R\n    signal: nope\n    threshold: 1\n", "unknown signal 'nope'"),
    ("rules: {}\n", "'rules' list"),
    ("", "'rules' list"),
    ("rules:\n" + RULE + "    threshold: 1\n  - AgentDown\n", "rule"),  # a non-mapping entry
], ids=["unknown-key", "missing-threshold", "bad-for", "bad-window", "bad-labels", "bad-signal", "rules-not-list",
        "empty-file", "non-mapping-entry"])
def test_bad_rule_files_raise_value_error_naming_the_problem(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        load_rules(path)


@pytest.mark.timeout(10)
def test_rule_file_path_configures_the_monitor() -> None:
    cap, close = capture(alert_rules=str(EXAMPLE_RULES), health_interval=0.05)
    try:
        cap.monitor.heartbeat("a")
        cap.monitor.evaluate_health()
        assert {name for name, _, _, _ in cap.monitor._health.alert_states()} >= {"AgentDown", "TaskStuck"}  # type: ignore[union-attr]
    finally:
        close()


CONFIGURE_WITH_RULES = """
import json, logging, sys, otel_agentmon as am
from opentelemetry import trace
logging.basicConfig(level=logging.WARNING)
m = am.configure(alert_rules=sys.argv[1], traces_exporter="none", metrics_exporter="none", logs_exporter="none",
                 system_metrics="off")
print(json.dumps({"provider": type(trace.get_tracer_provider()).__name__,
                  "rules": [r.name for r in m._health.engine.rules]}))
"""


@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_configure_with_a_bad_rule_file_warns_once_and_runs_the_valid_rules(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n" + RULE + "  - name: Good\n    signal: up\n    op: '<'\n    threshold: 1\n"
                   "  - name: Bad2\n    signal: nope\n    threshold: 1\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", CONFIGURE_WITH_RULES, str(bad)], capture_output=True, text=True,
                          timeout=50, check=True)
    result = json.loads(proc.stdout)
    assert result == {"provider": "TracerProvider", "rules": ["Good"]}
    assert proc.stderr.count("WARNING:otel_agentmon") == 1, proc.stderr
    assert f"alert_rules='{bad}': 2 problem(s) in the alert rule file; running the 1 valid rule(s)" in proc.stderr
    assert f"{bad}:2: rule 'R': missing 'threshold'" in proc.stderr
    assert f"{bad}:10: rule 'Bad2': unknown signal 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- end to end through a Monitor -----------------------------------------------------------------






def run_task(agent: str, fail: bool = False) -> None:
    with contextlib.suppress(RuntimeError), agentmon.task("work", agent=agent):
        if fail:
            raise RuntimeError("failed")


def alert_logs(cap: Capture) -> list[dict[str, Any]]:
    return [dict(r.log_record.attributes or {}) | {"body": r.log_record.body} for r in cap.logs()
            if r.log_record.event_name == "agentmon.alert"]


def firing_metric(cap: Capture) -> dict[tuple[object, object], Any]:
    return {((p.attributes or {}).get("agentmon.alert.rule"), (p.attributes or {}).get("gen_ai.agent.name")): p.value
            for p in cap.points("agentmon.alert.firing")}


@pytest.mark.timeout(20)
def test_error_rate_alert_fires_after_its_for_and_resolves_with_hysteresis(
        health_capture: Callable[..., Capture]) -> None:
    rule = AlertRule("ErrorRateHigh", "error_rate", ">", 0.5, for_=0.3, resolve=0.25, window=5,
                     labels={"team": "agents"}, annotations={"summary": "{agent} fails {value}"})
    got: list[tuple[float, AlertEvent]] = []
    cap = health_capture(alert_rules=[rule], notifiers=[CallbackNotifier(lambda e: got.append((time.monotonic(), e)))])
    started = time.monotonic()
    for _ in range(4):
        run_task("a", fail=True)
    assert wait_for(lambda: got)
    at, firing = got[0]
    assert (firing.state, firing.agent, firing.value) == ("firing", "a", 1.0)
    assert at - started >= rule.for_  # never before its for (how soon after: benchmarks/bench_health.py)
    assert firing_metric(cap) == {("ErrorRateHigh", "a"): 1}
    assert [(r.name, agent) for r, agent, _ in cap.monitor.health().firing] == [("ErrorRateHigh", "a")]
    for _ in range(4):  # 4 of 8 failed: below the threshold, above resolve -> still firing
        run_task("a")
    for _ in range(3):
        cap.monitor.evaluate_health()
    assert [e.state for _, e in got] == ["firing"]
    for _ in range(12):  # 4 of 20 = 20 % <= 25 %
        run_task("a")
    assert wait_for(lambda: len(got) == 2)
    assert [e.state for _, e in got] == ["firing", "resolved"]
    assert got[1][1].value is not None and got[1][1].value <= 0.25
    assert firing_metric(cap) == {("ErrorRateHigh", "a"): 0}
    logs = alert_logs(cap)
    assert [(r["agentmon.alert.previous_state"], r["agentmon.alert.state"]) for r in logs] == [
        ("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]
    fired = logs[1]
    assert fired["agentmon.alert.rule"] == "ErrorRateHigh" and fired["agentmon.alert.value"] == 1.0
    assert fired["agentmon.alert.threshold"] == 0.5 and fired["agentmon.alert.signal"] == "error_rate"
    assert fired["agentmon.alert.severity"] == "warning" and fired["gen_ai.agent.name"] == "a"
    assert fired["agentmon.alert.label.team"] == "agents"
    assert fired["body"] == "alert ErrorRateHigh firing: a fails 1"


@pytest.mark.timeout(20)
def test_forget_agent_stops_tracking_it(health_capture: Callable[..., Capture]) -> None:
    cap = health_capture(health_policy=agentmon.HealthPolicy(heartbeat_timeout=0.5, cpu_limit=None,
                                                             stopped_grace=0.5))
    cap.monitor.heartbeat("retired")
    cap.monitor.heartbeat("worker")
    assert wait_for(lambda: (h := cap.monitor.health().agents.get("retired")) is not None and not h.up)
    cap.monitor.forget_agent("retired")
    cap.monitor.heartbeat("worker")
    health = cap.monitor.evaluate_health()
    # Retired on purpose: shown stopped (not down, not counted against the swarm) ...
    retired = health.agents["retired"]
    assert (retired.state, retired.lifecycle, retired.up) == ("stopped", "stopped", False)
    assert health.state == "healthy"
    stopped = {(p.attributes or {}).get("gen_ai.agent.name") for p in cap.points("agentmon.agent.health")
               if (p.attributes or {}).get("agentmon.health.state") == "stopped" and p.value == 1}
    assert stopped == {"retired"}
    # ... for the grace period, then let go.
    deadline = time.monotonic() + 10
    while "retired" in cap.monitor.evaluate_health().agents and time.monotonic() < deadline:
        cap.monitor.heartbeat("worker")
        time.sleep(0.05)
    health = cap.monitor.evaluate_health()
    assert "retired" not in health.agents and health.state == "healthy"
    for metric in ("agentmon.agent.up", "agentmon.agent.health"):
        assert {(p.attributes or {}).get("gen_ai.agent.name") for p in cap.points(metric)} == {"worker"}


@pytest.mark.timeout(20)
def test_agent_down_alert_resolves_when_the_agent_is_forgotten(health_capture: Callable[..., Capture]) -> None:
    got: list[AlertEvent] = []
    cap = health_capture(alert_rules=[AlertRule("AgentDown", "up", "<", 1)], notifiers=[CallbackNotifier(got.append)])
    cap.monitor.heartbeat("retired")
    assert wait_for(lambda: [e.state for e in got] == ["firing"])
    cap.monitor.forget_agent("retired")  # it retired on purpose: it is no longer down
    for _ in range(3):
        cap.monitor.evaluate_health()
    assert [(r.name, a) for r, a, _ in cap.monitor.health().firing] == []
    assert firing_metric(cap).get(("AgentDown", "retired"), 0) == 0
    assert wait_for(lambda: [e.state for e in got] == ["firing", "resolved"]), [e.state for e in got]


class _BlockFirstFiring(LogRecordProcessor):
    """Holds the first thread that emits a firing alert record, as a slow log pipeline would."""

    def __init__(self) -> None:
        self.entered, self.release, self._done = threading.Event(), threading.Event(), False

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        attrs = log_record.log_record.attributes or {}
        if not self._done and attrs.get("agentmon.alert.state") == "firing":
            self._done = True
            self.entered.set()
            self.release.wait(5)

    def shutdown(self) -> None:
        self.release.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@pytest.mark.timeout(20)
def test_concurrent_evaluations_deliver_transitions_in_order(health_capture: Callable[..., Capture]) -> None:
    got: list[AlertEvent] = []
    # The loop's own tick is far away: only the two evaluate_health() calls below run.
    cap = health_capture(alert_rules=[AlertRule("Busy", "in_flight", ">", 0)], notifiers=[CallbackNotifier(got.append)],
               health_interval=60)
    blocker = _BlockFirstFiring()
    cap.monitor.logger_provider.add_log_record_processor(blocker)  # type: ignore[union-attr]
    task = agentmon.task("work", agent="a")
    task.__enter__()
    first = threading.Thread(target=cap.monitor.evaluate_health)  # sees the task running: firing
    first.start()
    assert blocker.entered.wait(5)
    task.__exit__(None, None, None)
    second = threading.Thread(target=cap.monitor.evaluate_health)  # sees it ended: resolved
    second.start()
    second.join(1.0)  # finishes at once, unless ticks are serialized (then it waits for the first)
    blocker.release.set()
    first.join(5)
    second.join(5)
    assert wait_for(lambda: len(got) >= 2)
    assert [e.state for e in got] == ["firing", "resolved"], "notifiers got the transitions out of order"
    assert cap.monitor.health().firing == ()
