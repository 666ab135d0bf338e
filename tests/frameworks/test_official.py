"""The official OpenTelemetry GenAI instrumentations (opentelemetry-instrumentation-genai-langchain,
-openai-agents, -smolagents) next to ours: their spans feed our metrics, tasks and health, each
measurement counted once; with both on there is one span tree; under zero-code ours is the default
and the official one stands down (docs/frameworks.md, "Official GenAI instrumentations vs ours")."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agents import FunctionTool, set_trace_processors
from opentelemetry.trace import StatusCode
from smolagents import ToolCallingAgent, tool
from smolagents.monitoring import LogLevel

from otel_agentmon import distro
from otel_agentmon._names import semconv as sc
from otel_agentmon.instrumentation._official import OFFICIAL, official_framework, ours_stands_in
from otel_agentmon.testing import Capture
from tests.frameworks import test_langgraph as lg
from tests.frameworks import test_openai_agents as oa
from tests.frameworks import test_smolagents as sa
from tests.frameworks.helpers import metric_sum, scopes
from tests.support.spans import span_attrs

OURS = {"langgraph": "otel_agentmon.instrumentation.langgraph:LangGraphInstrumentor",
        "openai_agents": "otel_agentmon.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
        "smolagents": "otel_agentmon.instrumentation.smolagents:SmolagentsInstrumentor"}
CLASSES = {"langgraph": "LangChainInstrumentor", "openai_agents": "OpenAIAgentsInstrumentor",
           "smolagents": "SmolagentsInstrumentor"}


def official(framework: str) -> Any:
    return getattr(importlib.import_module(OFFICIAL[framework]), CLASSES[framework])()


def our(framework: str) -> Any:
    module, cls = OURS[framework].split(":")
    return getattr(importlib.import_module(module), cls)()


def on(cap: Capture, inst: Any) -> Any:
    # skip_dep_check: the official LangChain package declares `langchain`, which LangGraph does not need
    inst.instrument(tracer_provider=cap.monitor.tracer_provider, meter_provider=cap.monitor.meter_provider,
                    skip_dep_check=True)
    return inst


@pytest.fixture(autouse=True)
def offline_agents_sdk() -> Iterator[None]:
    """No Agents SDK processor of its own (no exporter to the OpenAI backend); restored afterwards."""
    from otel_agentmon.instrumentation.openai_agents import registered_processors

    saved = registered_processors() or []
    set_trace_processors([])
    yield
    set_trace_processors(saved)


@pytest.fixture
def restore_langchain() -> Iterator[None]:
    from langchain_core.callbacks import BaseCallbackManager
    from langgraph.pregel import Pregel

    saved = [(cls, name, cls.__dict__[name]) for cls, name in
             ((BaseCallbackManager, "__init__"), (Pregel, "stream"), (Pregel, "astream"))]
    yield
    for cls, name, original in saved:
        setattr(cls, name, original)


def by_scope(cap: Capture, name: str) -> dict[str, Any]:
    """Metric ``name``'s data points per instrumentation scope."""
    cap.metrics()  # derives what is pending
    data = cap._metrics.get_metrics_data()
    out: dict[str, Any] = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    out[sm.scope.name] = list(metric.data.data_points)
    return out


def total(cap: Capture, name: str, field: str = "count", **attrs: object) -> float:
    """Histogram ``name``'s count (or sum) over every scope's points whose attributes include ``attrs``."""
    return float(sum(getattr(p, field) for points in by_scope(cap, name).values() for p in points
               if all(p.attributes.get(k) == v for k, v in attrs.items())))


PROBES: list[Callable[[], None]] = []


@tool  # type: ignore[untyped-decorator]  # smolagents ships no type information
def probed_weather(city: str) -> str:
    """Return the weather for a city.

    Args:
        city: the city name
    """
    for look in PROBES:
        look()
    return f"sunny in {city}"


def probe_in_flight(cap: Capture, agent: str, seen: list[int]) -> Callable[[], None]:
    def look() -> None:
        summary = cap.monitor.snapshot().get(agent)
        seen.append(summary.in_flight if summary is not None else 0)
    return look


# --- their spans, our metrics, each once --------------------------------------------------------------------


