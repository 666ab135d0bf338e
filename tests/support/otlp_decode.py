"""Decode OTLP protobuf export requests into small, comparable Python views.

Used by :mod:`tests.support.receiver`; kept separate so it can be reused by
tests that want to decode captured payloads themselves.
"""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

__all__ = [
    "ReceivedLog",
    "ReceivedMetric",
    "ReceivedPoint",
    "ReceivedSpan",
    "Decoded",
    "decode_any_value",
    "decode_request",
    "decompress",
    "decode_attributes",
    "decode_logs",
    "decode_metrics",
    "decode_spans",
    "summary_dict",
]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as received by the receiver (ids are lowercase hex)."""

    trace_id: str
    span_id: str
    parent_span_id: str  # "" for root spans
    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind (1=INTERNAL ... 5=CONSUMER)
    status_code: int  # 0=UNSET, 1=OK, 2=ERROR
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    scope_name: str
    start_ns: int
    end_ns: int
    arrival: float  # time.monotonic() when the carrying request arrived
    status_message: str = ""
    links: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    scope_version: str = ""
    dropped_attributes_count: int = 0


@dataclass(frozen=True)
class ReceivedPoint:
    """One data point; fields that do not apply to the metric kind are None/empty."""

    attributes: dict[str, Any]
    value: float | int | None  # sum/gauge value; None for histograms
    count: int | None
    sum: float | None
    bucket_counts: list[int]  # explicit buckets, or positive buckets for exp_histogram
    explicit_bounds: list[float]
    start_ns: int = 0
    time_ns: int = 0
    min: float | None = None
    max: float | None = None
    scale: int | None = None  # exp_histogram only


@dataclass(frozen=True)
class ReceivedMetric:
    name: str
    unit: str
    description: str
    kind: str  # 'sum' | 'gauge' | 'histogram' | 'exp_histogram' | 'summary'
    points: list[ReceivedPoint]
    resource: dict[str, Any]
    scope_name: str
    is_monotonic: bool
    temporality: int  # 0=UNSPECIFIED, 1=DELTA, 2=CUMULATIVE
    arrival: float = 0.0


@dataclass(frozen=True)
class ReceivedLog:
    event_name: str
    body: Any
    attributes: dict[str, Any]
    severity_number: int
    trace_id: str  # "" when not correlated
    span_id: str
    resource: dict[str, Any]
    severity_text: str = ""
    scope_name: str = ""
    time_ns: int = 0
    arrival: float = 0.0


def decode_any_value(value: AnyValue) -> Any:
    """Convert an OTLP AnyValue to plain Python (None when unset)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [decode_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    return getattr(value, which)


def decode_attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: decode_any_value(kv.value) for kv in kvs}


def _hex(raw: bytes) -> str:
    return raw.hex()


def decode_spans(request: ExportTraceServiceRequest, arrival: float) -> list[ReceivedSpan]:
    out: list[ReceivedSpan] = []
    for rs in request.resource_spans:
        resource = decode_attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                out.append(
                    ReceivedSpan(
                        trace_id=_hex(span.trace_id),
                        span_id=_hex(span.span_id),
                        parent_span_id=_hex(span.parent_span_id),
                        name=span.name,
                        kind=int(span.kind),
                        status_code=int(span.status.code),
                        attributes=decode_attributes(span.attributes),
                        events=[(e.name, decode_attributes(e.attributes)) for e in span.events],
                        resource=dict(resource),
                        scope_name=ss.scope.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        arrival=arrival,
                        status_message=span.status.message,
                        links=[
                            (_hex(lk.trace_id), _hex(lk.span_id), decode_attributes(lk.attributes)) for lk in span.links
                        ],
                        scope_version=ss.scope.version,
                        dropped_attributes_count=span.dropped_attributes_count,
                    )
                )
    return out


def _number(point: Any) -> float | int | None:
    which = point.WhichOneof("value")
    if which == "as_int":
        return int(point.as_int)
    if which == "as_double":
        return float(point.as_double)
    return None


