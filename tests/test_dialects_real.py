"""Spans from the REAL OpenInference and OpenLLMetry instrumentations feed our metrics and health.

Each framework runs for real and offline: LangGraph with langchain-core's fake chat model, and the
OpenAI Agents SDK with its own ``ScriptedModel``. The peer instrumentor writes to the capture's
TracerProvider; otel_agentmon never sees the framework, only the peer's spans in the peer's
dialect, and must still derive the GenAI agent metrics, tasks, health and error rates from them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.tools import tool as lc_tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition

from otel_agentmon.testing import Capture
from tests.conftest import FAST_HEALTH

Make = Callable[..., Capture]
pytestmark = pytest.mark.timeout(60)


@dataclasses.dataclass(frozen=True)
class Case:
    """One framework under one peer instrumentation, and what its spans must turn into."""

    framework: str
    instrumentor: str  # module:Class
    agent: str  # the agent name our metrics get
    invocations: int  # agent invocations per run, as the peer models them
    workflow: str | None  # the workflow the peer's spans give, if any
    tokens: tuple[int, int] | None  # (input, output) per run when the peer records usage

    @property
    def id(self) -> str:
        return f"{self.framework}-{self.instrumentor.split('.')[0]}"


CASES = [
    # OpenInference: the graph's run (its CHAIN span) is the agent, named by the graph as ours is;
    # the "agent" node runs it marks AGENT are steps of it.
    Case("langgraph", "openinference.instrumentation.langchain:LangChainInstrumentor",
         "LangGraph", 1, None, (30, 12)),
    # OpenLLMetry: invoke_agent LangGraph > LangGraph.workflow (also stamped invoke_agent): one run.
    Case("langgraph", "opentelemetry.instrumentation.langchain:LangchainInstrumentor",
         "LangGraph", 1, "LangGraph", (30, 12)),
    Case("openai_agents", "openinference.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
         "weather", 1, "Agent workflow", None),
    Case("openai_agents", "opentelemetry.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
         "weather", 1, "Agent Workflow", None),
]


# --- the frameworks, offline ----------------------------------------------------------------------

class FakeToolChatModel(GenericFakeChatModel):
    """GenericFakeChatModel has no bind_tools(); offline, ignoring the schema is enough."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeToolChatModel:
        return self


@lc_tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"sunny in {city}"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def run_langgraph(fail: bool) -> str:
    model = FakeToolChatModel(messages=iter([
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}],
                  usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}),
        AIMessage(content="It is sunny in Paris.",
                  usage_metadata={"input_tokens": 20, "output_tokens": 7, "total_tokens": 27}),
    ])).bind_tools([get_weather])

    def agent(state: State) -> dict[str, list[AnyMessage]]:
        if fail:
            raise RuntimeError("model down")
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    out = graph.compile().invoke({"messages": [HumanMessage("Weather in Paris?")]})
    return str(out["messages"][-1].content)


def run_openai_agents(fail: bool) -> str:
    from agents import Agent, Runner, function_tool
    from agents.testing import ScriptedModel, assistant_message, function_call

    @function_tool
    def get_weather(city: str) -> str:
        """Return the weather for a city."""
        return f"sunny in {city}"

    steps: list[Any] = [{"error": RuntimeError("model down")}] if fail else [
        {"output": [function_call("get_weather", {"city": "Paris"}, call_id="call_1")]},
        {"output": [assistant_message("It is sunny in Paris.")]},
    ]
    model = ScriptedModel(steps, emit_traces=True)
    agent = Agent(name="weather", instructions="Answer weather questions.", model=model, tools=[get_weather])
    return str(asyncio.run(Runner.run(agent, "Weather in Paris?")).final_output)


RUNNERS: dict[str, Callable[[bool], str]] = {"langgraph": run_langgraph, "openai_agents": run_openai_agents}


def run(case: Case, *, fail: bool = False) -> None:
    if not fail:
        assert RUNNERS[case.framework](False) == "It is sunny in Paris."
        return
    with pytest.raises(RuntimeError, match="model down"):
        RUNNERS[case.framework](True)


# --- the peer, writing to the capture's provider ----------------------------------------------------

@pytest.fixture
def peer_capture(request: pytest.FixtureRequest, health_capture: Make) -> Iterator[tuple[Case, Capture]]:
    """A fast-health capture and the case's peer instrumentor writing to its TracerProvider."""
    case: Case = request.param
    cap = health_capture()
    module, cls = case.instrumentor.split(":")
    instrumentor = getattr(importlib.import_module(module), cls)()
    sdk_processors: list[Any] | None = None
    if case.framework == "openai_agents":
        from agents.tracing import get_trace_provider

        sdk_processors = list(get_trace_provider()._multi_processor._processors)  # type: ignore[attr-defined]  # the agents SDK's processors list is private; read to check registration
    instrumentor.instrument(tracer_provider=cap.monitor.tracer_provider)
    if sdk_processors is not None:
        # Keep the peer's trace processor; drop the SDK's default exporter to OpenAI's backend.
        from agents import set_trace_processors
        from agents.tracing import get_trace_provider
        from agents.tracing.processors import BatchTraceProcessor

        set_trace_processors([p for p in get_trace_provider()._multi_processor._processors  # type: ignore[attr-defined]  # the agents SDK's processors list is private; read to check registration
                              if not isinstance(p, BatchTraceProcessor)])
    try:
        yield case, cap
    finally:
        instrumentor.uninstrument()
        if sdk_processors is not None:
            from agents import set_trace_processors

            set_trace_processors(sdk_processors)


