"""Quickstart: one agent, two tools and a (stubbed) LLM call, exported over OTLP.

    python examples/quickstart.py            # exports to OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4318)
    OTEL_TRACES_EXPORTER=console python examples/quickstart.py   # print spans instead

Produces one trace: invoke_agent weather-assistant -> execute_tool geocode, execute_tool forecast,
chat stub-model; plus the GenAI agent, tool and token metrics.
"""

from __future__ import annotations

import time

import otel_agentmon as agentmon


@agentmon.tool("geocode", description="City name to coordinates")
def geocode(city: str) -> tuple[float, float]:
    time.sleep(0.01)
    return (48.85, 2.35) if city == "Paris" else (0.0, 0.0)


@agentmon.tool("forecast", description="Coordinates to a weather forecast")
def forecast(lat: float, lon: float) -> str:
    time.sleep(0.02)
    return "sunny, 21°C"


def stub_llm(prompt: str) -> tuple[str, int, int]:
    """Stands in for a model call: returns (text, input tokens, output tokens)."""
    time.sleep(0.03)
    return f"The weather: {prompt}", len(prompt.split()) * 4, 12


@agentmon.agent("weather-assistant", description="Answers weather questions")
def answer(question: str) -> str:
    lat, lon = geocode("Paris")
    weather = forecast(lat, lon)
    with agentmon.llm("stub-model", provider="openai") as call:
        text, tokens_in, tokens_out = stub_llm(f"{question} -> {weather}")
        call.record_usage(input_tokens=tokens_in, output_tokens=tokens_out, response_model="stub-model")
        call.record_messages(input=[{"role": "user", "content": question}])  # dropped unless opted in
    return text


def main() -> None:
    monitor = agentmon.configure(service_name="quickstart")
    print(answer("What is the weather in Paris?"))
    monitor.shutdown()
    stats = monitor.stats()
    print(f"spans: {stats.spans_started} started, {stats.spans_exported} exported, "
          f"{stats.spans_spooled} spooled for later, dropped {dict(stats.spans_dropped) or 0}")


if __name__ == "__main__":
    main()
