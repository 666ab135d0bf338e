"""``agentmon report`` from the live sources: a running ``agentmon serve`` and a real Prometheus.

The regression example exports to them as a user's swarm would; the report must name the same
slowest agent, busiest tool and injected regression as from the recording, with evidence.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otel_agentmon import cli
from otel_agentmon._records.recording import read_recording
from otel_agentmon.serve import ServeConfig, Server
from tests.support.polling import wait_for
from tests.support.stack import Binaries, Stack, clean_env, wait_until

pytestmark = pytest.mark.subprocess
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "regression_swarm.py"


def run_example(recording: Path, endpoint: str, phase_s: float) -> None:
    env = clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(recording), "--phase-seconds", str(phase_s)],
                          env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr


def reviewer_tasks(recording: Path) -> int:
    return sum(1 for s in read_recording(recording).spans if s.kind == "task" and s.agent == "reviewer")


def assert_names_the_findings(text: str, promql: bool) -> None:
    assert "**slowest agent: `writer`**" in text
    assert "**busiest tool: `web_search`**" in text
    m = re.search(r"REGRESSION: tool 'db_query' median latency.*\n\s+- evidence: (.*)", text)
    assert m, text
    evidence = m.group(1)
    assert "baseline [" in evidence and "window [" in evidence
    assert float(re.search(r"; p=([0-9.e+-]+)", evidence).group(1)) < 0.01  # type: ignore[union-attr]
    if promql:
        assert "gen_ai_execute_tool_duration_seconds_bucket" in evidence
    else:
        assert re.search(r"traces `[0-9a-f]{32}`", evidence)
    # No false regression among the agents, task types and tools. Model latencies are left out of
    # this check: the example's LLM calls are 4-8 ms sleeps, which a loaded machine stretches for real.
    regressed = {key for dim, key in re.findall(r"REGRESSION: (\w+) '([\w-]+)'", text) if dim != "model"}
    assert regressed <= {"db_query", "reviewer", "review"}, regressed


def test_report_from_a_running_agentmon_serve(tmp_path: Path) -> None:
    recording = tmp_path / "run.jsonl"
    with Server(ServeConfig(port=0)) as server:
        run_example(recording, server.url, 1.5)
        expected = reviewer_tasks(recording)
        md = tmp_path / "report.md"

        def complete() -> bool:
            return cli.main(["report", "--from", server.url, "--markdown", str(md)]) == 0 and \
                md.read_text().count("`reviewer` |") == 1 and f"| `reviewer` | {expected} |" in md.read_text()

        assert wait_for(complete, timeout=15), f"serve's export never held all {expected} reviewer tasks"
    text = md.read_text()
    assert f"Source: agentmon serve at {server.url}" in text
    assert_names_the_findings(text, promql=False)


@pytest.mark.timeout(180)
def test_report_from_prometheus(binaries: Binaries, tmp_path: Path) -> None:
    with Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        jaeger = stack.jaeger()
        collector = stack.collector("otelcol-local", "local.yaml", jaeger=jaeger,
                                    env={"AGENTMON_SPANMETRICS_FLUSH": "1s"})
        prom = stack.prometheus([collector.metrics_target])
        recording = tmp_path / "run.jsonl"
        start = time.time()
        run_example(recording, collector.otlp_http, 4.0)
        expected = reviewer_tasks(recording)
        total = 'sum(agentmon_tasks_completed_total{job="regression-swarm", gen_ai_agent_name="reviewer"})'
        wait_until(lambda: [r for r in prom.query(total) if round(float(r["value"][1])) == expected], 30,
                   f"all {expected} reviewer tasks in Prometheus")
        time.sleep(1.0)  # one more scrape of the final values
        end = time.time()
        md, html = tmp_path / "report.md", tmp_path / "report.html"
        assert cli.main(["report", "--prometheus", prom.url, "--job", "regression-swarm", "--start", f"{start:.3f}",
                         "--end", f"{end:.3f}", "--markdown", str(md), "--html", str(html)]) == 0
    text = md.read_text()
    assert f"| `reviewer` | {expected} |" in text
    assert_names_the_findings(text, promql=True)
    # One research task in ten fails on its web_search call; Prometheus' counters show exactly those.
    spans = read_recording(recording).spans
    failed = sum(1 for s in spans if s.kind == "task" and s.agent == "researcher" and s.error is not None)
    tool_errors = sum(1 for s in spans if s.kind == "tool" and s.tool == "web_search" and s.error is not None)
    assert failed > 0 and re.search(rf"\| `researcher` \| \d+ \| {failed} \|", text), text
    assert re.search(rf"\| `web_search` \| \d+ \| {tool_errors} \|", text), text
    page = html.read_text()
    assert "<svg" in page and "<script" not in page.lower()
    assert os.path.getsize(html) > 0
