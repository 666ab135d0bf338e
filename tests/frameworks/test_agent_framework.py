"""Microsoft Agent Framework runs for real (an ``Agent`` on a scripted chat client built from
the framework's own telemetry and function-invocation layers, and a workflow), instrumented by
``AgentFrameworkInstrumentor`` (no ``tracer_provider``: the capture is found by itself): the
native tree in our pipeline, workflows as ``invoke_workflow``, agent runs in flight from their
start, tokens counted once, errors, the one-inference-span rule, uninstrument."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest
from agent_framework import (
    Agent,
    BaseChatClient,
    ChatMiddlewareLayer,
    ChatResponse,
    Content,
    FunctionInvocationLayer,
    Message,
    UsageDetails,
    WorkflowBuilder,
    tool,
)
from agent_framework import observability as obs
from agent_framework.observability import ChatTelemetryLayer
from opentelemetry.trace import SpanKind, StatusCode

from otel_agentmon._names import semconv as sc
from otel_agentmon._spans.inference_scope import inside_inference
from otel_agentmon.instrumentation.agent_framework import AgentFrameworkInstrumentor
from otel_agentmon.testing import Capture
from tests.frameworks.helpers import assert_agent_children, metric_sum, scopes
from tests.support.spans import span_attrs

T = TypeVar("T")


def run(awaitable: Awaitable[T]) -> T:
    """``asyncio.run`` of what Agent Framework's ``run()`` returns (typed as an Awaitable)."""
    async def wait() -> T:
        return await awaitable
    return asyncio.run(wait())


class ModelDown(Exception):
    pass


class ScriptedChatClient(FunctionInvocationLayer, ChatMiddlewareLayer, ChatTelemetryLayer,
                         BaseChatClient):
    """Calls get_weather (10+5 tokens), then answers (20+7); records whether each call ran
    inside an inference span (what an LLM-client instrumentation underneath would ask)."""

    OTEL_PROVIDER_NAME = "scripted"

    def __init__(self, fail: BaseException | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.turn = 0
        self.fail = fail
        self.marked: list[bool] = []
        self.in_flight: list[int] = []

    def _inner_get_response(self, *, messages: Any, stream: Any, options: Any, **kwargs: Any) -> Any:
        async def respond() -> ChatResponse:
            self.marked.append(inside_inference())
            if self.fail is not None:
                raise self.fail
            self.turn += 1
            if self.turn == 1:
                content = Content.from_function_call("call_1", "get_weather", arguments={"city": "Paris"})
                usage = UsageDetails(input_token_count=10, output_token_count=5)
            else:
                content = Content.from_text("It is sunny in Paris.")
                usage = UsageDetails(input_token_count=20, output_token_count=7)
            return ChatResponse(messages=[Message(role="assistant", contents=[content])], usage_details=usage,
                                model="scripted")
        return respond()


@tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"sunny in {city}"


def weather_agent(client: ScriptedChatClient | None = None) -> Agent:
    return Agent(client=client or ScriptedChatClient(), name="weather", instructions="Answer weather questions.",
                 tools=[get_weather])


@pytest.fixture
def af() -> Iterator[AgentFrameworkInstrumentor]:
    inst = AgentFrameworkInstrumentor()
    inst.instrument()
    try:
        yield inst
    finally:
        inst.uninstrument()


def test_agent_run_is_one_native_tree_in_our_pipeline_with_tokens_once(agentmon_capture: Capture,
                                                                       af: AgentFrameworkInstrumentor) -> None:
    client = ScriptedChatClient()
    assert run(weather_agent(client).run("Weather in Paris?")).text == "It is sunny in Paris."
    assert agentmon_capture.tree() == [("invoke_agent weather", [
        ("chat scripted", []), ("execute_tool get_weather", []), ("chat scripted", [])])]
    assert scopes(agentmon_capture) == {"agent_framework": 4}
    assert_agent_children(agentmon_capture, agentmon_capture.span("invoke_agent weather"), tools=1, chats=2)
    assert all(c.kind == SpanKind.CLIENT for c in agentmon_capture.spans("chat scripted"))
    assert client.marked == [True, True]  # the chat span is current: a client instrumentation stands down
    # Agent Framework's own token metric goes to the global provider, not this capture: ours counts here, once.
    assert metric_sum(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 30
    assert metric_sum(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == 12
    summary = agentmon_capture.monitor.snapshot()["weather"]
    assert (summary.tasks_ok, summary.tool_calls, summary.inference_calls) == (1, 1, 2)


def test_a_running_agent_is_a_task_in_flight_from_its_start(agentmon_capture: Capture,
                                                           af: AgentFrameworkInstrumentor) -> None:
    seen: list[int] = []

    @tool
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        seen.append(agentmon_capture.monitor.snapshot()["weather"].in_flight)
        return "sunny"

    agent = Agent(client=ScriptedChatClient(), name="weather", tools=[get_weather])
    run(agent.run("Weather in Paris?"))
    assert seen == [1]
    assert agentmon_capture.monitor.snapshot()["weather"].in_flight == 0


def test_a_workflow_run_is_invoke_workflow_over_its_agent(agentmon_capture: Capture,
                                                          af: AgentFrameworkInstrumentor) -> None:
    workflow = WorkflowBuilder(start_executor=weather_agent(), name="forecast").build()
    run(workflow.run("Weather in Paris?"))
    roots = [s for s in agentmon_capture.spans() if s.parent is None]
    assert sorted(s.name for s in roots) == ["invoke_workflow forecast", "workflow.build"], agentmon_capture.tree()
    root = agentmon_capture.span("invoke_workflow forecast")
    attrs = span_attrs(root)
    assert (attrs[sc.GEN_AI_OPERATION_NAME], attrs[sc.GEN_AI_WORKFLOW_NAME]) == (sc.OP_INVOKE_WORKFLOW, "forecast")
    agent = agentmon_capture.span("invoke_agent weather")
    assert agent.context.trace_id == root.context.trace_id
    assert_agent_children(agentmon_capture, agent, tools=1, chats=2)
    assert metric_sum(agentmon_capture, sc.M_INVOKE_WORKFLOW_DURATION, **{sc.GEN_AI_WORKFLOW_NAME: "forecast"}) > 0


def test_model_error_marks_the_call_and_the_run_with_its_class(agentmon_capture: Capture,
                                                               af: AgentFrameworkInstrumentor) -> None:
    boom = ModelDown("quota")
    with pytest.raises(ModelDown) as raised:
        run(weather_agent(ScriptedChatClient(fail=boom)).run("Weather in Paris?"))
    assert raised.value is boom
    (chat,) = [s for s in agentmon_capture.spans() if span_attrs(s)[sc.GEN_AI_OPERATION_NAME] == sc.OP_CHAT]
    for span in (chat, agentmon_capture.span("invoke_agent weather")):
        assert span.status.status_code == StatusCode.ERROR
        assert span_attrs(span)[sc.ERROR_TYPE] == "ModelDown"  # Agent Framework's: the class name


def test_uninstrument_puts_back_agent_frameworks_tracer(agentmon_capture: Capture) -> None:
    original = obs.get_tracer
    inst = AgentFrameworkInstrumentor()
    inst.instrument()
    inst.instrument()
    assert obs.get_tracer is not original
    inst.uninstrument()
    assert obs.get_tracer is original
    run(weather_agent().run("Weather in Paris?"))
    assert agentmon_capture.spans() == []  # the native spans went to the global provider again
