"""The bar of issue 12, as a user runs it: a plain agent calling the OpenAI and Anthropic SDKs
directly, with only ``configure()`` (global providers, OTLP to an independent receiver).

Each call is one CLIENT inference span under the agent's ``invoke_agent`` span, with model,
provider and tokens: the official OpenAI instrumentation's, and the Anthropic SDK's own native span
(scope ``com.anthropic.sdk.python``: nothing is added on top of it). ``gen_ai.client.token.usage``
summed over every exported scope equals the tokens used. The calls a framework already spans
(``inference_scope()``) get no span and no count from either layer.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_agentmon import distro
from otel_agentmon._names import semconv as sc
from tests.support import llm_stubs as st
from tests.support.receiver import OTLPReceiver
from tests.test_examples import ROOT, run_example

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]
NATIVE_ANTHROPIC = "com.anthropic.sdk.python"
OFFICIAL_OPENAI = "opentelemetry.instrumentation.genai.openai"


def run_app(rx: OTLPReceiver, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_", "ANTHROPIC_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.llm_clients_app"], cwd=ROOT, capture_output=True, text=True,
        timeout=100, check=False,
        env={**clean, "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_LOGS_EXPORTER": "none",
             "OTEL_METRIC_EXPORT_INTERVAL": "600000", "PYTHONPATH": str(ROOT), **env})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("done"), proc.stderr
    return proc.stdout


def tokens_by_scope(rx: OTLPReceiver) -> dict[tuple[str, str], float]:
    """The last cumulative gen_ai.client.token.usage point per (scope, attributes), summed by
    (scope, token type)."""
    latest: dict[tuple[str, frozenset[tuple[str, Any]]], Any] = {}
    for metric in rx.metrics():
        if metric.name == sc.M_CLIENT_TOKEN_USAGE:
            for point in metric.points:
                latest[(metric.scope_name, frozenset(point.attributes.items()))] = point
    out: dict[tuple[str, str], float] = {}
    for (scope, attrs), point in latest.items():
        key = (scope, str(dict(attrs)[sc.GEN_AI_TOKEN_TYPE]))
        out[key] = out.get(key, 0.0) + float(point.sum or 0)
    return out


def test_a_plain_agent_calling_openai_and_anthropic_gets_one_client_span_per_call_with_only_configure() -> None:
    with OTLPReceiver() as rx:
        out = run_app(rx)
        spans = rx.spans()
        tokens = tokens_by_scope(rx)
    assert "('anthropic', 'native')" in out and "('openai', 'official')" in out, out
    (agent,) = [s for s in spans if s.name == "invoke_agent weather"]
    inference = [s for s in spans if s.attributes.get(sc.GEN_AI_OPERATION_NAME) == sc.OP_CHAT]
    got = sorted((s.scope_name, s.name, s.attributes[sc.GEN_AI_PROVIDER_NAME], s.attributes[sc.GEN_AI_REQUEST_MODEL],
                  s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS], s.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS])
                 for s in inference)
    assert got == sorted([
        (OFFICIAL_OPENAI, f"chat {st.OPENAI_MODEL}", "openai", st.OPENAI_MODEL, *st.OPENAI_CHAT),
        (NATIVE_ANTHROPIC, "anthropic.messages.create", "anthropic", st.ANTHROPIC_MODEL, *st.ANTHROPIC),
        (NATIVE_ANTHROPIC, "anthropic.messages.create", "anthropic", st.ANTHROPIC_MODEL, *st.ANTHROPIC_STREAM),
    ])  # the two calls inside inference_scope() have none
    for span in inference:
        assert span.kind == 3  # CLIENT
        assert (span.trace_id, span.parent_span_id) == (agent.trace_id, agent.span_id)
    used_in = st.OPENAI_CHAT[0] + st.ANTHROPIC[0] + st.ANTHROPIC_STREAM[0]
    used_out = st.OPENAI_CHAT[1] + st.ANTHROPIC[1] + st.ANTHROPIC_STREAM[1]
    assert sum(v for (_, kind), v in tokens.items() if kind == "input") == used_in, tokens
    assert sum(v for (_, kind), v in tokens.items() if kind == "output") == used_out, tokens
    # the official instrumentation records its own; otel_agentmon derives the native spans' once
    assert tokens[(OFFICIAL_OPENAI, "input")] == st.OPENAI_CHAT[0]
    assert tokens[("otel_agentmon", "input")] == st.ANTHROPIC[0] + st.ANTHROPIC_STREAM[0]


def test_with_the_anthropic_native_spans_turned_off_the_official_instrumentation_spans_its_calls() -> None:
    with OTLPReceiver() as rx:
        out = run_app(rx, ANTHROPIC_OPEN_TELEMETRY="false", AGENTMON_LLM_CLIENTS="anthropic")
        spans = rx.spans()
        tokens = tokens_by_scope(rx)
    assert "[('anthropic', 'official')]" in out, out
    inference = [s for s in spans if s.attributes.get(sc.GEN_AI_OPERATION_NAME) == sc.OP_CHAT]
    assert sorted((s.scope_name, s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS]) for s in inference) == sorted([
        ("opentelemetry.instrumentation.genai.anthropic", st.ANTHROPIC[0]),
        ("opentelemetry.instrumentation.genai.anthropic", st.ANTHROPIC_STREAM[0])])
    assert sum(v for (_, kind), v in tokens.items() if kind == "input") == st.ANTHROPIC[0] + st.ANTHROPIC_STREAM[0]


class _Recorder:
    calls: list[str] = []  # noqa: RUF012

    def instrument(self, **kwargs: Any) -> None:
        _Recorder.calls.append("instrumented")


def test_under_opentelemetry_instrument_the_llm_client_entry_points_are_left_to_configure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The official instrumentations' entry points (``openai``, ...) are instrumented by configure()
    as ``llm_clients`` says, not a second time by the distro; another distribution's entry point of
    the same name (OpenLLMetry's ``openai``) is still loaded."""
    values = {ep.value for ep in importlib.metadata.entry_points(group="opentelemetry_instrumentor")}
    assert "opentelemetry.instrumentation.genai.openai:OpenAIInstrumentor" in values
    monkeypatch.setattr(_Recorder, "calls", [])
    official = importlib.metadata.EntryPoint(name="openai", group="opentelemetry_instrumentor",
                                             value="opentelemetry.instrumentation.genai.openai:OpenAIInstrumentor")
    monkeypatch.setattr(distro, "_configured", True)
    monkeypatch.setattr(distro, "_instrument_once", lambda ep, kw: _Recorder().instrument())
    distro.AgentmonDistro().load_instrumentor(official, skip_dep_check=True)
    assert _Recorder.calls == []
    other = importlib.metadata.EntryPoint(name="openai", group="opentelemetry_instrumentor",
                                          value=f"{__name__}:_Recorder")
    distro.AgentmonDistro().load_instrumentor(other, skip_dep_check=True)
    assert _Recorder.calls == ["instrumented"]


