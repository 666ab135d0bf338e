"""The workload and the checks the fault and deadline tests share."""

from __future__ import annotations

import logging
import time

import pytest

import otel_agentmon
from otel_agentmon._export.stats import Stats
from otel_agentmon._setup.monitor import Monitor
from tests.support.deadlines import within

#: What a transport failure leaves in stats().spans_dropped: failed sends, or cut by shutdown.
TRANSPORT_FAILURES = {"export_failed:connection_error", "shutdown_timeout"}


@otel_agentmon.agent("fault-agent")
def agent_task(i: int) -> int:
    with otel_agentmon.tool("lookup", attributes={"i": i}):
        return i


def run_tasks(n: int) -> None:
    """Run ``n`` decorated tasks (2 spans each); (i) each returns normally."""
    for i in range(n):
        assert agent_task(i) == i


def settled(monitor: Monitor) -> Stats:
    """(ii) the accounting identity closes at quiescence."""
    stats = monitor.stats()
    assert stats.balanced, stats
    assert (stats.spans_queued, stats.spans_in_flight, stats.spans_open) == (0, 0, 0), stats
    return stats


def timed_shutdown(monitor: Monitor, budget: float) -> float:
    start = time.monotonic()
    monitor.shutdown(budget)
    elapsed = time.monotonic() - start
    assert within(elapsed, budget), f"shutdown({budget}) took {elapsed:.2f} s"
    return elapsed


def warnings_with(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records
               if r.name == "otel_agentmon" and r.levelno >= logging.WARNING and text in r.getMessage())
