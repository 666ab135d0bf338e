"""AutoGen AgentChat runs for real (AssistantAgent, RoundRobinGroupChat) on its own
``ReplayChatCompletionClient`` and on its OpenAI client over an in-process HTTP transport,
instrumented by ``AutoGenInstrumentor`` (no ``tracer_provider``: the capture is found by itself):
span tree, one span per agent turn/tool/model call with token usage, teams as workflows,
in-flight runs, errors, the one-inference-span rule, uninstrument."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import autogen_agentchat.agents._base_chat_agent as base_chat_agent
import autogen_core.tools._base as tools_base
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_agentchat.teams._group_chat._base_group_chat import BaseGroupChat
from autogen_core import FunctionCall
from autogen_core.models import ChatCompletionClient, CreateResult, ModelFamily, ModelInfo, RequestUsage
from autogen_ext.models.openai import OpenAIChatCompletionClient
from autogen_ext.models.replay import ReplayChatCompletionClient
from opentelemetry.trace import SpanKind, StatusCode

from otel_agentmon._names import semconv as sc
from otel_agentmon._spans.inference_scope import inside_inference
from otel_agentmon.instrumentation.autogen import AutoGenInstrumentor
from otel_agentmon.testing import Capture
from tests.frameworks.helpers import assert_agent_children, metric_sum, ours, scopes, stub_openai_client
from tests.support.spans import span_attrs

FW = "autogen"
INFO = ModelInfo(vision=False, function_calling=True, json_output=False, family=ModelFamily.UNKNOWN,
                 structured_output=False)


class ModelDown(Exception):
    pass


class ToolFailed(Exception):
    pass


def replies(answer: str = "It is sunny in Paris.") -> list[CreateResult]:
    return [CreateResult(finish_reason="function_calls", cached=False,
                         content=[FunctionCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')],
                         usage=RequestUsage(prompt_tokens=10, completion_tokens=5)),
            CreateResult(finish_reason="stop", cached=False, content=answer,
                         usage=RequestUsage(prompt_tokens=20, completion_tokens=7))]


def replay() -> ReplayChatCompletionClient:
    return ReplayChatCompletionClient(replies(), model_info=INFO)


async def get_weather(city: str) -> str:
    """Return the weather for a city."""
    if city == "Atlantis":
        raise ToolFailed("no weather under the sea")
    return f"sunny in {city}"


def weather(client: ChatCompletionClient, name: str = "weather", **kwargs: Any) -> AssistantAgent:
    return AssistantAgent(name, model_client=client, tools=[get_weather], system_message="Answer weather questions.",
                          reflect_on_tool_use=True, **kwargs)


@pytest.fixture
def ag() -> Iterator[AutoGenInstrumentor]:
    inst = AutoGenInstrumentor()
    inst.instrument()
    try:
        yield inst
    finally:
        inst.uninstrument()


def test_agent_run_is_one_tree_with_token_usage_on_each_model_call(agentmon_capture: Capture,
                                                                   ag: AutoGenInstrumentor) -> None:
    result = asyncio.run(weather(replay()).run(task="Weather in Paris?"))
    assert result.messages[-1].content == "It is sunny in Paris."  # type: ignore[union-attr]
    assert agentmon_capture.tree() == [("invoke_agent weather", [
        ("chat", []), ("execute_tool get_weather", []), ("chat", [])])]
    assert scopes(agentmon_capture) == {"otel_agentmon.instrumentation.autogen": 4}  # no autogen-core span twice
    agent = agentmon_capture.span("invoke_agent weather")
    assert agent.kind == SpanKind.INTERNAL and span_attrs(agent)[sc.GEN_AI_OPERATION_NAME] == sc.OP_INVOKE_AGENT
    assert_agent_children(agentmon_capture, agent, tools=1, chats=2)
    chats = agentmon_capture.spans("chat")
    assert all(c.kind == SpanKind.CLIENT for c in chats)
    assert [(span_attrs(c)[sc.GEN_AI_USAGE_INPUT_TOKENS], span_attrs(c)[sc.GEN_AI_USAGE_OUTPUT_TOKENS])
            for c in chats] == [(10, 5), (20, 7)]
    tool = span_attrs(agentmon_capture.span("execute_tool get_weather"))
    assert (tool[sc.GEN_AI_TOOL_NAME], tool[sc.GEN_AI_TOOL_CALL_ID]) == ("get_weather", "call_1")
    assert metric_sum(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 30
    assert metric_sum(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == 12
    summary = agentmon_capture.monitor.snapshot()["weather"]
    assert (summary.tasks_ok, summary.tool_calls, summary.inference_calls) == (1, 1, 2)


def test_streaming_model_calls_get_their_usage_too(agentmon_capture: Capture, ag: AutoGenInstrumentor) -> None:
    result = asyncio.run(weather(replay(), model_client_stream=True).run(task="Weather in Paris?"))
    assert result.messages[-1].content == "It is sunny in Paris."  # type: ignore[union-attr]
    chats = agentmon_capture.spans("chat")
    assert [span_attrs(c)[sc.GEN_AI_USAGE_OUTPUT_TOKENS] for c in chats] == [5, 7]
    agent = agentmon_capture.span("invoke_agent weather")
    assert all(c.parent is not None and c.parent.span_id == agent.context.span_id for c in chats)


def test_a_team_run_is_a_workflow_over_its_agents_turns(agentmon_capture: Capture, ag: AutoGenInstrumentor) -> None:
    reviewer = AssistantAgent("reviewer", model_client=ReplayChatCompletionClient(["Looks right."], model_info=INFO))
    team = RoundRobinGroupChat([weather(replay()), reviewer], termination_condition=MaxMessageTermination(3),
                               name="forecast")
    result = asyncio.run(team.run(task="Weather in Paris?"))
    assert result.messages[-1].content == "Looks right."  # type: ignore[union-attr]
    (root,) = [s for s in ours(agentmon_capture, FW) if s.parent is None]
    assert root.name == "invoke_workflow forecast"
    assert span_attrs(root)[sc.GEN_AI_WORKFLOW_NAME] == "forecast"
    turns = agentmon_capture.children(root)
    assert sorted(s.name for s in turns) == ["invoke_agent reviewer", "invoke_agent weather"]
    assert_agent_children(agentmon_capture, agentmon_capture.span("invoke_agent weather"), tools=1, chats=2)
    assert len({s.context.trace_id for s in agentmon_capture.spans()}) == 1
    assert metric_sum(agentmon_capture, sc.M_INVOKE_WORKFLOW_DURATION, **{sc.GEN_AI_WORKFLOW_NAME: "forecast"}) > 0


def test_a_running_agent_is_a_task_in_flight(agentmon_capture: Capture, ag: AutoGenInstrumentor) -> None:
    seen: list[int] = []

    async def slow_weather(city: str) -> str:
        """Return the weather for a city."""
        seen.append(agentmon_capture.monitor.snapshot()["weather"].in_flight)
        return "sunny"

    agent = AssistantAgent("weather", model_client=replay(), tools=[slow_weather], reflect_on_tool_use=True)
    agent._tools[0]._name = "get_weather"  # the replayed call names get_weather
    asyncio.run(agent.run(task="Weather in Paris?"))
    assert seen == [1]
    assert agentmon_capture.monitor.snapshot()["weather"].in_flight == 0


def test_model_error_marks_the_call_and_the_run_and_passes_through(agentmon_capture: Capture,
                                                                   ag: AutoGenInstrumentor) -> None:
    boom = ModelDown("quota")

    class Failing(ReplayChatCompletionClient):
        async def create(self, *args: Any, **kwargs: Any) -> CreateResult:
            raise boom

    with pytest.raises(ModelDown) as raised:
        asyncio.run(weather(Failing([], model_info=INFO)).run(task="Weather in Paris?"))
    assert raised.value is boom
    for name in ("chat", "invoke_agent weather"):
        span = agentmon_capture.span(name)
        assert span.status.status_code == StatusCode.ERROR
        assert span_attrs(span)[sc.ERROR_TYPE] == f"{__name__}.ModelDown"


def test_a_failing_tool_is_marked_with_its_exception_class(agentmon_capture: Capture, ag: AutoGenInstrumentor) -> None:
    client = ReplayChatCompletionClient(
        [CreateResult(finish_reason="function_calls", cached=False,
                      usage=RequestUsage(prompt_tokens=1, completion_tokens=1),
                      content=[FunctionCall(id="call_1", name="get_weather", arguments='{"city": "Atlantis"}')]),
         "No weather there."], model_info=INFO)
    asyncio.run(weather(client).run(task="Weather in Atlantis?"))  # AutoGen hands the error to the model
    tool = agentmon_capture.span("execute_tool get_weather")
    assert tool.status.status_code == StatusCode.ERROR
    assert span_attrs(tool)[sc.ERROR_TYPE] == f"{__name__}.ToolFailed"
    assert agentmon_capture.span("invoke_agent weather").status.status_code == StatusCode.UNSET


@pytest.mark.filterwarnings("ignore:Resolved model mismatch")  # the stub answers as gpt-4o-mini, undated
def test_openai_client_gives_one_inference_span_with_model_provider_and_tokens(agentmon_capture: Capture,
                                                                              ag: AutoGenInstrumentor) -> None:
    client = OpenAIChatCompletionClient(model="gpt-4o-mini", api_key="offline")
    stub = stub_openai_client()
    marked: list[bool] = []
    transport = stub._client._transport  # the MockTransport the stub answers through
    answer = transport.handler

    def spying(request: Any) -> Any:
        marked.append(inside_inference())  # what an LLM-client instrumentation here would ask
        return answer(request)

    transport.handler = spying
    client._client = stub  # AutoGen's client builds its own AsyncOpenAI
    result = asyncio.run(weather(client).run(task="Weather in Paris?"))
    assert result.messages[-1].content == "It is sunny in Paris."  # type: ignore[union-attr]
    chats = agentmon_capture.spans("chat gpt-4o-mini")
    assert len(chats) == 2 and marked == [True, True]
    first = span_attrs(chats[0])
    assert first[sc.GEN_AI_PROVIDER_NAME] == "openai" and first[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert (first[sc.GEN_AI_USAGE_INPUT_TOKENS], first[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (10, 5)


def test_a_client_wrapping_another_gives_one_span(agentmon_capture: Capture, ag: AutoGenInstrumentor) -> None:
    class Wrapping(ReplayChatCompletionClient):  # defined after instrument(): wrapped on creation
        async def create(self, *args: Any, **kwargs: Any) -> CreateResult:
            return await super().create(*args, **kwargs)

    asyncio.run(weather(Wrapping(replies(), model_info=INFO)).run(task="Weather in Paris?"))
    assert len(agentmon_capture.spans("chat")) == 2


def test_a_cached_answer_counts_no_tokens(agentmon_capture: Capture, ag: AutoGenInstrumentor) -> None:
    cached = [r.model_copy(update={"cached": True}) for r in replies()]
    asyncio.run(weather(ReplayChatCompletionClient(cached, model_info=INFO)).run(task="Weather in Paris?"))
    chats = agentmon_capture.spans("chat")
    assert len(chats) == 2 and not any(sc.GEN_AI_USAGE_INPUT_TOKENS in span_attrs(c) for c in chats)
    assert metric_sum(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE) == 0


def test_uninstrument_puts_back_autogens_own_spans_and_methods(agentmon_capture: Capture) -> None:
    def helpers() -> tuple[Any, Any]:  # AutoGen's span helpers, as the modules using them see them
        return vars(base_chat_agent)["trace_invoke_agent_span"], vars(tools_base)["trace_tool_span"]

    originals = (*helpers(),
                 BaseGroupChat.__dict__["run_stream"], ReplayChatCompletionClient.__dict__["create"],
                 ChatCompletionClient.__dict__.get("__init_subclass__"))
    inst = AutoGenInstrumentor()
    inst.instrument()
    inst.instrument()  # twice: nothing more
    assert helpers()[1] is not originals[1]
    inst.uninstrument()
    assert (*helpers(),
            BaseGroupChat.__dict__["run_stream"], ReplayChatCompletionClient.__dict__["create"],
            ChatCompletionClient.__dict__.get("__init_subclass__")) == originals
    asyncio.run(weather(replay()).run(task="Weather in Paris?"))
    assert ours(agentmon_capture, FW) == []
