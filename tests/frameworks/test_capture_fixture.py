"""The ``agentmon_capture`` fixture sees framework instrumentations set up as the README shows,
``XInstrumentor().instrument()`` with no arguments, whenever that ran (before the test, in it, or
for a whole session): our instrumentors look the active monitor's provider up at each span start."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_agentmon._core import state as _state
from otel_agentmon.instrumentation.autogen import AutoGenInstrumentor
from otel_agentmon.instrumentation.smolagents import SmolagentsInstrumentor
from otel_agentmon.testing import Capture, capture
from tests.frameworks import test_autogen
from tests.frameworks.helpers import ours
from tests.frameworks.test_smolagents import weather_agent


@pytest.fixture
def smolagents_readme_style() -> Iterator[None]:
    inst = SmolagentsInstrumentor()
    inst.instrument()  # no tracer_provider, as in the README
    try:
        yield
    finally:
        inst.uninstrument()


def test_readme_style_smolagents_is_captured(smolagents_readme_style: None, agentmon_capture: Capture) -> None:
    assert weather_agent().run("Weather in Paris?") == "It is sunny."
    assert agentmon_capture.tree() == [("invoke_agent weather", [
        ("chat scripted", []), ("execute_tool get_weather", [("execute_tool weather-api", [])]),
        ("chat scripted", [])])]
    assert "gen_ai.invoke_agent.duration" in agentmon_capture.metrics()


def test_each_capture_gets_its_own_runs_and_none_after_it_closes(smolagents_readme_style: None) -> None:
    first, close_first = capture()
    weather_agent("one").run("Weather in Paris?")
    close_first()
    second, close_second = capture()
    try:
        weather_agent("two").run("Weather in Paris?")
    finally:
        close_second()
    assert [s.name for s in first.spans() if s.parent is None] == ["invoke_agent one"]
    assert [s.name for s in second.spans() if s.parent is None] == ["invoke_agent two"]
    assert _state.tracer_provider is None  # back to the global provider
    weather_agent("three").run("Weather in Paris?")
    assert not any(s.name == "invoke_agent three" for s in first.spans() + second.spans())


def test_autogen_readme_style_is_captured(agentmon_capture: Capture) -> None:
    inst = AutoGenInstrumentor()
    inst.instrument()
    try:
        asyncio.run(test_autogen.weather(test_autogen.replay()).run(task="Weather in Paris?"))
    finally:
        inst.uninstrument()
    assert agentmon_capture.tree() == [("invoke_agent weather", [
        ("chat", []), ("execute_tool get_weather", []), ("chat", [])])]


def test_an_explicit_tracer_provider_still_wins(agentmon_capture: Capture) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    inst = SmolagentsInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        weather_agent().run("Weather in Paris?")
    finally:
        inst.uninstrument()
    assert ours(agentmon_capture, "smolagents") == []  # (the tool's own agentmon.tool span is the core API's)
    assert "invoke_agent weather" in [s.name for s in exporter.get_finished_spans()]
