"""Deadlines and causality: the caller never waits for a stuck export, and force_flush(timeout)
returns by its deadline (the SDK's ignores it, perf-anchors §6) with an honest answer, whatever
the Collector, the periodic metric reader or a metric callback does.

Latency is not asserted here (benchmarks/bench_faults.py measures it); a deadline is asserted
with the scheduling margin of tests/support/deadlines.py.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from opentelemetry.metrics import CallbackOptions, Observation

import otel_agentmon
from otel_agentmon._setup.monitor import Monitor
from tests.conftest import MonitorFor
from tests.support.deadlines import within
from tests.support.receiver import OTLPReceiver, blackhole, slow, status
from tests.support.tasks import TRANSPORT_FAILURES, run_tasks, settled, timed_shutdown, warnings_with

TRACES = "/v1/traces"
METRICS = "/v1/metrics"


# ---- the caller never waits for the exporter ---------------------------------------------------------
def stuck_export(rx: OTLPReceiver, monitor: Monitor) -> None:
    """Wait until the span worker is provably stuck: the receiver holds its one request unanswered."""
    run_tasks(40)  # 80 spans: more than a batch of 64
    assert rx.wait_for(lambda: rx.holding(TRACES) == 1, 30.0), rx.requests()


@pytest.mark.timeout(60)
def test_the_caller_never_waits_for_a_stuck_export(rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    rx.mode = blackhole(paths=["traces"])
    monitor = monitor_for(rx, export_timeout=120.0, span_max_export_batch_size=64)
    stuck_export(rx, monitor)
    run_tasks(1000)  # a caller that waited for the export would still be in its first task
    # Causality, not milliseconds: every task returned while the export was held the whole time
    # (one worker thread, one request, no answer; its timeout is minutes away).
    assert rx.holding(TRACES) == 1 and len(rx.requests(TRACES)) == 1
    assert rx.requests(TRACES)[0].status is None
    stats = monitor.stats()
    assert stats.spans_ended == 2080 and stats.spans_exported == 0
    assert stats.spans_queued + stats.spans_dropped.get("queue_full", 0) == 2080 - stats.spans_in_flight


@pytest.mark.timeout(60)
def test_queue_is_bounded_and_overflow_counted_as_queue_full(
        rx: OTLPReceiver, monitor_for: MonitorFor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    rx.mode = blackhole(paths=["traces"])
    monitor = monitor_for(rx, span_max_queue_size=256, span_max_export_batch_size=64, export_timeout=120.0)
    stuck_export(rx, monitor)
    peak = 0
    for _ in range(10):
        run_tasks(300)
        peak = max(peak, monitor.stats().spans_queued)
    assert rx.holding(TRACES) == 1 and len(rx.requests(TRACES)) == 1  # all of it while the export was stuck
    assert peak <= 256  # memory is bounded by the queue, whatever the collector does
    timed_shutdown(monitor, 2.0)
    stats = settled(monitor)
    assert stats.spans_dropped.get("queue_full", 0) >= 6080 - 256 - 64
    assert stats.spans_exported == 0 == len(rx.unique_span_ids())
    assert set(stats.spans_dropped) <= {"queue_full"} | TRANSPORT_FAILURES
    assert warnings_with(caplog, "queue full") == 1


# ---- deadlines: force_flush() honours its timeout (the SDK's ignores it, perf-anchors §6) -------------
@pytest.mark.timeout(30)
def test_force_flush_returns_by_its_timeout_with_the_collector_black_holed(
        rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    rx.mode = blackhole()
    monitor = monitor_for(rx, export_timeout=5.0, shutdown_timeout=1.0)
    for i in range(1500):
        with otel_agentmon.tool("flushed", attributes={"i": i}):
            pass
    start = time.monotonic()
    assert monitor.force_flush(0.5) is False  # nothing could be delivered
    elapsed = time.monotonic() - start
    assert within(elapsed, 0.5), f"force_flush(0.5) took {elapsed:.2f} s"
    start = time.monotonic()
    monitor.shutdown()  # default budget: shutdown_timeout
    elapsed = time.monotonic() - start
    assert within(elapsed, 1.0), f"shutdown() with shutdown_timeout=1 took {elapsed:.2f} s"
    stats = settled(monitor)
    assert stats.spans_exported == 0 and stats.spans_dropped_total == 1500


@pytest.mark.timeout(90)
def test_force_flush_keeps_its_deadline_while_the_metric_reader_is_stuck_exporting(
        rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    """The SDK's periodic reader holds its export lock for a whole export; MeterProvider.force_flush
    waits for that lock whatever its timeout (the 5.2 s force_flush(0.5) of issue 11), then
    answers True whatever the export did."""
    rx.mode = blackhole(paths=["metrics"])
    monitor = monitor_for(rx, export_timeout=30.0, metric_export_interval_ms=100, metric_export_timeout_ms=30_000)
    with otel_agentmon.agent("metered"):  # something to export
        pass
    # The reader's export has reached the receiver, which holds it: the reader now holds its lock.
    assert rx.wait_for(lambda: rx.holding("/v1/metrics") == 1, 30.0)
    start = time.monotonic()
    flushed = monitor.force_flush(0.5)
    elapsed = time.monotonic() - start
    assert within(elapsed, 0.5), f"force_flush(0.5) took {elapsed:.2f} s"
    assert flushed is False  # the metrics could not get out
    # A flush stuck behind that lock is not started again: repeated flushes never pile up threads.
    for _ in range(5):
        assert monitor.force_flush(0.05) is False
    assert sum(t.name == "agentmon-metrics-flush" for t in threading.enumerate()) <= 1


@pytest.mark.timeout(90)
def test_force_flush_keeps_its_deadline_while_a_metric_callback_is_slow(
        rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    """The SDK collects (every observable callback) on the flushing thread: one slow callback, say
    an application's gauge reading a slow source, held force_flush for as long as it took."""
    monitor = monitor_for(rx)
    release = threading.Event()

    def slow_reading(options: CallbackOptions) -> list[Observation]:
        release.wait(60)
        return [Observation(1)]

    meter_provider = monitor.meter_provider
    assert meter_provider is not None
    meter_provider.get_meter("app").create_observable_gauge("app.slow_reading", callbacks=[slow_reading])
    threading.Timer(20.0, release.set).start()  # the old code returned only then
    try:
        start = time.monotonic()
        flushed = monitor.force_flush(0.5)
        elapsed = time.monotonic() - start
        assert within(elapsed, 0.5), f"force_flush(0.5) took {elapsed:.2f} s"
        assert flushed is False
    finally:
        release.set()


