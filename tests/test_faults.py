"""Collector faults (style-and-reliability.md §B.7 F1-F11) against the fault-injecting receiver.

Every test checks the product promise: no exception reaches user code, the caller never waits on
the exporter, shutdown keeps its deadline, and every span is accounted for (``Stats.balanced``,
reconciled against what the receiver actually got). "Never waits" is checked as causality in
test_deadlines.py (the caller's tasks all return while the receiver provably holds the export),
never in milliseconds: the caller's latency under each fault is in ``benchmarks/bench_faults.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan

import otel_agentmon
from otel_agentmon._names import semconv as sc
from otel_agentmon._setup.monitor import Monitor
from tests.conftest import MonitorFor
from tests.support.receiver import (
    Mode,
    OTLPReceiver,
    blackhole,
    close_mid_body,
    closed_port,
    ok,
    partial_success,
    reset,
    slow,
    status,
)
from tests.support.tasks import TRANSPORT_FAILURES, run_tasks, settled, timed_shutdown, warnings_with

#: A budget for tests of delivery: shutdown returns as soon as everything is out, and a healthy
#: receiver in this (busy) process must not race the 2 s deadline the fault tests check.
DELIVERY_BUDGET_S = 10.0
POISON = "bad\ud800name\x00end"


def non_daemon_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not t.daemon}


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def drained(monitor: Monitor) -> bool:
    """The worker has tried every span (shutdown would drop what a failing pipeline still holds)."""
    def done() -> bool:
        stats = monitor.stats()
        return stats.spans_exported + stats.spans_dropped_total == stats.spans_ended

    return wait_until(done, 30.0)


# ---- F1 / F2 / F6 / F7: the collector is unusable for the whole run ------------------------------
UNUSABLE: dict[str, tuple[Mode | None, float]] = {
    "F1-down": (None, 1.0),
    "F2-blackhole": (blackhole(), 2.0),
    "F6-slow": (slow(1.5), 0.5),
    "F7-reset": (reset(), 1.0),
    "F7-close-mid-body": (close_mid_body(), 1.0),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", list(UNUSABLE))
def test_unusable_collector_never_hurts_the_caller_and_every_span_is_dropped_with_a_reason(
        fault: str, rx: OTLPReceiver, monitor_for: MonitorFor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    mode, export_timeout = UNUSABLE[fault]
    threads_before = non_daemon_threads()
    if mode is None:
        target: OTLPReceiver | str = f"http://127.0.0.1:{closed_port()}"
    else:
        rx.mode, target = mode, rx
    monitor = monitor_for(target, export_timeout=export_timeout)
    run_tasks(1000)
    time.sleep(0.2)  # let the worker start exporting into the fault
    timed_shutdown(monitor, 2.0)
    stats = settled(monitor)
    assert stats.spans_started == 2000
    assert stats.spans_exported == 0
    assert stats.spans_dropped_total == 2000
    assert set(stats.spans_dropped) <= TRANSPORT_FAILURES, stats.spans_dropped
    received = rx.unique_span_ids()
    if fault == "F6-slow":
        assert len(received) >= stats.spans_exported  # a late 200 after our timeout: delivered, counted failed
    else:
        assert len(received) == stats.spans_exported
    assert non_daemon_threads() <= threads_before  # (vii) a hung export can hold only daemon threads
    assert sum(1 for r in caplog.records if r.name.startswith("opentelemetry")) <= 10
    # (vi) the operator is told a few times — export failing (per signal) and what the shutdown
    # deadline cost — never once per batch, and not never
    ours = [r.getMessage() for r in caplog.records if r.name == "otel_agentmon" and r.levelno >= logging.WARNING]
    assert 1 <= len(ours) <= 4, f"warnings on otel_agentmon: {ours}"
    assert len(set(ours)) == len(ours), f"a warning repeated: {ours}"


# ---- F3: transient failures are retried and everything is delivered -----------------------------
PAST_HTTP_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("code", "retry_after"), [(503, "0"), (502, "0"), (429, "1"), (429, PAST_HTTP_DATE)])
def test_transient_errors_are_retried_and_every_span_delivered(
        code: int, retry_after: str, rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    rx.script([status(code, retry_after=retry_after, paths=["traces"]), ok()])
    monitor = monitor_for(rx, export_timeout=5.0)
    run_tasks(100)
    assert rx.wait_for_spans(200, 30.0)  # the worker retries; shutdown then has nothing left to do
    timed_shutdown(monitor, 2.0)
    stats = settled(monitor)
    assert stats.spans_exported == stats.spans_started == 200
    assert dict(stats.spans_dropped) == {}
    assert len(rx.unique_span_ids()) == 200 == len(rx.spans())  # a refused request stores nothing
    first, second = rx.requests("/v1/traces")[:2]
    assert (first.status, second.status) == (code, 200)
    if retry_after == "1":
        assert second.arrival - first.arrival >= 0.9  # backoff honours Retry-After


# ---- F4: permanent errors are not retried and are counted by status -----------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("code", [400, 401, 403, 404, 408, 413, 500])
def test_permanent_http_errors_are_not_retried_and_counted_by_status(
        code: int, rx: OTLPReceiver, monitor_for: MonitorFor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    rx.mode = status(code, paths=["traces"])
    monitor = monitor_for(rx, span_max_export_batch_size=128)
    run_tasks(300)
    assert drained(monitor)
    timed_shutdown(monitor, 2.0)
    stats = settled(monitor)
    assert stats.spans_exported == 0
    assert dict(stats.spans_dropped) == {f"export_failed:http_{code}": 600}
    requests = rx.requests("/v1/traces")
    assert sum(r.items for r in requests) == 600  # every span sent exactly once: no retry
    assert {r.status for r in requests} == {code}
    assert len(requests) >= 600 // 128
    assert warnings_with(caplog, "export failing") == 1


# ---- F5: OTLP partial success ----------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_partial_success_counts_rejected_spans(
        rx: OTLPReceiver, monitor_for: MonitorFor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    rx.script([partial_success(7, "bad spans", paths=["traces"]), ok()])
    monitor = monitor_for(rx)
    run_tasks(500)
    timed_shutdown(monitor, DELIVERY_BUDGET_S)
    stats = settled(monitor)
    assert stats.spans_exported == 1000 - 7
    assert dict(stats.spans_dropped) == {"rejected_by_collector": 7}
    # The receiver stores what it was sent; the collector told us it refused 7 of them.
    assert len(rx.unique_span_ids()) == stats.spans_exported + 7
    assert warnings_with(caplog, "rejected") == 1


# ---- F8: collector down mid-run, then back on the same port --------------------------------------
@pytest.mark.timeout(60)
def test_collector_restart_on_same_port_delivers_later_spans(
        rx: OTLPReceiver, monitor_for: MonitorFor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    monitor = monitor_for(rx, export_timeout=1.0)
    run_tasks(50)
    assert wait_until(lambda: monitor.stats().spans_exported == 100, 30.0)
    rx.down()
    for i in range(300):
        with otel_agentmon.tool("during-outage", attributes={"i": i}):
            pass
    assert wait_until(lambda: any(k.startswith("export_failed") for k in monitor.stats().spans_dropped), 30.0)
    rx.up()
    for i in range(300):
        with otel_agentmon.tool("after-restart", attributes={"i": i}):
            pass
    monitor.force_flush(DELIVERY_BUDGET_S)
    timed_shutdown(monitor, DELIVERY_BUDGET_S)
    stats = settled(monitor)
    names = [s.name for s in rx.spans()]
    assert names.count("execute_tool after-restart") == 300
    assert len(rx.unique_span_ids()) == stats.spans_exported
    assert stats.spans_exported + stats.spans_dropped_total == 700
    assert warnings_with(caplog, "export failing") == 1
    assert warnings_with(caplog, "recovered") == 1


# ---- F10: poison span in a full batch ------------------------------------------------------------
def clean_text(value: object) -> bool:
    return isinstance(value, str) and "\x00" not in value and value.encode("utf-8", "strict") is not None


@pytest.mark.timeout(60)
def test_poison_span_through_the_api_is_sanitised_and_its_batch_delivered(
        rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    monitor = monitor_for(rx, span_schedule_delay_ms=60_000, span_max_export_batch_size=512)
    for i in range(511):
        with otel_agentmon.tool("good", attributes={"i": i}):
            pass
    with otel_agentmon.tool(POISON, attributes={"k\ud800\x00": "v\udfff\x00"}) as handle:
        handle.set_attribute("h\ud800\x00", "w\ud800\x00")
        handle.add_event("e\ud800\x00", {"x\ud800": "y\x00"})
    timed_shutdown(monitor, DELIVERY_BUDGET_S)
    stats = settled(monitor)
    assert stats.spans_exported == 512 == len(rx.unique_span_ids())
    assert [r.items for r in rx.requests("/v1/traces")] == [512]
    (poison,) = [s for s in rx.spans() if s.name != "execute_tool good"]
    assert clean_text(poison.name) and "bad" in poison.name
    assert all(clean_text(k) and clean_text(v) for k, v in poison.attributes.items() if k != "i")
    assert len(poison.attributes) == 5  # operation, tool name and type, and both user attributes
    assert all(clean_text(name) for name, _ in poison.events)


@pytest.mark.timeout(60)
def test_poison_span_from_other_instrumentation_does_not_sink_its_batch(
        rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    """Spans made straight on our provider (any OTel instrumentation) skip our sanitiser."""
    monitor = monitor_for(rx, span_schedule_delay_ms=60_000, span_max_export_batch_size=512)
    for i in range(511):
        with otel_agentmon.tool("good", attributes={"i": i}):
            pass
    monitor.tracer.start_span(POISON, attributes={"k\ud800": "v"}).end()
    timed_shutdown(monitor, DELIVERY_BUDGET_S)
    stats = settled(monitor)
    assert [s.name for s in rx.spans()].count("execute_tool good") == 511
    assert stats.spans_exported >= 511
    assert len(rx.unique_span_ids()) == stats.spans_exported
    assert "export_failed:connection_error" not in stats.spans_dropped  # nothing went to the network


def slow_span_encoding(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Encoding a batch takes ``seconds`` (a huge batch on a loaded machine), then fails or not as usual."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    def slow(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        time.sleep(seconds)
        return encode_spans(spans)

    # the name the OTLP/HTTP span exporter calls
    monkeypatch.setattr("opentelemetry.exporter.otlp.proto.http.trace_exporter.encode_spans", slow)


def poison_batch(monitor: Monitor) -> None:
    """511 good spans and one (made straight on the provider) that cannot be encoded: one full batch."""
    for i in range(511):
        with otel_agentmon.tool("good", attributes={"i": i}):
            pass
    monitor.tracer.start_span(POISON, attributes={"k\ud800": "v"}).end()


@pytest.mark.timeout(30)
def test_poison_batch_rescue_does_not_depend_on_how_long_encoding_took(
        rx: OTLPReceiver, monitor_for: MonitorFor, monkeypatch: pytest.MonkeyPatch) -> None:
    slow_span_encoding(monkeypatch, 0.3)
    monitor = monitor_for(rx, span_schedule_delay_ms=60_000, span_max_export_batch_size=512)
    poison_batch(monitor)  # the full batch wakes the worker: exported now, not at shutdown
    assert rx.wait_for_spans(511, timeout=15)
    timed_shutdown(monitor, 2.0)
    stats = settled(monitor)
    assert stats.spans_dropped == {"encode_failed": 1}
    assert stats.spans_exported == 511 == len(rx.unique_span_ids())


@pytest.mark.timeout(30)
def test_shutdown_waits_for_the_rescue_of_a_slow_poison_batch_within_its_deadline(
        rx: OTLPReceiver, monitor_for: MonitorFor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each send of the batch makes no progress for 0.6 s: no reason to close a healthy exporter."""
    slow_span_encoding(monkeypatch, 0.6)
    monitor = monitor_for(rx, span_schedule_delay_ms=60_000, span_max_export_batch_size=1024)
    poison_batch(monitor)  # below a full batch: first sent by shutdown's flush
    timed_shutdown(monitor, 10.0)
    stats = settled(monitor)
    assert stats.spans_dropped == {"encode_failed": 1}
    assert stats.spans_exported == 511 == len(rx.unique_span_ids())


