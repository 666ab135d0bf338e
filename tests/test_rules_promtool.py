"""One definition, two evaluators: the exported Prometheus rules pass ``promtool check rules``,
and a ``promtool test rules`` unit test shows every exported rule firing on synthetic series.

promtool comes from Debian's ``prometheus`` package, which .ci/run installs; a missing promtool
fails these tests rather than skipping them.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_agentmon import AlertRule, load_rules, to_prometheus
from otel_agentmon.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
RULE_FILE = ROOT / "examples" / "alert_rules.yaml"
AGENT = "a1"

# Extra rules so every signal's PromQL is exercised, in both directions.
EXTRA = [
    AlertRule("LowThroughput", "throughput", "<", 0.5, window=300, for_=60),
    AlertRule("BusyAgent", "in_flight", ">", 3),
    AlertRule("OldTask", "oldest_task_age", ">", 120, agent=AGENT),
    AlertRule("Unhealthy", "unhealthy", ">", 0, for_=30),
    AlertRule("P50", "latency_p50", ">", 1, window=600),
    AlertRule("P99", "latency_p99", ">", 2, window=120),
    AlertRule("CpuHigh", "cpu", ">", 0.9, for_=120),
]


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is required (Debian package 'prometheus'; .ci/run installs it)"
    return path


def _interval(rule: AlertRule) -> int:
    """Sample often enough that a rate() window holds several samples (as a real scrape would)."""
    return max(1, min(60, int(rule.window // 5)))


def _series(rule: AlertRule) -> list[dict[str, str]]:
    """Input series (240 samples at ``_interval``) that make ``rule`` hold."""
    interval = _interval(rule)
    up = rule.op in (">", ">=")
    t = rule.threshold
    agent = f'gen_ai_agent_name="{AGENT}"'
    gauge = f"{t * 2 + 1:g}x240" if up else f"{min(0.0, t - 1):g}x240"
    per_step = (t * 2 + 1) * interval if up else 0  # counter increments per sample
    if rule.signal in ("throughput", "error_rate"):
        errors = f"0+{max(per_step, 1):g}x240" if rule.signal == "error_rate" else f"0+{per_step:g}x240"
        return [{"series": f'agentmon_tasks_completed_total{{{agent},agentmon_task_outcome="error"}}',
                 "values": errors},
                {"series": f'agentmon_tasks_completed_total{{{agent},agentmon_task_outcome="success"}}',
                 "values": "0+0x240"}]
    if rule.signal == "tokens":
        step = math.ceil((t * 2 + 1) * interval / rule.window)
        return [{"series": f"agentmon_task_token_usage_sum{{{agent}}}", "values": f"0+{step}x240"}]
    if rule.signal.startswith("latency_"):
        low, high = (t, t * 4) if up else (t / 4, t)
        return [{"series": f'agentmon_task_duration_seconds_bucket{{{agent},le="{le:g}"}}', "values": values}
                for le, values in ((low, "0+0x240"), (high, "0+10x240"))] + [
            {"series": f'agentmon_task_duration_seconds_bucket{{{agent},le="+Inf"}}', "values": "0+10x240"}]
    names = {"up": "agentmon_agent_up", "stuck_tasks": "agentmon_tasks_stuck", "in_flight": "agentmon_tasks_in_flight",
             "oldest_task_age": "agentmon_task_oldest_in_flight_age_seconds", "cpu": "process_cpu_utilization_ratio",
             "memory": "process_memory_usage_bytes"}
    if rule.signal == "unhealthy":
        return [{"series": f'agentmon_agent_health{{{agent},agentmon_health_state="unhealthy"}}', "values": gauge}]
    if rule.signal in ("cpu", "memory"):
        return [{"series": f"{names[rule.signal]}", "values": gauge}]
    return [{"series": f"{names[rule.signal]}{{{agent}}}", "values": gauge}]


def _expected_labels(rule: AlertRule) -> dict[str, str]:
    labels = {"severity": rule.severity, **rule.labels}
    if rule.signal not in ("cpu", "memory"):
        labels["gen_ai_agent_name"] = AGENT
    if rule.signal == "unhealthy":
        labels["agentmon_health_state"] = "unhealthy"
    return labels


def test_exported_rules_pass_promtool_check(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    assert cli_main(["rules", "export", str(RULE_FILE), "-o", str(out)]) == 0
    proc = subprocess.run([promtool(), "check", "rules", str(out)], capture_output=True, text=True, check=False,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(load_rules(RULE_FILE))} rules found" in proc.stdout


def test_every_exported_rule_fires_on_synthetic_series_in_promtool(tmp_path: Path) -> None:
    # Annotations render $value, which a unit test cannot predict; labels and firing are the point.
    rules = [dataclasses.replace(r, annotations={}) for r in [*load_rules(RULE_FILE), *EXTRA]]
    (tmp_path / "rules.yml").write_text(to_prometheus(rules), encoding="utf-8")
    tests: list[dict[str, Any]] = []
    for rule in rules:
        interval = _interval(rule)
        eval_s = (math.ceil((rule.for_ + rule.window) / interval) + 5) * interval
        tests.append({
            "interval": f"{interval}s",
            "input_series": _series(rule),
            "alert_rule_test": [{"eval_time": f"{eval_s}s", "alertname": rule.name,
                                 "exp_alerts": [{"exp_labels": _expected_labels(rule)}]}],
        })
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1s",
                                                         "tests": tests}),
                                        encoding="utf-8")
    proc = subprocess.run([promtool(), "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_cli_check_reports_rule_count_and_rejects_a_broken_file(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["rules", "check", str(RULE_FILE)]) == 0
    assert f"{len(load_rules(RULE_FILE))} rules OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: X\n    signal: nope\n    threshold: 1\n", encoding="utf-8")
    assert cli_main(["rules", "export", str(bad)]) == 1
    assert "unknown signal" in capsys.readouterr().err


def _health(agent: str, instance: str, state: str, values: str) -> dict[str, str]:
    return {"series": f'agentmon_agent_health{{gen_ai_agent_name="{agent}",instance="{instance}",'
                      f'agentmon_health_state="{state}"}}', "values": values}


def _up(agent: str, instance: str, values: str) -> dict[str, str]:
    return {"series": f'agentmon_agent_up{{gen_ai_agent_name="{agent}",instance="{instance}"}}', "values": values}


def _process(agent: str, instance: str, up: str, stopped: str) -> list[dict[str, str]]:
    """One process's series of one agent as the Collector's prometheus exporter serves them (15 s
    scrapes): ``up`` and the stopped state (1/0); ``stale`` where the exporter dropped the series."""
    return [_up(agent, instance, up), _health(agent, instance, "stopped", stopped)]


def _expect(at: str, agent: str | None, instance: str = "i1") -> dict[str, Any]:
    exp = [{"exp_labels": {"severity": "critical", "gen_ai_agent_name": agent, "instance": instance}}] if agent else []
    return {"eval_time": at, "alertname": "AgentDown", "exp_alerts": exp}


# 15 s scrapes: 20 samples = 5 min, 40 = 10 min (the Collector's metric_expiration in our configs).
LIFECYCLE_CASES: dict[str, tuple[list[dict[str, str]], list[dict[str, Any]]]] = {
    # shutdown(): the last export says up 0 and stopped 1; the exporter serves it 10 min, then drops it
    "clean exit": (_process("a1", "i1", "1x20 0x40 stale", "0x20 1x40 stale"),
                   [_expect(t, None) for t in ("4m", "6m", "12m", "17m", "30m", "70m", "3h")]),
    # SIGKILL: the last value (up 1) is served until it expires at 15 min; 2 min later it is down,
    # for an hour after its last sample
    "vanished": (_process("a1", "i1", "1x60 stale", "0x60 stale"),
                 [_expect("14m", None), _expect("16m", None), _expect("18m", "a1"), _expect("60m", "a1"),
                  _expect("80m", None)]),
    # killed, and restarted (a new service.instance.id) before anyone noticed: the agent is up
    "restarted": (_process("a1", "i1", "1x60 stale", "0x60 stale") + _process("a1", "i2", "_x50 1x200", "_x50 0x200"),
                  [_expect("20m", None), _expect("40m", None)]),
    # the process says its agent is down (it missed heartbeats it promised)
    "reported down": (_process("a1", "i1", "1x10 0x100", "0x110"), [_expect("2m", None), _expect("5m", "a1")]),
    # retired (forget_agent), working again, then killed: the last word is not "stopped"
    "retired, back, killed": (_process("a1", "i1", "1x10 0x10 1x40 stale", "0x10 1x10 0x40 stale"),
                              [_expect("4m", None), _expect("10m", None), _expect("18m", "a1")]),
}


@pytest.mark.parametrize("case", LIFECYCLE_CASES)
def test_exported_agent_down_pages_for_a_vanished_process_never_for_a_clean_exit(tmp_path: Path, case: str) -> None:
    (rule,) = [r for r in load_rules(RULE_FILE) if r.name == "AgentDown"]
    (tmp_path / "rules.yml").write_text(to_prometheus([dataclasses.replace(rule, annotations={})]), encoding="utf-8")
    series, checks = LIFECYCLE_CASES[case]
    tests = [{"interval": "15s", "input_series": series, "alert_rule_test": checks}]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "15s",
                                                         "tests": tests}), encoding="utf-8")
    proc = subprocess.run([promtool(), "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
