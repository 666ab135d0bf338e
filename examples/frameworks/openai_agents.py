"""OpenAI Agents SDK, auto-instrumented: one agent with one tool, on the SDK's offline ScriptedModel.

    pip install -e '.[openai-agents]' && python examples/frameworks/openai_agents.py

Produces one trace: invoke_workflow weather-run -> invoke_agent weather -> chat, execute_tool
get_weather, chat; plus the GenAI agent, tool and model-call metrics and agentmon's task
metrics. (ScriptedModel reports no model name or token usage on its spans; a real model does.)
"""

from __future__ import annotations

import asyncio
import os
import sys

# Keep this directory off the import path: langgraph.py, pydantic_ai.py and smolagents.py beside
# this file would shadow those packages for anything that imports them.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

from agents import Agent, RunConfig, Runner, function_tool, set_trace_processors  # noqa: E402
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402

import otel_agentmon as agentmon  # noqa: E402
from otel_agentmon.instrumentation.openai_agents import OpenAIAgentsInstrumentor  # noqa: E402


@function_tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"sunny in {city}"


async def run() -> str:
    model = ScriptedModel([
        {"output": [function_call("get_weather", {"city": "Paris"}, call_id="call_1")]},
        {"output": [assistant_message("It is sunny in Paris.")]},
    ], emit_traces=True)  # emit_traces: the scripted model opens model-call spans like a real one
    agent = Agent(name="weather", instructions="Answer weather questions.", model=model, tools=[get_weather])
    result = await Runner.run(agent, "What is the weather in Paris?", run_config=RunConfig(workflow_name="weather-run"))
    return str(result.final_output)


def main() -> None:
    monitor = agentmon.configure(service_name="openai-agents-example")
    set_trace_processors([])  # offline: drop the SDK's exporter to the OpenAI backend (optional)
    OpenAIAgentsInstrumentor().instrument()
    answer = asyncio.run(run())
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {answer}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
