"""The pytest plugin users get: deterministic ids, and with the step clock, deterministic times."""

from __future__ import annotations

import otel_agentmon as agentmon
from otel_agentmon.testing import Capture, StepClock, capture


@agentmon.agent("planner")
def plan() -> None:
    with agentmon.tool("search"):
        pass


def _shape(cap: Capture) -> list[tuple[str, int, int, int, int]]:
    return [(s.name, s.context.trace_id, s.context.span_id, s.start_time or 0, s.end_time or 0)
            for s in sorted(cap.spans(), key=lambda s: s.context.span_id)]


def test_step_clock_fixture_gives_the_same_ids_and_times_on_every_run(
        agentmon_capture_stepclock: Capture) -> None:
    plan()
    first = _shape(agentmon_capture_stepclock)
    assert first == [
        ("invoke_agent planner", 1, 1, 1_700_000_000_001_000_000, 1_700_000_000_004_000_000),
        ("execute_tool search", 1, 2, 1_700_000_000_002_000_000, 1_700_000_000_003_000_000),
    ]
    again, close = capture(clock=StepClock())
    try:
        plan()
        assert _shape(again) == first
    finally:
        close()


def test_default_fixture_has_sequential_ids_and_real_times(agentmon_capture: Capture) -> None:
    plan()
    agent_span = agentmon_capture.span("invoke_agent planner")
    assert (agent_span.context.trace_id, agent_span.context.span_id) == (1, 1)
    assert agent_span.start_time is not None and agent_span.start_time > 1_750_000_000_000_000_000
