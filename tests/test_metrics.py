"""Metrics derived from spans: names, units, buckets, values and bounded attribute sets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import pytest

import otel_agentmon as agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon.testing import Capture

# Copied from /work/shared/reference/semconv-and-sdk.md §1.6 (so a wrong constant fails too).
DOC_CLIENT_DURATION = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
DOC_TOKEN_USAGE: list[float] = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
                                 67108864]
DOC_AGENT_DURATION = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6]
DOC_WORKFLOW_DURATION: list[float] = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200]
DOC_CALLS: list[float] = [1, 2, 4, 8, 16, 32, 64, 128]

# name -> (unit, bucket constant, bucket list from the doc or None for agentmon's own metrics)
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...], list[float] | None]] = {
    "gen_ai.invoke_agent.duration": ("s", sc.BUCKETS_AGENT_DURATION, DOC_AGENT_DURATION),
    "gen_ai.execute_tool.duration": ("s", sc.BUCKETS_TOOL_DURATION, DOC_CLIENT_DURATION),
    "gen_ai.invoke_workflow.duration": ("s", sc.BUCKETS_WORKFLOW_DURATION, DOC_WORKFLOW_DURATION),
    "gen_ai.client.operation.duration": ("s", sc.BUCKETS_CLIENT_DURATION, DOC_CLIENT_DURATION),
    "gen_ai.client.token.usage": ("{token}", sc.BUCKETS_TOKEN_USAGE, DOC_TOKEN_USAGE),
    "gen_ai.invoke_agent.tool_calls": ("{tool_call}", sc.BUCKETS_CALLS, DOC_CALLS),
    "gen_ai.invoke_agent.inference_calls": ("{inference_call}", sc.BUCKETS_CALLS, DOC_CALLS),
    "agentmon.task.duration": ("s", sc.BUCKETS_TASK_DURATION, None),
    "agentmon.task.token.usage": ("{token}", sc.BUCKETS_TOKEN_USAGE, DOC_TOKEN_USAGE),
}

# The only attribute keys each metric may carry (semconv §1.6 plus agentmon's low-cardinality labels).
CLIENT_KEYS = {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model",
               "server.address", "server.port"}
ALLOWED_KEYS: dict[str, set[str]] = {
    "gen_ai.invoke_agent.duration": {"gen_ai.agent.name", "gen_ai.request.model", "error.type"},
    "gen_ai.execute_tool.duration": {"gen_ai.tool.name", "gen_ai.tool.type", "gen_ai.agent.name", "error.type"},
    "gen_ai.invoke_workflow.duration": {"gen_ai.workflow.name", "error.type"},
    "gen_ai.client.operation.duration": CLIENT_KEYS | {"error.type"},
    "gen_ai.client.token.usage": CLIENT_KEYS | {"gen_ai.token.type"},
    "gen_ai.invoke_agent.tool_calls": {"gen_ai.agent.name"},
    "gen_ai.invoke_agent.inference_calls": {"gen_ai.agent.name"},
    "agentmon.tasks.completed": {"gen_ai.agent.name", "agentmon.task.type", "agentmon.task.outcome", "error.type"},
    "agentmon.task.duration": {"gen_ai.agent.name", "agentmon.task.type", "agentmon.task.outcome", "error.type"},
    "agentmon.task.token.usage": {"gen_ai.agent.name", "agentmon.task.type", "gen_ai.token.type"},
    "agentmon.tasks.in_flight": {"gen_ai.agent.name", "agentmon.task.type"},
    "agentmon.agent.busy_time": {"gen_ai.agent.name"},
}


def _llm_call(inp: int, out: int) -> None:
    with agentmon.llm("gpt-4o", provider="openai", attributes={"request.user": "alice"}) as call:
        call.record_usage(input_tokens=inp, output_tokens=out, response_id="resp-unique-1")


def run_swarm() -> None:
    """planner: 2 tools + 1 LLM call of its own, plus a sub-agent critic with 1 tool + 1 LLM call."""
    with (agentmon.workflow("pipeline"), agentmon.agent("planner", model="gpt-4o", conversation_id="conv-9"),
          agentmon.task("plan", task_id="task-0001", attributes={"user.id": "u-1"})):
        with agentmon.tool("search", call_id="call-1"):
            pass
        with agentmon.tool("search", call_id="call-2"):
            pass
        _llm_call(100, 20)
        with agentmon.agent("critic"):
            with agentmon.tool("lint"):
                pass
            _llm_call(7, 3)


@pytest.fixture
def swarm(agentmon_capture: Capture) -> Capture:
    run_swarm()
    return agentmon_capture


def _point(cap: Capture, name: str, **attrs: Any) -> Any:
    matches = [p for p in cap.points(name) if all(p.attributes.get(k) == v for k, v in attrs.items())]
    assert len(matches) == 1, (name, attrs, [dict(p.attributes) for p in cap.points(name)])
    return matches[0]


def _duration(cap: Capture, span_name: str) -> float:
    span = cap.span(span_name)
    assert span.start_time is not None and span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


@pytest.mark.parametrize("name", sorted(HISTOGRAMS))
def test_histogram_unit_and_bucket_boundaries(swarm: Capture, name: str) -> None:
    unit, constant, from_doc = HISTOGRAMS[name]
    metric = swarm.metrics()[name]
    assert metric.unit == unit
    bounds = list(metric.data.data_points[0].explicit_bounds)  # type: ignore[union-attr]  # a histogram's points are HistogramDataPoints
    assert bounds == list(constant)
    if from_doc is not None:
        assert bounds == from_doc


def test_invoke_agent_duration_equals_span_duration(swarm: Capture) -> None:
    point = _point(swarm, "gen_ai.invoke_agent.duration", **{"gen_ai.agent.name": "planner"})
    assert dict(point.attributes) == {"gen_ai.agent.name": "planner", "gen_ai.request.model": "gpt-4o"}
    assert point.count == 1
    assert point.sum == pytest.approx(_duration(swarm, "invoke_agent planner"))


def test_execute_tool_duration(swarm: Capture) -> None:
    point = _point(swarm, "gen_ai.execute_tool.duration", **{"gen_ai.tool.name": "search"})
    assert dict(point.attributes) == {"gen_ai.tool.name": "search", "gen_ai.tool.type": "function",
                                      "gen_ai.agent.name": "planner"}
    assert point.count == 2
    lint = _point(swarm, "gen_ai.execute_tool.duration", **{"gen_ai.tool.name": "lint"})
    assert lint.attributes["gen_ai.agent.name"] == "critic"


def test_invoke_workflow_duration(swarm: Capture) -> None:
    point = _point(swarm, "gen_ai.invoke_workflow.duration")
    assert dict(point.attributes) == {"gen_ai.workflow.name": "pipeline"}
    assert point.sum == pytest.approx(_duration(swarm, "invoke_workflow pipeline"))


def test_client_operation_duration(swarm: Capture) -> None:
    point = _point(swarm, "gen_ai.client.operation.duration")
    assert dict(point.attributes) == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                      "gen_ai.request.model": "gpt-4o"}
    assert point.count == 2


def test_client_token_usage_by_token_type(swarm: Capture) -> None:
    inp = _point(swarm, "gen_ai.client.token.usage", **{"gen_ai.token.type": "input"})
    out = _point(swarm, "gen_ai.client.token.usage", **{"gen_ai.token.type": "output"})
    assert (inp.sum, inp.count) == (107, 2)
    assert (out.sum, out.count) == (23, 2)
    assert dict(inp.attributes) == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                    "gen_ai.request.model": "gpt-4o", "gen_ai.token.type": "input"}


def test_agent_call_counts_exclude_sub_agent_calls(swarm: Capture) -> None:
    planner_tools = _point(swarm, "gen_ai.invoke_agent.tool_calls", **{"gen_ai.agent.name": "planner"})
    planner_llm = _point(swarm, "gen_ai.invoke_agent.inference_calls", **{"gen_ai.agent.name": "planner"})
    critic_tools = _point(swarm, "gen_ai.invoke_agent.tool_calls", **{"gen_ai.agent.name": "critic"})
    critic_llm = _point(swarm, "gen_ai.invoke_agent.inference_calls", **{"gen_ai.agent.name": "critic"})
    assert (planner_tools.count, planner_tools.sum) == (1, 2)
    assert (planner_llm.count, planner_llm.sum) == (1, 1)
    assert (critic_tools.count, critic_tools.sum) == (1, 1)
    assert (critic_llm.count, critic_llm.sum) == (1, 1)


def test_task_token_usage_counts_everything_beneath_the_task(swarm: Capture) -> None:
    labels = {"gen_ai.agent.name": "planner", "agentmon.task.type": "plan"}
    inp = _point(swarm, "agentmon.task.token.usage", **{"gen_ai.token.type": "input"})
    out = _point(swarm, "agentmon.task.token.usage", **{"gen_ai.token.type": "output"})
    assert dict(inp.attributes) == {**labels, "gen_ai.token.type": "input"}
    assert (inp.sum, out.sum) == (107, 23)


async def _cancelled_task() -> None:
    @agentmon.task("fetch")
    async def fetch() -> None:
        await asyncio.sleep(60)

    task = asyncio.ensure_future(fetch())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _run_task_outcomes() -> None:
    with agentmon.agent("worker"):
        for _ in range(2):
            with agentmon.task("fetch"):
                pass
        with pytest.raises(ValueError), agentmon.task("fetch"):
            raise ValueError("bad")
        asyncio.run(_cancelled_task())


def test_tasks_completed_by_outcome_and_error_type(agentmon_capture: Capture) -> None:
    _run_task_outcomes()
    base = {"gen_ai.agent.name": "worker", "agentmon.task.type": "fetch"}
    ok = _point(agentmon_capture, "agentmon.tasks.completed", **{"agentmon.task.outcome": "success"})
    err = _point(agentmon_capture, "agentmon.tasks.completed", **{"agentmon.task.outcome": "error"})
    cancelled = _point(agentmon_capture, "agentmon.tasks.completed", **{"agentmon.task.outcome": "cancelled"})
    assert (ok.value, err.value, cancelled.value) == (2, 1, 1)
    assert dict(ok.attributes) == {**base, "agentmon.task.outcome": "success"}
    assert dict(err.attributes) == {**base, "agentmon.task.outcome": "error", "error.type": "ValueError"}
    assert "CancelledError" in str(cancelled.attributes["error.type"])
    assert agentmon_capture.metrics()["agentmon.tasks.completed"].unit == "{task}"
    durations = _point(agentmon_capture, "agentmon.task.duration", **{"agentmon.task.outcome": "success"})
    assert durations.count == 2
    failed = _point(agentmon_capture, "agentmon.task.duration", **{"agentmon.task.outcome": "error"})
    assert failed.attributes["error.type"] == "ValueError"


def test_failed_tool_and_agent_series_carry_error_type(agentmon_capture: Capture) -> None:
    with pytest.raises(KeyError), agentmon.agent("a"), agentmon.tool("t"):
        raise KeyError("missing")
    tool = _point(agentmon_capture, "gen_ai.execute_tool.duration")
    agent = _point(agentmon_capture, "gen_ai.invoke_agent.duration")
    assert tool.attributes["error.type"] == "KeyError"
    assert agent.attributes["error.type"] == "KeyError"


def test_busy_time_is_the_sum_of_task_durations(agentmon_capture: Capture) -> None:
    _run_task_outcomes()
    expected = sum(_span_seconds(s) for s in agentmon_capture.spans() if s.name == "task fetch")
    point = _point(agentmon_capture, "agentmon.agent.busy_time")
    assert dict(point.attributes) == {"gen_ai.agent.name": "worker"}
    assert point.value == pytest.approx(expected)
    assert agentmon_capture.metrics()["agentmon.agent.busy_time"].unit == "s"


def _span_seconds(span: Any) -> float:
    return float((span.end_time - span.start_time) / 1e9)


def test_tasks_in_flight_while_running_and_after(agentmon_capture: Capture) -> None:
    started, release = threading.Event(), threading.Event()

    def work() -> None:
        with agentmon.agent("worker"), agentmon.task("crawl"):
            started.set()
            release.wait(10)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert started.wait(10)
        during = _point(agentmon_capture, "agentmon.tasks.in_flight")
        assert dict(during.attributes) == {"gen_ai.agent.name": "worker", "agentmon.task.type": "crawl"}
        assert during.value == 1
    finally:
        release.set()
        thread.join(10)
    assert _point(agentmon_capture, "agentmon.tasks.in_flight").value == 0
    assert agentmon_capture.metrics()["agentmon.tasks.in_flight"].unit == "{task}"


def _all_attribute_sets(metrics: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {name: [dict(p.attributes) for p in m.data.data_points] for name, m in metrics.items()}


def test_metric_attributes_stay_low_cardinality(agentmon_capture: Capture) -> None:
    run_swarm()
    _run_task_outcomes()
    metrics = agentmon_capture.metrics()
    assert set(ALLOWED_KEYS) <= set(metrics)
    forbidden = {"agentmon.task.id", "gen_ai.tool.call.id", "gen_ai.conversation.id", "gen_ai.response.id",
                 "user.id", "request.user"}
    for name, sets in _all_attribute_sets(metrics).items():
        if name not in ALLOWED_KEYS:
            continue
        for attrs in sets:
            assert set(attrs) <= ALLOWED_KEYS[name], (name, attrs)
            assert not forbidden & set(attrs), (name, attrs)


def test_many_task_ids_add_no_series(agentmon_capture: Capture) -> None:
    with agentmon.agent("worker"):
        for i in range(50):
            with agentmon.task("fetch", task_id=f"task-{i}", attributes={"agentmon.task.id": f"t{i}"}):
                pass
    assert len(agentmon_capture.points("agentmon.tasks.completed")) == 1
    assert len(agentmon_capture.points("agentmon.task.duration")) == 1
    assert _point(agentmon_capture, "agentmon.tasks.completed").value == 50
