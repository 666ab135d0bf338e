"""A plain agent on the OpenAI SDK, instrumented by ``configure()`` alone (no instrumentor to call).

    pip install -e '.[openai]' && python examples/frameworks/openai_client.py

The agent calls ``client.chat.completions.create`` directly, runs the tool the model asks for and
calls the model again. Runs offline: the real OpenAI client, over a scripted HTTP transport that
answers like the Chat Completions API. Produces one trace: invoke_agent weather -> chat
gpt-4o-mini (10 input, 5 output tokens), execute_tool get_weather, chat gpt-4o-mini (20 input, 7
output tokens). The chat spans and their ``gen_ai.client.*`` metrics are the official OpenTelemetry
GenAI OpenAI instrumentation's, which ``configure()`` turned on when ``openai`` was imported
(``llm_clients`` / ``AGENTMON_LLM_CLIENTS`` choose). Point OTEL_EXPORTER_OTLP_ENDPOINT at your Collector.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# Keep this directory off the import path: langgraph.py, pydantic_ai.py and smolagents.py beside
# this file would shadow those packages for anything that imports them.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import otel_agentmon as agentmon  # noqa: E402

try:
    import httpx2 as http  # the OpenAI SDK's HTTP library since openai 3
except ImportError:
    import httpx as http  # type: ignore[no-redef]  # older openai releases

TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Return the weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def get_weather(city: str) -> str:
    return f"sunny in {city}"


def scripted_api(request: Any) -> Any:
    """The Chat Completions API, scripted: ask for the tool first, then answer with its result."""
    messages = json.loads(request.content)["messages"]
    if messages[-1]["role"] != "tool":
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]}
        usage, reason = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, "tool_calls"
    else:
        message = {"role": "assistant", "content": f"It is {messages[-1]['content']}."}
        usage, reason = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}, "stop"
    return http.Response(200, json={"id": f"cc-{len(messages)}", "object": "chat.completion", "created": 0,
                                    "model": "gpt-4o-mini", "usage": usage,
                                    "choices": [{"index": 0, "message": message, "finish_reason": reason}]})


def run() -> str:
    import openai  # imported after configure(), as in most programs (before works too)

    client = openai.OpenAI(api_key="offline", base_url="http://api.invalid/v1",
                           http_client=http.Client(transport=http.MockTransport(scripted_api)))
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    with agentmon.agent("weather"):
        while True:
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
            message = reply.choices[0].message
            if not message.tool_calls:
                return str(message.content)
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                with agentmon.tool(call.function.name, call_id=call.id):
                    result = get_weather(**json.loads(call.function.arguments))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})


def main() -> None:
    monitor = agentmon.configure(service_name="openai-client-example")
    answer = run()
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {answer}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
