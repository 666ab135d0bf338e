"""A first run with nothing to export to: one line that says what to start.

A new user runs the quickstart before any Collector exists. The exporters then try the default
endpoint (``localhost:4318``, or ``:4317`` for gRPC), fail, and log retry warnings that do not
say what is missing. When nothing was configured (no ``endpoint``, no ``OTEL_EXPORTER_OTLP_*``
endpoint variable) and nothing listens at the default endpoint, ``configure()`` says so in one
line, with what to start, and the connection-refused noise of that run is left out (other export
failures still show). A probe of a loopback port that refuses costs microseconds.
"""

from __future__ import annotations

import logging
import os
import socket

from .._core.guard import log_once
from .settings import Settings

DEFAULT_HOST = "localhost"
DEFAULT_PORTS = {"http/protobuf": 4318, "http/json": 4318, "grpc": 4317}
_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
# Loggers whose "connection refused" lines the hint replaces (the SDK exporters' retry warnings
# and our worker's "export failing (connection_error)").
_REFUSED_NOISE_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.sdk.metrics._internal.export",
    "otel_agentmon",
)
_REFUSED_MARKERS = ("Connection refused", "connection_error", "StatusCode.UNAVAILABLE", "Failed to establish",
                    "Shutdown in progress, aborting retry")


class _RefusedNoiseFilter(logging.Filter):
    """Drops the log lines that only repeat "nothing listens at the default endpoint"."""

    def __init__(self) -> None:
        super().__init__("otel_agentmon.first_run")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to drop
            return True
        return not any(marker in text for marker in _REFUSED_MARKERS)


_filter = _RefusedNoiseFilter()


def _uses_default_endpoint(settings: Settings) -> bool:
    if settings.disabled or "endpoint" in settings.explicit:
        return False
    if any(os.environ.get(name) for name in _ENDPOINT_VARS):
        return False
    return "otlp" in (settings.traces_exporter, settings.metrics_exporter, settings.logs_exporter)


def _listening(host: str, port: int, timeout: float = 0.25) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hint_if_nothing_listens(settings: Settings, port: int | None = None) -> bool:
    """Say in one line what to start when the default endpoint has no receiver; True if it said so."""
    forget_hint()
    if not _uses_default_endpoint(settings):
        return False
    port = DEFAULT_PORTS.get(settings.protocol, 4318) if port is None else port
    if _listening(DEFAULT_HOST, port):
        return False
    log_once(logging.WARNING, "first_run:nothing_listens",
             "nothing listens at http://%s:%d, the default OTLP endpoint: start `agentmon serve` there "
             "(a local receiver with a live dashboard) or a Collector, or set OTEL_EXPORTER_OTLP_ENDPOINT "
             "(configure(dashboard=True) serves the dashboard from this process)%s", DEFAULT_HOST, port,
             "; until one answers, telemetry waits in the disk spool and is sent then, by this run or the next"
             if settings.spool and settings.protocol != "grpc" else "")
    for name in _REFUSED_NOISE_LOGGERS:
        lg = logging.getLogger(name)
        if _filter not in lg.filters:
            lg.addFilter(_filter)
    return True


def forget_hint() -> None:
    """Remove the noise filter (tests; a later configure() to a real endpoint)."""
    for name in _REFUSED_NOISE_LOGGERS:
        logging.getLogger(name).removeFilter(_filter)
