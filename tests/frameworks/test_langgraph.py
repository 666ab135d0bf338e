"""LangGraph runs for real (StateGraph + ToolNode) on a scripted chat model, instrumented by
``LangGraphInstrumentor``: span tree, GenAI attributes, parent links across LangGraph's threads
and asyncio tasks, derived metrics, errors, idempotence, uninstrument and peer coexistence."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.tracers import context as lc_context
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from opentelemetry.trace import SpanKind, StatusCode

import otel_agentmon as agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon.instrumentation.langgraph import LangGraphInstrumentor, langchain_peer
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

FW = "langgraph"


class WeatherModel(BaseChatModel):
    """A scripted chat model: asks for ``get_weather`` for the city named last in the question,
    then answers with the tool's result. Deterministic under concurrency (no shared script)."""

    model_name: str = "weather-model"

    @property
    def _llm_type(self) -> str:
        return "weather-stub"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            message = AIMessage(content=f"It is {last.content}.",
                                usage_metadata={"input_tokens": 20, "output_tokens": 7, "total_tokens": 27})
        else:
            city = str(last.content).rsplit(" ", 1)[-1].strip("?")
            message = AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": city},
                                                         "id": f"call_{city}"}],
                                usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools: Any, **kwargs: Any) -> WeatherModel:
        return self


class ToolFailed(Exception):
    pass


@tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    if city == "Atlantis":
        raise ToolFailed("no weather under the sea")
    return f"sunny in {city}"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build(name: str = "weather", *, fail_in_node: BaseException | None = None) -> Any:
    model = WeatherModel()

    def agent(state: State) -> dict[str, Any]:
        if fail_in_node is not None:
            raise fail_in_node
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather], handle_tool_errors=True))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(name=name)


def ask(city: str) -> Any:  # the graphs' input (invoke()'s overloads want each graph's State type)
    return {"messages": [HumanMessage(f"What is the weather in {city}")]}


@pytest.fixture
def lg(agentmon_capture: Capture) -> Iterator[LangGraphInstrumentor]:
    inst = LangGraphInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    yield inst
    inst.uninstrument()


