"""Build the OTLP exporters and adapt them to our accounting and deadlines.

We wrap the SDK's exporters through public seams only: a ``requests.Session`` response hook
reads the HTTP status and OTLP ``partial_success`` (which the SDK ignores), and a metric
exporter wrapper bounds every export by its deadline.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter, SpanExportResult

from ._batch import Outcome
from ._guard import RateLimiter, log_once
from ._settings import Settings

_SIGNAL_PATHS = {"traces": "v1/traces", "metrics": "v1/metrics", "logs": "v1/logs"}

# The SDK exporters log an ERROR per failed batch and a WARNING per retry; with the Collector
# down that is a line every few seconds per signal, forever. We let one through per minute per
# message and report failures through stats() and our own rate-limited warnings instead.
_NOISY_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.sdk.metrics._internal.export",
)


class _RateLimitFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__("otel_agentmon.quiet")
        self._limiter = RateLimiter()

    def filter(self, record: logging.LogRecord) -> bool:
        return self._limiter.allow(f"{record.name}:{record.msg}")[0]


_quiet_filter = _RateLimitFilter()


def quiet_exporter_logs() -> None:
    for name in _NOISY_LOGGERS:
        lg = logging.getLogger(name)
        if _quiet_filter not in lg.filters:
            lg.addFilter(_quiet_filter)


class _ResponseProbe:
    """Remembers the last HTTP status and OTLP partial-success count of one exporter."""

    def __init__(self, response_type: Any, field: str) -> None:
        self._response_type = response_type
        self._field = field
        self.status: int | None = None
        self.rejected = 0

    def reset(self) -> None:
        self.status = None
        self.rejected = 0

    def hook(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        try:
            body = response.content  # reading first: a body cut short is a transport failure
        except Exception:  # noqa: BLE001
            return
        self.status = response.status_code
        try:
            if response.status_code == 200 and body:
                msg = self._response_type.FromString(body)
                if msg.HasField("partial_success"):
                    self.rejected += int(getattr(msg.partial_success, self._field))
        except Exception:  # noqa: BLE001 - an unparsable body is not our caller's problem
            pass

    def reason(self) -> str:
        if self.status is None or 200 <= self.status < 300:  # no (complete) response
            return "connection_error"
        return f"http_{self.status}"


_sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    # A forked child must not write into the keep-alive connections it inherited from its
    # parent: requests from both would interleave on one socket.
    for session in list(_sessions):
        for adapter in session.adapters.values():
            try:
                adapter.poolmanager.clear()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_connections_after_fork)


def _http_session(probe: _ResponseProbe | None = None) -> requests.Session:
    session = requests.Session()
    if probe is not None:
        session.hooks["response"].append(probe.hook)
    _sessions.add(session)
    return session


def warn_if_plaintext_remote(endpoint: str | None) -> None:
    """Plain http:// is fine on loopback; anywhere else it sends telemetry (and headers) in clear."""
    if not endpoint:
        return
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if parts.scheme == "http" and host not in ("localhost", "::1") and not host.startswith("127."):
        log_once(logging.WARNING, "plaintext", "exporting over plain http:// to %s; use https:// "
                 "(or a local Collector) outside a trusted network", host)


def _endpoint(settings: Settings, signal: str) -> str | None:
    """Our explicit endpoint argument as a per-signal URL; None lets the exporter read env."""
    if "endpoint" not in settings.explicit or settings.endpoint is None:
        return None
    base = settings.endpoint
    if settings.protocol == "grpc":
        return base
    return base.rstrip("/") + "/" + _SIGNAL_PATHS[signal]


def _common_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if "headers" in settings.explicit and settings.headers is not None:
        kwargs["headers"] = dict(settings.headers)
    if "export_timeout" in settings.explicit:
        kwargs["timeout"] = settings.export_timeout
    return kwargs


SpanExport = tuple[Callable[[Sequence[ReadableSpan]], Outcome], Callable[[], None]]


def _encodable(span: ReadableSpan) -> bool:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    try:
        encode_spans([span]).SerializeToString()
    except Exception:  # noqa: BLE001 - e.g. a lone surrogate in a name from another instrumentation
        return False
    return True


def _adapt_span_exporter(exporter: SpanExporter, probe: _ResponseProbe | None) -> SpanExport:
    def send(batch: Sequence[ReadableSpan]) -> Outcome:
        if probe is not None:
            probe.reset()
        result = exporter.export(batch)
        if result is SpanExportResult.SUCCESS:
            return Outcome(True, rejected=probe.rejected if probe is not None else 0)
        return Outcome(False, reason=probe.reason() if probe is not None else "export_failed")

    def export(batch: Sequence[ReadableSpan]) -> Outcome:
        start = time.monotonic()
        outcome = send(batch)
        # A failure with no HTTP answer that came back at once (no retry backoff) is how the
        # exporter reports a batch it could not encode: one poison span must not sink the rest.
        if outcome.ok or (probe is not None and probe.status is not None) or time.monotonic() - start > 0.2:
            return outcome
        good = [span for span in batch if _encodable(span)]
        if len(good) == len(batch):
            return outcome
        log_once(logging.WARNING, "spans:encode_failed", "dropped %d span(s) that cannot be encoded as OTLP",
                 len(batch) - len(good))
        retried = send(good) if good else Outcome(True)
        return dataclasses.replace(retried, unencodable=len(batch) - len(good))

    return export, exporter.shutdown


