"""A plain agent on the Anthropic SDK, instrumented by ``configure()`` alone (no instrumentor to call).

    pip install -e '.[anthropic]' && python examples/frameworks/anthropic_client.py

The agent calls ``client.messages.create`` directly, runs the tool the model asks for and calls
the model again. Runs offline: the real Anthropic client, over a scripted HTTP transport that
answers like the Messages API. Produces one trace: invoke_agent weather -> anthropic.messages.create
(10 input, 5 output tokens), execute_tool get_weather, anthropic.messages.create (20 input, 7 output
tokens). The model-call spans are the Anthropic SDK's own (scope ``com.anthropic.sdk.python``):
``configure()`` adds nothing on top of them and derives the ``gen_ai.client.*`` metrics from them
once; with an SDK that has no native spans, or ``ANTHROPIC_OPEN_TELEMETRY=false``, it uses the
official OpenTelemetry GenAI Anthropic instrumentation instead. Point OTEL_EXPORTER_OTLP_ENDPOINT
at your Collector.
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
    import httpx2 as http  # the Anthropic SDK's HTTP library since anthropic 2
except ImportError:
    import httpx as http  # type: ignore[no-redef]  # older anthropic releases

TOOLS: list[Any] = [{"name": "get_weather", "description": "Return the weather for a city.",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                      "required": ["city"]}}]


def get_weather(city: str) -> str:
    return f"sunny in {city}"


def scripted_api(request: Any) -> Any:
    """The Messages API, scripted: ask for the tool first, then answer with its result."""
    last = json.loads(request.content)["messages"][-1]
    results = [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"] \
        if isinstance(last["content"], list) else []
    if not results:
        content: list[Any] = [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]
        usage, reason = {"input_tokens": 10, "output_tokens": 5}, "tool_use"
    else:
        content = [{"type": "text", "text": f"It is {results[0]['content']}."}]
        usage, reason = {"input_tokens": 20, "output_tokens": 7}, "end_turn"
    return http.Response(200, json={"id": "msg-1", "type": "message", "role": "assistant",
                                    "model": "claude-sonnet-4-5", "content": content, "stop_reason": reason,
                                    "stop_sequence": None, "usage": usage})


def run() -> str:
    import anthropic  # imported after configure(), as in most programs (before works too)

    client = anthropic.Anthropic(api_key="offline", base_url="http://api.invalid",
                                 http_client=http.Client(transport=http.MockTransport(scripted_api)))
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    with agentmon.agent("weather"):
        while True:
            reply = client.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=messages, tools=TOOLS)
            calls = [block for block in reply.content if block.type == "tool_use"]
            if not calls:
                return "".join(block.text for block in reply.content if block.type == "text")
            messages.append({"role": "assistant", "content": [block.model_dump() for block in reply.content]})
            results = []
            for call in calls:
                with agentmon.tool(call.name, call_id=call.id):
                    results.append({"type": "tool_result", "tool_use_id": call.id,
                                    "content": get_weather(**call.input)})
            messages.append({"role": "user", "content": results})


def main() -> None:
    monitor = agentmon.configure(service_name="anthropic-client-example")
    answer = run()
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {answer}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
