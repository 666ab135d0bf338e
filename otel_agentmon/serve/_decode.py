"""One OTLP export request, decoded a piece at a time, and what decoding it can cost.

A protobuf body is walked on the wire (``_wire``): each run of at most ``RUN_WIRE`` bytes of
spans, log records or data points is parsed and decoded on its own and handed on, so what a
request costs beyond its own bytes is bounded by its largest piece, not by its size. A JSON body
is parsed whole (``json`` builds it in memory first): its cost is estimated from its number of
tokens. Either estimate is an upper bound: serve charges it to the request budget before decoding.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from typing import Any, Final

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # protobuf ships no type information
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, ResourceMetrics
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

from ._otlp import BadRequest, Decoded, decode_logs, decode_points, decode_spans, intern, parse, resource_of, scope_of
from ._wire import METRIC_DATA, NUMBER_DATA, RUN_COST, Buffer, Malformed, fields, header, items, measure, runs

#: what parsing a JSON body takes per structural token (``{ [ , :``), at most (measured: 99 to
#: 131 bytes, for OTLP as SDKs send it and for nests of empty objects)
JSON_TOKEN_COST: Final = 160
_JSON_SLICE: Final = 128  # items of a parsed JSON request decoded at once
#: metric points kept for one request before they are applied (their sums are per request)
FLUSH_POINTS: Final = 2048
_POINTS_COST: Final = FLUSH_POINTS * 512
_ITEMS: Final = frozenset({2})


def request_cost(signal: str, body: Buffer, is_json: bool) -> int:
    """What decoding ``body`` takes at most, beyond the body itself; ``BadRequest`` when its
    protobuf framing is broken (nothing of it is kept then)."""
    extra = _POINTS_COST if signal == "metrics" else 0
    if is_json:
        data = bytes(body) if isinstance(body, memoryview) else body
        tokens = data.count(b"{") + data.count(b"[") + data.count(b",") + data.count(b":")
        return JSON_TOKEN_COST * tokens + RUN_COST + extra
    try:
        return measure(signal, body) + extra
    except Malformed as exc:
        raise BadRequest(f"cannot decode {signal} request: {exc}") from None


def pieces(signal: str, body: Buffer, is_json: bool, metrics: Container[str]) -> Iterator[Decoded]:
    """The request's items, a piece at a time (``metrics``: the metric names to decode)."""
    if is_json:
        yield from _json_pieces(signal, parse(signal, body, True), metrics)  # type: ignore[arg-type]  # JSON bodies are the bytes/bytearray read_body returns, never a memoryview
    elif signal == "traces":
        yield from _traces(body)
    elif signal == "metrics":
        yield from _metrics(body, metrics)
    else:
        yield from _logs(body)


def _rejected(buf: Buffer, start: int, end: int, field: int, what: str) -> Decoded:
    out = Decoded()
    out.rejected = sum(1 for _ in items(buf, start, end, field))
    out.error = f"cannot decode {out.rejected} {what}"
    return out


def _process(resource: dict[str, Any]) -> Decoded:
    """A piece saying only that a process exported metrics (its liveness), kept or not."""
    out = Decoded()
    out.resources.append(resource)
    return out


def _traces(buf: Buffer) -> Iterator[Decoded]:
    view = memoryview(buf)
    for r_start, r_end in items(buf, 0, len(buf), 1):
        resource = resource_of(ResourceSpans.FromString(header(buf, r_start, r_end, _ITEMS)).resource.attributes)
        for s_start, s_end in items(buf, r_start, r_end, 2):
            scope = scope_of(ScopeSpans.FromString(header(buf, s_start, s_end, _ITEMS)).scope)
            for start, end in runs(buf, s_start, s_end, 2):
                try:
                    spans = ScopeSpans.FromString(view[start:end]).spans
                except DecodeError:
                    yield _rejected(buf, start, end, 2, "spans")
                    continue
                out = Decoded()
                decode_spans(out, resource, scope, spans)
                del spans
                yield out
                del out  # (not alive while the next piece is parsed)


def _metrics(buf: Buffer, keep: Container[str]) -> Iterator[Decoded]:
    view = memoryview(buf)
    for r_start, r_end in items(buf, 0, len(buf), 1):
        resource = resource_of(ResourceMetrics.FromString(header(buf, r_start, r_end, _ITEMS)).resource.attributes)
        yield _process(resource)
        for s_start, s_end in items(buf, r_start, r_end, 2):
            for m_start, m_end in items(buf, s_start, s_end, 2):
                name = intern(Metric.FromString(header(buf, m_start, m_end, METRIC_DATA)).name)
                if name not in keep:
                    continue  # serve keeps nothing of it
                for number, wire, _, d_start, d_end in fields(buf, m_start, m_end):
                    if number not in NUMBER_DATA or wire != 2:
                        continue  # histograms and summaries: nothing serve shows
                    for start, end in runs(buf, d_start, d_end, 1):
                        try:
                            points = Gauge.FromString(view[start:end]).data_points  # a sum's points: field 1 too
                        except DecodeError:
                            yield _rejected(buf, start, end, 1, "data points")
                            continue
                        out = Decoded()
                        decode_points(out, resource, name, points)
                        del points
                        yield out
                        del out


def _logs(buf: Buffer) -> Iterator[Decoded]:
    view = memoryview(buf)
    for r_start, r_end in items(buf, 0, len(buf), 1):
        resource = resource_of(ResourceLogs.FromString(header(buf, r_start, r_end, _ITEMS)).resource.attributes)
        for s_start, s_end in items(buf, r_start, r_end, 2):
            for start, end in runs(buf, s_start, s_end, 2):
                try:
                    records = ScopeLogs.FromString(view[start:end]).log_records
                except DecodeError:
                    yield _rejected(buf, start, end, 2, "log records")
                    continue
                out = Decoded()
                decode_logs(out, resource, records)
                del records
                yield out
                del out


def _json_pieces(signal: str, request: Any, keep: Container[str]) -> Iterator[Decoded]:
    """A parsed (JSON) request, decoded ``_JSON_SLICE`` items at a time."""
    if signal == "traces":
        for rs in request.resource_spans:
            resource = resource_of(rs.resource.attributes)
            for ss in rs.scope_spans:
                scope = scope_of(ss.scope)
                for i in range(0, len(ss.spans), _JSON_SLICE):
                    out = Decoded()
                    decode_spans(out, resource, scope, ss.spans[i:i + _JSON_SLICE])
                    yield out
    elif signal == "metrics":
        for rm in request.resource_metrics:
            resource = resource_of(rm.resource.attributes)
            yield _process(resource)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    which = metric.WhichOneof("data")
                    if which not in ("sum", "gauge") or metric.name not in keep:
                        continue
                    points = getattr(metric, which).data_points
                    for i in range(0, len(points), _JSON_SLICE):
                        out = Decoded()
                        decode_points(out, resource, intern(metric.name), points[i:i + _JSON_SLICE])
                        yield out
    else:
        for rl in request.resource_logs:
            resource = resource_of(rl.resource.attributes)
            for sl in rl.scope_logs:
                for i in range(0, len(sl.log_records), _JSON_SLICE):
                    out = Decoded()
                    decode_logs(out, resource, sl.log_records[i:i + _JSON_SLICE])
                    yield out
