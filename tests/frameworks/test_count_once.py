"""Each measurement counted once, the agent always named, whoever made the spans.

Every case runs ``tests/frameworks/count_once_app.py`` in its own interpreter, as a user runs a
program: ``agentmon.configure()`` exporting OTLP to an independent receiver, one framework on its
offline scripted model (two model calls: 30 input and 12 output tokens, one tool call, agent
``weather``), under one instrumentation: ours, a peer (OpenInference, OpenLLMetry) or the
framework's native telemetry, some of which record ``gen_ai.client.*`` metrics themselves.
What arrives must count every token once, summed over every exported instrumentation scope.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, cast

import pytest

from otel_agentmon._names import semconv as sc
from tests.frameworks.count_once_app import INPUT_TOKENS, OUTPUT_TOKENS
from tests.support.receiver import OTLPReceiver, ReceivedMetric
from tests.test_examples import ROOT

OURS = "otel_agentmon"
pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rx:
        yield rx


def run(receiver: OTLPReceiver, setup: str, *flags: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_", "TRACELOOP_"))}
    env = {**clean, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_LOGS_EXPORTER": "none", "OTEL_METRIC_EXPORT_INTERVAL": "600000",
           "AUTOGEN_DISABLE_RUNTIME_TRACING": "false"}
    proc = subprocess.run([sys.executable, "-m", "tests.frameworks.count_once_app", setup, *flags], env=env,
                          capture_output=True, text=True, timeout=100, cwd=ROOT, check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("done"), proc.stderr
    assert "conflicting metrics identities" not in proc.stderr, proc.stderr  # the SDK's View warning
    return proc


def latest(receiver: OTLPReceiver, name: str) -> dict[tuple[str, frozenset[tuple[str, object]]], object]:
    """The last (cumulative) point of metric ``name`` per (scope, attributes), over all exports."""
    out: dict[tuple[str, frozenset[tuple[str, object]]], object] = {}
    metrics: list[ReceivedMetric] = [m for m in receiver.metrics() if m.name == name]
    for metric in metrics:
        for point in metric.points:
            out[(metric.scope_name, frozenset(point.attributes.items()))] = point
    return out


def tokens_by_scope(receiver: OTLPReceiver, token_type: str) -> dict[str, float]:
    """Sum of gen_ai.client.token.usage{gen_ai.token.type=token_type} per exported scope."""
    out: dict[str, float] = {}
    for (scope, attrs), point in latest(receiver, sc.M_CLIENT_TOKEN_USAGE).items():
        if dict(attrs).get(sc.GEN_AI_TOKEN_TYPE) == token_type:
            out[scope] = out.get(scope, 0) + float(point.sum or 0)  # type: ignore[attr-defined]
    return out


def counts(receiver: OTLPReceiver, name: str, key: str, scope: str = OURS) -> dict[object, int]:
    """Histogram counts of ``name`` in ``scope`` by the value of attribute ``key``."""
    out: dict[object, int] = {}
    for (found, attrs), point in latest(receiver, name).items():
        if found == scope:
            value = dict(attrs).get(key)
            out[value] = out.get(value, 0) + int(point.count or 0)  # type: ignore[attr-defined]
    return out


def assert_tokens_counted_once(receiver: OTLPReceiver, recorded_by: str) -> None:
    """The scripted usage, summed over every scope, exactly; and all of it from ``recorded_by``."""
    inputs, outputs = tokens_by_scope(receiver, "input"), tokens_by_scope(receiver, "output")
    assert sum(inputs.values()) == INPUT_TOKENS, inputs
    assert sum(outputs.values()) == OUTPUT_TOKENS, outputs
    assert set(inputs) == set(outputs) == {recorded_by}, (inputs, outputs)


@pytest.mark.parametrize("setup, recorded_by", [
    ("langgraph:ours", OURS),
    ("langgraph:openinference", OURS),  # OpenInference records no metrics: we derive them
    ("langgraph:openllmetry", "opentelemetry.instrumentation.langchain"),  # records its own
    ("langgraph:openllmetry-early", "opentelemetry.instrumentation.langchain"),  # ... through the API's proxy
    ("agent_framework:native", "agent_framework"),
    ("agent_framework:ours", OURS),  # its own metrics (unit "tokens", not "{token}") are off: ours count
    ("autogen:ours", OURS),  # AutoGen reports no usage itself: ours reads it off each model call
    ("pydantic_ai:ours", OURS),
    ("pydantic_ai:native", "pydantic-ai"),
    ("smolagents:ours", OURS),
    ("smolagents:openinference", OURS),
    ("openai_agents:ours", OURS),
    ("openai_agents:openinference", OURS),
    # both official and ours installed, under the distro: ours (official ones in code: below)
    ("langgraph:distro", OURS),
    ("openai_agents:distro", OURS),
    ("smolagents:distro", OURS),
    # ... turned on in code: the official tree, and our model-call spans under it where it makes none
    ("openai_agents:ours+official", OURS),
    ("smolagents:ours+official", OURS),
])
def test_tokens_summed_over_all_scopes_are_the_tokens_used(receiver: OTLPReceiver, setup: str,
                                                           recorded_by: str) -> None:
    run(receiver, setup)
    assert_tokens_counted_once(receiver, recorded_by)
    durations = latest(receiver, sc.M_CLIENT_OPERATION_DURATION)
    calls = sum(int(cast(Any, p).count or 0) for p in durations.values())  # histogram points
    if setup == "smolagents:openinference":  # no model-call span: no call to time
        assert calls == 0
    elif setup != "pydantic_ai:native":  # PydanticAI records tokens, not durations: we add those
        assert calls == 2, {k[0] for k in durations}
        assert {scope for scope, _ in durations} == {recorded_by}


def test_application_meter_provider_reused_still_counts_once(receiver: OTLPReceiver) -> None:
    """configure() reuses the application's MeterProvider (no Views of ours there): same result."""
    run(receiver, "agent_framework:native", "app-provider")
    assert_tokens_counted_once(receiver, "agent_framework")


