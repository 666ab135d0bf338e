"""What serve charges a request to its byte budget is an upper bound of what decoding it takes."""

from __future__ import annotations

import base64
import json
import tracemalloc

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_agentmon.serve._decode import pieces, request_cost
from tests.test_serve import agent_spans, body_of


def _tiny_spans(n: int) -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i in range(n):
        spans.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"))
    return bytes(request.SerializeToString())


def _empty_attributes(n: int) -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i in range(n):
        span = spans.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"))
        for _ in range(100):
            span.attributes.add()
    return bytes(request.SerializeToString())


@pytest.mark.parametrize("shape", ["sdk spans", "bare ids", "empty attributes", "one huge span", "json"])
def test_what_a_request_is_charged_covers_what_decoding_it_allocates(shape: str) -> None:
    """The Python side of decoding, traced allocation by allocation (the protobuf parse tree is
    C memory tracemalloc does not see: ``benchmarks/bench_serve_memory.py`` measures it whole)."""
    is_json = shape == "json"
    if shape == "sdk spans":
        body = body_of(agent_spans(2000))
    elif shape == "bare ids":
        body = _tiny_spans(60_000)
    elif shape == "empty attributes":
        body = _empty_attributes(5_000)
    elif shape == "one huge span":
        request = ExportTraceServiceRequest.FromString(body_of(agent_spans(1)))
        span = request.resource_spans[0].scope_spans[0].spans[0]
        for i in range(30_000):
            span.attributes.add(key=f"key.{i}").value.string_value = f"value {i}"
        body = request.SerializeToString()
    else:
        from google.protobuf import json_format  # type: ignore[import-untyped]

        data = json_format.MessageToDict(ExportTraceServiceRequest.FromString(body_of(agent_spans(500))))
        for rs in data["resourceSpans"]:
            for span in rs["scopeSpans"][0]["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
        body = json.dumps(data).encode()
    cost = request_cost("traces", body, is_json)
    for _ in pieces("traces", body, is_json, ()):
        pass  # first, so that the shared table of repeating strings has them (it is bounded apart)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        decoded = 0
        for piece in pieces("traces", body, is_json, ()):
            decoded += len(piece.spans)
            del piece  # as serve does: a piece is kept (or not) before the next is decoded
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert decoded > 0
    assert peak <= cost, f"{shape}: decoding allocated {peak} bytes, charged {cost}"
