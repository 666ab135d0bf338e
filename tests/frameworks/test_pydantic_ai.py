"""PydanticAI runs for real on its own offline ``FunctionModel``, instrumented by
``PydanticAIInstrumentor`` (which turns PydanticAI's native GenAI spans on, into our pipeline):
span tree, scope, metrics and tasks, in-flight tracking, content capture, errors, idempotence,
uninstrument, and coexistence with native instrumentation and OpenInference's span processor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode
from pydantic_ai import Agent
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.usage import RequestUsage

import otel_agentmon as agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon.instrumentation.pydantic_ai import PydanticAIInstrumentor
from otel_agentmon.testing import Capture, capture
from tests.frameworks.helpers import (
    assert_agent_children,
    assert_parallel_agents_under,
    histogram_count,
    metric_sum,
    ours,
    scopes,
)
from tests.support.spans import span_attrs

FW = "pydantic_ai"


class ToolFailed(Exception):
    pass


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Ask for get_weather for the city named last in the question; answer from its result."""
    last = messages[-1]
    returned = [p for p in last.parts if isinstance(p, ToolReturnPart)]
    if returned:
        return ModelResponse(parts=[TextPart(f"It is {returned[0].content}.")],
                             usage=RequestUsage(input_tokens=20, output_tokens=7))
    question = str(getattr(last.parts[-1], "content", ""))
    city = question.rsplit(" ", 1)[-1].strip("?")
    return ModelResponse(parts=[ToolCallPart("get_weather", {"city": city}, tool_call_id=f"call_{city}")],
                         usage=RequestUsage(input_tokens=10, output_tokens=5))


def weather_agent(name: str = "weather", **kwargs: object) -> Agent[None, str]:
    agent: Agent[None, str] = Agent(FunctionModel(scripted, model_name="scripted"), name=name,
                                    instructions="Answer weather questions.", **kwargs)  # type: ignore[call-overload]

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        if city == "Atlantis":
            raise ToolFailed("no weather under the sea")
        return f"sunny in {city}"

    return agent


def ask(agent: Agent[None, str], question: str) -> str:
    # asyncio.run rather than run_sync: run_sync leaves an event loop open for the GC to warn about.
    return asyncio.run(agent.run(question)).output


@pytest.fixture(autouse=True)
def native_default() -> Iterator[None]:
    """Every test starts and ends with PydanticAI's process-wide instrumentation off."""
    saved = Agent._instrument_default
    Agent.instrument_all(False)
    yield
    Agent.instrument_all(saved)


@pytest.fixture
def pa(agentmon_capture: Capture) -> Iterator[PydanticAIInstrumentor]:
    inst = PydanticAIInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    yield inst
    inst.uninstrument()


def test_run_is_one_agent_trace_with_chat_and_tool_spans_in_our_scope(agentmon_capture: Capture,
                                                                       pa: PydanticAIInstrumentor) -> None:
    assert ask(weather_agent(), "What is the weather in Paris?") == "It is sunny in Paris."
    cap = agentmon_capture
    assert cap.tree() == [("invoke_agent weather", [("chat scripted", []), ("execute_tool get_weather", []),
                                                    ("chat scripted", [])])]
    assert len(ours(cap, FW)) == 4 == len(cap.spans())
    agent = cap.span("invoke_agent weather")
    assert span_attrs(agent)[sc.GEN_AI_AGENT_NAME] == "weather"
    assert_agent_children(cap, agent, tools=1, chats=2)
    chat = cap.spans("chat scripted")[0]
    assert span_attrs(chat)[sc.GEN_AI_REQUEST_MODEL] == "scripted"
    assert (span_attrs(chat)[sc.GEN_AI_USAGE_INPUT_TOKENS], span_attrs(chat)[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (10, 5)
    assert span_attrs(cap.span("execute_tool get_weather"))[sc.GEN_AI_TOOL_CALL_ID] == "call_Paris"


def test_run_feeds_the_genai_agent_metrics_and_tasks_once(agentmon_capture: Capture,
                                                         pa: PydanticAIInstrumentor) -> None:
    ask(weather_agent(), "What is the weather in Paris?")
    cap = agentmon_capture
    assert histogram_count(cap, sc.M_INVOKE_AGENT_DURATION, **{sc.GEN_AI_AGENT_NAME: "weather"}) == 1
    assert histogram_count(cap, sc.M_EXECUTE_TOOL_DURATION, **{sc.GEN_AI_TOOL_NAME: "get_weather"}) == 1
    assert histogram_count(cap, sc.M_CLIENT_OPERATION_DURATION, **{sc.GEN_AI_REQUEST_MODEL: "scripted"}) == 2
    # PydanticAI's own token histogram is off: each token is counted once, by the derivation.
    assert metric_sum(cap, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 30
    assert metric_sum(cap, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == 12
    assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.GEN_AI_AGENT_NAME: "weather",
                                                    sc.AGENTMON_TASK_OUTCOME: "success"}) == 1
    summary = cap.monitor.snapshot()["weather"]
    assert (summary.tasks_ok, summary.tool_calls, summary.inference_calls) == (1, 1, 2)


def test_a_running_agent_is_a_task_in_flight(agentmon_capture: Capture, pa: PydanticAIInstrumentor) -> None:
    seen: list[int] = []
    agent: Agent[None, str] = Agent(FunctionModel(scripted, model_name="scripted"), name="weather")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        seen.append(agentmon_capture.monitor.snapshot()["weather"].in_flight)
        return "sunny"

    ask(agent, "What is the weather in Paris?")
    assert seen == [1]
    assert agentmon_capture.monitor.snapshot()["weather"].in_flight == 0


def test_root_is_parented_under_the_callers_span_and_concurrent_runs_keep_their_trees(
        agentmon_capture: Capture, pa: PydanticAIInstrumentor) -> None:
    async def main() -> None:
        with agentmon.workflow("forecast-desk"):
            await asyncio.gather(weather_agent("paris-agent").run("What is the weather in Paris?"),
                                 weather_agent("oslo-agent").run("What is the weather in Oslo?"))

    asyncio.run(main())
    assert_parallel_agents_under(agentmon_capture, "forecast-desk", {"paris-agent": "Paris", "oslo-agent": "Oslo"})


def test_user_exception_passes_through_and_fails_the_agent_task(agentmon_capture: Capture,
                                                                pa: PydanticAIInstrumentor) -> None:
    with pytest.raises(ToolFailed):
        ask(weather_agent(), "What is the weather in Atlantis?")
    cap = agentmon_capture
    assert cap.span("execute_tool get_weather").status.status_code is StatusCode.ERROR
    assert cap.span("invoke_agent weather").status.status_code is StatusCode.ERROR
    assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "error"}) == 1