def test_graph_run_is_one_agent_trace_with_chat_and_tool_children(agentmon_capture: Capture,
                                                                    lg: LangGraphInstrumentor) -> None:
    out = build().invoke(ask("Paris"))
    assert out["messages"][-1].content == "It is sunny in Paris."
    cap = agentmon_capture
    assert cap.tree() == [("invoke_agent weather", [("chat weather-model", []), ("execute_tool get_weather", []),
                                                    ("chat weather-model", [])])]
    assert len(ours(cap, FW)) == 4
    agent = cap.span("invoke_agent weather")
    assert agent.kind is SpanKind.INTERNAL
    assert span_attrs(agent)[sc.GEN_AI_OPERATION_NAME] == sc.OP_INVOKE_AGENT
    assert span_attrs(agent)[sc.GEN_AI_AGENT_NAME] == "weather"
    assert_agent_children(cap, agent, tools=1, chats=2)
    chat = cap.spans("chat weather-model")[0]
    assert chat.kind is SpanKind.CLIENT
    assert span_attrs(chat)[sc.GEN_AI_REQUEST_MODEL] == "weather-model"
    assert isinstance(span_attrs(chat)[sc.GEN_AI_PROVIDER_NAME], str)
    assert (span_attrs(chat)[sc.GEN_AI_USAGE_INPUT_TOKENS], span_attrs(chat)[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (10, 5)
    tool_span = cap.span("execute_tool get_weather")
    assert span_attrs(tool_span)[sc.GEN_AI_TOOL_NAME] == "get_weather"
    assert span_attrs(tool_span)[sc.GEN_AI_TOOL_CALL_ID] == "call_Paris"
    assert span_attrs(tool_span)[sc.GEN_AI_TOOL_DESCRIPTION] == "Return the weather for a city."


def test_graph_run_feeds_the_genai_agent_metrics_and_tasks(agentmon_capture: Capture,
                                                          lg: LangGraphInstrumentor) -> None:
    build().invoke(ask("Paris"))
    cap = agentmon_capture
    assert histogram_count(cap, sc.M_INVOKE_AGENT_DURATION, **{sc.GEN_AI_AGENT_NAME: "weather"}) == 1
    assert histogram_count(cap, sc.M_EXECUTE_TOOL_DURATION, **{sc.GEN_AI_TOOL_NAME: "get_weather"}) == 1
    assert histogram_count(cap, sc.M_CLIENT_OPERATION_DURATION, **{sc.GEN_AI_REQUEST_MODEL: "weather-model"}) == 2
    assert metric_sum(cap, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 30
    assert metric_sum(cap, sc.M_CLIENT_TOKEN_USAGE, **{sc.GEN_AI_TOKEN_TYPE: "output"}) == 12
    assert metric_sum(cap, sc.M_INVOKE_AGENT_TOOL_CALLS) == 1
    assert metric_sum(cap, sc.M_INVOKE_AGENT_INFERENCE_CALLS) == 2
    assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.GEN_AI_AGENT_NAME: "weather",
                                                    sc.AGENTMON_TASK_OUTCOME: "success"}) == 1
    summary = cap.monitor.snapshot()["weather"]
    assert (summary.tasks_ok, summary.tool_calls, summary.input_tokens, summary.output_tokens) == (1, 1, 30, 12)


def test_a_running_graph_is_a_task_in_flight(agentmon_capture: Capture, lg: LangGraphInstrumentor) -> None:
    seen: list[int] = []

    @tool("get_weather")
    def probe(city: str) -> str:
        """Return the weather for a city."""
        seen.append(agentmon_capture.monitor.snapshot()["weather"].in_flight)
        return "sunny"

    model = WeatherModel()
    graph = StateGraph(State)
    graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([probe]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    graph.compile(name="weather").invoke(ask("Paris"))
    assert seen == [1]
    assert agentmon_capture.monitor.snapshot()["weather"].in_flight == 0


def test_root_is_parented_under_the_callers_span_and_async_runs_keep_their_trees(
        agentmon_capture: Capture, lg: LangGraphInstrumentor) -> None:
    async def main() -> None:
        with agentmon.workflow("forecast-desk"):
            await asyncio.gather(build("paris-agent").ainvoke(ask("Paris")),
                                 build("oslo-agent").ainvoke(ask("Oslo")))

    asyncio.run(main())
    assert_parallel_agents_under(agentmon_capture, "forecast-desk", {"paris-agent": "Paris", "oslo-agent": "Oslo"})


def test_batch_and_thread_pool_runs_keep_one_tree_per_run(agentmon_capture: Capture,
                                                          lg: LangGraphInstrumentor) -> None:
    app = build()
    with agentmon.workflow("batch"):
        outs = app.batch([ask("Paris"), ask("Oslo"), ask("Rome")])  # LangChain's own thread pool
    assert [o["messages"][-1].content for o in outs] == [f"It is sunny in {c}." for c in ("Paris", "Oslo", "Rome")]
    with ThreadPoolExecutor(4) as pool:  # no context passed: each run is its own trace
        list(pool.map(lambda c: app.invoke(ask(c)), ["Lima", "Baku", "Doha", "Riga"]))
    cap = agentmon_capture
    agents = cap.spans("invoke_agent weather")
    assert len(agents) == 7
    for agent in agents:
        assert_agent_children(cap, agent, tools=1, chats=2)
    batch = cap.span("invoke_workflow batch")
    under_batch = [a for a in agents if a.parent is not None and a.parent.span_id == batch.context.span_id]
    assert len(under_batch) == 3
    assert len({a.context.trace_id for a in agents if a not in under_batch}) == 4


def test_tool_error_marks_the_tool_span_and_the_graph_goes_on(agentmon_capture: Capture,
                                                              lg: LangGraphInstrumentor) -> None:
    out = build().invoke(ask("Atlantis"))
    assert "no weather under the sea" in out["messages"][-1].content  # ToolNode fed the error to the model
    cap = agentmon_capture
    tool_span = cap.span("execute_tool get_weather")
    assert tool_span.status.status_code is StatusCode.ERROR
    assert span_attrs(tool_span)[sc.ERROR_TYPE].endswith("ToolFailed")
    assert cap.span("invoke_agent weather").status.status_code is not StatusCode.ERROR
    error_type = span_attrs(tool_span)[sc.ERROR_TYPE]
    assert histogram_count(cap, sc.M_EXECUTE_TOOL_DURATION, **{sc.ERROR_TYPE: error_type}) == 1


def test_user_exception_passes_through_and_fails_the_agent_task(agentmon_capture: Capture,
                                                                lg: LangGraphInstrumentor) -> None:
    boom = RuntimeError("node exploded")
    with pytest.raises(RuntimeError) as raised:
        build(fail_in_node=boom).invoke(ask("Paris"))
    assert raised.value is boom
    agent = agentmon_capture.span("invoke_agent weather")
    assert agent.status.status_code is StatusCode.ERROR
    assert span_attrs(agent)[sc.ERROR_TYPE] == "RuntimeError"
    assert metric_sum(agentmon_capture, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "error"}) == 1


def test_content_is_captured_only_when_enabled(lg: LangGraphInstrumentor) -> None:
    for mode, expect in (("NO_CONTENT", False), ("SPAN_ONLY", True)):
        cap, close = capture(capture_content=mode)
        lg.uninstrument()
        lg.instrument(tracer_provider=cap.monitor.tracer_provider)
        try:
            build().invoke(ask("Paris"))
            chat = cap.spans("chat weather-model")[0]
            tool_span = cap.span("execute_tool get_weather")
            assert (sc.GEN_AI_INPUT_MESSAGES in span_attrs(chat)) is expect
            assert (sc.GEN_AI_TOOL_CALL_RESULT in span_attrs(tool_span)) is expect
            if expect:
                assert "What is the weather in Paris" in str(span_attrs(chat)[sc.GEN_AI_INPUT_MESSAGES])
                assert "Paris" in str(span_attrs(tool_span)[sc.GEN_AI_TOOL_CALL_ARGUMENTS])
                assert span_attrs(tool_span)[sc.GEN_AI_TOOL_CALL_RESULT] == "sunny in Paris"
            else:
                assert not any("weather in" in str(v) for s in cap.spans() for v in span_attrs(s).values())
        finally:
            close()


def test_instrument_twice_gives_one_tree_and_uninstrument_restores_langchain(agentmon_capture: Capture) -> None:
    before = list(lc_context._configure_hooks)
    inst = LangGraphInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    LangGraphInstrumentor().instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    assert len(lc_context._configure_hooks) == len(before) + 1
    build().invoke(ask("Paris"))
    assert len(ours(agentmon_capture, FW)) == 4
    inst.uninstrument()
    after = lc_context._configure_hooks
    assert len(after) == len(before) and all(a is b for a, b in zip(after, before, strict=True))
    agentmon_capture.clear()
    build().invoke(ask("Paris"))
    assert agentmon_capture.spans() == []


def test_callbacks_never_raise_into_langchain(lg: LangGraphInstrumentor, caplog: pytest.LogCaptureFixture,
                                             fresh_log_limiter: None) -> None:
    import uuid

    handler = lg._handler
    run = uuid.uuid4()
    # Garbage where LangChain passes structured values: logged, never raised.
    handler.on_chat_model_start(None, object(), run_id=run, invocation_params=object())
    handler.on_llm_end(object(), run_id=run)
    handler.on_tool_end(object(), run_id=uuid.uuid4())
    handler.on_chain_error(object(), run_id=uuid.uuid4())
    assert any("internal error" in r.getMessage() for r in caplog.records if r.name.startswith("otel_agentmon"))


PEERS = [
    pytest.param("openinference.instrumentation.langchain", "LangChainInstrumentor", id="openinference"),
    pytest.param("opentelemetry.instrumentation.langchain", "LangchainInstrumentor", id="openllmetry"),
]


@pytest.fixture
def restore_langchain() -> Iterator[None]:
    """Put back what a peer patched: OpenLLMetry 0.62's uninstrument leaves its wrapper of
    BaseCallbackManager.__init__ in place (and keeps tracing), which would leak into later tests."""
    from langchain_core.callbacks import BaseCallbackManager
    from langgraph.pregel import Pregel

    saved = [(cls, name, cls.__dict__[name]) for cls, name in
             ((BaseCallbackManager, "__init__"), (Pregel, "stream"), (Pregel, "astream"))]
    yield
    for cls, name, original in saved:
        setattr(cls, name, original)


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "peer-first"])
@pytest.mark.parametrize(("module", "cls"), PEERS)
def test_next_to_a_peer_instrumentation_there_is_one_span_tree(
        agentmon_capture: Capture, module: str, cls: str, ours_first: bool,
        caplog: pytest.LogCaptureFixture, fresh_log_limiter: None, restore_langchain: None) -> None:
    import importlib

    tp = agentmon_capture.monitor.tracer_provider
    peer = getattr(importlib.import_module(module), cls)()
    inst = LangGraphInstrumentor()
    first, second = (inst, peer) if ours_first else (peer, inst)
    first.instrument(tracer_provider=tp)
    second.instrument(tracer_provider=tp)
    try:
        with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
            build().invoke(ask("Paris"))
            build().invoke(ask("Oslo"))
        counts = scopes(agentmon_capture)
        assert ours(agentmon_capture, FW) == [], counts
        peer_spans = agentmon_capture.spans()
        assert peer_spans, "the peer traced the runs"
        tool_spans = [s for s in peer_spans if "get_weather" in s.name]
        assert len(tool_spans) == 2, [s.name for s in peer_spans]  # one per run: no duplicates
        warnings = [r for r in caplog.records
                    if r.name.startswith("otel_agentmon") and "already traces" in r.getMessage()]
        assert len(warnings) == 1
        # The peer's spans still feed our tool metrics through the dialect mapping.
        assert histogram_count(agentmon_capture, sc.M_EXECUTE_TOOL_DURATION) == 2
    finally:
        peer.uninstrument()
    agentmon_capture.clear()
    build().invoke(ask("Rome"))
    if langchain_peer() is None:  # the peer is gone: we trace again
        assert len(ours(agentmon_capture, FW)) == 4
    else:  # OpenLLMetry 0.62 keeps tracing after its uninstrument(): we keep standing down
        assert module.startswith("opentelemetry.") and ours(agentmon_capture, FW) == []
    inst.uninstrument()


