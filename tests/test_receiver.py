"""Prove tests.support.receiver against the real OpenTelemetry OTLP/HTTP exporters."""

from __future__ import annotations

import socket
import time
import zlib
from pathlib import Path

import pytest
import requests
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from tests.support.deadlines import within
from tests.support.receiver import (
    OTLPReceiver,
    blackhole,
    ok,
    status,
)
from tests.support.receiver_kit import PB, RESOURCE, make_spans, raw_post, span_exporter, traces_body

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(30)
def test_spans_attributes_parents_resource_round_trip(rx: OTLPReceiver) -> None:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(span_exporter(rx)))
    tracer = provider.get_tracer("agent.scope", "1.2.3")
    root_attrs: dict[str, str | int | float | bool] = {"s": "x", "i": 7, "f": 1.5, "b": True}
    with (
        tracer.start_as_current_span("root", attributes=root_attrs) as root,
        tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child,
    ):
        child.set_attribute("tags", ["a", "b"])
        child.set_attribute("nums", [1, 2])
        child.add_event("tool.call", {"tool": "search", "n": 2})
        child.set_status(StatusCode.ERROR, "boom")
    provider.shutdown()

    assert rx.wait_for_spans(2, timeout=5)
    by_name = {s.name: s for s in rx.spans()}
    r, c = by_name["root"], by_name["child"]
    assert r.trace_id == format(root.get_span_context().trace_id, "032x")
    assert r.span_id == format(root.get_span_context().span_id, "016x")
    assert c.span_id == format(child.get_span_context().span_id, "016x")
    assert r.parent_span_id == "" and c.parent_span_id == r.span_id and c.trace_id == r.trace_id
    assert r.attributes == {"s": "x", "i": 7, "f": 1.5, "b": True}
    assert c.attributes == {"tags": ["a", "b"], "nums": [1, 2]}
    assert c.events == [("tool.call", {"tool": "search", "n": 2})]
    assert c.kind == 3 and r.kind == 1  # CLIENT, INTERNAL
    assert c.status_code == 2 and c.status_message == "boom" and r.status_code == 0
    assert r.resource["service.name"] == "receiver-test" and r.resource["deployment.environment"] == "ci"
    assert r.scope_name == "agent.scope" and r.scope_version == "1.2.3"
    assert c.end_ns >= c.start_ns > 0 and c.arrival <= time.monotonic()
    assert rx.unique_span_ids() == {(r.trace_id, r.span_id), (c.trace_id, c.span_id)}
    reqs = rx.requests()
    assert [q.status for q in reqs] == [200, 200] and all(q.path == "/v1/traces" for q in reqs)
    assert [q.items for q in reqs] == [1, 1]
    rx.clear()
    assert rx.spans() == [] and rx.requests() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.Deflate])
def test_compressed_exports_are_decoded(rx: OTLPReceiver, compression: Compression) -> None:
    exporter = span_exporter(rx, compression=compression)
    assert exporter.export(make_spans(3)) == SpanExportResult.SUCCESS
    assert len(rx.spans()) == 3
    assert rx.requests()[0].content_encoding == compression.value
    exporter.shutdown()  # type: ignore[no-untyped-call]


@pytest.mark.timeout(30)
def test_metrics_histogram_and_counter_round_trip(rx: OTLPReceiver) -> None:
    exporter = OTLPMetricExporter(endpoint=rx.endpoint + "/v1/metrics", timeout=5)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("agent.meter")
    hist = meter.create_histogram(
        "agent.latency", unit="s", description="step latency", explicit_bucket_boundaries_advisory=[0.1, 1.0, 10.0]
    )
    for v in (0.05, 0.5, 5.0, 50.0):
        hist.record(v, {"step": "plan"})
    counter = meter.create_counter("agent.tokens", unit="{token}")
    counter.add(3, {"model": "m1"})
    counter.add(4, {"model": "m1"})
    assert provider.force_flush()

    assert rx.wait_for(lambda: {"agent.latency", "agent.tokens"} <= rx.metric_names(), timeout=5)
    h = rx.latest_metric("agent.latency")
    assert h is not None and h.kind == "histogram" and h.unit == "s" and h.description == "step latency"
    (p,) = h.points
    assert p.explicit_bounds == [0.1, 1.0, 10.0] and p.bucket_counts == [1, 1, 1, 1]
    assert p.count == 4 and p.sum == pytest.approx(55.55) and p.attributes == {"step": "plan"}
    assert p.min == pytest.approx(0.05) and p.max == pytest.approx(50.0)
    assert h.temporality == 2 and h.resource["service.name"] == "receiver-test" and h.scope_name == "agent.meter"
    c = rx.latest_metric("agent.tokens")
    assert c is not None and c.kind == "sum" and c.is_monotonic and c.unit == "{token}"
    assert [(pt.value, pt.attributes) for pt in c.points] == [(7, {"model": "m1"})]
    assert rx.latest_metric("nope") is None
    assert rx.requests()[0].items == 2  # one histogram point + one sum point
    provider.shutdown()


@pytest.mark.timeout(30)
def test_logs_with_event_name_round_trip(rx: OTLPReceiver) -> None:
    provider = LoggerProvider(resource=RESOURCE)
    exporter = OTLPLogExporter(endpoint=rx.endpoint + "/v1/logs", timeout=5)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("agent.logs")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("ctx") as span:
        logger.emit(
            event_name="agent.step",
            body={"msg": "hello", "n": [1, 2]},
            attributes={"k": "v"},
            severity_number=SeverityNumber.INFO,
        )
    provider.shutdown()
    assert rx.wait_for(lambda: len(rx.logs()) == 1, timeout=5)
    (lg,) = rx.logs()
    assert lg.event_name == "agent.step" and lg.body == {"msg": "hello", "n": [1, 2]}
    assert lg.attributes == {"k": "v"} and lg.severity_number == SeverityNumber.INFO.value
    assert lg.trace_id == format(span.get_span_context().trace_id, "032x")
    assert lg.span_id == format(span.get_span_context().span_id, "016x")
    assert lg.resource["service.name"] == "receiver-test" and lg.scope_name == "agent.logs"


