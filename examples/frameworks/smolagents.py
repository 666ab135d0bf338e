"""smolagents, auto-instrumented: one tool-calling agent with one tool, on a scripted offline model.

    pip install -e '.[smolagents]' && python examples/frameworks/smolagents.py

Produces one trace: invoke_agent weather -> chat scripted, execute_tool get_weather, chat
scripted (with token usage), plus the GenAI agent, tool and token metrics and agentmon's task
metrics. (The agent answers through smolagents' built-in final_answer tool, which gets no span.)
"""

from __future__ import annotations

import os
import sys

# This file is named like the package it shows: keep its directory off the import path, or
# `import smolagents` below would import this file instead of smolagents.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

from typing import Any  # noqa: E402

from smolagents import ToolCallingAgent, tool  # noqa: E402
from smolagents.models import (  # noqa: E402
    ChatMessage,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    MessageRole,
    Model,
)
from smolagents.monitoring import LogLevel, TokenUsage  # noqa: E402

import otel_agentmon as agentmon  # noqa: E402
from otel_agentmon.instrumentation.smolagents import SmolagentsInstrumentor  # noqa: E402


class ScriptedModel(Model):
    """An offline model: calls get_weather, then answers through the final_answer tool."""

    def __init__(self) -> None:
        super().__init__(model_id="scripted")
        self.replies = [("get_weather", {"city": "Paris"}, TokenUsage(10, 5)),
                        ("final_answer", {"answer": "It is sunny in Paris."}, TokenUsage(20, 7))]

    def generate(self, messages: Any, stop_sequences: Any = None, response_format: Any = None,
                 tools_to_call_from: Any = None, **kwargs: Any) -> ChatMessage:
        name, arguments, usage = self.replies.pop(0)
        call = ChatMessageToolCall(id=f"call_{name}", type="function",
                                   function=ChatMessageToolCallFunction(name=name, arguments=arguments))
        return ChatMessage(role=MessageRole.ASSISTANT, content="", tool_calls=[call], token_usage=usage)


@tool
def get_weather(city: str) -> str:
    """Return the weather for a city.

    Args:
        city: the city name
    """
    return f"sunny in {city}"


def main() -> None:
    monitor = agentmon.configure(service_name="smolagents-example")
    SmolagentsInstrumentor().instrument()
    agent = ToolCallingAgent(tools=[get_weather], model=ScriptedModel(), name="weather", max_steps=4,
                             verbosity_level=LogLevel.OFF)
    answer = agent.run("What is the weather in Paris?")
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {answer}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
