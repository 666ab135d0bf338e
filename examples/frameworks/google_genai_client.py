"""A plain agent on the Google GenAI SDK, instrumented by ``configure()`` alone (no instrumentor to call).

    pip install -e '.[google-genai]' && python examples/frameworks/google_genai_client.py

The agent calls ``client.models.generate_content`` directly, runs the function the model asks for
and calls the model again. Runs offline: the real ``google-genai`` client, over a scripted HTTP
transport that answers like the Gemini API. Produces one trace: invoke_agent weather ->
generate_content gemini-2.5-flash (10 input, 5 output tokens), execute_tool get_weather,
generate_content gemini-2.5-flash (20 input, 7 output tokens). The inference spans and their
``gen_ai.client.*`` metrics are the official OpenTelemetry Google GenAI instrumentation's, which
``configure()`` turned on when ``google.genai`` was imported (``llm_clients`` /
``AGENTMON_LLM_CLIENTS`` choose). Point OTEL_EXPORTER_OTLP_ENDPOINT at your Collector.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# Keep this directory off the import path: the examples beside this file would shadow the packages
# they are named after for anything that imports them.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import httpx  # noqa: E402  # the Google GenAI SDK's HTTP library

import otel_agentmon as agentmon  # noqa: E402

MODEL = "gemini-2.5-flash"


def get_weather(city: str) -> str:
    return f"sunny in {city}"


def scripted_api(request: httpx.Request) -> httpx.Response:
    """The Gemini generateContent API, scripted: ask for the function first, then answer with its result."""
    contents = json.loads(request.content)["contents"]
    last_parts = contents[-1].get("parts", [])
    result = next((p["functionResponse"]["response"]["result"] for p in last_parts if "functionResponse" in p), None)
    if result is None:
        parts: list[dict[str, Any]] = [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]
        usage, reason = (10, 5), "STOP"
    else:
        parts, usage, reason = [{"text": f"It is {result}."}], (20, 7), "STOP"
    return httpx.Response(200, json={
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": reason}],
        "usageMetadata": {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1],
                          "totalTokenCount": sum(usage)},
        "modelVersion": MODEL})


def run() -> str:
    from google import genai  # imported after configure(), as in most programs (before works too)
    from google.genai import types

    client = genai.Client(api_key="offline", http_options=types.HttpOptions(
        httpx_client=httpx.Client(transport=httpx.MockTransport(scripted_api))))
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", description="Return the weather for a city.",
        parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)},
                                required=["city"]))])
    config = types.GenerateContentConfig(tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(
        disable=True))
    contents: list[Any] = [types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])]
    with agentmon.agent("weather"):
        while True:
            reply = client.models.generate_content(model=MODEL, contents=contents, config=config)
            calls = reply.function_calls or []
            if not calls:
                return str(reply.text)
            contents.append(reply.candidates[0].content if reply.candidates else None)
            for call in calls:
                with agentmon.tool(str(call.name), call_id=call.id):
                    result = get_weather(**dict(call.args or {}))
                contents.append(types.Content(role="user", parts=[types.Part.from_function_response(
                    name=str(call.name), response={"result": result})]))


def main() -> None:
    monitor = agentmon.configure(service_name="google-genai-client-example")
    answer = run()
    monitor.shutdown()
    stats = monitor.stats()
    print(f"answer: {answer}")
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