def by_attr(cap: Capture, metric: str, key: str) -> dict[Any, Any]:
    """{attribute value: data point} of ``metric`` (counts for histograms, values for sums)."""
    out: dict[Any, Any] = {}
    for point in cap.points(metric):
        out[(point.attributes or {}).get(key)] = getattr(point, "count", None) or getattr(point, "value", None)
    return out


parametrize_cases = pytest.mark.parametrize("peer_capture", CASES, ids=[c.id for c in CASES], indirect=True)


@parametrize_cases
def test_peer_spans_give_our_agent_tool_inference_and_workflow_metrics(peer_capture: tuple[Case, Capture]) -> None:
    case, cap = peer_capture
    run(case)
    run(case)
    scopes = {s.instrumentation_scope.name for s in cap.spans() if s.instrumentation_scope is not None}
    assert scopes == {case.instrumentor.split(":")[0]}, "only the peer made spans"
    assert by_attr(cap, "gen_ai.invoke_agent.duration", "gen_ai.agent.name") == {case.agent: 2 * case.invocations}
    assert by_attr(cap, "gen_ai.execute_tool.duration", "gen_ai.tool.name") == {"get_weather": 2}
    # The peer's tool spans do not name the agent: the enclosing agent does.
    assert by_attr(cap, "gen_ai.execute_tool.duration", "gen_ai.agent.name") == {case.agent: 2}
    assert by_attr(cap, "gen_ai.client.operation.duration", "gen_ai.operation.name") == {"chat": 4}  # 2 turns a run
    workflows = by_attr(cap, "gen_ai.invoke_workflow.duration", "gen_ai.workflow.name")
    assert workflows == ({case.workflow: 2} if case.workflow else {})
    completed = {((p.attributes or {})["gen_ai.agent.name"], (p.attributes or {})["agentmon.task.outcome"]): p.value
                 for p in cap.points("agentmon.tasks.completed")}
    assert completed == {(case.agent, "success"): 2 * case.invocations}
    tokens = by_attr(cap, "gen_ai.client.token.usage", "gen_ai.token.type")
    summary = cap.monitor.snapshot()[case.agent]
    assert (summary.tasks_ok, summary.tasks_failed, summary.in_flight) == (2 * case.invocations, 0, 0)
    assert summary.inference_calls == 4
    if case.tokens is None:
        assert tokens == {}  # this peer records no usage for the SDK's scripted model
    else:
        assert tokens == {"input": 4, "output": 4}
        assert (summary.input_tokens, summary.output_tokens) == (2 * case.tokens[0], 2 * case.tokens[1])


@parametrize_cases
def test_agent_from_peer_spans_is_healthy_then_idle_then_stopped(peer_capture: tuple[Case, Capture]) -> None:
    case, cap = peer_capture
    run(case)
    health = cap.monitor.evaluate_health().agents[case.agent]
    assert (health.state, health.up, health.in_flight) == ("healthy", True, 0)
    assert health.window is not None and health.window.count == case.invocations
    time.sleep(3 * FAST_HEALTH.heartbeat_timeout)  # waiting for work in a live process: idle, not down
    idle = cap.monitor.evaluate_health().agents[case.agent]
    assert (idle.state, idle.lifecycle, idle.up) == ("healthy", "idle", True), idle.reasons
    cap.monitor.shutdown(2.0)  # a clean exit: stopped, never down
    stopped = cap.monitor.health().agents[case.agent]
    assert (stopped.state, stopped.lifecycle, stopped.up) == ("stopped", "stopped", False)
    up = {(p.attributes or {}).get("gen_ai.agent.name"): p.value for p in cap.points("agentmon.agent.up")}
    assert up[case.agent] == 0


@parametrize_cases
def test_failing_runs_under_a_peer_raise_the_agents_error_rate(peer_capture: tuple[Case, Capture]) -> None:
    case, cap = peer_capture
    for _ in range(3):
        run(case)
    for _ in range(5):
        run(case, fail=True)  # the agent fails on its first model turn: one failed invocation a run
    ok = 3 * case.invocations
    health = cap.monitor.evaluate_health().agents[case.agent]
    assert health.window is not None and (health.window.count, health.window.errors) == (ok + 5, 5)
    rate = 5 / (ok + 5)
    expected = "unhealthy" if rate >= 0.5 else "degraded"
    assert health.state == expected and any("error rate" in r for r in health.reasons), health.reasons
    completed = {(p.attributes or {})["agentmon.task.outcome"]: p.value for p in cap.points("agentmon.tasks.completed")
                 if (p.attributes or {})["gen_ai.agent.name"] == case.agent}
    assert completed == {"success": ok, "error": 5}
    assert cap.monitor.snapshot()[case.agent].tasks_failed == 5