def test_content_is_captured_only_when_enabled() -> None:
    for mode, expect in (("NO_CONTENT", False), ("SPAN_ONLY", True)):
        cap, close = capture(capture_content=mode)
        inst = PydanticAIInstrumentor()
        inst.instrument(tracer_provider=cap.monitor.tracer_provider)
        try:
            ask(weather_agent(), "What is the weather in Paris?")
            texts = [str(v) for s in cap.spans() for v in span_attrs(s).values()]
            assert any("What is the weather" in t for t in texts) is expect
            assert any("Answer weather questions" in t for t in texts) is expect
        finally:
            inst.uninstrument()
            close()


def test_instrument_twice_gives_one_tree_and_uninstrument_restores_pydantic_ai(agentmon_capture: Capture) -> None:
    inst = PydanticAIInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    PydanticAIInstrumentor().instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    ask(weather_agent(), "What is the weather in Paris?")
    assert len(ours(agentmon_capture, FW)) == 4
    inst.uninstrument()
    assert Agent._instrument_default is False
    agentmon_capture.clear()
    ask(weather_agent(), "What is the weather in Paris?")
    assert agentmon_capture.spans() == []


def test_native_instrumentation_already_on_means_we_stand_down(
        agentmon_capture: Capture, caplog: pytest.LogCaptureFixture, fresh_log_limiter: None) -> None:
    theirs = InstrumentationSettings(tracer_provider=agentmon_capture.monitor.tracer_provider)
    Agent.instrument_all(theirs)
    inst = PydanticAIInstrumentor()
    with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
        inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    assert Agent._instrument_default is theirs
    assert len([r for r in caplog.records if "already traces" in r.getMessage()]) == 1
    ask(weather_agent(), "What is the weather in Paris?")
    assert scopes(agentmon_capture) == {"pydantic-ai": 4}  # one tree, theirs
    assert histogram_count(agentmon_capture, sc.M_INVOKE_AGENT_DURATION) == 1  # still our metrics
    inst.uninstrument()
    assert Agent._instrument_default is theirs  # left as the user set it


def test_an_agent_with_its_own_instrumentation_gets_no_second_tree(agentmon_capture: Capture,
                                                                   pa: PydanticAIInstrumentor) -> None:
    own = Instrumentation(InstrumentationSettings(tracer_provider=agentmon_capture.monitor.tracer_provider))
    ask(weather_agent(capabilities=[own]), "What is the weather in Paris?")
    assert scopes(agentmon_capture) == {"pydantic-ai": 4}


def test_openinference_span_processor_coexists_without_duplicates() -> None:
    from openinference.instrumentation.pydantic_ai import OpenInferenceSpanProcessor

    cap, close = capture()
    tp = cap.monitor.tracer_provider
    assert isinstance(tp, TracerProvider)
    tp.add_span_processor(OpenInferenceSpanProcessor())
    inst = PydanticAIInstrumentor()
    inst.instrument(tracer_provider=tp)
    try:
        ask(weather_agent(), "What is the weather in Paris?")
        assert len(cap.spans()) == 4
        assert histogram_count(cap, sc.M_EXECUTE_TOOL_DURATION) == 1
        assert histogram_count(cap, sc.M_INVOKE_AGENT_DURATION) == 1
    finally:
        inst.uninstrument()
        close()


def test_failing_runs_make_the_agent_unhealthy(health_capture: Any) -> None:
    cap = health_capture()
    inst = PydanticAIInstrumentor()
    inst.instrument(tracer_provider=cap.monitor.tracer_provider)
    try:
        ask(weather_agent(), "What is the weather in Paris?")
        for _ in range(5):
            with pytest.raises(ToolFailed):
                ask(weather_agent(), "What is the weather in Atlantis?")
        agent = cap.monitor.evaluate_health().agents["weather"]
        assert agent.state == "unhealthy" and agent.up
        assert any("error rate" in reason for reason in agent.reasons), agent.reasons
    finally:
        inst.uninstrument()


def test_a_broken_provider_never_breaks_instrument_or_the_agent(caplog: pytest.LogCaptureFixture,
                                                                fresh_log_limiter: None) -> None:
    inst = PydanticAIInstrumentor()
    inst.instrument(tracer_provider=object())  # not a TracerProvider: logged, not raised
    try:
        assert Agent._instrument_default is False
        assert ask(weather_agent(), "What is the weather in Paris?") == "It is sunny in Paris."
        assert any("internal error" in r.getMessage() for r in caplog.records if r.name.startswith("otel_agentmon"))
    finally:
        inst.uninstrument()
