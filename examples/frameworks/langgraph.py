"""LangGraph, auto-instrumented: one agent graph with one tool, on LangChain's offline fake chat model.

    pip install -e '.[langgraph]' && python examples/frameworks/langgraph.py

Produces one trace: invoke_agent weather -> chat FakeToolChatModel, execute_tool get_weather,
chat FakeToolChatModel (with token usage), plus the GenAI agent, tool and token metrics and
agentmon's task metrics. Point OTEL_EXPORTER_OTLP_ENDPOINT at your Collector.
"""

from __future__ import annotations

import os
import sys

# This file is named like the package it shows: keep its directory off the import path, or
# `import langgraph` below would import this file instead of LangGraph.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

from typing import Annotated, Any, TypedDict  # noqa: E402

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langgraph.graph import START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.prebuilt import ToolNode, tools_condition  # noqa: E402

import otel_agentmon as agentmon  # noqa: E402
from otel_agentmon.instrumentation.langgraph import LangGraphInstrumentor  # noqa: E402


class FakeToolChatModel(GenericFakeChatModel):
    """LangChain's scripted offline chat model; it only lacks ``bind_tools``."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeToolChatModel:
        return self


@tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"sunny in {city}"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build_graph() -> Any:
    model = FakeToolChatModel(messages=iter([
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}],
                  usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}),
        AIMessage(content="It is sunny in Paris.",
                  usage_metadata={"input_tokens": 20, "output_tokens": 7, "total_tokens": 27}),
    ])).bind_tools([get_weather])

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(name="weather")  # the graph's name is the agent's name


def main() -> None:
    monitor = agentmon.configure(service_name="langgraph-example")
    LangGraphInstrumentor().instrument()
    out = build_graph().invoke({"messages": [HumanMessage("What is the weather in Paris?")]})
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {out['messages'][-1].content}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