def build_span_export(settings: Settings) -> SpanExport | None:
    if settings.traces_exporter == "none":
        return None
    if settings.traces_exporter == "console":
        return _adapt_span_exporter(ConsoleSpanExporter(), None)
    kwargs = _common_kwargs(settings)
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return _adapt_span_exporter(GrpcSpanExporter(endpoint=_endpoint(settings, "traces"), **kwargs), None)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    probe = _ResponseProbe(ExportTraceServiceResponse, "rejected_spans")
    exporter = OTLPSpanExporter(endpoint=_endpoint(settings, "traces"), session=_http_session(probe), **kwargs)
    return _adapt_span_exporter(exporter, probe)


LogExport = tuple[Callable[[Sequence[ReadableLogRecord]], Outcome], Callable[[], None]]


def build_log_export(settings: Settings) -> LogExport | None:
    if settings.logs_exporter == "none":
        return None
    exporter: LogRecordExporter
    probe: _ResponseProbe | None = None
    if settings.logs_exporter == "console":
        exporter = ConsoleLogRecordExporter()
    elif settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

        exporter = GrpcLogExporter(endpoint=_endpoint(settings, "logs"), **_common_kwargs(settings))
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        probe = _ResponseProbe(ExportLogsServiceResponse, "rejected_log_records")
        exporter = OTLPLogExporter(
            endpoint=_endpoint(settings, "logs"), session=_http_session(probe), **_common_kwargs(settings)
        )

    def export(batch: Sequence[ReadableLogRecord]) -> Outcome:
        if probe is not None:
            probe.reset()
        if exporter.export(batch) is LogRecordExportResult.SUCCESS:
            return Outcome(True, rejected=probe.rejected if probe is not None else 0)
        return Outcome(False, reason=probe.reason() if probe is not None else "export_failed")

    return export, exporter.shutdown


class DeadlineMetricExporter(MetricExporter):
    """Runs each export on a helper thread and returns by ``timeout_millis`` whatever happens.

    The SDK's periodic reader calls ``export`` on its own thread, but ``force_flush`` calls it on
    the caller's; with the Collector black-holed that would block for the whole retry cycle.
    While a timed-out export is still running, new exports are skipped (and counted), so
    threads never pile up.
    """

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,  # noqa: SLF001 - copied, not changed
            preferred_aggregation=inner._preferred_aggregation,  # noqa: SLF001
        )
        self._inner = inner
        self._busy = threading.Lock()
        self._closing = threading.Event()
        self.exported = 0
        self.failed = 0
        self.skipped = 0
        self.failing = False  # the last export failed
        self._started_at: float | None = None  # monotonic start of the export in progress

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if self._closing.is_set() or not self._busy.acquire(blocking=False):
            self.skipped += 1
            return MetricExportResult.FAILURE
        done = threading.Event()
        box: list[MetricExportResult] = []
        self._started_at = time.monotonic()

        def run() -> None:
            try:
                box.append(self._inner.export(metrics_data, timeout_millis=timeout_millis))
            except Exception:  # noqa: BLE001
                box.append(MetricExportResult.FAILURE)
            finally:
                self._started_at = None
                self._busy.release()
                done.set()

        threading.Thread(target=run, name="agentmon-metrics-export", daemon=True).start()
        deadline = time.monotonic() + max(0.0, timeout_millis / 1000.0)
        while not done.wait(0.05):
            if self._closing.is_set() or time.monotonic() >= deadline:
                break
        if not box or box[0] is not MetricExportResult.SUCCESS:
            self.failed += 1
            self.failing = True
            return MetricExportResult.FAILURE
        self.exported += 1
        self.failing = False
        return MetricExportResult.SUCCESS

    def stalled(self, seconds: float) -> bool:
        """An export has been running for longer than ``seconds`` (retrying or black-holed)."""
        started = self._started_at
        return started is not None and time.monotonic() - started > seconds

    def close(self) -> None:
        """Abandon any export in progress now (used at shutdown when exports are failing)."""
        self._closing.set()
        try:
            self._inner.shutdown()
        except Exception:  # noqa: BLE001
            pass

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if not self._closing.is_set():
            self.close()


def build_metric_exporter(settings: Settings) -> DeadlineMetricExporter | None:
    if settings.metrics_exporter == "none":
        return None
    inner: MetricExporter
    if settings.metrics_exporter == "console":
        inner = ConsoleMetricExporter()
    elif settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

        inner = GrpcMetricExporter(endpoint=_endpoint(settings, "metrics"), **_common_kwargs(settings))
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        inner = OTLPMetricExporter(endpoint=_endpoint(settings, "metrics"), session=_http_session(),
                                   **_common_kwargs(settings))
    return DeadlineMetricExporter(inner)
