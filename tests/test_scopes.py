"""Counted once, named always, in-process: the metric owners registry on real SDK MeterProviders,
our Views on our meter only, tool metrics of foreign spans named by the enclosing agent (also
when that agent is only known at its end), and ``error.type`` of foreign failed spans.

Foreign instrumentations are stood in for by plain tracers and meters under their scope names,
on the capture's own providers (the frameworks themselves run in tests/frameworks)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import Status, StatusCode

from otel_agentmon._metrics import enclosing as _enclosing
from otel_agentmon._metrics.scopes import KNOWN_SELF_RECORDING, MetricOwners
from otel_agentmon._names import semconv as sc
from otel_agentmon.testing import Capture

CLIENT = frozenset({sc.M_CLIENT_TOKEN_USAGE, sc.M_CLIENT_OPERATION_DURATION})


def scope_points(cap: Capture, name: str) -> dict[str, list[Any]]:
    """Points of metric ``name`` per instrumentation scope (Capture.metrics() merges scopes)."""
    cap.metrics()  # derive what is pending
    data = cap._metrics.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    out.setdefault(sm.scope.name, []).extend(metric.data.data_points)
    return out


def chat(tracer: trace.Tracer, inp: int, out: int) -> None:
    with tracer.start_as_current_span("chat m", attributes={
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "p", sc.GEN_AI_REQUEST_MODEL: "m",
            sc.GEN_AI_USAGE_INPUT_TOKENS: inp, sc.GEN_AI_USAGE_OUTPUT_TOKENS: out}):
        pass


# --- our Views: our meter only ---------------------------------------------------------------------

def test_views_leave_other_libraries_metrics_alone(agentmon_capture: Capture,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    mp = agentmon_capture.monitor.meter_provider
    assert mp is not None
    with caplog.at_level(logging.WARNING):
        theirs = mp.get_meter("some.genai.lib").create_histogram(sc.M_CLIENT_TOKEN_USAGE, unit=sc.UNIT_TOKEN)
        theirs.record(7, {sc.GEN_AI_TOKEN_TYPE: "input", "some.lib.tenant": "a"})
        points = scope_points(agentmon_capture, sc.M_CLIENT_TOKEN_USAGE)
    (point,) = points["some.genai.lib"]
    assert dict(point.attributes) == {sc.GEN_AI_TOKEN_TYPE: "input", "some.lib.tenant": "a"}  # not our allow-list
    assert not [r for r in caplog.records if "conflicting metrics identities" in r.getMessage()]


# --- the owners registry ------------------------------------------------------------------------------

def test_a_scope_that_records_a_metric_itself_does_not_get_it_derived_again(agentmon_capture: Capture) -> None:
    cap = agentmon_capture
    mp, tp = cap.monitor.meter_provider, cap.monitor.tracer_provider
    assert mp is not None and tp is not None
    # A native instrumentation recording its own token usage, but not the operation duration.
    own = mp.get_meter("native.fw").create_histogram(sc.M_CLIENT_TOKEN_USAGE, unit=sc.UNIT_TOKEN)
    chat(tp.get_tracer("native.fw"), 10, 5)
    own.record(10, {sc.GEN_AI_TOKEN_TYPE: "input"})
    own.record(5, {sc.GEN_AI_TOKEN_TYPE: "output"})
    chat(tp.get_tracer("other.fw"), 20, 7)  # one that records nothing itself
    tokens = scope_points(cap, sc.M_CLIENT_TOKEN_USAGE)
    assert sorted(p.sum for p in tokens["native.fw"]) == [5, 10]
    assert sorted(p.sum for p in tokens["otel_agentmon"]) == [7, 20]  # the other scope's span only
    durations = scope_points(cap, sc.M_CLIENT_OPERATION_DURATION)
    assert list(durations) == ["otel_agentmon"] and sum(p.count for p in durations["otel_agentmon"]) == 2


def test_meters_made_before_and_after_watching_are_both_seen() -> None:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    provider.get_meter("early.lib").create_histogram(sc.M_CLIENT_TOKEN_USAGE)
    provider.get_meter("early.lib").create_counter("early.lib.requests")  # not a derived metric
    owners = MetricOwners("otel_agentmon")
    assert owners.watch(provider)
    assert owners.recorded_by("early.lib") == {sc.M_CLIENT_TOKEN_USAGE}
    provider.get_meter("early.lib").create_histogram(name=sc.M_CLIENT_OPERATION_DURATION)  # by keyword
    provider.get_meter("late.lib").create_histogram(sc.M_EXECUTE_TOOL_DURATION)
    assert owners.recorded_by("early.lib") == CLIENT
    assert owners.recorded_by("late.lib") == {sc.M_EXECUTE_TOOL_DURATION}
    assert owners.recorded_by("never.seen") == frozenset() and owners.recorded_by(None) == frozenset()
    second = MetricOwners("otel_agentmon")  # another monitor on the same provider: one wrapper, both fed
    assert second.watch(provider)
    provider.get_meter("third.lib").create_histogram(sc.M_CLIENT_TOKEN_USAGE)
    assert owners.recorded_by("third.lib") == second.recorded_by("third.lib") == {sc.M_CLIENT_TOKEN_USAGE}
    provider.shutdown()


def test_our_own_meter_never_counts_as_recording_for_our_spans(agentmon_capture: Capture) -> None:
    inst = agentmon_capture.monitor._deriver.instruments
    assert inst is not None and inst.owners.watching
    for scope in ("otel_agentmon", "otel_agentmon.instrumentation.langgraph"):
        assert inst.owners.recorded_by(scope) == frozenset()
        assert inst.for_scope(scope) is inst


def test_a_provider_that_cannot_be_watched_falls_back_to_the_known_table() -> None:
    owners = MetricOwners("otel_agentmon")
    assert not owners.watch(object())
    for scope, names in KNOWN_SELF_RECORDING.items():
        assert owners.recorded_by(scope) == names
    assert owners.recorded_by("openinference.instrumentation.langchain") == frozenset()  # records none


# --- tool metrics of foreign spans name the enclosing agent -------------------------------------------

def tool_points(cap: Capture) -> list[dict[str, Any]]:
    return [dict(p.attributes) for p in cap.points(sc.M_EXECUTE_TOOL_DURATION) for _ in range(p.count)]


def test_a_tool_under_an_agent_known_only_at_its_end_gets_its_name(agentmon_capture: Capture) -> None:
    """OpenInference's LangChain spans get their attributes at their end: graph > node > tool."""
    tracer = agentmon_capture.monitor.tracer_provider.get_tracer("openinference.instrumentation.langchain")  # type: ignore[union-attr]
    graph = tracer.start_span("planner")
    node = tracer.start_span("tools", trace.set_span_in_context(graph))
    tool = tracer.start_span("get_weather", trace.set_span_in_context(node))
    tool.set_attributes({"openinference.span.kind": "TOOL", "tool.name": "get_weather"})
    tool.end()
    node.set_attributes({"openinference.span.kind": "CHAIN", "metadata": '{"ls_integration": "langgraph", '
                                                                          '"langgraph_node": "tools"}'})
    node.end()
    assert tool_points(agentmon_capture) == []  # waiting for the agent's name
    graph.set_attributes({"openinference.span.kind": "CHAIN", "metadata": '{"ls_integration": "langgraph"}'})
    graph.end()
    assert tool_points(agentmon_capture) == [{sc.GEN_AI_TOOL_NAME: "get_weather", sc.GEN_AI_AGENT_NAME: "planner"}]


