"""OpenAI Agents SDK failures, run for real on the SDK's ``ScriptedModel``: ``error.type`` is the
exception's class wherever the run had the exception (a tool's, the model's, the SDK's own),
never the SDK's message text, and a workflow whose ``Runner.run`` raised is ERROR."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, Runner, function_tool, set_trace_processors
from agents.exceptions import MaxTurnsExceeded
from agents.testing import ScriptedModel, assistant_message, function_call
from agents.tracing.spans import SpanImpl
from opentelemetry.trace import StatusCode

from otel_agentmon._names import semconv as sc
from otel_agentmon.instrumentation.openai_agents import OpenAIAgentsInstrumentor, registered_processors
from otel_agentmon.testing import Capture
from tests.frameworks.helpers import metric_sum
from tests.support.spans import span_attrs


class NoWeather(Exception):
    pass


class ModelDown(ConnectionError):
    pass


@function_tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    if city == "Atlantis":
        raise NoWeather("no weather under the sea")
    return f"sunny in {city}"


def agent(*steps: dict[str, Any]) -> Agent[Any]:
    return Agent(name="weather", instructions="Answer weather questions.", tools=[get_weather],
                 model=ScriptedModel(list(steps), emit_traces=True))  # type: ignore[arg-type]  # the scripted model takes its steps as plain dicts


def ask(city: str) -> dict[str, Any]:
    return {"output": [function_call("get_weather", {"city": city}, call_id=f"call_{city}")]}


ANSWER = {"output": [assistant_message("It is sunny.")]}


def run(a: Agent[Any], max_turns: int = 10) -> str:
    return str(asyncio.run(Runner.run(a, "Weather?", max_turns=max_turns)).final_output)


@pytest.fixture
def oa(agentmon_capture: Capture) -> Iterator[OpenAIAgentsInstrumentor]:
    saved = registered_processors() or []
    set_trace_processors([])  # offline: no exporter to the OpenAI backend
    inst = OpenAIAgentsInstrumentor()
    inst.instrument(tracer_provider=agentmon_capture.monitor.tracer_provider)
    yield inst
    inst.uninstrument()
    set_trace_processors(saved)


def status(cap: Capture, name: str) -> tuple[StatusCode, object]:
    span = cap.span(name)
    return span.status.status_code, span_attrs(span).get(sc.ERROR_TYPE)


def test_a_tool_error_the_model_recovers_from_is_the_tools_exception_class(agentmon_capture: Capture,
                                                                          oa: OpenAIAgentsInstrumentor) -> None:
    assert run(agent(ask("Atlantis"), ANSWER)) == "It is sunny."
    cap = agentmon_capture
    assert status(cap, "execute_tool get_weather") == (StatusCode.ERROR, f"{__name__}.NoWeather")
    assert status(cap, "invoke_agent weather")[0] is StatusCode.UNSET  # the run itself succeeded
    assert status(cap, "invoke_workflow Agent workflow")[0] is StatusCode.UNSET
    assert [p.attributes[sc.ERROR_TYPE] for p in cap.points(sc.M_EXECUTE_TOOL_DURATION)] == [f"{__name__}.NoWeather"]


def test_a_model_error_fails_chat_agent_and_workflow_with_its_class(agentmon_capture: Capture,
                                                                  oa: OpenAIAgentsInstrumentor) -> None:
    boom = ModelDown("model down")
    with pytest.raises(ModelDown) as raised:
        run(agent({"error": boom}))
    assert raised.value is boom  # passes through unchanged
    cap = agentmon_capture
    expected = (StatusCode.ERROR, f"{__name__}.ModelDown")
    assert status(cap, "chat") == expected
    assert status(cap, "invoke_agent weather") == expected
    assert status(cap, "invoke_workflow Agent workflow") == expected
    assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "error",
                                                    sc.ERROR_TYPE: f"{__name__}.ModelDown"}) == 1
    workflow = [p.attributes for p in cap.points(sc.M_INVOKE_WORKFLOW_DURATION)]
    assert workflow == [{sc.GEN_AI_WORKFLOW_NAME: "Agent workflow", sc.ERROR_TYPE: f"{__name__}.ModelDown"}]


def test_a_streamed_run_that_raises_fails_its_workflow(agentmon_capture: Capture,
                                                      oa: OpenAIAgentsInstrumentor) -> None:
    async def main() -> None:
        result = Runner.run_streamed(agent({"error": ModelDown("model down")}), "Weather?")
        async for _ in result.stream_events():
            pass

    with pytest.raises(ModelDown):
        asyncio.run(main())
    expected = (StatusCode.ERROR, f"{__name__}.ModelDown")
    assert status(agentmon_capture, "invoke_agent weather") == expected
    assert status(agentmon_capture, "invoke_workflow Agent workflow") == expected


def test_the_sdks_own_exception_is_its_class(agentmon_capture: Capture, oa: OpenAIAgentsInstrumentor) -> None:
    with pytest.raises(MaxTurnsExceeded):
        run(agent(ask("Paris"), ask("Paris"), ask("Paris")), max_turns=2)
    expected = (StatusCode.ERROR, "agents.exceptions.MaxTurnsExceeded")
    assert status(agentmon_capture, "invoke_agent weather") == expected
    assert status(agentmon_capture, "invoke_workflow Agent workflow") == expected


def test_an_exception_the_caller_is_handling_is_not_the_runs(agentmon_capture: Capture,
                                                             oa: OpenAIAgentsInstrumentor) -> None:
    try:
        raise KeyError("the caller's own, being handled while it retries with an agent")
    except KeyError:
        assert run(agent(ask("Paris"), ANSWER)) == "It is sunny."
    for span in agentmon_capture.spans():
        assert span.status.status_code is StatusCode.UNSET, span.name
        assert sc.ERROR_TYPE not in span_attrs(span), span.name


def test_uninstrument_restores_the_sdks_set_error() -> None:
    original = SpanImpl.__dict__["set_error"]
    saved = registered_processors() or []
    inst = OpenAIAgentsInstrumentor()
    inst.instrument()
    try:
        assert SpanImpl.__dict__["set_error"] is not original
    finally:
        inst.uninstrument()
        set_trace_processors(saved)
    assert SpanImpl.__dict__["set_error"] is original