# ---- F11: one signal's pipeline down, the other up ------------------------------------------------
@pytest.mark.timeout(60)
def test_metrics_down_while_traces_up(rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    rx.mode = status(503, retry_after="0", paths=["metrics"])
    monitor = monitor_for(rx, metric_export_interval_ms=100)
    run_tasks(200)
    assert wait_until(lambda: monitor.stats().metric_exports_failed >= 1, 30.0)
    timed_shutdown(monitor, DELIVERY_BUDGET_S)
    stats = settled(monitor)
    assert stats.spans_exported == stats.spans_started == 400 == len(rx.unique_span_ids())
    assert stats.metric_exports_ok == 0
    assert rx.metric_names() == set()


@pytest.mark.timeout(60)
def test_traces_down_while_metrics_up(rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    rx.mode = status(503, retry_after="0", paths=["traces"])
    monitor = monitor_for(rx, metric_export_interval_ms=100)
    run_tasks(200)
    assert wait_until(lambda: sc.M_INVOKE_AGENT_DURATION in rx.metric_names(), 30.0)
    assert drained(monitor)
    timed_shutdown(monitor, DELIVERY_BUDGET_S)  # the last collection delivers every task's metrics
    stats = settled(monitor)
    assert stats.spans_exported == 0 == len(rx.unique_span_ids())
    assert dict(stats.spans_dropped) == {"export_failed:http_503": 400}
    assert stats.metric_exports_ok >= 1
    latest = rx.latest_metric(sc.M_INVOKE_AGENT_DURATION)
    assert latest is not None and sum(p.count or 0 for p in latest.points) == 200


# ---- healthy: all three signals arrive ---------------------------------------------------------
HISTOGRAMS = {
    sc.M_INVOKE_AGENT_DURATION: sc.BUCKETS_AGENT_DURATION,
    sc.M_EXECUTE_TOOL_DURATION: sc.BUCKETS_TOOL_DURATION,
    sc.M_CLIENT_OPERATION_DURATION: sc.BUCKETS_CLIENT_DURATION,
    sc.M_CLIENT_TOKEN_USAGE: sc.BUCKETS_TOKEN_USAGE,
    sc.M_TASK_DURATION: sc.BUCKETS_TASK_DURATION,
}


@pytest.mark.timeout(60)
def test_healthy_collector_receives_spans_metrics_and_logs(rx: OTLPReceiver, monitor_for: MonitorFor) -> None:
    monitor = monitor_for(rx, capture_content="EVENT_ONLY")

    @otel_agentmon.agent("writer")
    def write(i: int) -> None:
        with (otel_agentmon.task("draft", task_id=f"t-{i}"), otel_agentmon.tool("search"),
              otel_agentmon.llm("gpt-x", provider="openai") as call):
            call.record_usage(input_tokens=10, output_tokens=5)
            call.record_messages(input=[{"role": "user", "content": "hi"}])

    for i in range(20):
        write(i)
    timed_shutdown(monitor, DELIVERY_BUDGET_S)
    stats = settled(monitor)
    assert stats.spans_exported == stats.spans_started == 80 == len(rx.unique_span_ids())  # 4 spans a run
    assert stats.metric_exports_ok >= 1 and stats.metric_exports_failed == 0
    for name, bounds in HISTOGRAMS.items():
        metric = rx.latest_metric(name)
        assert metric is not None, f"{name} not received; got {sorted(rx.metric_names())}"
        assert metric.kind == "histogram"
        assert all(p.explicit_bounds == [float(b) for b in bounds] for p in metric.points), name
    completed = rx.latest_metric(sc.M_TASKS_COMPLETED)
    assert completed is not None and sum(p.value or 0 for p in completed.points) == 20
    logs = [log for log in rx.logs() if log.event_name == sc.EVENT_INFERENCE_DETAILS]
    stopped = [log for log in rx.logs() if log.event_name == sc.EVENT_HEALTH_CHANGED]
    assert len(logs) == 20 and len(stopped) == 1  # and the clean shutdown's "writer stopped"
    assert stats.logs_exported == stats.logs_emitted == 21
    llm_spans = {s.span_id for s in rx.spans() if s.name == "chat gpt-x"}
    assert {log.span_id for log in logs} == llm_spans
