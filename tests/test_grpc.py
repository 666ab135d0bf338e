"""``protocol="grpc"``: the same pipeline over OTLP/gRPC, against a real grpcio server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc  # type: ignore[import-untyped]  # grpcio ships no type information
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

import otel_agentmon as agentmon
from otel_agentmon._core import state as _state
from otel_agentmon._setup.monitor import Monitor
from otel_agentmon._setup.settings import resolve


class _TraceSink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.names: list[str] = []
        self.lock = threading.Lock()

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,
               context: grpc.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        with self.lock:
            self.names.extend(s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def grpc_sink() -> Iterator[tuple[str, _TraceSink]]:
    sink = _TraceSink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", sink
    finally:
        server.stop(grace=None)


@pytest.mark.timeout(30)
def test_spans_are_delivered_and_accounted_over_grpc(grpc_sink: tuple[str, _TraceSink]) -> None:
    endpoint, sink = grpc_sink
    monitor = Monitor(resolve({"endpoint": endpoint, "protocol": "grpc", "set_global": False,
                               "metrics_exporter": "none", "logs_exporter": "none", "system_metrics": "off"}))
    saved = _state.tracer
    _state.tracer = monitor.tracer
    try:
        for _ in range(50):
            with agentmon.agent("a"), agentmon.tool("t"):
                pass
        assert monitor.shutdown(5.0)
    finally:
        _state.tracer = saved
    stats = monitor.stats()
    assert stats.spans_exported == 100 and stats.balanced
    assert sorted(set(sink.names)) == ["execute_tool t", "invoke_agent a"] and len(sink.names) == 100
