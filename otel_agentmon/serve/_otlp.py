"""Decode OTLP/HTTP export requests (protobuf or JSON) into what serve keeps.

Spans become ``SpanRecord`` (through ``_records.build``, so every dialect lands in standard names)
plus a finished SDK ``ReadableSpan`` for the health derivation; metric points and log records
become small tuples. The decoders take one piece of a request at a time (``_decode`` cuts it).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import itertools
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeAlias

from google.protobuf import json_format  # type: ignore[import-untyped]  # protobuf ships no type information
from google.protobuf.message import DecodeError, Message  # type: ignore[import-untyped]  # protobuf ships no type information
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
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from .._records.records import SpanRecord, build
from ._detail import SpanDetail, detail_of

SIGNALS: Final = ("traces", "metrics", "logs")
_ID_KEYS: Final = frozenset({"traceId", "spanId", "parentSpanId"})
_NO_RESOURCE: Final = Resource({})  # the derivation never reads a span's resource
_OK: Final = Status(StatusCode.OK)
_UNSET: Final = Status(StatusCode.UNSET)
_ERROR: Final = Status(StatusCode.ERROR)
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_HAS_IS_REMOTE: Final = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE: Final = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
SCALAR: TypeAlias = str | int | float | bool
_DERIVE_ATTRS: Final = 1024  # attributes the derivation sees of a span with more than the record keeps
_DERIVE_CHARS: Final = 256


class BadRequest(ValueError):
    """The body is not a valid export request (answered with 400)."""


class TooLarge(ValueError):
    """The body (or what it inflates to) exceeds the size cap (answered with 413)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Point:
    """One number of a metric data point (sums and gauges; histograms give their count)."""

    metric: str
    attrs: Mapping[str, SCALAR]
    value: float
    time_ns: int
    resource: Mapping[str, SCALAR]


@dataclasses.dataclass(frozen=True, slots=True)
class LogEvent:
    """One log record (our health and alert events are log records with an event name)."""

    event_name: str
    attrs: Mapping[str, Any]
    body: str
    severity: str
    time_ns: int
    trace_id: str
    span_id: str
    resource: Mapping[str, SCALAR]


@dataclasses.dataclass
class Decoded:
    spans: list[tuple[SpanRecord, ReadableSpan]] = dataclasses.field(default_factory=list)
    resources: list[dict[str, SCALAR]] = dataclasses.field(default_factory=list)  # one per span
    details: list[SpanDetail] = dataclasses.field(default_factory=list)  # one per span
    points: list[Point] = dataclasses.field(default_factory=list)
    logs: list[LogEvent] = dataclasses.field(default_factory=list)
    rejected: int = 0
    error: str = ""
    items: int = 0  # spans / data points / log records in the request, kept or not


_REQUESTS: Final[dict[str, type[Message]]] = {
    "traces": ExportTraceServiceRequest, "metrics": ExportMetricsServiceRequest, "logs": ExportLogsServiceRequest,
}