def test_failing_graph_runs_make_the_agent_unhealthy(health_capture: Any) -> None:
    cap = health_capture()
    inst = LangGraphInstrumentor()
    inst.instrument(tracer_provider=cap.monitor.tracer_provider)
    try:
        build().invoke(ask("Paris"))
        for _ in range(5):
            with pytest.raises(RuntimeError):
                build(fail_in_node=RuntimeError("down")).invoke(ask("Paris"))
        agent = cap.monitor.evaluate_health().agents["weather"]
        assert agent.state == "unhealthy" and agent.up
        assert any("error rate" in reason for reason in agent.reasons), agent.reasons
    finally:
        inst.uninstrument()


def test_nested_graphs_are_sub_agents_under_the_supervisor(agentmon_capture: Capture,
                                                           lg: LangGraphInstrumentor) -> None:
    researcher, writer = build("researcher"), build("writer")

    def write(state: State) -> Any:
        return writer.invoke(state)  # a graph called from a node

    graph = StateGraph(State)
    graph.add_node("research", researcher)  # a compiled graph as a node
    graph.add_node("write", write)
    graph.add_edge(START, "research")
    graph.add_edge("research", "write")
    graph.compile(name="supervisor").invoke(ask("Paris"))
    cap = agentmon_capture
    leaf: list[tuple[str, list[Any]]] = [("chat weather-model", []), ("execute_tool get_weather", []),
                                         ("chat weather-model", [])]
    assert cap.tree() == [("invoke_agent supervisor", [("invoke_agent researcher", leaf),
                                                       ("invoke_agent writer", leaf)])]
    for name in ("researcher", "writer"):
        assert_agent_children(cap, cap.span(f"invoke_agent {name}"), tools=1, chats=2)
    assert {a for a in cap.monitor.snapshot()} == {"supervisor", "researcher", "writer"}
    assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "success"}) == 3


