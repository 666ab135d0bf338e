"""A report built from ``agentmon serve`` and one built from the recording that serve made of the
same run list the same findings with the same counts.

``examples/failing_swarm.py`` exports to a real ``agentmon serve`` that records (``--record``) and
evaluates the example's alert rules itself too, so every alert is seen by two evaluators (the
process and serve) and arrives both as a log event and as a gauge. Serve's ``/api/export`` must
give the report what the recording gives it: the same spans, and alerts that count the same
episodes, from the same first firing, with the same summary.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from otel_agentmon import cli
from otel_agentmon._alerts.rules import load_rules
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
