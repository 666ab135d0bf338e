"""PydanticAI, auto-instrumented: one agent with one tool, on PydanticAI's offline FunctionModel.

    pip install -e '.[pydantic-ai]' && python examples/frameworks/pydantic_ai.py

Produces one trace: invoke_agent weather -> chat scripted, execute_tool get_weather, chat
scripted (with token usage), plus the GenAI agent, tool and token metrics and agentmon's task
metrics. The instrumentor turns PydanticAI's own GenAI spans on, into otel_agentmon's pipeline.
"""

from __future__ import annotations

import os
import sys

# This file is named like the package it shows: keep its directory off the import path, or
# `import pydantic_ai` below would import this file instead of PydanticAI.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart  # noqa: E402
from pydantic_ai.models.function import AgentInfo, FunctionModel  # noqa: E402
from pydantic_ai.usage import RequestUsage  # noqa: E402

import otel_agentmon as agentmon  # noqa: E402
from otel_agentmon.instrumentation.pydantic_ai import PydanticAIInstrumentor  # noqa: E402


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The model: ask for the tool first, answer once the tool's result is in."""
    if any(isinstance(part, ToolReturnPart) for part in messages[-1].parts):
        return ModelResponse(parts=[TextPart("It is sunny in Paris.")],
                             usage=RequestUsage(input_tokens=20, output_tokens=7))
    return ModelResponse(parts=[ToolCallPart("get_weather", {"city": "Paris"}, tool_call_id="call_1")],
                         usage=RequestUsage(input_tokens=10, output_tokens=5))


agent = Agent(FunctionModel(scripted, model_name="scripted"), name="weather",
              instructions="Answer weather questions.")


@agent.tool_plain
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"sunny in {city}"


def main() -> None:
    monitor = agentmon.configure(service_name="pydantic-ai-example")
    PydanticAIInstrumentor().instrument()
    result = agent.run_sync("What is the weather in Paris?")
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {result.output}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
