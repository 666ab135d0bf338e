"""LlamaIndex, auto-instrumented: one FunctionAgent with one tool, on a scripted offline LLM.

    pip install -e '.[llama-index]' && python examples/frameworks/llama_index.py

Produces one trace: invoke_agent weather -> chat scripted, execute_tool get_weather, chat
scripted (with token usage), plus the GenAI agent, tool and token metrics and agentmon's task
metrics. The agent and tool spans come from the official OpenTelemetry GenAI instrumentation
for LlamaIndex, which LlamaIndexInstrumentor turns on; the chat spans are ours.
"""

from __future__ import annotations

import os
import sys

# This file is named like the package it shows: keep its directory off the import path, or
# `import llama_index` below would import this file instead of LlamaIndex.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import asyncio  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

from llama_index.core.agent.workflow import FunctionAgent  # noqa: E402
from llama_index.core.base.llms.types import (  # noqa: E402
    ChatMessage,
    ChatResponse,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback  # noqa: E402
from llama_index.core.llms.mock import MockFunctionCallingLLM  # noqa: E402

import otel_agentmon as agentmon  # noqa: E402
from otel_agentmon.instrumentation.llama_index import LlamaIndexInstrumentor  # noqa: E402

warnings.filterwarnings("ignore", module="pydantic")  # LlamaIndex's own pydantic deprecations


class ScriptedLLM(MockFunctionCallingLLM):
    """An offline function-calling LLM: calls get_weather, then answers. Reports token usage
    the way llama-index-llms-openai does."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_function_calling_model=True, model_name="scripted")

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        if any(m.role == MessageRole.TOOL for m in messages):
            msg = ChatMessage(role=MessageRole.ASSISTANT, content="It is sunny in Paris.")
            usage = {"prompt_tokens": 20, "completion_tokens": 7}
        else:
            call = ToolCallBlock(tool_call_id="call_1", tool_name="get_weather", tool_kwargs={"city": "Paris"})
            msg = ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
            usage = {"prompt_tokens": 10, "completion_tokens": 5}
        reply = ChatResponse(message=msg, delta=msg.content or "", additional_kwargs=usage)

        async def stream() -> Any:
            yield reply

        return stream()


def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"sunny in {city}"


async def ask(agent: FunctionAgent) -> str:
    return str(await agent.run(user_msg="What is the weather in Paris?"))


def main() -> None:
    monitor = agentmon.configure(service_name="llama-index-example")
    LlamaIndexInstrumentor().instrument()
    agent = FunctionAgent(name="weather", description="Reports the weather", tools=[get_weather],
                          llm=ScriptedLLM())
    answer = asyncio.run(ask(agent))
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {answer}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
