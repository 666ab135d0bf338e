"""OpenAI Agents SDK runs for real on the SDK's own ``ScriptedModel`` (and on the real
chat-completions model over a stub HTTP transport, for model names and token usage), instrumented
by ``OpenAIAgentsInstrumentor``: span tree, attributes, parent links across tasks and threads,
metrics, errors, idempotence, uninstrument and peer coexistence."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool, set_trace_processors
from agents.testing import ScriptedModel, assistant_message, function_call
from opentelemetry.trace import SpanKind, StatusCode

import otel_agentmon as agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon.instrumentation.openai_agents import OpenAIAgentsInstrumentor, _peer, registered_processors
from otel_agentmon.testing import Capture, capture
from tests.frameworks.helpers import (
    assert_agent_children,
    histogram_count,
    metric_sum,
    ours,
    scopes,
    stub_openai_client,
)
from tests.support.spans import span_attrs

FW = "openai_agents"


class ToolFailed(Exception):
    pass


@function_tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    if city == "Atlantis":
        raise ToolFailed("no weather under the sea")
    return f"sunny in {city}"


def weather_agent(name: str = "weather", city: str = "Paris", *, error: Exception | None = None) -> Agent[Any]:
    steps: list[Any] = [{"error": error}] if error is not None else [
        {"output": [function_call("get_weather", {"city": city}, call_id=f"call_{city}")]},
        {"output": [assistant_message(f"It is sunny in {city}.")]},
    ]
    return Agent(name=name, instructions="Answer weather questions.", tools=[get_weather],
                 model=ScriptedModel(steps, emit_traces=True))


def run(agent: Agent[Any], question: str = "Weather?", workflow: str | None = None) -> str:
    config = RunConfig(workflow_name=workflow) if workflow else None
    return str(asyncio.run(Runner.run(agent, question, run_config=config)).final_output)


@pytest.fixture(autouse=True)
def sdk_processors() -> Iterator[None]:
    """Start from no SDK processors (offline: no exporter to the OpenAI backend); restore afterwards."""
    saved = registered_processors() or []
    set_trace_processors([])
    yield
    set_trace_processors(saved)


@pytest.fixture
def oa(agentmon_capture: Capture) -> Iterator[OpenAIAgentsInstrumentor]:
    inst = OpenAIAgentsInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    yield inst
    inst.uninstrument()


def test_run_is_one_workflow_trace_with_agent_chat_and_tool_spans(agentmon_capture: Capture,
                                                                   oa: OpenAIAgentsInstrumentor) -> None:
    assert run(weather_agent(), workflow="forecast") == "It is sunny in Paris."
    cap = agentmon_capture
    assert cap.tree() == [("invoke_workflow forecast", [("invoke_agent weather", [
        ("chat", []), ("execute_tool get_weather", []), ("chat", [])])])]
    assert len(ours(cap, FW)) == 5
    assert len({s.context.trace_id for s in cap.spans()}) == 1
    workflow = cap.span("invoke_workflow forecast")
    assert span_attrs(workflow)[sc.GEN_AI_WORKFLOW_NAME] == "forecast"
    agent = cap.span("invoke_agent weather")
    assert agent.kind is SpanKind.INTERNAL and span_attrs(agent)[sc.GEN_AI_AGENT_NAME] == "weather"
    assert_agent_children(cap, agent, tools=1, chats=2)
    chat = cap.spans("chat")[0]
    assert chat.kind is SpanKind.CLIENT and span_attrs(chat)[sc.GEN_AI_PROVIDER_NAME] == "openai"
    tool_span = cap.span("execute_tool get_weather")
    assert span_attrs(tool_span)[sc.GEN_AI_TOOL_NAME] == "get_weather"
    assert span_attrs(tool_span)[sc.GEN_AI_TOOL_TYPE] == "function"


def test_run_feeds_the_genai_agent_metrics_and_tasks(agentmon_capture: Capture,
                                                    oa: OpenAIAgentsInstrumentor) -> None:
    run(weather_agent())
    cap = agentmon_capture
    assert histogram_count(cap, sc.M_INVOKE_AGENT_DURATION, **{sc.GEN_AI_AGENT_NAME: "weather"}) == 1
    assert histogram_count(cap, sc.M_EXECUTE_TOOL_DURATION, **{sc.GEN_AI_TOOL_NAME: "get_weather"}) == 1
    assert histogram_count(cap, sc.M_CLIENT_OPERATION_DURATION, **{sc.GEN_AI_PROVIDER_NAME: "openai"}) == 2
    assert histogram_count(cap, sc.M_INVOKE_WORKFLOW_DURATION) == 1
    assert metric_sum(cap, sc.M_INVOKE_AGENT_TOOL_CALLS) == 1
    assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.GEN_AI_AGENT_NAME: "weather",
                                                    sc.AGENTMON_TASK_OUTCOME: "success"}) == 1


def test_real_model_calls_carry_model_and_token_usage(agentmon_capture: Capture,
                                                      oa: OpenAIAgentsInstrumentor) -> None:
    async def main() -> str:
        client = stub_openai_client()
        agent = Agent(name="weather", tools=[get_weather], model=OpenAIChatCompletionsModel("gpt-4o-mini", client))
        try:
            return str((await Runner.run(agent, "Weather?")).final_output)
        finally:
            await client.close()

    assert asyncio.run(main()) == "It is sunny in Paris."
    cap = agentmon_capture
    chats = cap.spans("chat gpt-4o-mini")
    assert [(span_attrs(c)[sc.GEN_AI_USAGE_INPUT_TOKENS], span_attrs(c)[sc.GEN_AI_USAGE_OUTPUT_TOKENS])
            for c in chats] == [(10, 5), (20, 7)]
    assert all(span_attrs(c)[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini" for c in chats)
    assert metric_sum(cap, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 30
    assert metric_sum(cap, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == 12
    summary = cap.monitor.snapshot()["weather"]
    assert (summary.tasks_ok, summary.input_tokens, summary.output_tokens) == (1, 30, 12)


def test_root_is_parented_under_the_callers_span_and_concurrent_runs_keep_their_trees(
        agentmon_capture: Capture, oa: OpenAIAgentsInstrumentor) -> None:
    async def main() -> None:
        with agentmon.agent("dispatcher"):
            await asyncio.gather(Runner.run(weather_agent("paris-agent", "Paris"), "Weather?"),
                                 Runner.run(weather_agent("oslo-agent", "Oslo"), "Weather?"))

    asyncio.run(main())
    cap = agentmon_capture
    root = cap.span("invoke_agent dispatcher")
    workflows = cap.spans("invoke_workflow Agent workflow")
    assert len(workflows) == 2
    assert all(w.parent is not None and w.parent.span_id == root.context.span_id for w in workflows)
    for name in ("paris-agent", "oslo-agent"):
        assert_agent_children(cap, cap.span(f"invoke_agent {name}"), tools=1, chats=2)
    assert {s.context.trace_id for s in cap.spans()} == {root.context.trace_id}


def test_runs_on_several_threads_keep_their_trees(agentmon_capture: Capture, oa: OpenAIAgentsInstrumentor) -> None:
    cities = ["Lima", "Baku", "Doha", "Riga"]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda c: run(weather_agent(f"agent-{c}", c)), cities))
    assert answers == [f"It is sunny in {c}." for c in cities]
    cap = agentmon_capture
    for city in cities:
        agent = cap.span(f"invoke_agent agent-{city}")
        assert_agent_children(cap, agent, tools=1, chats=2)
    assert len({s.context.trace_id for s in cap.spans()}) == 4


def test_tool_error_marks_the_tool_span(agentmon_capture: Capture, oa: OpenAIAgentsInstrumentor) -> None:
    run(weather_agent(city="Atlantis"))  # the SDK feeds the tool's error to the model
    tool_span = agentmon_capture.span("execute_tool get_weather")
    assert tool_span.status.status_code is StatusCode.ERROR
    assert span_attrs(tool_span)[sc.ERROR_TYPE] == f"{__name__}.ToolFailed"  # the class, not the SDK's message


def test_user_exception_passes_through_and_fails_the_agent_task(agentmon_capture: Capture,
                                                                oa: OpenAIAgentsInstrumentor) -> None:
    boom = RuntimeError("model exploded")
    with pytest.raises(RuntimeError) as raised:
        run(weather_agent(error=boom))
    assert raised.value is boom
    cap = agentmon_capture
    agent = cap.span("invoke_agent weather")
    assert agent.status.status_code is StatusCode.ERROR
    assert cap.spans("chat")[0].status.status_code is StatusCode.ERROR
    assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "error"}) == 1


def test_content_is_captured_only_when_enabled(oa: OpenAIAgentsInstrumentor) -> None:
    for mode, expect in (("NO_CONTENT", False), ("SPAN_ONLY", True)):
        cap, close = capture(capture_content=mode)
        oa.uninstrument()
        oa.instrument(tracer_provider=cap.monitor.tracer_provider)
        try:
            run(weather_agent(), "What is the weather in Paris?")
            tool_span = cap.span("execute_tool get_weather")
            assert (sc.GEN_AI_TOOL_CALL_RESULT in span_attrs(tool_span)) is expect
            if expect:
                assert "sunny in Paris" in str(span_attrs(tool_span)[sc.GEN_AI_TOOL_CALL_RESULT])
                assert "Paris" in str(span_attrs(tool_span)[sc.GEN_AI_TOOL_CALL_ARGUMENTS])
            else:
                assert not any("Paris" in str(v) for s in cap.spans() for v in span_attrs(s).values())
        finally:
            close()


def test_instrument_twice_gives_one_tree_and_uninstrument_restores_the_processors(
        agentmon_capture: Capture) -> None:
    from agents.tracing.processors import BatchTraceProcessor, ConsoleSpanExporter

    other = BatchTraceProcessor(ConsoleSpanExporter())
    set_trace_processors([other])
    inst = OpenAIAgentsInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    OpenAIAgentsInstrumentor().instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    current = registered_processors() or []
    assert len(current) == 2 and current[0] is other
    set_trace_processors([current[1]])  # keep the console exporter quiet for the run
    run(weather_agent())
    assert len(ours(agentmon_capture, FW)) == 5
    set_trace_processors([other, current[1]])
    inst.uninstrument()
    assert registered_processors() == [other]
    other.shutdown()


PEERS = [
    pytest.param("openinference.instrumentation.openai_agents", {}, id="openinference-exclusive"),
    pytest.param("openinference.instrumentation.openai_agents", {"exclusive_processor": False},
                 id="openinference-shared"),
    pytest.param("opentelemetry.instrumentation.openai_agents", {}, id="openllmetry"),
]


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "peer-first"])
@pytest.mark.parametrize(("module", "kwargs"), PEERS)
def test_next_to_a_peer_instrumentation_there_is_one_span_tree(
        agentmon_capture: Capture, module: str, kwargs: dict[str, Any], ours_first: bool,
        caplog: pytest.LogCaptureFixture, fresh_log_limiter: None) -> None:
    tp = agentmon_capture.monitor.tracer_provider
    peer = importlib.import_module(module).OpenAIAgentsInstrumentor()
    inst = OpenAIAgentsInstrumentor()
    if ours_first:
        inst.instrument(tracer_provider=tp)
        peer.instrument(tracer_provider=tp, **kwargs)
    else:
        peer.instrument(tracer_provider=tp, **kwargs)
        inst.instrument(tracer_provider=tp)
    try:
        with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
            run(weather_agent())
            run(weather_agent())
        counts = scopes(agentmon_capture)
        assert ours(agentmon_capture, FW) == [], counts
        tools = [s for s in agentmon_capture.spans() if "get_weather" in s.name]
        assert len(tools) == 2, counts  # the peer's, one per run
        assert histogram_count(agentmon_capture, sc.M_EXECUTE_TOOL_DURATION) == 2  # via the dialect mapping
    finally:
        peer.uninstrument()
    agentmon_capture.clear()
    run(weather_agent())
    if _peer(None) is None:  # the peer is gone: we trace again
        assert len(ours(agentmon_capture, FW)) == 5
    else:  # OpenLLMetry 0.62's uninstrument() leaves its processor tracing: we keep standing down
        assert module.startswith("opentelemetry.") and ours(agentmon_capture, FW) == []
    inst.uninstrument()


def test_failing_runs_make_the_agent_unhealthy(health_capture: Any) -> None:
    cap = health_capture()
    inst = OpenAIAgentsInstrumentor()
    inst.instrument(tracer_provider=cap.monitor.tracer_provider)
    try:
        run(weather_agent())
        for _ in range(5):
            with pytest.raises(RuntimeError):
                run(weather_agent(error=RuntimeError("model down")))
        agent = cap.monitor.evaluate_health().agents["weather"]
        assert agent.state == "unhealthy" and agent.up
        assert any("error rate" in reason for reason in agent.reasons), agent.reasons
    finally:
        inst.uninstrument()


def test_spans_the_users_tool_code_opens_nest_under_the_tool_span(agentmon_capture: Capture,
                                                                  oa: OpenAIAgentsInstrumentor) -> None:
    from opentelemetry import trace

    @function_tool(name_override="get_weather")
    def lookup(city: str) -> str:
        """Return the weather for a city."""
        with agentmon.tool("weather-api"):
            return "sunny"

    @function_tool(name_override="get_weather")
    async def alookup(city: str) -> str:
        """Return the weather for a city."""
        with agentmon.tool("weather-api"):
            return "sunny"

    for fn in (lookup, alookup):
        agent = weather_agent()
        agent.tools = [fn]
        run(agent)
    cap = agentmon_capture
    inner_spans = cap.spans("execute_tool weather-api")
    assert len(inner_spans) == 2
    for inner in inner_spans:
        outer = next(s for s in cap.spans() if s.context.span_id == inner.parent.span_id)  # type: ignore[union-attr]
        assert outer.name == "execute_tool get_weather" and outer.instrumentation_scope.name.endswith(FW)  # type: ignore[union-attr]
        assert span_attrs(inner)[sc.GEN_AI_AGENT_NAME] == "weather"
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_processor_callbacks_never_raise_into_the_sdk(oa: OpenAIAgentsInstrumentor, caplog: pytest.LogCaptureFixture,
                                                      fresh_log_limiter: None) -> None:
    processor = oa._processor
    for event in (processor.on_trace_start, processor.on_trace_end, processor.on_span_start, processor.on_span_end):
        event(object())  # garbage where the SDK passes a Trace or a Span: logged, never raised
    assert any("internal error" in r.getMessage() for r in caplog.records if r.name.startswith("otel_agentmon"))
