"""A report built from ``agentmon serve`` and one built from the recording that serve made of the
same run list the same findings with the same counts.

``examples/failing_swarm.py`` exports to a real ``agentmon serve`` that records (``--record``) and
evaluates the example's alert rules itself too, so every alert is seen by two evaluators (the
process and serve) and arrives both as a log event and as a gauge. Serve's ``/api/export`` must
give the report what the recording gives it: the same spans, and alerts that count the same
episodes, from the same first firing, with the same summary.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from otel_agentmon import cli
from otel_agentmon._alerts.rules import load_rules
from otel_agentmon._analytics.base import Window
from otel_agentmon._records.recording import parse_lines, read_recording
from otel_agentmon.analytics import summarize_alerts
from otel_agentmon.serve import ServeConfig, Server
from tests.support.polling import wait_for
from tests.support.stack import clean_env
from tests.test_report_otlp_file import sections

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "failing_swarm.py"
COMPARED = ("Findings", "Highlights", "Top optimisation opportunities", "Agents: performance and efficiency",
            "Tools", "Models", "Regressions", "Trends", "Bottlenecks (critical path)", "Alerts fired")
_LINK = re.compile(r"\[(`[0-9a-f]+`)\]\(http://[^)]+/traces/[0-9a-f]{32}\)")


@pytest.mark.subprocess
@pytest.mark.timeout(180)
def _firing(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/api/state", timeout=10) as response:
        state = json.loads(response.read())
    return [f"{a.get('rule')}:{a.get('agent')}" for a in state["alerts"]["firing"]]


def test_serve_and_its_recording_of_one_run_report_the_same_findings(tmp_path: Path) -> None:
    recording, from_url, from_file = tmp_path / "serve.jsonl", tmp_path / "url.md", tmp_path / "file.md"
    rules = load_rules(EXAMPLE.with_name("alert_rules.yaml"))
    with Server(ServeConfig(port=0, record=recording, rules=rules)) as server:
        env = clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": server.url})
        proc = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=120,
                              cwd=ROOT, check=False)
        assert proc.returncode == 0, proc.stderr
        started = int(re.search(r"done: (\d+) spans", proc.stdout).group(1))  # type: ignore[union-attr]
        assert wait_for(lambda: server.stats()["spans"] >= started, timeout=30), (server.stats(), started)
        # The run ended cleanly: once serve has taken in its last export (agents stopped), none of
        # its alerts is still firing; a report taken before that is a snapshot of an earlier moment.
        assert wait_for(lambda: not _firing(server.url), timeout=30), _firing(server.url)
        assert cli.main(["report", "--from", server.url, "--markdown", str(from_url), "--html",
                         str(tmp_path / "url.html")]) == 0
    assert cli.main(["report", "--from", str(recording), "--markdown", str(from_file)]) == 0
    url_text, file_text = from_url.read_text(), from_file.read_text()
    # Served reports link trace ids to the explorer; otherwise both say the same, word for word.
    assert _LINK.search(url_text) and f'href="{server.url}/traces/' in (tmp_path / "url.html").read_text()
    served = sections(_LINK.sub(r"\1", url_text), *COMPARED)
    assert served == sections(file_text, *COMPARED)
    findings = served["Findings"]
    # The 7 s hung task is a finding, and every alert of the run is counted once per episode.
    assert re.search(r"agent 'hanger': slowest task took 7\d{3} ms", findings), findings
    for rule, agent in (("AgentErrorRateHigh", "flaky"), ("TaskStuck", "hanger"), ("AgentDown", "doomed")):
        assert f"alert {rule} for agent '{agent}' fired 1x" in findings, (rule, findings)
        assert f"**{rule}** for `{agent}`" in served["Alerts fired"]
    # Single-tool tasks: "lookup is 100 % of the critical path" is not a finding.
    assert "critical-path time of the tasks" not in findings


def _post(url: str, body: Mapping[str, object]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def _kv(**attrs: str) -> list[dict[str, object]]:
    return [{"key": k.replace("__", "."), "value": {"stringValue": v}} for k, v in attrs.items()]


def test_an_alert_gauge_read_before_its_log_events_is_the_same_episode(tmp_path: Path) -> None:
    """The process's ``agentmon.alert.firing`` gauge can reach serve before the log records of the
    alert's transitions (metrics and logs are exported separately). Serve must date what the gauge
    says by the point's time, not by when it arrived, or the recording counts the episode twice
    (a firing after its own resolution) and the export misplaces its start."""
    now = time.time_ns()
    fired, seen, resolved = now - 10 * 10**9, now - 9 * 10**9, now - 8 * 10**9
    resource = {"attributes": _kv(service__name="svc", service__instance__id="abcdef0123456789")}
    rule = _kv(agentmon__alert__rule="Slow", agentmon__alert__severity="warning", gen_ai__agent__name="a")
    gauge = {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [{
        "name": "agentmon.alert.firing", "gauge": {"dataPoints": [
            {"attributes": rule, "timeUnixNano": str(seen), "asInt": "1"}]}}]}]}]}

    def event(state: str, at: int) -> dict[str, object]:
        return {"timeUnixNano": str(at), "eventName": "agentmon.alert", "body": {"stringValue": f"Slow {state}: slow"},
                "attributes": [*rule, *_kv(agentmon__alert__state=state)]}

    logs = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [
        event("firing", fired), event("resolved", resolved)]}]}]}
    recording = tmp_path / "serve.jsonl"
    with Server(ServeConfig(port=0, record=recording)) as server:
        _post(server.url + "/v1/metrics", gauge)
        _post(server.url + "/v1/logs", logs)
        exported = parse_lines(server.export_bytes().splitlines())
    for rec in (exported, read_recording(recording)):
        (summary,) = summarize_alerts(rec.alerts, Window(fired - 10**9, time.time_ns() + 60 * 10**9))
        assert (summary.fired, summary.last_state) == (1, "resolved"), rec.alerts
        assert abs(summary.first_fired_ns - fired) < 1000, rec.alerts  # serve keeps times as float seconds