def test_spans_the_users_tool_code_opens_nest_under_the_tool_span(agentmon_capture: Capture,
                                                                  lg: LangGraphInstrumentor) -> None:
    from opentelemetry import trace

    @tool("get_weather")
    def lookup(city: str) -> str:
        """Return the weather for a city."""
        with agentmon.tool("weather-api"):
            return "sunny"

    model = WeatherModel()
    graph = StateGraph(State)
    graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([lookup]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    app = graph.compile(name="weather")
    app.invoke(ask("Paris"))
    asyncio.run(app.ainvoke(ask("Oslo")))
    cap = agentmon_capture
    for inner in cap.spans("execute_tool weather-api"):
        outer = next(s for s in cap.spans() if s.context.span_id == inner.parent.span_id)  # type: ignore[union-attr]
        assert outer.name == "execute_tool get_weather" and outer.instrumentation_scope.name.endswith(FW)  # type: ignore[union-attr]
        assert span_attrs(inner)[sc.GEN_AI_AGENT_NAME] == "weather"
    assert len(cap.spans("execute_tool weather-api")) == 2
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left current in the caller


def test_an_interrupt_is_control_flow_not_an_error(agentmon_capture: Capture, lg: LangGraphInstrumentor) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command, interrupt

    def review(state: State) -> dict[str, Any]:
        verdict = interrupt("approve?")
        return {"messages": [AIMessage(content=f"reviewed: {verdict}")]}

    graph = StateGraph(State)
    graph.add_node("review", review)
    graph.add_edge(START, "review")
    app = graph.compile(name="reviewer", checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t1"}}
    paused = app.invoke(ask("Paris"), config)
    assert "__interrupt__" in paused
    done = app.invoke(Command(resume="yes"), config)
    assert done["messages"][-1].content == "reviewed: yes"
    runs = agentmon_capture.spans("invoke_agent reviewer")
    assert len(runs) == 2 and all(r.status.status_code is not StatusCode.ERROR for r in runs)
    assert metric_sum(agentmon_capture, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "success"}) == 2
