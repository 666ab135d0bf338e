"""Metric derivation under overload keeps its tables consistent and says what it lost (issue 11, item 5).

The derivation queue is bounded and drops (never blocking the agent). A dropped task end whose
start was kept must not leave a phantom task in flight (reported stuck for ever); the in-flight
table is capped, with evictions counted; every loss is in ``stats()``, the
``agentmon.derivation.dropped`` metric and one rate-limited warning.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import pytest

import otel_agentmon as agentmon
from otel_agentmon import HealthPolicy
from otel_agentmon._metrics import derive as _derive
from otel_agentmon._metrics import inflight as _derive_inflight
from otel_agentmon._metrics.derive import Deriver
from otel_agentmon.testing import Capture
from tests.conftest import agentmon_warnings
from tests.support.polling import wait_for

Make = Callable[..., Capture]
QUEUE = 16
STUCK_AFTER = 0.2
POLICY = HealthPolicy(heartbeat_timeout=60, stuck_after=STUCK_AFTER, cpu_limit=None)


def deriver_of(cap: Capture) -> Deriver:
    deriver: Deriver = cap.monitor._deriver  # fault injection: the tests stall its thread
    return deriver


def fill_queue(cap: Capture) -> None:
    """Queue other spans' ends until the derivation queue is full."""
    deriver = deriver_of(cap)
    while len(deriver._queue) < QUEUE:
        cap.monitor.tracer.start_span("filler").end()


def dropped_metric(cap: Capture) -> dict[object, object]:
    return {(p.attributes or {}).get("error.type"): p.value for p in cap.points("agentmon.derivation.dropped")}


def settled_in_flight(cap: Capture, agent: str) -> tuple[int, int, int]:
    """(tasks in flight per the table, per the agent's summary, per health) once derivation caught up."""
    cap.monitor.force_flush(2.0)
    deriver = deriver_of(cap)
    table = sum(n for _, n in deriver.in_flight())
    summary = cap.monitor.snapshot()[agent].in_flight
    return table, summary, cap.monitor.evaluate_health().agents[agent].in_flight


@pytest.mark.timeout(30)
@pytest.mark.parametrize("start_seen", [True, False], ids=["start-derived-before-end-dropped",
                                                          "start-derived-after-end-dropped"])
def test_a_dropped_task_end_leaves_no_phantom_in_flight_or_stuck_task(
        start_seen: bool, health_capture: Make, monkeypatch: pytest.MonkeyPatch,
        fresh_log_limiter: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(_derive, "_MAX_QUEUE", QUEUE)
    cap = health_capture(health_policy=POLICY)
    deriver = deriver_of(cap)
    stalled = deriver._lock  # held: the deriver is overloaded, nothing is consumed meanwhile
    if not start_seen:
        stalled.acquire()
    with contextlib.ExitStack() as tasks:
        for i in range(4):
            tasks.enter_context(agentmon.task("work", agent="a", task_id=f"t{i}"))
        if start_seen:
            deriver.process_pending()  # the four starts are derived: the tasks are in flight
            assert sum(n for _, n in deriver.in_flight()) == 4
            stalled.acquire()
        fill_queue(cap)
    # ... so the four task ends were dropped, their starts kept
    stalled.release()
    assert cap.monitor.stats().derivation_dropped_by_reason.get("queue_full", 0) >= 4
    assert settled_in_flight(cap, "a") == (0, 0, 0)
    time.sleep(STUCK_AFTER * 2)  # long past the stuck limit: a phantom would be reported stuck now
    health = cap.monitor.evaluate_health().agents["a"]
    assert (health.stuck_tasks, health.in_flight, health.state) == (0, 0, "healthy"), health
    stats = cap.monitor.stats()
    assert stats.derivation_dropped == sum(stats.derivation_dropped_by_reason.values()) >= 4
    assert dropped_metric(cap) == dict(stats.derivation_dropped_by_reason)
    assert wait_for(lambda: any("metric derivation is overloaded" in m for m in agentmon_warnings(caplog)))


@pytest.mark.timeout(60)
def test_a_flood_of_tasks_leaves_consistent_tables_and_counted_drops(
        health_capture: Make, monkeypatch: pytest.MonkeyPatch, fresh_log_limiter: None,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(_derive, "_MAX_QUEUE", 64)
    cap = health_capture(health_policy=POLICY)
    deriver = deriver_of(cap)
    stall = threading.Event()

    def staller() -> None:  # the deriver is starved now and then, as on a busy machine
        while not stall.is_set():
            with deriver._lock:
                time.sleep(0.02)
            time.sleep(0.005)

    def agent_work(n: int) -> None:
        for i in range(300):
            with agentmon.task("work", agent=f"agent-{n}"), agentmon.tool("t"):
                if i % 50 == 0:
                    time.sleep(0.01)  # some tasks run across a derivation tick: their starts are derived

    threads = [threading.Thread(target=staller)] + [threading.Thread(target=agent_work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(30)
    stall.set()
    threads[0].join(5)
    stats = cap.monitor.stats()
    assert stats.derivation_dropped_by_reason.get("queue_full", 0) > 0, stats
    for n in range(4):
        assert settled_in_flight(cap, f"agent-{n}") == (0, 0, 0)
    assert len(deriver._in_flight) == 0
    time.sleep(STUCK_AFTER * 2)
    assert all(h.stuck_tasks == 0 for h in cap.monitor.evaluate_health().agents.values())
    stats = cap.monitor.stats()
    assert dropped_metric(cap) == dict(stats.derivation_dropped_by_reason)
    assert stats.spans_started == stats.spans_ended == 4 * 300 * 2  # the agents' own spans all ended
    def overloaded() -> list[str]:
        return [m for m in agentmon_warnings(caplog) if "metric derivation is overloaded" in m]

    assert wait_for(overloaded)
    assert len(overloaded()) == 1, overloaded()  # rate-limited: once a minute, not once per drop


@pytest.mark.timeout(30)
def test_the_in_flight_table_is_capped_and_evictions_are_counted(
        health_capture: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_derive_inflight, "MAX_IN_FLIGHT", 8)
    cap = health_capture(health_policy=HealthPolicy(heartbeat_timeout=60, stuck_after=60, cpu_limit=None))
    deriver = deriver_of(cap)
    with contextlib.ExitStack() as tasks:
        for i in range(10):
            tasks.enter_context(agentmon.task("work", agent="a", task_id=f"t{i}"))
        deriver.process_pending()
        assert len(deriver._in_flight) == 8
        assert settled_in_flight(cap, "a") == (8, 8, 8)
        assert cap.monitor.stats().derivation_dropped_by_reason == {"in_flight_evicted": 2}
        assert dropped_metric(cap) == {"in_flight_evicted": 2}
    # every task ended, the evicted ones too: nothing left, and no count went below zero
    assert settled_in_flight(cap, "a") == (0, 0, 0)
    summary = cap.monitor.snapshot()["a"]
    assert summary.tasks_ok == 10
