"""What the Collector's file exporter writes, read into a ``Recording``.

The file exporter (``exporters: file: {path: ...}``) writes one OTLP export request per write:

* ``format: json`` (the default), no compression: OTLP JSON lines, one
  ``ExportTraceServiceRequest`` / ``ExportMetricsServiceRequest`` / ``ExportLogsServiceRequest``
  per line (``{"resourceSpans": [...]}``, ``{"resourceMetrics": ...}``, ``{"resourceLogs": ...}``);
* ``format: proto``, or any format with ``compression: zstd``: each request as a 4-byte
  big-endian length followed by that many bytes (zstd-compressed when compression is on).

``read_otlp`` tells these apart by content, never by file name. Spans become ``SpanRecord`` through
``_records.build`` (every dialect lands in standard names, as in ``agentmon serve``); gauge and sum
points become ``MetricSample``; our ``agentmon.alert`` log events become ``AlertRecord`` (labelled
with their process, as serve labels them). Anything else is counted as skipped, never raised.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from .._names import semconv as sc
from .._records.recording import AlertRecord, MetricSample, Recording
from .._records.records import SERVICE_INSTANCE_ID, build

ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
OTLP_KEYS: Final = ("resourceSpans", "resourceMetrics", "resourceLogs", "resource_spans", "resource_metrics",
                    "resource_logs")
_MAX_FRAME: Final = 1 << 30
_STATUS_ERROR: Final = 2


class CorruptZstd(ValueError):
    """A zstd frame that does not decompress (a missing zstandard package is another error)."""


def is_otlp_json(obj: object) -> bool:
    return isinstance(obj, dict) and any(k in obj for k in OTLP_KEYS)


def looks_framed(data: bytes, total: int | None = None) -> bool:
    """A length-prefixed frame (proto or zstd) at the start of ``data`` (the first bytes of a file
    of ``total`` bytes), rather than text."""
    if len(data) < 5:
        return False
    size = int.from_bytes(data[:4], "big")
    # zstd, a protobuf request (its first field, 1 and length-delimited, is tag 0x0a) or JSON
    return 0 < size <= (len(data) if total is None else total) - 4 and (
        data[4:8] == ZSTD_MAGIC or data[4] in (0x0A, 0x7B))


def read_otlp(data: bytes, into: Recording | None = None) -> Recording:
    """Every request in ``data`` (the whole file) added to a ``Recording``."""
    rec = Recording() if into is None else into
    if data.startswith(ZSTD_MAGIC):  # a whole file compressed afterwards (zstd file.json)
        data = _unzstd(data)
    if looks_framed(data):
        for payload in _frames(data, rec):
            add_payload(payload, rec)
    else:
        for line in data.splitlines():
            if line.strip():
                add_payload(line, rec)
    return rec


def _frames(data: bytes, rec: Recording) -> Iterator[bytes]:
    pos = 0
    while pos + 4 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        if size <= 0 or size > _MAX_FRAME or pos + 4 + size > len(data):
            rec.skipped += 1  # a cut last frame
            return
        chunk = data[pos + 4:pos + 4 + size]
        pos += 4 + size
        if chunk.startswith(ZSTD_MAGIC):
            try:
                chunk = _unzstd(chunk)
            except CorruptZstd:
                rec.skipped += 1
                continue
        yield chunk


def _unzstd(data: bytes) -> bytes:
    try:
        import zstandard
    except ImportError as exc:  # optional: only compressed files need it
        raise ValueError("a zstd-compressed file needs the zstandard package: pip install zstandard") from exc
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
            return reader.read()
    except zstandard.ZstdError as exc:
        raise CorruptZstd(f"not valid zstd data: {exc}") from None


def add_payload(payload: bytes, rec: Recording) -> None:
    """One request, JSON or protobuf (of any of the three signals)."""
    try:
        if payload.lstrip()[:1] == b"{":
            obj = json.loads(payload)
            if not is_otlp_json(obj):
                rec.skipped += 1
                return
        else:
            obj = _from_proto(payload)
        _add(obj, rec)
    except (ValueError, TypeError, KeyError, AttributeError):
        rec.skipped += 1


def _from_proto(payload: bytes) -> Any:
    from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]  # protobuf ships no type information
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    # A frame does not say its signal, and the three requests share their field numbers: the
    # signal is the first whose parse is well formed (spans with 16- and 8-byte ids; metrics with
    # a name and data; else logs).
    try:
        traces = ExportTraceServiceRequest.FromString(payload)
        spans = [sp for rs in traces.resource_spans for ss in rs.scope_spans for sp in ss.spans]
        if spans and all(len(sp.trace_id) == 16 and len(sp.span_id) == 8 for sp in spans):
            return MessageToDict(traces)
    except DecodeError:
        pass
    try:
        metrics = ExportMetricsServiceRequest.FromString(payload)
        found = [m for rm in metrics.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
        if found and all(m.name and m.WhichOneof("data") for m in found):
            return MessageToDict(metrics)
    except DecodeError:
        pass
    try:
        return MessageToDict(ExportLogsServiceRequest.FromString(payload))
    except DecodeError:
        raise ValueError("not an OTLP export request") from None


def _id(value: object, size: int) -> int | None:
    """An id from OTLP JSON (hex) or from protobuf's JSON mapping (base64)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = bytes.fromhex(value) if len(value) == 2 * size else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None
    return int.from_bytes(raw, "big") if len(raw) == size else None