def test_agent_framework_tool_and_task_metrics_carry_the_agent(receiver: OTLPReceiver) -> None:
    run(receiver, "agent_framework:native")
    assert counts(receiver, sc.M_EXECUTE_TOOL_DURATION, sc.GEN_AI_AGENT_NAME) == {"weather": 1}
    assert counts(receiver, sc.M_INVOKE_AGENT_DURATION, sc.GEN_AI_AGENT_NAME) == {"weather": 1}
    task_tokens = {dict(attrs)[sc.GEN_AI_TOKEN_TYPE]: p.sum  # type: ignore[attr-defined]
                   for (scope, attrs), p in latest(receiver, sc.M_TASK_TOKEN_USAGE).items()
                   if dict(attrs)[sc.GEN_AI_AGENT_NAME] == "weather"}
    assert task_tokens == {"input": INPUT_TOKENS, "output": OUTPUT_TOKENS}


def test_openllmetry_on_openai_agents_reports_no_usage_and_none_is_made_up(receiver: OTLPReceiver) -> None:
    """OpenLLMetry 0.62's Agents SDK spans carry no token usage and it records no token metric."""
    run(receiver, "openai_agents:openllmetry")
    assert tokens_by_scope(receiver, "input") == {} and tokens_by_scope(receiver, "output") == {}


def test_official_openai_agents_leaves_model_calls_to_the_openai_client_layer_configure_turns_on(
        receiver: OTLPReceiver) -> None:
    """The official Agents SDK instrumentation makes no model-call span; the OpenAI client under the
    scripted model is instrumented by configure() itself (the official OpenAI instrumentation), so
    each call's tokens are counted once, in that scope."""
    run(receiver, "openai_agents:official")
    client_scope = "opentelemetry.instrumentation.genai.openai"
    assert tokens_by_scope(receiver, "input") == {client_scope: INPUT_TOKENS}
    assert tokens_by_scope(receiver, "output") == {client_scope: OUTPUT_TOKENS}