@pytest.mark.timeout(60)
def test_force_flush_is_false_when_the_metrics_could_not_be_delivered(
        rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    rx.mode = status(400, paths=["metrics"])  # spans are accepted, metrics refused
    monitor = monitor_for(rx)
    with otel_agentmon.agent("metered"):
        pass
    assert monitor.force_flush(30.0) is False  # the SDK's own force_flush answers True here
    assert rx.wait_for_spans(1, 30.0) and monitor.stats().metric_exports_failed >= 1


# ---- shutdown decides by evidence, not by how long an export took -------------------------------------
@pytest.mark.timeout(60)
def test_a_slow_but_healthy_metric_export_at_shutdown_still_delivers_the_stopped_state(
        rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    """A metric export still in flight at shutdown because the receiver is slow (it answers, 200, after
    2 s) is not abandoned on a wall-clock guess: the final export, which says the agents stopped,
    arrives (issue 11 item 4; the stopped state is issue 10's clean-exit signal)."""
    rx.mode = slow(2.0, paths=[METRICS])
    monitor = monitor_for(rx, metric_export_interval_ms=200, health_interval=0.05)
    run_tasks(5)
    assert rx.wait_for(lambda: rx.holding(METRICS) == 1, 30.0), rx.requests()  # an export in flight
    time.sleep(0.7)  # ... for a while: slow, not failing
    assert monitor.shutdown(10.0)

    def stopped_reported() -> bool:
        health = [m for m in rx.metrics() if m.name == "agentmon.agent.health"]
        return any(p.attributes.get("agentmon.health.state") == "stopped" and p.value == 1
                   for m in health for p in m.points)
    assert rx.wait_for(stopped_reported, 10.0), [m.name for m in rx.metrics()]