def _value(v: Mapping[str, Any]) -> object:
    if "stringValue" in v:
        return str(v["stringValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return _attrs(v["kvlistValue"].get("values", []))
    return None


def _attrs(kvs: object) -> dict[str, object]:
    if not isinstance(kvs, list):
        return {}
    return {str(kv["key"]): _value(kv.get("value", {})) for kv in kvs if isinstance(kv, dict) and "key" in kv}


def _scalars(attrs: Mapping[str, object]) -> dict[str, str | int | float | bool]:
    return {k: v for k, v in attrs.items() if isinstance(v, (str, int, float, bool))}


def _add(obj: Mapping[str, Any], rec: Recording) -> None:
    for rs in obj.get("resourceSpans", obj.get("resource_spans", [])):
        resource = _attrs(rs.get("resource", {}).get("attributes"))
        for ss in rs.get("scopeSpans", rs.get("scope_spans", [])):
            scope = ss.get("scope", {}).get("name") or None
            for span in ss.get("spans", []):
                _add_span(span, resource, scope, rec)
    for rm in obj.get("resourceMetrics", obj.get("resource_metrics", [])):
        scalars = _scalars(_attrs(rm.get("resource", {}).get("attributes")))
        for sm in rm.get("scopeMetrics", rm.get("scope_metrics", [])):
            for metric in sm.get("metrics", []):
                data = metric.get("gauge") or metric.get("sum")
                if not isinstance(data, dict):
                    continue  # histograms: the report reads durations from spans
                for p in data.get("dataPoints", []):
                    value = p.get("asDouble", p.get("asInt"))
                    if value is None:
                        continue
                    rec.metrics.append(MetricSample(
                        name=str(metric.get("name", "")), value=float(value), time_ns=int(p.get("timeUnixNano", 0)),
                        unit=str(metric.get("unit", "")),
                        attributes={**scalars, **_scalars(_attrs(p.get("attributes")))}))
    for rl in obj.get("resourceLogs", obj.get("resource_logs", [])):
        resource = _attrs(rl.get("resource", {}).get("attributes"))
        for sl in rl.get("scopeLogs", rl.get("scope_logs", [])):
            for log in sl.get("logRecords", []):
                if log.get("eventName") == sc.EVENT_ALERT:
                    _add_alert(log, resource, rec)


def _add_span(span: Mapping[str, Any], resource: Mapping[str, object], scope: str | None, rec: Recording) -> None:
    trace_id, span_id = _id(span.get("traceId"), 16), _id(span.get("spanId"), 8)
    if not trace_id or span_id is None:
        rec.skipped += 1
        return
    parent_id = _id(span.get("parentSpanId"), 8)
    flags = int(span.get("flags", 0))
    remote = bool(flags & 0x100 and flags & 0x200)  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE / IS_REMOTE
    start = int(span.get("startTimeUnixNano", 0))
    rec.spans.append(build(
        trace_id=trace_id, span_id=span_id, parent_id=parent_id, name=str(span.get("name", "")), start_ns=start,
        end_ns=int(span.get("endTimeUnixNano", start)), attrs=_attrs(span.get("attributes")), scope=scope,
        is_root=parent_id is None or remote, error_status=_status_code(span) == _STATUS_ERROR, resource=resource))


def _status_code(span: Mapping[str, Any]) -> int:
    code = span.get("status", {}).get("code", 0)
    return {"STATUS_CODE_ERROR": 2, "STATUS_CODE_OK": 1}.get(code, 0) if isinstance(code, str) else int(code)


def _add_alert(log: Mapping[str, Any], resource: Mapping[str, object], rec: Recording) -> None:
    attrs = _attrs(log.get("attributes"))
    rule, state = attrs.get(sc.AGENTMON_ALERT_RULE), attrs.get(sc.AGENTMON_ALERT_STATE)
    if not isinstance(rule, str) or state not in ("firing", "resolved"):
        return
    body = _value(log.get("body", {}))
    text = "" if body is None else str(body)
    agent, value = attrs.get(sc.GEN_AI_AGENT_NAME), attrs.get(sc.AGENTMON_ALERT_VALUE)
    service, instance = str(resource.get(sc.SERVICE_NAME) or "unknown_service"), str(
        resource.get(SERVICE_INSTANCE_ID) or "")
    rec.alerts.append(AlertRecord(
        rule=rule, state="firing" if state == "firing" else "resolved",
        severity=str(attrs.get(sc.AGENTMON_ALERT_SEVERITY, "warning")),
        time_ns=int(log.get("timeUnixNano") or log.get("observedTimeUnixNano") or 0),
        agent=agent if isinstance(agent, str) else None,
        value=float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
        summary=text.split(": ", 1)[1] if ": " in text else "",
        labels={"source": f"{service}/{instance[:8]}" if instance else service}))