def _points(metric: Metric) -> tuple[str, list[ReceivedPoint], bool, int]:
    which = metric.WhichOneof("data")
    if which in {"sum", "gauge"}:
        data = metric.sum if which == "sum" else metric.gauge
        pts = [
            ReceivedPoint(
                attributes=decode_attributes(p.attributes),
                value=_number(p),
                count=None,
                sum=None,
                bucket_counts=[],
                explicit_bounds=[],
                start_ns=p.start_time_unix_nano,
                time_ns=p.time_unix_nano,
            )
            for p in data.data_points
        ]
        if which == "sum":
            return "sum", pts, metric.sum.is_monotonic, int(metric.sum.aggregation_temporality)
        return "gauge", pts, False, 0
    if which == "histogram":
        hpts = [
            ReceivedPoint(
                attributes=decode_attributes(p.attributes),
                value=None,
                count=p.count,
                sum=p.sum if p.HasField("sum") else None,
                bucket_counts=list(p.bucket_counts),
                explicit_bounds=list(p.explicit_bounds),
                start_ns=p.start_time_unix_nano,
                time_ns=p.time_unix_nano,
                min=p.min if p.HasField("min") else None,
                max=p.max if p.HasField("max") else None,
            )
            for p in metric.histogram.data_points
        ]
        return "histogram", hpts, False, int(metric.histogram.aggregation_temporality)
    if which == "exponential_histogram":
        epts = [
            ReceivedPoint(
                attributes=decode_attributes(p.attributes),
                value=None,
                count=p.count,
                sum=p.sum if p.HasField("sum") else None,
                bucket_counts=list(p.positive.bucket_counts),
                explicit_bounds=[],
                start_ns=p.start_time_unix_nano,
                time_ns=p.time_unix_nano,
                min=p.min if p.HasField("min") else None,
                max=p.max if p.HasField("max") else None,
                scale=p.scale,
            )
            for p in metric.exponential_histogram.data_points
        ]
        return "exp_histogram", epts, False, int(metric.exponential_histogram.aggregation_temporality)
    if which == "summary":
        spts = [
            ReceivedPoint(
                attributes=decode_attributes(p.attributes),
                value=None,
                count=p.count,
                sum=p.sum,
                bucket_counts=[],
                explicit_bounds=[],
                start_ns=p.start_time_unix_nano,
                time_ns=p.time_unix_nano,
            )
            for p in metric.summary.data_points
        ]
        return "summary", spts, False, 0
    return "none", [], False, 0


def decode_metrics(request: ExportMetricsServiceRequest, arrival: float) -> list[ReceivedMetric]:
    out: list[ReceivedMetric] = []
    for rm in request.resource_metrics:
        resource = decode_attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind, points, monotonic, temporality = _points(metric)
                out.append(
                    ReceivedMetric(
                        name=metric.name,
                        unit=metric.unit,
                        description=metric.description,
                        kind=kind,
                        points=points,
                        resource=dict(resource),
                        scope_name=sm.scope.name,
                        is_monotonic=monotonic,
                        temporality=temporality,
                        arrival=arrival,
                    )
                )
    return out


def decode_logs(request: ExportLogsServiceRequest, arrival: float) -> list[ReceivedLog]:
    out: list[ReceivedLog] = []
    for rl in request.resource_logs:
        resource = decode_attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                out.append(
                    ReceivedLog(
                        event_name=rec.event_name,
                        body=decode_any_value(rec.body),
                        attributes=decode_attributes(rec.attributes),
                        severity_number=int(rec.severity_number),
                        trace_id=_hex(rec.trace_id),
                        span_id=_hex(rec.span_id),
                        resource=dict(resource),
                        severity_text=rec.severity_text,
                        scope_name=sl.scope.name,
                        time_ns=rec.time_unix_nano,
                        arrival=arrival,
                    )
                )
    return out


def count_points(request: ExportMetricsServiceRequest) -> int:
    """Number of data points in a metrics request (what rejected_data_points counts)."""
    total = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                total += len(_points(metric)[1])
    return total


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def summary_dict(
    spans: list[ReceivedSpan],
    metrics: list[ReceivedMetric],
    logs: list[ReceivedLog],
    request_count: int,
) -> dict[str, Any]:
    """JSON-serialisable summary (bytes values are base64 strings)."""
    span_keys = (
        "name",
        "kind",
        "trace_id",
        "span_id",
        "parent_span_id",
        "status_code",
        "status_message",
        "attributes",
        "events",
        "resource",
        "scope_name",
        "start_ns",
        "end_ns",
    )
    out_spans = [{k: _jsonable(getattr(s, k)) for k in span_keys} for s in spans]
    out_metrics: list[dict[str, Any]] = []
    for m in metrics:
        d = _jsonable(asdict(m))
        d["explicit_bounds"] = m.points[0].explicit_bounds if m.points else []
        out_metrics.append(d)
    out_logs = [_jsonable(asdict(lg)) for lg in logs]
    return {
        "requests": request_count,
        "spans": out_spans,
        "metrics": out_metrics,
        "metric_names": sorted({m.name for m in metrics}),
        "logs": out_logs,
    }


Decoded = tuple[int, list[ReceivedSpan], list[ReceivedMetric], list[ReceivedLog]]


def decode_request(path: str, raw: bytes, arrival: float) -> Decoded:
    if path == "/v1/traces":
        treq = ExportTraceServiceRequest.FromString(raw)
        spans = decode_spans(treq, arrival)
        return len(spans), spans, [], []
    if path == "/v1/metrics":
        mreq = ExportMetricsServiceRequest.FromString(raw)
        return count_points(mreq), [], decode_metrics(mreq, arrival), []
    lreq = ExportLogsServiceRequest.FromString(raw)
    logs = decode_logs(lreq, arrival)
    return len(logs), [], [], logs


def decompress(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")