def test_a_tool_under_an_agent_known_at_its_start_is_named_at_once(agentmon_capture: Capture) -> None:
    tracer = agentmon_capture.monitor.tracer_provider.get_tracer("agent_framework")  # type: ignore[union-attr]
    with tracer.start_as_current_span("invoke_agent weather", attributes={
            sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: "weather"}):
        with tracer.start_as_current_span("execute_tool get_weather", attributes={
                sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "get_weather"}):
            pass
        assert tool_points(agentmon_capture) == [{sc.GEN_AI_TOOL_NAME: "get_weather",
                                                  sc.GEN_AI_AGENT_NAME: "weather"}]


def test_a_tool_with_no_agent_above_it_is_recorded_without_one(agentmon_capture: Capture) -> None:
    tracer = agentmon_capture.monitor.tracer_provider.get_tracer("some.peer")  # type: ignore[union-attr]
    with tracer.start_as_current_span("workflow"), tracer.start_as_current_span("execute_tool t", attributes={
            sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "t"}):
        pass
    assert tool_points(agentmon_capture) == [{sc.GEN_AI_TOOL_NAME: "t"}]


@pytest.fixture
def small_parking(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(_enclosing, "MAX_PARKED", 4)
    yield 4


def test_tool_measurements_waiting_for_an_agent_are_bounded(agentmon_capture: Capture, small_parking: int) -> None:
    tracer = agentmon_capture.monitor.tracer_provider.get_tracer("some.peer")  # type: ignore[union-attr]
    parent = tracer.start_span("a run that never says whose it is until its end")
    for _ in range(10):
        tracer.start_span("execute_tool t", trace.set_span_in_context(parent), attributes={
            sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "t"}).end()
    early = tool_points(agentmon_capture)
    assert 6 <= len(early) < 10 and all(sc.GEN_AI_AGENT_NAME not in p for p in early)  # given up on, unnamed
    parent.set_attribute(sc.GEN_AI_AGENT_NAME, "late")
    parent.end()
    points = tool_points(agentmon_capture)
    assert len(points) == 10
    assert len([p for p in points if p.get(sc.GEN_AI_AGENT_NAME) == "late"]) == 10 - len(early)


# --- error.type of foreign failed spans ------------------------------------------------------------------

class QuotaExceeded(Exception):
    pass


def test_a_foreign_failed_span_without_error_type_gets_its_exceptions_class(agentmon_capture: Capture) -> None:
    tracer = agentmon_capture.monitor.tracer_provider.get_tracer("pydantic-ai")  # type: ignore[union-attr]
    span = tracer.start_span("invoke_agent weather", attributes={
        sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: "weather"})
    span.record_exception(QuotaExceeded("out of quota"))
    span.set_status(Status(StatusCode.ERROR, "out of quota"))
    span.end()
    (point,) = agentmon_capture.points(sc.M_TASKS_COMPLETED)
    assert point.attributes[sc.ERROR_TYPE] == f"{__name__}.QuotaExceeded"
    assert agentmon_capture.monitor.snapshot()["weather"].errors == {f"{__name__}.QuotaExceeded": 1}