@pytest.mark.parametrize("setup", ["langgraph:official", "langgraph:ours+official", "smolagents:official"])
def test_official_instrumentations_that_see_no_model_call_report_no_usage(receiver: OTLPReceiver, setup: str) -> None:
    """The official instrumentation alone (or, for LangGraph, with ours, which then stands down). On
    these scripted models it sees no model call: the LangChain one skips a chat model without a model name
    (the fake chat model here), the Agents SDK one leaves model calls to the OpenAI client's
    instrumentation, the smolagents one wraps only in-process model classes. No usage, none made up
    (tests/frameworks/test_official.py counts a named LangChain model's tokens once)."""
    run(receiver, setup)
    assert tokens_by_scope(receiver, "input") == {} and tokens_by_scope(receiver, "output") == {}
    framework = setup.split(":", maxsplit=1)[0]
    if framework == "langgraph":  # a named graph is a workflow to it: no agent, no task
        assert counts(receiver, sc.M_INVOKE_WORKFLOW_DURATION, sc.GEN_AI_WORKFLOW_NAME,
                      "opentelemetry.instrumentation.genai.langchain") == {"weather": 1}
        return
    scope = f"opentelemetry.instrumentation.genai.{framework}"
    assert counts(receiver, sc.M_INVOKE_AGENT_DURATION, sc.GEN_AI_AGENT_NAME, scope) == {"weather": 1}
    completed = {dict(attrs)[sc.GEN_AI_AGENT_NAME]: p.value  # type: ignore[attr-defined]
                 for (_, attrs), p in latest(receiver, sc.M_TASKS_COMPLETED).items()}
    assert completed == {"weather": 1}  # its agent span is a task of ours


def test_autogen_tool_metrics_carry_the_agent(receiver: OTLPReceiver) -> None:
    run(receiver, "autogen:native")
    assert counts(receiver, sc.M_EXECUTE_TOOL_DURATION, sc.GEN_AI_AGENT_NAME) == {"weather": 1}
    assert counts(receiver, sc.M_INVOKE_AGENT_DURATION, sc.GEN_AI_AGENT_NAME) == {"weather": 1}
    # AutoGen 0.7.5 reports no model call over OTel (no span, no metric): no tokens from anyone.
    assert tokens_by_scope(receiver, "input") == {}


@pytest.mark.parametrize("setup", ["agent_framework:ours", "autogen:ours",
                                   "langgraph:ours", "langgraph:openinference", "langgraph:openllmetry",
                                   "smolagents:ours", "smolagents:openinference", "openai_agents:ours",
                                   "openai_agents:openinference", "openai_agents:openllmetry",
                                   "pydantic_ai:ours", "pydantic_ai:native"])
def test_the_same_agent_has_the_same_name_under_every_instrumentation(receiver: OTLPReceiver, setup: str) -> None:
    run(receiver, setup)
    assert counts(receiver, sc.M_INVOKE_AGENT_DURATION, sc.GEN_AI_AGENT_NAME) == {"weather": 1}
    assert counts(receiver, sc.M_EXECUTE_TOOL_DURATION, sc.GEN_AI_AGENT_NAME) == {"weather": 1}
    assert counts(receiver, sc.M_INVOKE_AGENT_INFERENCE_CALLS, sc.GEN_AI_AGENT_NAME) == {"weather": 1}
    completed = {dict(attrs)[sc.GEN_AI_AGENT_NAME]: p.value  # type: ignore[attr-defined]
                 for (_, attrs), p in latest(receiver, sc.M_TASKS_COMPLETED).items()}
    assert completed == {"weather": 1}