@pytest.mark.timeout(30)
def test_503_then_ok_script_is_retried_and_delivered(rx: OTLPReceiver) -> None:
    rx.script([status(503, retry_after="0"), status(503, retry_after="0"), ok()])
    exporter = span_exporter(rx, timeout=10)
    assert exporter.export(make_spans(2)) == SpanExportResult.SUCCESS
    assert [q.status for q in rx.requests()] == [503, 503, 200]
    assert len(rx.spans()) == 2 and len(rx.unique_span_ids()) == 2  # failed attempts not recorded
    assert rx.mode.kind == "ok"  # script stays on its last mode
    assert exporter.export(make_spans(1)) == SpanExportResult.SUCCESS
    assert len(rx.spans()) == 3


@pytest.mark.timeout(30)
def test_retry_after_header_is_sent_and_honoured(rx: OTLPReceiver) -> None:
    rx.script([status(429, retry_after="1"), ok()])
    r = requests.post(rx.endpoint + "/v1/traces", data=traces_body(), headers=PB, timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    rx.clear()
    rx.script([status(429, retry_after="1"), ok()])
    assert span_exporter(rx, timeout=10).export(make_spans()) == SpanExportResult.SUCCESS
    first, second = rx.requests()
    assert second.arrival - first.arrival >= 0.9


@pytest.mark.timeout(30)
def test_400_is_recorded_not_delivered_and_not_retried(rx: OTLPReceiver) -> None:
    rx.mode = status(400)
    assert span_exporter(rx).export(make_spans()) == SpanExportResult.FAILURE
    (q,) = rx.requests()  # exactly one request: a 400 is not retried
    assert q.status == 400 and q.items == 1 and q.fault == "status"
    assert rx.spans() == []


@pytest.mark.timeout(30)
def test_paths_filter_only_affects_matching_signal(rx: OTLPReceiver) -> None:
    rx.mode = status(503, paths=["metrics"])
    assert requests.post(rx.endpoint + "/v1/traces", data=traces_body(), headers=PB, timeout=5).status_code == 200
    metrics_body = ExportMetricsServiceRequest().SerializeToString()
    assert requests.post(rx.endpoint + "/v1/metrics", data=metrics_body, headers=PB, timeout=5).status_code == 503
    assert len(rx.spans()) == 1


@pytest.mark.timeout(30)
def test_bad_payloads_unknown_paths_and_methods(rx: OTLPReceiver) -> None:
    post = requests.post
    assert post(rx.endpoint + "/v1/traces", data=b"\xff\xff\xff", headers=PB, timeout=5).status_code == 400
    assert post(rx.endpoint + "/v1/nope", data=b"", headers=PB, timeout=5).status_code == 404
    assert post(rx.endpoint + "/v1/traces", data=b"{}", headers={"Content-Type": "application/json"}).status_code == 415
    assert requests.get(rx.endpoint + "/v1/traces", timeout=5).status_code == 405
    assert [q.status for q in rx.requests()] == [400, 404, 415]
    assert rx.requests()[0].headers["content-type"] == "application/x-protobuf"
    deflated = zlib.compress(traces_body(2))
    r = post(rx.endpoint + "/v1/traces", data=deflated, headers={**PB, "Content-Encoding": "deflate"}, timeout=5)
    assert r.status_code == 200 and len(rx.spans()) == 2


@pytest.mark.timeout(30)
def test_blackhole_times_out_exporter_and_stop_is_prompt() -> None:
    rx = OTLPReceiver().start()
    rx.mode = blackhole()
    t0 = time.monotonic()
    assert span_exporter(rx, timeout=1).export(make_spans()) == SpanExportResult.FAILURE
    assert within(time.monotonic() - t0, 1.0)  # the exporter's own timeout ended it
    assert rx.requests()[0].fault == "blackhole" and rx.requests()[0].status is None and rx.spans() == []
    # Hold a few raw blackholed connections open, then stop(): it must close them promptly.
    socks = [raw_post(rx.port, traces_body()) for _ in range(3)]
    assert rx.wait_for(lambda: rx.holding() == 4, timeout=30)  # the exporter's request and these three
    t0 = time.monotonic()
    rx.stop()  # never waits for the handlers it holds (they would hold forever)
    assert within(time.monotonic() - t0, 1.5)  # its own bounded waits: thread join 1 s, connections 0.5 s
    assert rx.holding() == 0
    for s in socks:
        assert s.recv(1024) == b""  # closed by the receiver, no reply ever sent
        s.close()


@pytest.mark.timeout(30)
def test_down_refuses_and_up_restores_same_port(rx: OTLPReceiver) -> None:
    endpoint, port = rx.endpoint, rx.port
    exporter = span_exporter(rx, timeout=1)
    assert exporter.export(make_spans()) == SpanExportResult.SUCCESS
    rx.down()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    t0 = time.monotonic()
    assert exporter.export(make_spans()) == SpanExportResult.FAILURE
    assert within(time.monotonic() - t0, 1.0)
    rx.up()
    assert rx.endpoint == endpoint
    assert exporter.export(make_spans()) == SpanExportResult.SUCCESS
    assert len(rx.spans()) == 2  # state survives down/up
    rx.restart(delay=0.1)
    assert rx.port == port and exporter.export(make_spans()) == SpanExportResult.SUCCESS
    assert len(rx.spans()) == 3
