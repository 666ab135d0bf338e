"""Helpers shared by the receiver's own tests: real SDK spans and exporters, raw requests."""

from __future__ import annotations

import socket

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.receiver import OTLPReceiver

RESOURCE = Resource.create({"service.name": "receiver-test", "deployment.environment": "ci"})
PB = {"Content-Type": "application/x-protobuf"}


def span_exporter(rx: OTLPReceiver, timeout: float = 5.0, compression: Compression | None = None) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=rx.endpoint + "/v1/traces", timeout=timeout, compression=compression)


def make_spans(n: int = 1, name: str = "span") -> list[ReadableSpan]:
    """Finished SDK spans, captured in memory, to feed exporter.export() directly."""
    mem = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("test.scope")
    for i in range(n):
        with tracer.start_as_current_span(f"{name}-{i}"):
            pass
    provider.shutdown()
    return list(mem.get_finished_spans())


def traces_body(n: int = 1) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return bytes(encode_spans(make_spans(n)).SerializeToString())


def raw_post(port: int, body: bytes) -> socket.socket:
    """Send one complete OTLP traces request on a raw socket and return the open socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock
