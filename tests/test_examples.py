"""The examples, run as a user runs them, against an independent OTLP/HTTP receiver.

These are the issue's acceptance bars: what arrives on the wire (span names, kinds, parents,
error status, metric names/units/buckets, resource, no content) and how the swarm behaves
when the endpoint is a closed port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_agentmon._names import semconv as sc
from tests.support.deadlines import within
from tests.support.receiver import OTLPReceiver, ReceivedSpan, closed_port

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_BUCKETS = {
    "gen_ai.invoke_agent.duration": [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6],
    "gen_ai.execute_tool.duration": [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                                     40.96, 81.92],
    "gen_ai.client.operation.duration": [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                                         20.48, 40.96, 81.92],
    "gen_ai.client.token.usage": [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                                  16777216, 67108864],
    "gen_ai.invoke_agent.tool_calls": [1, 2, 4, 8, 16, 32, 64, 128],
    "gen_ai.invoke_agent.inference_calls": [1, 2, 4, 8, 16, 32, 64, 128],
}
EXPECTED_UNITS = {
    "gen_ai.invoke_agent.duration": "s", "gen_ai.execute_tool.duration": "s",
    "gen_ai.client.operation.duration": "s", "gen_ai.client.token.usage": "{token}",
    "gen_ai.invoke_agent.tool_calls": "{tool_call}", "gen_ai.invoke_agent.inference_calls": "{inference_call}",
    "agentmon.tasks.completed": "{task}", "agentmon.task.duration": "s", "agentmon.agent.busy_time": "s",
}
CONTENT_KEYS = {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS}


def run_example(name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    return subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rx:
        yield rx


def _descendant_of(span: ReceivedSpan, ancestor: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> bool:
    current = span
    while current.parent_span_id:
        if current.parent_span_id == ancestor.span_id:
            return True
        parent = by_id.get(current.parent_span_id)
        if parent is None:
            return False
        current = parent
    return False


def _assert_wire_shape(rx: OTLPReceiver, service: str) -> list[ReceivedSpan]:
    spans = rx.spans()
    assert spans, "no spans arrived"
    by_id = {s.span_id: s for s in spans}
    agents = [s for s in spans if s.name.startswith("invoke_agent ")]
    tools = [s for s in spans if s.name.startswith("execute_tool ")]
    assert agents and tools
    for a in agents:
        assert a.kind == 1, "invoke_agent spans are INTERNAL"  # SPAN_KIND_INTERNAL
        assert a.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_agent"
        assert a.name == f"invoke_agent {a.attributes[sc.GEN_AI_AGENT_NAME]}"
    for t in tools:
        assert t.attributes[sc.GEN_AI_OPERATION_NAME] == "execute_tool"
        assert any(t.trace_id == a.trace_id and _descendant_of(t, a, by_id) for a in agents), t.name
    for s in spans:
        assert s.resource["service.name"] == service
        assert not CONTENT_KEYS & set(s.attributes), f"message content leaked on {s.name}"
    assert not any(CONTENT_KEYS & set(log.attributes) for log in rx.logs())
    return spans


def _assert_metrics(rx: OTLPReceiver, names: list[str]) -> None:
    assert rx.wait_for(lambda: set(names) <= rx.metric_names(), timeout=5), sorted(rx.metric_names())
    for name in names:
        metric = rx.latest_metric(name)
        assert metric is not None
        if name in EXPECTED_UNITS:
            assert metric.unit == EXPECTED_UNITS[name], name
        if name in EXPECTED_BUCKETS:
            assert metric.kind == "histogram"
            assert all(p.explicit_bounds == EXPECTED_BUCKETS[name] for p in metric.points), name


@pytest.mark.timeout(90)
def test_quickstart_delivers_one_agent_trace(receiver: OTLPReceiver) -> None:
    proc = run_example("quickstart.py", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    assert proc.returncode == 0, proc.stderr
    spans = _assert_wire_shape(receiver, "quickstart")
    assert {s.name for s in spans} == {"invoke_agent weather-assistant", "execute_tool geocode",
                                       "execute_tool forecast", "chat stub-model"}
    assert len({s.trace_id for s in spans}) == 1
    chat = next(s for s in spans if s.name == "chat stub-model")
    assert chat.kind == 3  # SPAN_KIND_CLIENT
    assert chat.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    _assert_metrics(receiver, ["gen_ai.invoke_agent.duration", "gen_ai.execute_tool.duration",
                               "gen_ai.client.operation.duration", "gen_ai.client.token.usage",
                               "gen_ai.invoke_agent.tool_calls", "gen_ai.invoke_agent.inference_calls"])
    tool_calls = receiver.latest_metric("gen_ai.invoke_agent.tool_calls")
    assert tool_calls is not None and tool_calls.points[0].sum == 2


@pytest.mark.timeout(90)
def test_swarm_delivers_workflow_agent_task_tool_tree_and_metrics(receiver: OTLPReceiver) -> None:
    proc = run_example("swarm.py", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    assert proc.returncode == 0, proc.stderr
    spans = _assert_wire_shape(receiver, "swarm")
    (root,) = [s for s in spans if s.name == "invoke_workflow research-swarm"]
    assert {s.trace_id for s in spans} == {root.trace_id}, "one trace per run"
    by_id = {s.span_id: s for s in spans}
    tasks = [s for s in spans if s.name.startswith("task ")]
    for t in tasks:
        parent = by_id[t.parent_span_id]
        assert parent.name == f"invoke_agent {t.attributes[sc.GEN_AI_AGENT_NAME]}"
        assert by_id[parent.parent_span_id] is root
    failed = [t for t in tasks if t.status_code == 2]  # STATUS_CODE_ERROR
    assert failed and all(t.attributes[sc.ERROR_TYPE].endswith("ToolError") for t in failed)
    assert all(t.attributes[sc.AGENTMON_TASK_OUTCOME] == "error" for t in failed)
    assert len(receiver.unique_span_ids()) == len(spans)
    match = re.search(r"telemetry: (\d+) spans, (\d+) exported", proc.stdout)
    assert match and match.group(1) == match.group(2) == str(len(spans))
    _assert_metrics(receiver, [*EXPECTED_BUCKETS, "agentmon.tasks.completed", "agentmon.task.duration",
                               "agentmon.agent.busy_time", "agentmon.tasks.in_flight",
                               "gen_ai.invoke_workflow.duration", "process.cpu.utilization",
                               "process.memory.usage", "system.network.io"])
    completed = receiver.latest_metric("agentmon.tasks.completed")
    assert completed is not None
    outcomes = {p.attributes["agentmon.task.outcome"] for p in completed.points}
    assert outcomes == {"success", "error"}
    assert all("agentmon.task.id" not in p.attributes for m in receiver.metrics() for p in m.points)


@pytest.mark.timeout(90)
def test_swarm_with_closed_endpoint_runs_at_full_speed_and_exits_promptly() -> None:
    # Memory only (the disk spool would keep these spans instead: tests/test_spool.py).
    proc = run_example("swarm.py", {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
                                    "AGENTMON_SPOOL": "off"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    shutdown = re.search(r"shutdown took ([\d.]+)s", proc.stdout)
    assert shutdown and within(float(shutdown.group(1)), 3.0)  # the default shutdown_timeout
    dropped = re.search(r"dropped (\{.*\})", proc.stdout)
    assert dropped and "export_failed:connection_error" in dropped.group(1)


@pytest.mark.timeout(60)
def test_main_job_without_backend_prints_each_agent() -> None:
    proc = run_example("swarm.py", {})
    assert proc.returncode == 0, proc.stderr
    for agent in ("planner", "researcher", "reviewer", "writer"):
        assert re.search(rf"^{agent}\s+\d+\s+\d+", proc.stdout, re.MULTILINE), proc.stdout
    assert "dropped 0" in proc.stdout
