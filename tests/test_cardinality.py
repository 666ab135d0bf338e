"""Metric cardinality stays bounded (style-and-reliability.md §B.7 L4, §B.8.5): ids never become
metric attributes, and too many agent names fold into one ``otel.metric.overflow`` series
instead of growing without bound or being lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import otel_agentmon
from otel_agentmon._core import guard as _guard
from otel_agentmon._core import state as _state
from otel_agentmon._names import semconv as sc
from otel_agentmon._setup.monitor import Monitor
from otel_agentmon._setup.settings import resolve
from otel_agentmon.testing import Capture, capture
from tests.support.deadlines import within
from tests.support.receiver import OTLPReceiver

OVERFLOW = "otel.metric.overflow"
ID_PREFIXES = ("task-", "req-")


@pytest.fixture(autouse=True)
def fresh_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_guard, "_limiter", _guard.RateLimiter())


def with_capture(**options: Any) -> Iterator[Capture]:
    cap, close = capture(**options)
    try:
        yield cap
    finally:
        close()


@pytest.fixture
def cap() -> Iterator[Capture]:
    # Agents never go "down" mid-test, and the health loop (a tick over thousands of agents takes
    # 0.1 s of CPU, idle) does not compete with the collections these tests time out on.
    yield from with_capture(heartbeat_timeout=3600.0, health_interval=3600.0)


@pytest.fixture
def cap100() -> Iterator[Capture]:
    yield from with_capture(metric_cardinality_limit=100, heartbeat_timeout=3600.0, health_interval=3600.0)


def all_points(cap: Capture) -> dict[str, list[Any]]:
    return {name: list(metric.data.data_points) for name, metric in cap.metrics().items()}


def histogram_count(points: list[Any]) -> int:
    return sum(int(p.count) for p in points)


@otel_agentmon.agent("carrier")
def carry(i: int) -> None:
    with otel_agentmon.task("lookup", task_id=f"task-{i}", attributes={"request.id": f"req-{i}"}):  # noqa: SIM117
        # An id pushed at a well-known key by mistake: the Views must still keep it off metrics.
        with otel_agentmon.tool("fetch", attributes={sc.AGENTMON_TASK_ID: f"task-{i}"}):
            pass


@pytest.mark.timeout(240)
def test_ten_thousand_task_ids_never_reach_metric_attributes(cap: Capture) -> None:
    n = 10_000
    for i in range(n):
        carry(i)
    points = all_points(cap)
    assert sc.M_TASK_DURATION in points and sc.M_EXECUTE_TOOL_DURATION in points
    for name, pts in points.items():
        for point in pts:
            attrs = dict(point.attributes or {})
            assert sc.AGENTMON_TASK_ID not in attrs and "request.id" not in attrs, (name, attrs)
            assert not any(isinstance(v, str) and v.startswith(ID_PREFIXES) for v in attrs.values()), (name, attrs)
    # One stream each: the ids added no series.
    assert len(points[sc.M_TASK_DURATION]) == 1 and histogram_count(points[sc.M_TASK_DURATION]) == n
    assert len(points[sc.M_EXECUTE_TOOL_DURATION]) == 1
    assert len(points[sc.M_INVOKE_AGENT_DURATION]) == 1
    # The ids are where they belong: on the spans.
    task_spans = cap.spans("task lookup")
    assert len({s.attributes[sc.AGENTMON_TASK_ID] for s in task_spans if s.attributes}) == n
    assert cap.monitor.stats().derivation_dropped == 0


def run_many_agents(n: int) -> None:
    for i in range(n):
        with otel_agentmon.agent(f"agent-{i}"), otel_agentmon.task("triage"):
            pass


def assert_bounded(points: list[Any], limit: int) -> list[Any]:
    assert len(points) <= limit + 1, f"{len(points)} points with limit {limit}"
    overflow = [p for p in points if (p.attributes or {}).get(OVERFLOW) is True]
    assert len(overflow) == 1, [dict(p.attributes or {}) for p in points[:5]]
    return overflow


@pytest.mark.timeout(240)
def test_three_thousand_agent_names_fold_into_one_overflow_series(cap100: Capture) -> None:
    n = 3000
    run_many_agents(n)
    points = all_points(cap100)
    for name in (sc.M_TASK_DURATION, sc.M_INVOKE_AGENT_DURATION, sc.M_TASKS_COMPLETED, sc.M_AGENT_BUSY_TIME):
        assert_bounded(points[name], 100)
    # Overflowed measurements are aggregated, not lost.
    assert histogram_count(points[sc.M_TASK_DURATION]) == n
    assert histogram_count(points[sc.M_INVOKE_AGENT_DURATION]) == n
    assert sum(int(p.value) for p in points[sc.M_TASKS_COMPLETED]) == n
    in_flight = points.get(sc.M_TASKS_IN_FLIGHT, [])
    assert len(in_flight) <= 101 and sum(int(p.value) for p in in_flight) == 0
    # Spans are not subject to the limit: every agent invocation is there under its own name.
    assert len({s.name for s in cap100.spans() if s.name.startswith("invoke_agent ")}) == n


@pytest.mark.timeout(240)
def test_default_cardinality_limit_is_2000(cap: Capture) -> None:
    run_many_agents(3000)
    overflow = assert_bounded(list(cap.points(sc.M_TASK_DURATION)), 2000)
    assert histogram_count(overflow) >= 999


@pytest.mark.timeout(240)
def test_shutdown_keeps_its_deadline_when_thousands_of_agents_change_health() -> None:
    """Every agent going quiet at once is one health transition each; shutdown's last health
    evaluation must stay within the shutdown budget however many agents there are."""
    for cap in with_capture(heartbeat_timeout=0.1, health_interval=3600.0):
        run_many_agents(2000)
        time.sleep(0.3)  # all 2000 agents are now past their heartbeat timeout
        start = time.monotonic()
        cap.monitor.shutdown(2.0)
        elapsed = time.monotonic() - start
        assert within(elapsed, 2.0), f"shutdown(2.0) took {elapsed:.1f} s with 2000 agents changing health"
        assert cap.monitor.stats().balanced


@pytest.mark.timeout(240)
def test_overflow_series_arrives_over_otlp() -> None:
    saved = _state.tracer
    with OTLPReceiver() as rx:
        monitor = Monitor(resolve({"endpoint": rx.endpoint, "set_global": False, "system_metrics": "off",
                                   "metric_cardinality_limit": 100}))
        _state.tracer = monitor.tracer
        try:
            for i in range(500):
                with otel_agentmon.agent(f"remote-{i}"), otel_agentmon.task("triage", task_id=f"task-{i}"):
                    pass
            # Delivery, not the shutdown deadline, is under test: everything out before shutting down.
            assert monitor.force_flush(60.0)
        finally:
            monitor.shutdown(3.0)
            _state.tracer = saved
        stats = monitor.stats()
        assert stats.balanced and stats.spans_exported == 1000 == len(rx.unique_span_ids())
        latest = rx.latest_metric(sc.M_TASK_DURATION)
        assert latest is not None, (stats, sorted(rx.metric_names()), rx.requests("/v1/metrics"))
        assert len(latest.points) <= 101
        assert [p.attributes.get(OVERFLOW) for p in latest.points].count(True) == 1
        assert sum(p.count or 0 for p in latest.points) == 500
        assert not any(str(v).startswith(ID_PREFIXES) for m in rx.metrics() for p in m.points
                       for v in p.attributes.values())
