"""smolagents runs for real (ToolCallingAgent, CodeAgent, managed agents) on a scripted model,
instrumented by ``SmolagentsInstrumentor``: span tree, attributes, parent links across
smolagents' tool threads, metrics, errors, idempotence, exact restore and peer coexistence."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from smolagents import CodeAgent, MultiStepAgent, Tool, ToolCallingAgent, tool
from smolagents import local_python_executor as lpe
from smolagents.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole, Model
from smolagents.monitoring import LogLevel, TokenUsage

import otel_agentmon as agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon.instrumentation.smolagents import SmolagentsInstrumentor
from otel_agentmon.testing import Capture
from tests.frameworks.helpers import assert_agent_children, histogram_count, metric_sum, ours, scopes
from tests.support.spans import span_attrs

FW = "smolagents"
Reply = tuple[list[tuple[str, dict[str, Any]]], tuple[int, int]] | str


class ScriptedModel(Model):  # type: ignore[misc]  # smolagents ships no type information
    """Replies from a script: a list of tool calls (run in parallel when several) with token
    usage, or, for a CodeAgent, a code string."""

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)

    def generate(self, messages: Any, stop_sequences: Any = None, response_format: Any = None,
                 tools_to_call_from: Any = None, **kwargs: Any) -> ChatMessage:
        reply = self.replies.pop(0)
        if isinstance(reply, str):
            return ChatMessage(role=MessageRole.ASSISTANT, content=reply, token_usage=TokenUsage(3, 4))
        calls, usage = reply
        return ChatMessage(role=MessageRole.ASSISTANT, content="", token_usage=TokenUsage(*usage), tool_calls=[
            ChatMessageToolCall(id=f"call_{i}", type="function",
                                function=ChatMessageToolCallFunction(name=name, arguments=args))
            for i, (name, args) in enumerate(calls)])


class ToolFailed(Exception):
    pass


@tool  # type: ignore[untyped-decorator]  # smolagents ships no type information
def get_weather(city: str) -> str:
    """Return the weather for a city.

    Args:
        city: the city name
    """
    if city == "Atlantis":
        raise ToolFailed("no weather under the sea")
    with agentmon.tool("weather-api"):  # the user's own span inside the tool
        return f"sunny in {city}"


def answer(text: str, usage: tuple[int, int] = (20, 7)) -> Reply:
    return ([("final_answer", {"answer": text})], usage)


def weather_agent(name: str = "weather", cities: tuple[str, ...] = ("Paris",), **kwargs: Any) -> ToolCallingAgent:
    model = ScriptedModel([([("get_weather", {"city": c}) for c in cities], (10, 5)), answer("It is sunny.")])
    return ToolCallingAgent(tools=[get_weather], model=model, name=name, max_steps=3,
                            verbosity_level=LogLevel.OFF, **kwargs)


@pytest.fixture
def sa(agentmon_capture: Capture) -> Iterator[SmolagentsInstrumentor]:
    inst = SmolagentsInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    yield inst
    inst.uninstrument()


def test_run_is_one_agent_trace_with_chat_and_tool_children(agentmon_capture: Capture,
                                                            sa: SmolagentsInstrumentor) -> None:
    assert weather_agent().run("Weather in Paris?") == "It is sunny."
    cap = agentmon_capture
    assert cap.tree() == [("invoke_agent weather", [
        ("chat scripted", []), ("execute_tool get_weather", [("execute_tool weather-api", [])]),
        ("chat scripted", [])])]
    agent = cap.span("invoke_agent weather")
    assert_agent_children(cap, agent, tools=1, chats=2)
    chat = cap.spans("chat scripted")[0]
    assert chat.kind is SpanKind.CLIENT and span_attrs(chat)[sc.GEN_AI_REQUEST_MODEL] == "scripted"
    assert (span_attrs(chat)[sc.GEN_AI_USAGE_INPUT_TOKENS], span_attrs(chat)[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (10, 5)
    inner = cap.span("execute_tool weather-api")
    assert span_attrs(inner)[sc.GEN_AI_AGENT_NAME] == "weather"  # the user's span knows its agent
    assert histogram_count(cap, sc.M_INVOKE_AGENT_DURATION, **{sc.GEN_AI_AGENT_NAME: "weather"}) == 1
    assert histogram_count(cap, sc.M_EXECUTE_TOOL_DURATION, **{sc.GEN_AI_TOOL_NAME: "get_weather"}) == 1
    assert metric_sum(cap, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 30
    assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.GEN_AI_AGENT_NAME: "weather",
                                                    sc.AGENTMON_TASK_OUTCOME: "success"}) == 1


def test_parallel_tool_calls_and_code_agent_threads_keep_their_parents(agentmon_capture: Capture,
                                                                       sa: SmolagentsInstrumentor) -> None:
    with agentmon.workflow("desk"):
        weather_agent(cities=("Paris", "Oslo", "Rome")).run("Weather?")  # three tools on a thread pool
        code = "<code>\nw = get_weather(city='Lima')\nfinal_answer(w)\n</code>"
        coder = CodeAgent(tools=[get_weather], model=ScriptedModel([code]), name="coder", max_steps=2,
                          verbosity_level=LogLevel.OFF)
        assert coder.run("Weather in Lima?") == "sunny in Lima"  # its code runs in a thread of its own
    cap = agentmon_capture
    root = cap.span("invoke_workflow desk")
    assert_agent_children(cap, cap.span("invoke_agent weather"), tools=3, chats=2)
    assert_agent_children(cap, cap.span("invoke_agent coder"), tools=1, chats=1)
    assert {s.context.trace_id for s in cap.spans()} == {root.context.trace_id}


def test_managed_agent_is_a_sub_agent(agentmon_capture: Capture, sa: SmolagentsInstrumentor) -> None:
    helper = weather_agent("forecaster", description="Knows the weather.")
    boss = ToolCallingAgent(tools=[], managed_agents=[helper], name="boss", max_steps=3, verbosity_level=LogLevel.OFF,
                            model=ScriptedModel([([("forecaster", {"task": "Paris"})], (1, 1)), answer("done")]))
    assert boss.run("Plan a trip") == "done"
    cap = agentmon_capture
    sub = cap.span("invoke_agent forecaster")
    assert sub.parent is not None and sub.parent.span_id == cap.span("invoke_agent boss").context.span_id
    assert_agent_children(cap, sub, tools=1, chats=2)


def test_tool_error_marks_the_tool_span(agentmon_capture: Capture, sa: SmolagentsInstrumentor) -> None:
    weather_agent(cities=("Atlantis",)).run("Weather in Atlantis?")  # smolagents shows the error to the model
    span = agentmon_capture.span("execute_tool get_weather")
    assert span.status.status_code is StatusCode.ERROR
    assert str(span_attrs(span)[sc.ERROR_TYPE]).endswith("ToolFailed")


def test_user_exception_passes_through_and_fails_the_agent_task(agentmon_capture: Capture,
                                                                sa: SmolagentsInstrumentor) -> None:
    boom = RuntimeError("callback exploded")

    def explode(step: Any, agent: Any = None) -> None:
        raise boom

    with pytest.raises(RuntimeError) as raised:
        weather_agent(step_callbacks=[explode]).run("Weather?")
    assert raised.value is boom
    span = agentmon_capture.span("invoke_agent weather")
    assert span.status.status_code is StatusCode.ERROR and span_attrs(span)[sc.ERROR_TYPE] == "RuntimeError"
    assert metric_sum(agentmon_capture, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "error"}) == 1


def test_instrument_twice_gives_one_tree_and_uninstrument_restores_every_method(agentmon_capture: Capture) -> None:
    before = (MultiStepAgent.__dict__["run"], Tool.__dict__["__call__"], ScriptedModel.__dict__["generate"],
              Model.__dict__.get("__init_subclass__"), lpe.ThreadPoolExecutor)
    inst = SmolagentsInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    SmolagentsInstrumentor().instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)

    class LateModel(ScriptedModel):  # defined after instrument(): wrapped when created
        def generate(self, messages: Any, **kwargs: Any) -> ChatMessage:  # type: ignore[override]  # forwards every argument to the scripted generate()
            return super().generate(messages, **kwargs)  # one span, not two

    weather_agent().run("Weather?")
    agent = weather_agent()
    agent.model = LateModel([([("get_weather", {"city": "Oslo"})], (1, 1)), answer("ok")])
    agent.run("Weather?")
    cap = agentmon_capture
    assert len(ours(cap, FW)) == 8
    assert len(cap.spans("chat scripted")) == 4
    inst.uninstrument()
    after = (MultiStepAgent.__dict__["run"], Tool.__dict__["__call__"], ScriptedModel.__dict__["generate"],
             Model.__dict__.get("__init_subclass__"), lpe.ThreadPoolExecutor)
    assert all(a is b for a, b in zip(after, before, strict=True))
    assert not hasattr(LateModel.__dict__["generate"], "__wrapped__")
    cap.clear()
    weather_agent().run("Weather?")
    assert ours(cap, FW) == []


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "peer-first"])
def test_next_to_openinference_there_is_one_span_tree(agentmon_capture: Capture, ours_first: bool,
                                                      caplog: pytest.LogCaptureFixture,
                                                      fresh_log_limiter: None) -> None:
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor as Peer

    tp = agentmon_capture.monitor.tracer_provider
    peer, inst = Peer(), SmolagentsInstrumentor()
    first, second = (inst, peer) if ours_first else (peer, inst)
    first.instrument(tracer_provider=tp)
    second.instrument(tracer_provider=tp)
    try:
        with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
            weather_agent().run("Weather?")
            weather_agent().run("Weather?")
        assert ours(agentmon_capture, FW) == [], scopes(agentmon_capture)
        assert histogram_count(agentmon_capture, sc.M_INVOKE_AGENT_DURATION) == 2  # the peer's, via dialects
        assert len([r for r in caplog.records if "already traces" in r.getMessage()]) == 1
    finally:
        second.uninstrument()
        first.uninstrument()


def test_content_is_captured_only_when_enabled() -> None:
    from otel_agentmon.testing import capture

    for mode, expect in (("NO_CONTENT", False), ("SPAN_ONLY", True)):
        cap, close = capture(capture_content=mode)
        inst = SmolagentsInstrumentor()
        inst.instrument(tracer_provider=cap.monitor.tracer_provider)
        try:
            weather_agent().run("What is the weather in Paris?")
            tool_span = cap.span("execute_tool get_weather")
            assert (sc.GEN_AI_TOOL_CALL_RESULT in span_attrs(tool_span)) is expect
            texts = [str(v) for s in cap.spans() for v in span_attrs(s).values()]
            assert any("What is the weather in Paris" in t for t in texts) is expect
            if expect:
                assert "sunny in Paris" in str(span_attrs(tool_span)[sc.GEN_AI_TOOL_CALL_RESULT])
        finally:
            inst.uninstrument()
            close()