CLIENT_EXAMPLES = {  # example: (service, model-call span name, its scope)
    "openai_client": ("openai-client-example", f"chat {st.OPENAI_MODEL}", OFFICIAL_OPENAI),
    "anthropic_client": ("anthropic-client-example", "anthropic.messages.create", NATIVE_ANTHROPIC),
    "google_genai_client": ("google-genai-client-example", "generate_content gemini-2.5-flash",
                            "opentelemetry.instrumentation.google_genai"),
}


@pytest.mark.parametrize("example", CLIENT_EXAMPLES)
def test_the_llm_client_example_delivers_an_agent_trace_and_the_agent_metrics(example: str) -> None:
    service, chat_name, scope = CLIENT_EXAMPLES[example]
    with OTLPReceiver() as rx:
        proc = run_example(f"frameworks/{example}.py", {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint})
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert "answer: It is sunny in Paris." in proc.stdout
        assert rx.wait_for(lambda: sc.M_INVOKE_AGENT_DURATION in rx.metric_names(), timeout=5)
        spans = rx.spans()
        tokens = tokens_by_scope(rx)
    (agent,) = [s for s in spans if not s.parent_span_id]
    assert agent.name == "invoke_agent weather" and agent.resource["service.name"] == service
    children = [s for s in spans if s.parent_span_id == agent.span_id]
    assert sorted((s.name, s.scope_name) for s in children) == sorted(
        [(chat_name, scope), (chat_name, scope), ("execute_tool get_weather", "otel_agentmon")])
    assert len(spans) == 4 and {s.trace_id for s in spans} == {agent.trace_id}
    assert f"spans: {len(spans)} started, {len(spans)} exported" in proc.stdout
    assert all(s.kind == 3 for s in children if s.name == chat_name)  # CLIENT
    for s in spans:  # no message content by default
        assert not any("Paris" in str(v) or "sunny" in str(v) for v in s.attributes.values()), s.name
    assert sum(v for (_, kind), v in tokens.items() if kind == "input") == 30, tokens
    assert sum(v for (_, kind), v in tokens.items() if kind == "output") == 12, tokens


@pytest.mark.parametrize("distro_env", [{"OTEL_PYTHON_DISTRO": "agentmon"}, {}], ids=["our-distro", "stock-distro"])
def test_under_opentelemetry_instrument_each_call_is_still_one_span(distro_env: dict[str, str]) -> None:
    """Zero-code: with our configurator, under our distro or the stock one (which loads the official
    instrumentation's entry point itself, importing the client from inside its instrument()), each
    model call is one span: never instrumented twice."""
    bindir = Path(sys.executable).parent
    with OTLPReceiver() as rx:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
        env = {**clean, **distro_env, "OTEL_PYTHON_CONFIGURATOR": "agentmon",
               "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
               "PYTHONPATH": str(ROOT),
               "PATH": f"{bindir}{os.pathsep}{clean.get('PATH', '')}"}
        proc = subprocess.run(["opentelemetry-instrument", sys.executable, "examples/frameworks/openai_client.py"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=100, check=False)
        assert proc.returncode == 0 and "answer: It is sunny in Paris." in proc.stdout, proc.stderr
        assert "internal error" not in proc.stderr, proc.stderr
        spans = rx.spans()
    assert sorted((s.name, s.scope_name) for s in spans) == sorted([
        ("invoke_agent weather", "otel_agentmon"), ("execute_tool get_weather", "otel_agentmon"),
        (f"chat {st.OPENAI_MODEL}", OFFICIAL_OPENAI), (f"chat {st.OPENAI_MODEL}", OFFICIAL_OPENAI)])