def parse(signal: str, body: bytes | bytearray, is_json: bool) -> Message:
    request = _REQUESTS[signal]()
    try:
        if is_json:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise BadRequest("JSON body must be an object")
            json_format.ParseDict(_hex_ids_to_base64(data), request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (DecodeError, json_format.ParseError, ValueError, RecursionError) as exc:
        if isinstance(exc, BadRequest):
            raise
        raise BadRequest(f"cannot decode {signal} request: {str(exc)[:200]}") from None
    return request


def _hex_ids_to_base64(data: Any) -> Any:
    """OTLP/JSON spells trace and span ids in hex; protobuf's JSON mapping expects base64 for
    bytes. Rewritten in place (a copy would double the memory a JSON request takes)."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_KEYS and isinstance(value, str):
                    try:
                        node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError:
                        raise BadRequest(f"{key} is not hex") from None
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return data


def response(signal: str, rejected: int, message: str, is_json: bool) -> bytes:
    """The export response, with ``partial_success`` when something was rejected."""
    if signal == "traces":
        resp: Message = ExportTraceServiceResponse()
        if rejected:
            resp.partial_success.rejected_spans = rejected
    elif signal == "metrics":
        resp = ExportMetricsServiceResponse()
        if rejected:
            resp.partial_success.rejected_data_points = rejected
    else:
        resp = ExportLogsServiceResponse()
        if rejected:
            resp.partial_success.rejected_log_records = rejected
    if rejected:
        resp.partial_success.error_message = message
    if is_json:
        return json.dumps(json_format.MessageToDict(resp)).encode()
    return bytes(resp.SerializeToString())


_INTERNED: dict[str, str] = {}
_INTERN_MAX: Final = 65536
_INTERN_LEN: Final = 64


def intern(text: str) -> str:
    """One shared copy of a short, repeating string (names, keys, enum-like values): the store
    holds many spans with the same ones. Bounded: past the cap, strings are kept as they come."""
    if len(text) > _INTERN_LEN:
        return text
    found = _INTERNED.get(text)
    if found is not None:
        return found
    if len(_INTERNED) < _INTERN_MAX:
        _INTERNED[text] = text
    return text


def value_of(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return intern(v.string_value)
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return binascii.hexlify(v.bytes_value).decode()
    return None


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {intern(kv.key): value_of(kv.value) for kv in kvs}


def _scalars(attrs: Mapping[str, Any]) -> dict[str, SCALAR]:
    return {k: v for k, v in attrs.items() if isinstance(v, (str, int, float, bool))}


def scope_of(scope: Any) -> InstrumentationScope:
    return InstrumentationScope(scope.name, scope.version or None)


def decode_spans(out: Decoded, resource: dict[str, SCALAR], scope: InstrumentationScope, spans: Iterable[Any]) -> None:
    """Add ``spans`` (OTLP ``Span`` messages of one resource and scope) to ``out``."""
    scope_name = scope.name or None
    for span in spans:
        out.items += 1
        if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.trace_id):
            out.rejected += 1
            out.error = "span with an invalid trace or span id"
            continue
        trace_id = int.from_bytes(span.trace_id, "big")
        span_id = int.from_bytes(span.span_id, "big")
        parent_id = int.from_bytes(span.parent_span_id, "big") if len(span.parent_span_id) == 8 else None
        # Span flags say whether the parent is remote (another process): then this is a local root.
        remote = bool(span.flags & _HAS_IS_REMOTE and span.flags & _IS_REMOTE)
        attrs = attributes(span.attributes)
        code = span.status.code
        error = code == 2  # STATUS_CODE_ERROR
        name = intern(span.name)
        record = build(trace_id=trace_id, span_id=span_id, parent_id=parent_id, name=name,
                       start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano, attrs=attrs,
                       scope=scope_name, is_root=parent_id is None or remote, error_status=error,
                       resource=resource)
        parent = None if parent_id is None else SpanContext(trace_id, parent_id, remote, _SAMPLED)
        # The derivation reads a few short scalars; while the span waits in its queue, it holds no
        # more than the record does (long strings cut, no arrays) rather than everything received.
        kept = record.attributes
        if len(kept) != len(attrs):
            kept = {k: v[:_DERIVE_CHARS] if isinstance(v, str) else v for k, v in itertools.islice(
                attrs.items(), _DERIVE_ATTRS) if isinstance(v, (str, int, float, bool))}
        readable = ReadableSpan(
            name=name, context=SpanContext(trace_id, span_id, False, _SAMPLED), parent=parent,
            resource=_NO_RESOURCE, attributes=kept,
            status=_ERROR if error else _OK if code == 1 else _UNSET,
            start_time=span.start_time_unix_nano, end_time=span.end_time_unix_nano,
            instrumentation_scope=scope)
        out.spans.append((record, readable))
        out.resources.append(resource)
        out.details.append(detail_of(span, attrs, record, scope_name or "", attributes))


def decode_points(out: Decoded, resource: dict[str, SCALAR], name: str, points: Iterable[Any]) -> None:
    """Add the numbers of ``points`` (``NumberDataPoint`` messages of one gauge or sum) to ``out``."""
    for p in points:
        out.items += 1
        number = float(p.as_double if p.WhichOneof("value") == "as_double" else p.as_int)
        if not math.isfinite(number):  # no JSON spelling; would poison sums and rates
            out.rejected += 1
            out.error = f"non-finite value of {name[:100]}"
            continue
        out.points.append(Point(name, _scalars(attributes(p.attributes)), number, p.time_unix_nano, resource))


def decode_logs(out: Decoded, resource: dict[str, SCALAR], records: Iterable[Any]) -> None:
    """Add the events among ``records`` (``LogRecord`` messages) to ``out``."""
    for rec in records:
        out.items += 1
        if not rec.event_name:
            continue  # plain application logs are not shown
        body = value_of(rec.body)
        out.logs.append(LogEvent(
            rec.event_name, attributes(rec.attributes), "" if body is None else str(body)[:500],
            rec.severity_text, rec.time_unix_nano or rec.observed_time_unix_nano,
            rec.trace_id.hex(), rec.span_id.hex(), resource))


def resource_of(attrs: Iterable[KeyValue]) -> dict[str, SCALAR]:
    return _scalars(attributes(attrs))
