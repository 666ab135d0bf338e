"""The receiver's partial-success, reset, close-mid-body, slow and CLI modes (continued from
test_receiver.py)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from tests.support.deadlines import within
from tests.support.receiver import (
    OTLPReceiver,
    close_mid_body,
    closed_port,
    free_port,
    partial_success,
    reset,
    slow,
)
from tests.support.receiver_kit import PB, RESOURCE, make_spans, raw_post, span_exporter, traces_body

REPO_ROOT = Path(__file__).resolve().parent.parent



@pytest.mark.timeout(30)
def test_fixed_port_and_port_helpers() -> None:
    port = free_port()
    with OTLPReceiver(port=port) as rx:
        assert rx.endpoint == f"http://127.0.0.1:{port}"
        assert span_exporter(rx).export(make_spans()) == SpanExportResult.SUCCESS
    dead = closed_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", dead), timeout=2).close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("path", "request_cls", "response_cls", "field"),
    [
        ("/v1/traces", ExportTraceServiceRequest, ExportTraceServiceResponse, "rejected_spans"),
        ("/v1/metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse, "rejected_data_points"),
        ("/v1/logs", ExportLogsServiceRequest, ExportLogsServiceResponse, "rejected_log_records"),
    ],
)
def test_partial_success_response(rx: OTLPReceiver, path: str, request_cls: Any, response_cls: Any, field: str) -> None:
    rx.mode = partial_success(2, "two dropped")
    body = traces_body(3) if path == "/v1/traces" else request_cls().SerializeToString()
    headers = {**PB, "Content-Encoding": "gzip"}
    r = requests.post(rx.endpoint + path, data=gzip.compress(body), headers=headers, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-protobuf"
    resp = response_cls.FromString(r.content)
    assert resp.HasField("partial_success")
    assert getattr(resp.partial_success, field) == 2 and resp.partial_success.error_message == "two dropped"
    if path == "/v1/traces":
        assert len(rx.spans()) == 3  # partial success still delivers


@pytest.mark.timeout(30)
def test_partial_success_with_real_exporter_is_delivered(rx: OTLPReceiver) -> None:
    rx.mode = partial_success(1, "meh")
    assert span_exporter(rx).export(make_spans(2)) == SpanExportResult.SUCCESS
    assert len(rx.spans()) == 2 and rx.requests()[0].fault == "partial_success"


@pytest.mark.timeout(30)
def test_reset_fails_export_without_hanging(rx: OTLPReceiver) -> None:
    rx.mode = reset()
    t0 = time.monotonic()
    assert span_exporter(rx, timeout=2).export(make_spans()) == SpanExportResult.FAILURE
    assert within(time.monotonic() - t0, 2.0)
    assert rx.spans() == [] and rx.requests() and all(q.fault == "reset" for q in rx.requests())
    with raw_post(rx.port, traces_body()) as s, pytest.raises(ConnectionResetError):
        s.recv(1024)


@pytest.mark.timeout(30)
def test_close_mid_body_fails_export_without_hanging(rx: OTLPReceiver) -> None:
    rx.mode = close_mid_body()
    t0 = time.monotonic()
    assert span_exporter(rx, timeout=60).export(make_spans()) == SpanExportResult.FAILURE
    # Ended by the receiver's close (one request, not retried), not by the exporter's 60 s timeout.
    assert time.monotonic() - t0 < 30
    assert rx.spans() == [] and [q.fault for q in rx.requests()] == ["close_mid_body"]
    with pytest.raises(requests.RequestException):
        requests.post(rx.endpoint + "/v1/traces", data=traces_body(), headers=PB, timeout=5)


@pytest.mark.timeout(30)
def test_slow_mode_delays_then_succeeds_and_stop_releases_it(rx: OTLPReceiver) -> None:
    rx.mode = slow(0.5)
    t0 = time.monotonic()
    assert span_exporter(rx).export(make_spans()) == SpanExportResult.SUCCESS
    assert time.monotonic() - t0 >= 0.5 and len(rx.spans()) == 1
    rx.mode = slow(30)
    worker = threading.Thread(target=lambda: span_exporter(rx, timeout=3).export(make_spans()))
    worker.start()
    assert rx.wait_for(lambda: len(rx.requests()) == 2, timeout=0.5) is False  # recorded only after the delay
    assert rx.wait_for(lambda: rx.holding() == 1, timeout=30)
    t0 = time.monotonic()
    rx.stop()  # releases the held request instead of waiting out its 30 s
    assert within(time.monotonic() - t0, 1.5)
    assert rx.requests()[-1].fault == "dropped"
    worker.join(10)
    assert not worker.is_alive()


@pytest.mark.timeout(30)
def test_cli_writes_json_summary(tmp_path: Path) -> None:
    port, out, ready = free_port(), tmp_path / "summary.json", tmp_path / "ready"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.receiver",
            "--port",
            str(port),
            "--duration",
            "25",
            "--out",
            str(out),
            "--ready-file",
            str(ready),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.read_text() == f"http://127.0.0.1:{port}"
        provider = TracerProvider(resource=RESOURCE)
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces"))
        )
        tracer = provider.get_tracer("cli")
        with tracer.start_as_current_span("outer", attributes={"a": 1}), tracer.start_as_current_span("inner"):
            pass
        provider.shutdown()
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"http://127.0.0.1:{port}/v1/metrics"), export_interval_millis=3_600_000
        )
        meters = MeterProvider(resource=RESOURCE, metric_readers=[reader])
        meters.get_meter("cli").create_histogram("h", unit="ms", explicit_bucket_boundaries_advisory=[1, 2]).record(1.5)
        meters.shutdown()
        logs = LoggerProvider(resource=RESOURCE)
        logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(f"http://127.0.0.1:{port}/v1/logs")))
        logs.get_logger("cli").emit(event_name="cli.event", body="hi")
        logs.shutdown()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = json.loads(out.read_text())
    spans = {s["name"]: s for s in summary["spans"]}
    assert spans["outer"]["attributes"] == {"a": 1} and spans["outer"]["parent_span_id"] == ""
    assert spans["inner"]["parent_span_id"] == spans["outer"]["span_id"]
    assert spans["inner"]["resource"]["service.name"] == "receiver-test" and spans["inner"]["kind"] == 1
    (metric,) = summary["metrics"]
    assert (metric["name"], metric["unit"], metric["kind"], metric["explicit_bounds"]) == (
        "h",
        "ms",
        "histogram",
        [1, 2],
    )
    assert summary["metric_names"] == ["h"] and metric["points"][0]["bucket_counts"] == [0, 1, 0]
    assert [(lg["event_name"], lg["body"]) for lg in summary["logs"]] == [("cli.event", "hi")]
    assert summary["requests"] == 4 and [r["status"] for r in summary["request_log"]] == [200] * 4


@pytest.mark.timeout(30)
def test_cli_duration_exits_by_itself(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.receiver", "--duration", "0.3", "--out", str(out)],
        cwd=REPO_ROOT,
        timeout=20,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == 0 and json.loads(out.read_text())["spans"] == []
