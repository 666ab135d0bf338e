"""The framework examples, run as a user runs them, against an independent OTLP/HTTP receiver:
one trace per run, agent -> tool/LLM parent links, the GenAI agent metrics, no message content."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from otel_agentmon._names import semconv as sc
from tests.support.receiver import OTLPReceiver
from tests.test_examples import CONTENT_KEYS, ROOT, _assert_metrics, run_example

METRICS = [sc.M_INVOKE_AGENT_DURATION, sc.M_EXECUTE_TOOL_DURATION, sc.M_CLIENT_OPERATION_DURATION,
           sc.M_INVOKE_AGENT_TOOL_CALLS, sc.M_INVOKE_AGENT_INFERENCE_CALLS, sc.M_TASKS_COMPLETED,
           sc.M_TASK_DURATION, sc.M_AGENT_BUSY_TIME]
CASES = {
    # example: (service name, chat span name, root span name, token usage on the wire)
    "langgraph": ("langgraph-example", "chat FakeToolChatModel", "invoke_agent weather", True),
    "openai_agents": ("openai-agents-example", "chat", "invoke_workflow weather-run", False),
    "pydantic_ai": ("pydantic-ai-example", "chat scripted", "invoke_agent weather", True),
    "smolagents": ("smolagents-example", "chat scripted", "invoke_agent weather", True),
    "autogen": ("autogen-example", "chat", "invoke_agent weather", True),
    "agent_framework": ("agent-framework-example", "chat scripted", "invoke_agent weather", True),
    "llama_index": ("llama-index-example", "chat scripted", "invoke_agent weather", True),
    "crewai": ("crewai-example", "chat scripted", "invoke_workflow weather-crew", True),
}
# CrewAI is not in the dev extra (1 GB; it pins openai < 3): .ci/run runs its example in a venv of
# its own with AGENTMON_REQUIRE_CREWAI=1, where a missing CrewAI fails instead of skipping.
_NO_CREWAI = importlib.util.find_spec("crewai") is None and os.environ.get("AGENTMON_REQUIRE_CREWAI") != "1"
EXAMPLES = [pytest.param(name, marks=pytest.mark.skipif(
    name == "crewai" and _NO_CREWAI, reason="crewai is not installed (.ci/run tests it in a venv of its own)"))
    for name in CASES]


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rx:
        yield rx


@pytest.mark.subprocess
@pytest.mark.timeout(90)
@pytest.mark.parametrize("example", EXAMPLES)
def test_example_delivers_one_agent_trace_and_the_genai_metrics(receiver: OTLPReceiver, example: str) -> None:
    service, chat_name, root_name, tokens = CASES[example]
    proc = run_example(f"frameworks/{example}.py", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    assert proc.returncode == 0, proc.stderr
    assert "answer: It is sunny in Paris." in proc.stdout
    assert "Traceback" not in proc.stderr

    spans = receiver.spans()
    names = sorted(s.name for s in spans)
    expected = ["invoke_agent weather", chat_name, chat_name, "execute_tool get_weather"]
    assert names == sorted(expected + ([root_name] if root_name not in expected else []))
    assert len(receiver.unique_span_ids()) == len(spans), "no span twice"
    assert len({s.trace_id for s in spans}) == 1, "one trace per run"
    by_id = {s.span_id: s for s in spans}
    (root,) = [s for s in spans if not s.parent_span_id]
    assert root.name == root_name
    (agent,) = [s for s in spans if s.name == "invoke_agent weather"]
    assert agent.kind == 1 and agent.attributes[sc.GEN_AI_AGENT_NAME] == "weather"  # INTERNAL
    children = [s for s in spans if s.parent_span_id == agent.span_id]
    assert sorted(s.name for s in children) == sorted([chat_name, chat_name, "execute_tool get_weather"])
    for child in children:
        assert by_id[child.parent_span_id] is agent
        assert child.attributes[sc.GEN_AI_AGENT_NAME] == "weather"
    assert all(s.kind == 3 for s in children if s.name == chat_name)  # CLIENT
    for s in spans:
        assert s.resource["service.name"] == service
        assert s.attributes["gen_ai.operation.name"] in (sc.OP_INVOKE_AGENT, sc.OP_INVOKE_WORKFLOW, sc.OP_CHAT,
                                                         sc.OP_EXECUTE_TOOL)
        # No message content by default (PydanticAI keeps the message structure, without text).
        assert not any("weather in Paris" in str(v) or "sunny" in str(v) for v in s.attributes.values()), s.name
        if example != "pydantic_ai":
            assert not CONTENT_KEYS & set(s.attributes), s.name
    assert f"spans: {len(spans)} started, {len(spans)} exported" in proc.stdout

    _assert_metrics(receiver, [*METRICS, sc.M_CLIENT_TOKEN_USAGE] if tokens else METRICS)
    completed = receiver.latest_metric(sc.M_TASKS_COMPLETED)
    assert completed is not None
    assert [(p.attributes[sc.GEN_AI_AGENT_NAME], p.attributes[sc.AGENTMON_TASK_OUTCOME], p.value)
            for p in completed.points] == [("weather", "success", 1)]
    tool_calls = receiver.latest_metric(sc.M_INVOKE_AGENT_TOOL_CALLS)
    assert tool_calls is not None and tool_calls.points[0].sum == 1
    if tokens:
        usage = receiver.latest_metric(sc.M_CLIENT_TOKEN_USAGE)
        assert usage is not None
        assert sorted((p.attributes[sc.GEN_AI_TOKEN_TYPE], p.sum) for p in usage.points) == [("input", 30),
                                                                                             ("output", 12)]


@pytest.mark.subprocess
@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_from_its_own_directory_without_shadowing_the_framework(example: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    env = {**clean, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    proc = subprocess.run([sys.executable, f"{example}.py"], cwd=ROOT / "examples" / "frameworks", env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "answer: It is sunny in Paris." in proc.stdout
