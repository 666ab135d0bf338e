"""AutoGen AgentChat, auto-instrumented: one assistant agent with one tool, on AutoGen's own
offline ReplayChatCompletionClient.

    pip install -e '.[autogen-agentchat]' && python examples/frameworks/autogen.py

Produces one trace: invoke_agent weather -> chat, execute_tool get_weather, chat (each model
call with its token usage, which AutoGen itself does not report over OpenTelemetry), plus the
GenAI agent, tool and token metrics and agentmon's task metrics. A team (RoundRobinGroupChat,
SelectorGroupChat, ...) adds an invoke_workflow span over its agents' turns.
"""

from __future__ import annotations

import os
import sys

# Keep this file's directory off the import path (a file here named like a package would shadow it).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import asyncio  # noqa: E402
import logging  # noqa: E402

from autogen_agentchat.agents import AssistantAgent  # noqa: E402
from autogen_core import EVENT_LOGGER_NAME, FunctionCall  # noqa: E402
from autogen_core.models import CreateResult, ModelFamily, ModelInfo, RequestUsage  # noqa: E402
from autogen_ext.models.replay import ReplayChatCompletionClient  # noqa: E402

import otel_agentmon as agentmon  # noqa: E402
from otel_agentmon.instrumentation.autogen import AutoGenInstrumentor  # noqa: E402

# The replay client logs that it ignores tool_choice and counts tokens roughly: harmless here.
logging.getLogger(EVENT_LOGGER_NAME).setLevel(logging.ERROR)


async def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"sunny in {city}"


def scripted_model() -> ReplayChatCompletionClient:
    """The model: ask for the tool first, then answer (AutoGen reflects on the tool's result)."""
    return ReplayChatCompletionClient(
        [CreateResult(finish_reason="function_calls", cached=False,
                      content=[FunctionCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')],
                      usage=RequestUsage(prompt_tokens=10, completion_tokens=5)),
         CreateResult(finish_reason="stop", cached=False, content="It is sunny in Paris.",
                      usage=RequestUsage(prompt_tokens=20, completion_tokens=7))],
        model_info=ModelInfo(vision=False, function_calling=True, json_output=False, family=ModelFamily.UNKNOWN,
                             structured_output=False))


def main() -> None:
    monitor = agentmon.configure(service_name="autogen-example")
    AutoGenInstrumentor().instrument()
    agent = AssistantAgent("weather", model_client=scripted_model(), tools=[get_weather],
                           system_message="Answer weather questions.", reflect_on_tool_use=True)
    result = asyncio.run(agent.run(task="What is the weather in Paris?"))
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {result.messages[-1].content}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
