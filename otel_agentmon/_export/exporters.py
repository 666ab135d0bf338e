"""Build the OTLP exporters and adapt them to our accounting and deadlines.

We wrap the SDK's exporters through public seams only: a ``requests.Session`` response hook
reads the HTTP status and OTLP ``partial_success`` (which the SDK ignores), and a metric
exporter wrapper bounds every export by its deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter, SpanExportResult

from .._core.guard import RateLimiter, log_once
from .._core.sdk_compat import exporter_preferences
from .durable import DurableSend, SpoolShare, encode_logs, encode_spans, spool_share
from .http import ResponseProbe, http_session
from .metric_spool import MetricSpool
from .worker import Outcome

if TYPE_CHECKING:
    from .._setup.settings import Settings
    from .spool import SpoolDir

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


T = TypeVar("T")
SpanExport = tuple[Callable[[Sequence[ReadableSpan]], Outcome], Callable[[], None]]


def _spans_encode(batch: Sequence[ReadableSpan]) -> bool:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    try:
        encode_spans(batch).SerializePartialToString()  # what the OTLP exporters do
    except Exception:  # noqa: BLE001 - e.g. a lone surrogate in a name from another instrumentation
        return False
    return True


class _Send(Generic[T]):
    """One SDK exporter as a BatchWorker's export callable (see ``_batch.TransportAware``).

    With ``encodes``, a batch that failed because an item in it cannot be encoded is sent again
    without that item. That is decided by the data, never by how long the failure took: a request
    that reached the network was encoded; otherwise the batch is encoded again here, and only
    when that fails are the items sorted one by one (the failure path only: the Collector being
    down costs one encode per batch).
    """

    def __init__(self, export: Callable[[Sequence[T]], object], success: object, probe: ResponseProbe | None,
                 encodes: Callable[[Sequence[T]], bool] | None = None) -> None:
        self._export = export
        self._success = success
        self._probe = probe
        self._encodes = encodes

    def transport_failing(self) -> bool | None:
        return None if self._probe is None else self._probe.transport_failing

    def _send(self, batch: Sequence[T]) -> Outcome:
        probe = self._probe
        if probe is not None:
            probe.reset()
        try:
            result = self._export(batch)
        except Exception as exc:  # noqa: BLE001 - a raising exporter failed this batch
            return Outcome(False, reason=type(exc).__qualname__)
        if result is self._success:
            return Outcome(True, rejected=probe.rejected if probe is not None else 0)
        return Outcome(False, reason=probe.reason() if probe is not None else "export_failed")

    def __call__(self, batch: Sequence[T]) -> Outcome:
        outcome = self._send(batch)
        encodes = self._encodes
        if outcome.ok or encodes is None or (self._probe is not None and self._probe.attempts) or encodes(batch):
            return outcome
        good = [item for item in batch if encodes([item])]
        log_once(logging.WARNING, "encode_failed", "dropped %d item(s) that cannot be encoded as OTLP",
                 len(batch) - len(good))
        retried = self._send(good) if good else Outcome(True)
        return dataclasses.replace(retried, unencodable=len(batch) - len(good))


def _adapt_span_exporter(exporter: SpanExporter, probe: ResponseProbe | None) -> SpanExport:
    return _Send(exporter.export, SpanExportResult.SUCCESS, probe, _spans_encode), exporter.shutdown


def build_span_export(settings: Settings, spool: SpoolDir | None = None) -> SpanExport | None:
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

    probe = ResponseProbe(ExportTraceServiceResponse, "rejected_spans")
    exporter = OTLPSpanExporter(endpoint=_endpoint(settings, "traces"), session=http_session(probe), **kwargs)
    share = spool_share("traces", exporter, probe, spool, settings) if spool is not None else None
    if share is not None:
        return DurableSend(share, encode_spans, probe), exporter.shutdown
    return _adapt_span_exporter(exporter, probe)


LogExport = tuple[Callable[[Sequence[ReadableLogRecord]], Outcome], Callable[[], None]]


def build_log_export(settings: Settings, spool: SpoolDir | None = None) -> LogExport | None:
    if settings.logs_exporter == "none":
        return None
    exporter: LogRecordExporter
    probe: ResponseProbe | None = None
    if settings.logs_exporter == "console":
        exporter = ConsoleLogRecordExporter()
    elif settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

        exporter = GrpcLogExporter(endpoint=_endpoint(settings, "logs"), **_common_kwargs(settings))
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        probe = ResponseProbe(ExportLogsServiceResponse, "rejected_log_records")
        exporter = OTLPLogExporter(
            endpoint=_endpoint(settings, "logs"), session=http_session(probe), **_common_kwargs(settings)
        )
        share = spool_share("logs", exporter, probe, spool, settings) if spool is not None else None
        if share is not None:
            return DurableSend(share, encode_logs, probe), exporter.shutdown

    return _Send(exporter.export, LogRecordExportResult.SUCCESS, probe), exporter.shutdown


class DeadlineMetricExporter(MetricExporter):
    """Runs each export on a helper thread and returns by ``timeout_millis`` whatever happens.

    The SDK's periodic reader calls ``export`` on its own thread, but ``force_flush`` calls it on
    the caller's; with the Collector black-holed that would block for the whole retry cycle.
    While a timed-out export is still running, new exports are skipped (and counted), so
    threads never pile up. The SDK's reader serialises exports under a lock: a flush would queue
    behind a periodic export waiting out its own (longer) timeout, so while a flush waits, the
    periodic export stops waiting (its helper thread goes on) and the flush keeps its deadline.
    """

    def __init__(self, inner: MetricExporter, share: SpoolShare | None = None) -> None:
        temporality, aggregation = exporter_preferences(inner)  # copied, not changed
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self._inner = inner
        self.spool = MetricSpool(share) if share is not None else None
        self._busy = threading.Lock()
        self._closing = threading.Event()
        self.exported = 0
        self.failed = 0
        self.skipped = 0
        self.failing = False  # the last export failed
        self._started_at: float | None = None  # monotonic start of the export in progress
        self._flushing: set[int] = set()  # threads in the reader's force_flush

    @contextlib.contextmanager
    def flushing(self) -> Iterator[None]:
        """Mark the current thread as flushing, for the length of the block."""
        me = threading.get_ident()
        self._flushing.add(me)
        try:
            yield
        finally:
            self._flushing.discard(me)

    def _flush_waits(self) -> bool:
        me = threading.get_ident()
        return any(t != me for t in list(self._flushing))

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if self._closing.is_set() or not self._busy.acquire(blocking=False):
            self.skipped += 1
            if self.spool is not None and self._closing.is_set():
                self.spool.store(metrics_data)  # the final export, with the endpoint failing: keep it
            return MetricExportResult.FAILURE
        done = threading.Event()
        box: list[MetricExportResult] = []
        self._started_at = time.monotonic()

        def run() -> None:
            try:
                with suppress_instrumentation():  # this thread does not inherit the reader's context
                    box.append(self._inner.export(metrics_data, timeout_millis=timeout_millis))
                    if self.spool is not None:
                        self.spool.after_export(metrics_data, box[0] is MetricExportResult.SUCCESS)
            except Exception:  # noqa: BLE001
                box.append(MetricExportResult.FAILURE)
            finally:
                self._started_at = None
                self._busy.release()
                done.set()

        threading.Thread(target=run, name="agentmon-metrics-export", daemon=True).start()
        deadline = time.monotonic() + max(0.0, timeout_millis / 1000.0)
        while not done.wait(0.05):
            if self._closing.is_set() or time.monotonic() >= deadline or self._flush_waits():
                break
        if not box or box[0] is not MetricExportResult.SUCCESS:
            self.failed += 1
            self.failing = True
            return MetricExportResult.FAILURE
        self.exported += 1
        self.failing = False
        return MetricExportResult.SUCCESS

    @property
    def exporting(self) -> bool:
        """An export is in flight now."""
        return self._started_at is not None

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


class PeriodicReader(PeriodicExportingMetricReader):
    """The SDK's periodic reader, with instrumentation suppressed while it collects too (the SDK
    suppresses only around the export: observable callbacks and their I/O are ours, not the
    app's), and a ``force_flush`` that does not queue behind a periodic export in progress."""

    def __init__(self, exporter: MetricExporter, **kwargs: Any) -> None:
        self._deadline_exporter = exporter if isinstance(exporter, DeadlineMetricExporter) else None
        super().__init__(exporter, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        if self._deadline_exporter is None:
            return super().force_flush(timeout_millis=timeout_millis)
        with self._deadline_exporter.flushing():
            return super().force_flush(timeout_millis=timeout_millis)

    # The SDK marks collect() final for type checkers only; wrapping it (and calling it) keeps
    # every path to a collection covered: the periodic thread, force_flush and shutdown.
    def collect(self, timeout_millis: float = 10_000) -> None:  # type: ignore[misc]  # the SDK marks collect() @final for type checkers only (see above)
        with suppress_instrumentation():
            super().collect(timeout_millis=timeout_millis)


def build_metric_exporter(settings: Settings, spool: SpoolDir | None = None) -> DeadlineMetricExporter | None:
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

        inner = OTLPMetricExporter(endpoint=_endpoint(settings, "metrics"), session=http_session(),
                                   **_common_kwargs(settings))
        if spool is not None:
            return DeadlineMetricExporter(inner, spool_share("metrics", inner, None, spool, settings))
    return DeadlineMetricExporter(inner)