def test_official_langchain_spans_are_counted_once(agentmon_capture: Capture, restore_langchain: None,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Its tool spans name no agent, so our tool metric waited on their workflow span and was then
    recorded though the official instrumentation records gen_ai.execute_tool.duration itself."""
    cap = agentmon_capture
    inst = on(cap, official("langgraph"))
    try:
        with caplog.at_level(logging.WARNING):
            lg.build().invoke(lg.ask("Paris"))
            official_scope = OFFICIAL["langgraph"]
            for name in (sc.M_EXECUTE_TOOL_DURATION, sc.M_CLIENT_OPERATION_DURATION, sc.M_CLIENT_TOKEN_USAGE,
                         sc.M_INVOKE_WORKFLOW_DURATION):
                assert set(by_scope(cap, name)) == {official_scope}, name
            points = by_scope(cap, sc.M_CLIENT_TOKEN_USAGE)[official_scope]
            tokens = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in points}
            assert tokens == {"input": 30, "output": 12}
        assert not [r for r in caplog.records if "conflicting metrics identities" in r.getMessage()]
        # A named graph is a workflow to it: no agent span, so no task and no agent in our view.
        assert cap.tree() == [("invoke_workflow weather", [("chat weather-model", []), ("execute_tool get_weather", []),
                                                           ("chat weather-model", [])])]
        assert cap.monitor.snapshot() == {}
    finally:
        inst.uninstrument()


def test_official_openai_agents_spans_give_tasks_in_flight_and_agent_names(agentmon_capture: Capture) -> None:
    cap = agentmon_capture
    seen: list[int] = []
    inst = on(cap, official("openai_agents"))
    try:
        agent = oa.weather_agent()
        tool = agent.tools[0]
        assert isinstance(tool, FunctionTool)
        agent.tools = [dataclasses.replace(tool, on_invoke_tool=_probing(tool.on_invoke_tool,
                                                                         probe_in_flight(cap, "weather", seen)))]
        assert oa.run(agent) == "It is sunny in Paris."
        assert seen == [1]  # its agent span starts with the run, named: in flight, so stuck detection works
        summary = cap.monitor.snapshot()["weather"]
        assert (summary.tasks_ok, summary.tool_calls, summary.in_flight) == (1, 1, 0)
        # Its own gen_ai.invoke_agent.duration; ours only adds what it does not record.
        assert set(by_scope(cap, sc.M_INVOKE_AGENT_DURATION)) == {OFFICIAL["openai_agents"]}
        assert set(by_scope(cap, sc.M_INVOKE_AGENT_TOOL_CALLS)) == {"otel_agentmon"}
        assert by_scope(cap, sc.M_CLIENT_TOKEN_USAGE) == {}  # it makes no model-call span: nothing to count
        with pytest.raises(ConnectionError):
            oa.run(oa.weather_agent(error=ConnectionError("model down")))
        failed = cap.spans("invoke_agent weather")[-1]
        assert failed.status.status_code is StatusCode.ERROR
        assert span_attrs(failed)[sc.ERROR_TYPE] == "_OTHER"  # it does not keep the exception's class
        assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.AGENTMON_TASK_OUTCOME: "error"}) == 1
    finally:
        inst.uninstrument()


def _probing(invoke: Any, look: Callable[[], None]) -> Any:
    async def probed(ctx: Any, args: str) -> Any:
        look()
        return await invoke(ctx, args)
    return probed


def test_official_smolagents_spans_give_tasks_in_flight_and_agent_names(agentmon_capture: Capture) -> None:
    cap = agentmon_capture
    seen: list[int] = []
    inst = on(cap, official("smolagents"))
    try:
        PROBES.append(probe_in_flight(cap, "weather", seen))
        model = sa.ScriptedModel([([("probed_weather", {"city": "Paris"})], (10, 5)), sa.answer("It is sunny.")])
        agent = ToolCallingAgent(tools=[probed_weather], model=model, name="weather", max_steps=3,
                                 verbosity_level=LogLevel.OFF)
        assert agent.run("Weather?") == "It is sunny."
        assert seen == [1]
        assert cap.tree() == [("invoke_agent weather", [])]  # no tool span, no span for a model of your own
        summary = cap.monitor.snapshot()["weather"]
        assert (summary.tasks_ok, summary.tool_calls, summary.input_tokens) == (1, 0, 0)
        assert set(by_scope(cap, sc.M_INVOKE_AGENT_DURATION)) == {OFFICIAL["smolagents"]}
    finally:
        PROBES.clear()
        inst.uninstrument()


# --- both on in code: one tree -------------------------------------------------------------------------------

RUNS: dict[str, Callable[[], object]] = {
    "langgraph": lambda: lg.build().invoke(lg.ask("Paris")),
    "openai_agents": lambda: oa.run(oa.weather_agent()),
    "smolagents": lambda: sa.weather_agent().run("Weather?"),
}


#: One run's tree with both on in code: the official spans, and under them the kinds it does not make, ours.
BOTH_TREES: dict[str, list[Any]] = {
    "langgraph": [("invoke_workflow weather", [("chat weather-model", []), ("execute_tool get_weather", []),
                                               ("chat weather-model", [])])],
    "openai_agents": [("invoke_workflow Agent workflow", [("invoke_agent weather", [
        ("chat", []), ("execute_tool get_weather", []), ("chat", [])])])],
    "smolagents": [("invoke_agent weather", [("chat scripted", []), ("execute_tool get_weather", [
        ("execute_tool weather-api", [])]), ("chat scripted", [])])],  # (the tool's own span inside it)
}
#: our spans in that tree
OURS_IN_BOTH: dict[str, set[str]] = {"langgraph": set(), "openai_agents": {"chat"},
                                     "smolagents": {"chat scripted", "execute_tool get_weather"}}


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "official-first"])
@pytest.mark.parametrize("framework", sorted(RUNS))
def test_both_on_in_code_give_one_tree(agentmon_capture: Capture, framework: str, ours_first: bool,
                                       caplog: pytest.LogCaptureFixture, fresh_log_limiter: None,
                                       restore_langchain: None) -> None:
    """You called the official instrumentor yourself: its spans are the tree; ours stands down for
    every run it traces, except that it still adds the kinds of span the official one does not make
    (model calls for the Agents SDK; tool and model calls for smolagents), under its spans."""
    cap = agentmon_capture
    pair = [our(framework), official(framework)]
    first, second = pair if ours_first else pair[::-1]
    on(cap, first)
    on(cap, second)
    try:
        with caplog.at_level(logging.WARNING, logger="otel_agentmon"):
            RUNS[framework]()
            RUNS[framework]()
        assert cap.tree() == BOTH_TREES[framework] * 2
        mine = {s.name for s in cap.spans() if s.instrumentation_scope is not None
                and s.instrumentation_scope.name == f"otel_agentmon.instrumentation.{framework}"}
        assert mine == OURS_IN_BOTH[framework]
        (warning,) = [r.getMessage() for r in caplog.records if "already traces" in r.getMessage()]
        assert "leave it off to get ours" in warning  # says what it costs and what to do
        # every run, tool call and model call measured once over all scopes, whoever made the span
        runs = total(cap, sc.M_INVOKE_AGENT_DURATION) + total(cap, sc.M_INVOKE_WORKFLOW_DURATION)
        assert runs == (4 if framework == "openai_agents" else 2)  # (the SDK: a workflow and an agent per run)
        assert total(cap, sc.M_EXECUTE_TOOL_DURATION, **{sc.GEN_AI_TOOL_NAME: "get_weather"}) == 2
        assert total(cap, sc.M_CLIENT_OPERATION_DURATION) == 4
        if framework != "openai_agents":  # the SDK's ScriptedModel reports no usage
            assert total(cap, sc.M_CLIENT_TOKEN_USAGE, "sum", **{sc.GEN_AI_TOKEN_TYPE: "input"}) == 60
            assert total(cap, sc.M_CLIENT_TOKEN_USAGE, "sum", **{sc.GEN_AI_TOKEN_TYPE: "output"}) == 24
        if framework != "langgraph":  # a named agent, a task per run
            assert metric_sum(cap, sc.M_TASKS_COMPLETED, **{sc.GEN_AI_AGENT_NAME: "weather"}) == 2
            chats = [s for s in cap.spans() if s.name.startswith("chat")]
            assert {span_attrs(s)[sc.GEN_AI_AGENT_NAME] for s in chats} == {"weather"}
    finally:
        second.uninstrument()
        first.uninstrument()


# --- zero-code: ours is the default ----------------------------------------------------------------------------


def entry_point(framework: str) -> importlib.metadata.EntryPoint:
    return next(ep for ep in importlib.metadata.entry_points(group="opentelemetry_instrumentor")
                if ep.value.startswith(OFFICIAL[framework] + ":"))


def test_the_table_names_the_installed_official_entry_points() -> None:
    for framework in OFFICIAL:
        assert official_framework(entry_point(framework).value) == framework
    assert official_framework("openinference.instrumentation.smolagents:SmolagentsInstrumentor") is None
    assert ours_stands_in(entry_point("smolagents").value, ["requests"]) == "agentmon_smolagents"
    assert ours_stands_in(entry_point("smolagents").value, ["x", " agentmon_smolagents"]) is None


@pytest.mark.parametrize("framework", sorted(OFFICIAL))
def test_the_distro_leaves_the_official_one_off_unless_ours_is_disabled(
        agentmon_capture: Capture, framework: str, monkeypatch: pytest.MonkeyPatch, restore_langchain: None) -> None:
    cap = agentmon_capture
    ep = entry_point(framework)
    kwargs = {"tracer_provider": cap.monitor.tracer_provider, "meter_provider": cap.monitor.meter_provider,
              "skip_dep_check": True}
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "requests")
    distro.AgentmonDistro().load_instrumentor(ep, **kwargs)
    assert not official(framework).is_instrumented_by_opentelemetry
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", f"requests,agentmon_{framework}")
    distro.AgentmonDistro().load_instrumentor(ep, **kwargs)
    inst = official(framework)
    try:
        assert inst.is_instrumented_by_opentelemetry
    finally:
        inst.uninstrument()


def test_under_the_distro_both_installed_give_our_tree_and_every_token(agentmon_capture: Capture,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What `opentelemetry-instrument` does with both installed: the official first, ours last."""
    cap = agentmon_capture
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    kwargs = {"tracer_provider": cap.monitor.tracer_provider, "meter_provider": cap.monitor.meter_provider}
    ours_ep = next(ep for ep in importlib.metadata.entry_points(group="opentelemetry_instrumentor")
                   if ep.name == "agentmon_smolagents")
    distro.AgentmonDistro().load_instrumentor(entry_point("smolagents"), skip_dep_check=True, **kwargs)
    distro.AgentmonDistro().load_instrumentor(ours_ep, **kwargs)
    distro.post_instrument()
    try:
        sa.weather_agent().run("Weather?")
        assert set(scopes(cap)) == {"otel_agentmon.instrumentation.smolagents", "otel_agentmon"}  # (the tool's own)
        assert cap.tree() == [("invoke_agent weather", [
            ("chat scripted", []), ("execute_tool get_weather", [("execute_tool weather-api", [])]),
            ("chat scripted", [])])]
        tokens = by_scope(cap, sc.M_CLIENT_TOKEN_USAGE)
        assert {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in tokens["otel_agentmon"]} == {"input": 30,
                                                                                                "output": 12}
        assert set(tokens) == {"otel_agentmon"}
    finally:
        our("smolagents").uninstrument()


@pytest.mark.parametrize("framework", sorted(OFFICIAL))
def test_the_fallback_table_says_what_the_official_ones_record(framework: str) -> None:
    """Where the MeterProvider cannot be watched, the static table stands in: it must match what
    opentelemetry-util-genai's handler creates on a provider that can."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.util.genai.handler import TelemetryHandler

    from otel_agentmon._metrics.scopes import KNOWN_SELF_RECORDING, MetricOwners

    provider = MeterProvider()
    owners = MetricOwners("otel_agentmon")
    assert owners.watch(provider)
    TelemetryHandler(meter_provider=provider, instrumentation_scope_name=OFFICIAL[framework])
    assert owners.recorded_by(OFFICIAL[framework]) == KNOWN_SELF_RECORDING[OFFICIAL[framework]]
    provider.shutdown()
