"""Microsoft Agent Framework, auto-instrumented: one agent with one tool, on an offline chat
client built from the framework's own function-calling and telemetry layers.

    pip install -e '.[agent-framework]' && python examples/frameworks/agent_framework.py

Produces one trace: invoke_agent weather -> chat scripted, execute_tool get_weather, chat
scripted (with token usage), plus the GenAI agent, tool and token metrics and agentmon's task
metrics. The instrumentor turns Agent Framework's own GenAI spans on, into otel_agentmon's
pipeline; a workflow run becomes an invoke_workflow span over its agents.
"""

from __future__ import annotations

import os
import sys

# This file is named like the package it shows: keep its directory off the import path, or
# `import agent_framework` below would import this file instead of Agent Framework.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import asyncio  # noqa: E402
from typing import Any  # noqa: E402

from agent_framework import (  # noqa: E402
    Agent,
    BaseChatClient,
    ChatMiddlewareLayer,
    ChatResponse,
    Content,
    FunctionInvocationLayer,
    Message,
    UsageDetails,
    tool,
)
from agent_framework.observability import ChatTelemetryLayer  # noqa: E402

import otel_agentmon as agentmon  # noqa: E402
from otel_agentmon.instrumentation.agent_framework import AgentFrameworkInstrumentor  # noqa: E402


class ScriptedChatClient(FunctionInvocationLayer, ChatMiddlewareLayer, ChatTelemetryLayer, BaseChatClient):
    """An offline model: calls get_weather, then answers from its result."""

    OTEL_PROVIDER_NAME = "scripted"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.turn = 0

    def _inner_get_response(self, *, messages: Any, stream: Any, options: Any, **kwargs: Any) -> Any:
        async def respond() -> ChatResponse:
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


def main() -> None:
    monitor = agentmon.configure(service_name="agent-framework-example")
    AgentFrameworkInstrumentor().instrument()
    agent = Agent(client=ScriptedChatClient(), name="weather", instructions="Answer weather questions.",
                  tools=[get_weather])
    result = asyncio.run(agent.run("What is the weather in Paris?"))
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {result.text}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
